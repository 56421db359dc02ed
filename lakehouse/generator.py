"""Deterministic landing-zone sample data for the campaign-analytics lakehouse, with a manifest of its defects.

:func:`generate` writes the three landing tables as RFC 4180 CSV files (advertisers and campaigns in two parts,
performance one file per ISO week of 2024) and ``manifest.json``, which predicts exactly what Silver concludes:
rows kept, copies collapsed, rows quarantined and under which rules. Clean data follows channel funnels, flights
and budgets; defects come from :mod:`lakehouse.generator_defects`. Same arguments, byte-identical files.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakehouse.contracts import CAMPAIGN_TYPES, INDUSTRIES, OBJECTIVES, SOURCE_COLUMNS, TABLES
from lakehouse.generator_defects import DUPLICATE_KINDS, Injected, TablePlan, Values, format_record, plan_table

YEAR_START = date(2024, 1, 1)  # a Monday, so ISO week k of 2024 starts YEAR_START + 7k days
YEAR_END = date(2024, 12, 31)
WEEKS = 53
ADVERTISERS_PER_SCALE, CAMPAIGNS_PER_SCALE = 360, 3650  # about 15 MB of CSV at scale 1
MIN_ADVERTISERS, MIN_CAMPAIGNS = 10, 20
COUNTRIES = ("US", "US", "US", "GB", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE", "JP", "BR", "IN", "SG")
# channel: (CTR range, CPC range in cents)
CHANNELS = {
    "Search": ((0.02, 0.05), (100, 300)),
    "Shopping": ((0.01, 0.025), (50, 150)),
    "Social": ((0.006, 0.015), (50, 150)),
    "Video": ((0.004, 0.012), (50, 200)),
    "Display": ((0.001, 0.005), (30, 100)),
}
WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.95, 0.8, 0.75)
_FIRST = ("Olivia", "Liam", "Emma", "Noah", "Sofia", "Lucas", "Mia", "Hiroshi", "Priya", "Mateo", "Chloé", "Lars")
_LAST = ("Smith", "Müller", "García", "Nakamura", "O'Brien", "Rossi", "Dubois", "Jansen", "Silva", "Patel", "Chen")
_WORDS = ("Blue", "Summit", "Nova", "Harbor", "Apex", "Cedar", "Lumen", "Vertex", "Maple", "Orbit", "Atlas", "North")
_NOUNS = ("Foods", "Motors", "Labs", "Health", "Travel", "Studios", "Outfitters", "Bank", "Academy", "Media", "Goods")
_SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "SA", "BV", "AB", "KK", "Pty Ltd", "Holdings")
_REGIONS = ("EMEA", "APAC", "North America", "LATAM")
_SEASONS = ("Spring", "Summer", "Autumn", "Holiday", "Q1", "Q2", "Q3", "Q4", "Back to School", "Black Friday")
_THEMES = ("Brand Awareness", "Prospecting", "Retargeting", "New Arrivals", "Clearance", "Loyalty", "Lead Gen")

Row = tuple[str, ...]


@dataclass(frozen=True)
class Campaign:
    """A campaign's landing row and the funnel its daily performance follows."""

    row: Row
    campaign_id: int
    first_day: date
    last_day: date  # before first_day for drafts, which never deliver
    ctr: tuple[float, float, float]  # (campaign CTR, channel floor, channel ceiling)
    cpc_cents: float
    cvr: float
    spend_cents: float
    aov_cents: int


def _rng(seed: int, stream: str) -> random.Random:
    """One independent random stream per concern, so dirty_rate never changes the clean data."""
    return random.Random(f"{seed}:{stream}")


def _money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _company_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return f"{rng.choice(_LAST)}, {rng.choice(_LAST)} & Co"
    if roll < 0.12:
        return f'{rng.choice(_WORDS)} "{rng.choice(_NOUNS)}" {rng.choice(_SUFFIXES)}'
    if roll < 0.14:
        return f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}\n{rng.choice(_REGIONS)}"
    return f"{rng.choice(_LAST + _WORDS)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"


def _campaign_name(rng: random.Random, channel: str) -> str:
    season, theme = rng.choice(_SEASONS), rng.choice(_THEMES)
    roll = rng.random()
    if roll < 0.08:
        return f"{theme}, {season} | {channel}"
    if roll < 0.12:
        return f'{season} "{theme}" | {channel}'
    if roll < 0.14:
        return f"{season} {theme}\n{rng.choice(_REGIONS)}"
    return f"{season} 2024 {theme} | {channel}"


def _advertiser(rng: random.Random, advertiser_id: int) -> Row:
    manager = "" if rng.random() < 0.15 else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return (str(advertiser_id), _company_name(rng), rng.choice(INDUSTRIES), rng.choice(COUNTRIES), manager)


def _flight(rng: random.Random) -> tuple[date, date | None, str]:
    """Start, end (None: open-ended) and status; open-ended flights start late so no flight outgrows the year."""
    roll = rng.random()
    if roll < 0.03:
        start = YEAR_START + timedelta(days=rng.randint(335, 350))
        return start, YEAR_END, "Draft"
    if roll < 0.15:
        return YEAR_START + timedelta(days=rng.randint(180, 350)), None, rng.choice(("Active",) * 4 + ("Paused",))
    start = YEAR_START + timedelta(days=rng.randint(0, 335))
    end = min(start + timedelta(days=rng.randint(13, 150)), YEAR_END)
    status = "Active" if end == YEAR_END else "Completed"
    return start, end, "Paused" if rng.random() < 0.1 else status


def _campaign(rng: random.Random, campaign_id: int, n_advertisers: int) -> Campaign:
    channel = rng.choice(CAMPAIGN_TYPES)
    (ctr_low, ctr_high), (cpc_low, cpc_high) = CHANNELS[channel]
    start, end, status = _flight(rng)
    days = ((end or YEAR_END) - start).days + 1
    daily = rng.randrange(2000, 300000, 50)
    total = "" if end is None and rng.random() < 0.4 else _money(max(daily, round(daily * days * rng.uniform(0.6, 1))))
    row = (
        str(campaign_id),
        str(rng.randint(1, n_advertisers)),
        _campaign_name(rng, channel),
        channel,
        status,
        "" if rng.random() < 0.1 else rng.choice(OBJECTIVES),
        start.isoformat(),
        "" if end is None else end.isoformat(),
        "" if rng.random() < 0.05 else _money(daily),
        total,
    )
    last_day = start - timedelta(days=1) if status == "Draft" else end or YEAR_END
    ctr = (rng.uniform(ctr_low, ctr_high), ctr_low, ctr_high)
    cpc, cvr, aov = rng.uniform(cpc_low, cpc_high), rng.uniform(0.015, 0.09), rng.randint(2000, 25000)
    return Campaign(row, campaign_id, start, last_day, ctr, cpc, cvr, daily * rng.uniform(0.5, 0.95), aov)


def _performance_row(rng: random.Random, performance_id: int, campaign: Campaign, day: date, day_text: str) -> Row:
    """One day of one campaign: spend buys clicks at the CPC, clicks imply impressions at the CTR."""
    spend = campaign.spend_cents * WEEKDAY_FACTOR[day.weekday()] * rng.uniform(0.8, 1.2)
    cpc = campaign.cpc_cents * rng.uniform(0.95, 1.05)
    clicks = max(1, int(spend / cpc))
    base_ctr, ctr_low, ctr_high = campaign.ctr
    impressions = math.ceil(clicks / min(ctr_high, max(ctr_low, base_ctr * rng.uniform(0.9, 1.1))))
    conversions = min(clicks, int(clicks * campaign.cvr * rng.uniform(0.8, 1.2) + rng.random()))
    revenue = round(conversions * campaign.aov_cents * rng.uniform(0.8, 1.2))
    metrics = (str(impressions), str(clicks), str(conversions), _money(round(clicks * cpc)), _money(revenue))
    return (str(performance_id), str(campaign.campaign_id), day_text, *metrics)


def _week_rows(rng: random.Random, week: int, campaigns: list[Campaign], first_id: int) -> list[Row]:
    monday = YEAR_START + timedelta(weeks=week)
    sunday = monday + timedelta(days=6)
    live = [c for c in campaigns if c.first_day <= sunday and c.last_day >= monday]
    rows: list[Row] = []
    for day in (monday + timedelta(days=d) for d in range(7)):
        text = day.isoformat()
        for campaign in live:
            if campaign.first_day <= day <= campaign.last_day:
                rows.append(_performance_row(rng, first_id + len(rows), campaign, day, text))
    return rows


def _delivery_days(campaign: Campaign) -> int:
    return max(0, (campaign.last_day - campaign.first_day).days + 1)


@dataclass(frozen=True)
class Source:
    """One landing table: its file names, clean rows per file (lazily) and carrier base rows."""

    table: str
    files: tuple[str, ...]
    n_rows: int
    chunks: Callable[[], Iterator[list[Row]]]
    base_row: Callable[[int], Values]
    orphan_key: Callable[[], str]  # a parent key that exists nowhere


def _sources(seed: int, scale: float) -> dict[str, Source]:
    n_advertisers = max(MIN_ADVERTISERS, round(ADVERTISERS_PER_SCALE * scale))
    n_campaigns = max(MIN_CAMPAIGNS, round(CAMPAIGNS_PER_SCALE * scale))
    rng = _rng(seed, "advertisers")
    advertisers = [_advertiser(rng, i) for i in range(1, n_advertisers + 1)]
    rng = _rng(seed, "campaigns")
    campaigns = [_campaign(rng, i, n_advertisers) for i in range(1, n_campaigns + 1)]
    keys = {"advertisers": n_advertisers, "campaigns": n_campaigns, "performance": sum(map(_delivery_days, campaigns))}
    counters = {table: itertools.count(n + 1) for table, n in keys.items()}
    carriers = _carrier_factory(_rng(seed, "carriers"), counters, n_advertisers, n_campaigns)

    def unused_key(parent: str) -> Callable[[], str]:
        # drawn after the parent table's carriers took theirs, so no row ever holds it
        return lambda: str(next(counters[parent]))

    def performance() -> Iterator[list[Row]]:
        perf_rng, first_id = _rng(seed, "performance"), 1
        for week in range(WEEKS):
            rows = _week_rows(perf_rng, week, campaigns, first_id)
            first_id += len(rows)
            yield rows

    return {
        "advertisers": _two_parts("advertisers", advertisers, carriers, _no_parent),
        "campaigns": _two_parts("campaigns", [c.row for c in campaigns], carriers, unused_key("advertisers")),
        "performance": Source(
            "performance",
            tuple(f"performance_{YEAR_START + timedelta(weeks=w)}.csv" for w in range(WEEKS)),
            keys["performance"],
            performance,
            lambda index: carriers("performance", index),
            unused_key("campaigns"),
        ),
    }


def _no_parent() -> str:
    raise LookupError("advertisers reference no parent table")


def _two_parts(
    table: str, rows: list[Row], carriers: Callable[[str, int], Values], orphan_key: Callable[[], str]
) -> Source:
    cut = (len(rows) * 3) // 5
    return Source(
        table,
        (f"{table}_part1.csv", f"{table}_part2.csv"),
        len(rows),
        lambda: iter((rows[:cut], rows[cut:])),
        lambda index: carriers(table, index),
        orphan_key,
    )


def _carrier_factory(
    rng: random.Random, counters: Mapping[str, Iterator[int]], n_advertisers: int, n_campaigns: int
) -> Callable[[str, int], Values]:
    """Valid rows with fresh keys (nothing references them), in the week of the target file for performance."""

    def advertiser(index: int) -> Row:
        name = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
        manager = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        return (str(next(counters["advertisers"])), name, rng.choice(INDUSTRIES), rng.choice(COUNTRIES), manager)

    def campaign(index: int) -> Row:
        start, daily = YEAR_START + timedelta(days=rng.randint(31, 300)), rng.randrange(5000, 100000, 100)
        return (
            str(next(counters["campaigns"])),
            str(rng.randint(1, n_advertisers)),
            f"{rng.choice(_SEASONS)} {rng.choice(_THEMES)}",
            rng.choice(CAMPAIGN_TYPES),
            rng.choice(("Active", "Paused", "Completed")),
            rng.choice(OBJECTIVES),
            start.isoformat(),
            (start + timedelta(days=30)).isoformat(),
            _money(daily),
            _money(daily * 30),
        )

    def performance(week: int) -> Row:
        day = min(YEAR_END, YEAR_START + timedelta(weeks=week, days=rng.randint(0, 6)))
        impressions = rng.randint(2000, 50000)
        clicks = rng.randint(20, impressions // 40)
        conversions = rng.randint(1, clicks // 5)
        cost, revenue = clicks * rng.randint(30, 300), conversions * rng.randint(2000, 20000)
        metrics = (str(impressions), str(clicks), str(conversions), _money(cost), _money(revenue))
        return (str(next(counters["performance"])), str(rng.randint(1, n_campaigns)), day.isoformat(), *metrics)

    factories = {"advertisers": advertiser, "campaigns": campaign, "performance": performance}

    def base_row(table: str, index: int) -> Values:
        return dict(zip(SOURCE_COLUMNS[table], factories[table](index), strict=True))

    return base_row


def _layout(table: str, shuffled: bool, rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Column order and header cells of one file; a shuffled header also varies case and padding (`` Clicks ``)."""
    columns = SOURCE_COLUMNS[table]
    if not shuffled:
        return columns, columns
    order = list(columns)
    rng.shuffle(order)
    header = [f" {c.capitalize()} " if c == "clicks" else rng.choice((c, c.upper())) for c in order]
    return tuple(order), tuple(header)


def _renderer(table: str, order: tuple[str, ...]) -> Callable[[Row], str]:
    positions = [SOURCE_COLUMNS[table].index(c) for c in order]
    if table == "performance":  # clean numbers and dates never need quoting
        return lambda row: ",".join([row[i] for i in positions])
    return lambda row: format_record([row[i] for i in positions])


def _real_lines(
    table: str, rows: list[Row], first_row: int, plan: TablePlan, render: Callable[[Row], str], rng: random.Random
) -> tuple[list[str | Injected], list[Injected], list[Injected]]:
    """A file's clean rows, rendered, with the planned valid kinds applied (``first_row``: global index of the first).

    Returns the lines, the copies due in this file and the copies due in the next one.
    """
    lines: list[str | Injected] = []
    copies: dict[str, list[Injected]] = {"same_file": [], "next_file": []}
    for offset, row in enumerate(rows):
        kind = plan.real_rows.get(first_row + offset)
        if kind is None:
            lines.append(render(row))
            continue
        injected = kind.inject(table, dict(zip(SOURCE_COLUMNS[table], row, strict=True)), rng)
        lines.append(injected if kind.placement == "replace" else render(row))
        if kind.placement != "replace":
            copies[kind.placement].append(injected)
    return lines, copies["same_file"], copies["next_file"]


def _scatter(lines: list[str | Injected], extras: list[Injected], rng: random.Random) -> list[str | Injected]:
    for extra in extras:
        lines.insert(rng.randint(0, len(lines)), extra)
    return lines


def _write_file(
    path: Path, table: str, header: tuple[str, ...], order: tuple[str, ...], lines: list[str | Injected]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write one CSV file; return its manifest entry and the injected entries with their line numbers."""
    texts, entries, line = [format_record(header)], [], 2
    for item in lines:
        text = item if isinstance(item, str) else item.render(order)
        if isinstance(item, Injected):
            entries.append(item.entry(path.name, line))
        line += text.count("\n") + 1
        texts.append(text)
    data = ("\n".join(texts) + "\n").encode("utf-8")
    path.write_bytes(data)
    blanks = sum(1 for text in texts if not text)  # a record always holds a comma, so only blank lines are empty
    entry = {"table": table, "records": len(lines) - blanks, "blank_lines": blanks, "bytes": len(data)}
    entry["header"] = list(header)  # as written: order and spelling vary in one performance file
    return entry, entries


def _write_table(
    out_dir: Path, source: Source, plan: TablePlan, rng: random.Random
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    files: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    shuffled = rng.randrange(len(source.files)) if source.table == "performance" else None
    pending: list[Injected] = []
    first_row = 0
    for index, (name, rows) in enumerate(zip(source.files, source.chunks(), strict=True)):
        order, header = _layout(source.table, index == shuffled, rng)
        lines, same_file, later = _real_lines(source.table, rows, first_row, plan, _renderer(source.table, order), rng)
        extras = plan.carriers[index] + pending + same_file
        if index == len(source.files) - 1:  # no next file: the last file's re-deliveries stay in it
            extras, later = extras + later, []
        pending = later
        first_row += len(rows)
        files[name], written = _write_file(out_dir / name, source.table, header, order, _scatter(lines, extras, rng))
        entries += written
    return files, entries


def _summarize(
    table: str, silver_rows: int, files: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """A table's expected Silver outcome; checks that every record is accounted for exactly once."""
    by_rule = Counter(rule for entry in entries for rule in entry["expected_reasons"])
    summary = {
        "records": sum(f["records"] for f in files),
        "malformed": by_rule["malformed_line"],
        "silver_rows": silver_rows,
        "duplicates": sum(1 for entry in entries if entry["defect"] in DUPLICATE_KINDS),
        "superseded": 0,  # one landing directory is one batch: nothing from an earlier batch is replaced
        "quarantined": sum(1 for entry in entries if entry["expected_reasons"]),
        "quarantined_by_rule": dict(sorted(by_rule.items())),
        "defects": dict(sorted(Counter(entry["defect"] for entry in entries).items())),
    }
    accounted = sum(summary[k] for k in ("silver_rows", "quarantined", "duplicates", "superseded"))
    if summary["records"] != accounted:
        raise RuntimeError(f"generator bug: {table} has {summary['records']} records but accounts for {accounted}")
    return summary


def _check_arguments(scale: float, dirty_rate: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (1.0 is about 15 MB of CSV), got {scale!r}")
    if not (math.isfinite(dirty_rate) and 0 <= dirty_rate <= 0.5):
        raise ValueError(f"dirty_rate must be between 0 and 0.5 (share of defective rows), got {dirty_rate!r}")


def generate(out_dir: Path, *, scale: float = 1.0, seed: int = 42, dirty_rate: float = 0.02) -> dict[str, Any]:
    """Write landing CSVs and ``out_dir/manifest.json``; return the manifest.

    Args:
        out_dir: landing directory (created if missing); files of the same names are overwritten.
        scale: multiplies the number of advertisers and campaigns; 1.0 gives about 15 MB of CSV.
        seed: same seed and arguments give byte-identical files.
        dirty_rate: about this share of each table's rows is defective, at least one of each kind; 0 for none.

    Returns:
        The manifest: per file its table, records, blank lines, bytes and header; per table records, malformed,
        expected silver rows, duplicates, superseded, quarantined, quarantined_by_rule and defect counts; and
        every injected line with its file, line, key, defect kind and expected quarantine reasons.

    Raises:
        ValueError: ``scale`` is not positive or ``dirty_rate`` is outside [0, 0.5].
    """
    _check_arguments(scale, dirty_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = _sources(seed, scale)
    manifest: dict[str, Any] = {"seed": seed, "scale": scale, "dirty_rate": dirty_rate, "files": {}, "tables": {}}
    injected: list[dict[str, Any]] = []
    for table in TABLES:
        source = sources[table]
        plan = plan_table(
            table,
            n_rows=source.n_rows,
            n_files=len(source.files),
            dirty_rate=dirty_rate,
            rng=_rng(seed, f"defects:{table}"),
            base_row=source.base_row,
            orphan_key=source.orphan_key,
        )
        files, entries = _write_table(out_dir, source, plan, _rng(seed, f"layout:{table}"))
        manifest["files"] |= files
        manifest["tables"][table] = _summarize(table, source.n_rows, list(files.values()), entries)
        injected += entries
    manifest["injected"] = injected
    (out_dir / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return manifest
