"""Defect catalog of the sample-data generator: each kind of bad (or awkward but valid) landing row, the Silver
rules it breaks, and how it is rendered as a CSV line.

Silver semantics assumed here, which the manifest predicts exactly: values are trimmed of spaces and an empty
value is null; categorical values match case-insensitively; a row carries every rule it breaks; comparison and
orphan rules apply only when both sides parse and are non-null; a line that does not split into the header's fields
carries ``malformed_line`` alone. Carriers get fresh keys that no child row references, so nothing cascades.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from lakehouse.contracts import LINEAGE, SILVER, Column

Values = dict[str, str]
Mutation = Callable[[Values, random.Random], None]
Placement = Literal["carrier", "replace", "same_file", "next_file"]

_LINEAGE_NAMES = frozenset(c.name for c in LINEAGE)
REFERENCE_CHECKED = frozenset({"country"})  # validated against ISO 3166-1 alpha-2, not an accepted-values list
COMPARISON_RULES: dict[str, tuple[str, ...]] = {
    "advertisers": (),
    "campaigns": ("end_before_start", "daily_budget_gt_total"),
    "performance": ("clicks_gt_impressions", "conversions_gt_clicks"),
}
ORPHAN_RULES: dict[str, tuple[str, ...]] = {
    "advertisers": (),
    "campaigns": ("orphan_advertiser_id",),
    "performance": ("orphan_campaign_id",),
}
# A negative value also breaks a comparison whose other side is a valid, non-negative number.
NEGATIVE_IMPLIES = {
    "impressions": ("clicks_gt_impressions",),
    "clicks": ("conversions_gt_clicks",),
    "budget_total": ("daily_budget_gt_total",),
}
DUPLICATE_KINDS = ("exact_duplicate", "normalized_duplicate")

_BLANKS = ("", "   ")
_BAD_INTEGERS = ("12abc", "1,234", "N/A", "7.5")
_BAD_DECIMALS = ("12abc", "1,234.50", "N/A", "12.345", "1e3")
_BAD_DATES = ("2024-02-30", "2024-13-01", "02/09/2024", "2023-02-29")
_BAD_COUNTRIES = ("USA", "Germany", "U5")
_BAD_CATEGORIES = ("Unknown", "Radio", "n/a")
# (column, text with an unquoted comma -> one field too many, text with a quote followed by garbage)
_MALFORMED_TEXT = {
    "advertisers": ("advertiser_name", "Acme, Inc", '"Acme" Corp'),
    "campaigns": ("campaign_name", "Spring Sale, Wave 2", '"Spring" Sale'),
    "performance": ("impressions", "12,345", '"12"345'),
}


def _source_columns(table: str) -> tuple[Column, ...]:
    return tuple(c for c in SILVER[table].columns if c.name not in _LINEAGE_NAMES)


def _is_numeric(column: Column) -> bool:
    return column.type in ("int", "bigint") or column.type.startswith("decimal")


def required_columns(table: str) -> tuple[str, ...]:
    """Source columns Silver rejects when null (``missing_<column>``)."""
    return tuple(c.name for c in _source_columns(table) if c.required)


def checked_columns(table: str) -> tuple[str, ...]:
    """Source columns Silver can reject as unparseable or not accepted (``invalid_<column>``)."""
    return tuple(
        c.name for c in _source_columns(table) if c.type != "string" or c.accepted_values or c.name in REFERENCE_CHECKED
    )


def negative_columns(table: str) -> tuple[str, ...]:
    """Measure columns Silver rejects below zero (``negative_<column>``); keys are never measures."""
    return tuple(c.name for c in _source_columns(table) if _is_numeric(c) and not c.name.endswith("_id"))


def silver_rules(table: str) -> tuple[str, ...]:
    """Every quarantine rule name Silver applies to ``table``."""
    return (
        "malformed_line",
        *(f"missing_{c}" for c in required_columns(table)),
        *(f"invalid_{c}" for c in checked_columns(table)),
        *(f"negative_{c}" for c in negative_columns(table)),
        *COMPARISON_RULES[table],
        *ORPHAN_RULES[table],
        "conflicting_duplicate",
    )


def quote(value: str) -> str:
    """One RFC 4180 field: quoted only when it holds a comma, quote, CR or LF; embedded quotes doubled."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def format_record(fields: Sequence[str]) -> str:
    """One RFC 4180 record, without its line terminator."""
    return ",".join(quote(f) for f in fields)


@dataclass
class Injected:
    """One deliberately crafted line: its values, how to break its structure, and Silver's expected verdict."""

    table: str
    kind: str
    values: Values | None  # None: a blank line, which is not a record
    reasons: tuple[str, ...] = ()
    raw: tuple[tuple[str, str], ...] = ()  # (column, text written verbatim, unquoted)
    too_few: bool = False  # drop the file's last column

    @property
    def key(self) -> str | None:
        if self.values is None or "malformed_line" in self.reasons:
            return None
        return self.values[SILVER[self.table].key[0]].strip(" ") or None

    def render(self, order: Sequence[str]) -> str:
        """The line as written in a file whose columns are ``order``."""
        if self.values is None:
            return ""
        raw = dict(self.raw)
        cells = [raw[c] if c in raw else quote(self.values[c]) for c in order]
        return ",".join(cells[:-1] if self.too_few else cells)

    def entry(self, file: str, line: int) -> dict[str, Any]:
        """The manifest's ``injected`` entry; ``line`` is the 1-based physical line the record starts on."""
        return {
            "table": self.table,
            "file": file,
            "line": line,
            "key": self.key,
            "defect": self.kind,
            "expected_reasons": sorted(self.reasons),
        }


@dataclass(frozen=True)
class Kind:
    """A defect kind: how it changes a row, where the row goes and the rules Silver must report."""

    name: str
    reasons: tuple[str, ...] = ()
    mutate: Mutation | None = None
    raw: tuple[tuple[str, str], ...] = ()
    too_few: bool = False
    placement: Placement = "carrier"

    def inject(self, table: str, base: Values, rng: random.Random) -> Injected:
        values = dict(base)
        if self.mutate is not None:
            self.mutate(values, rng)
        return Injected(table, self.name, values, self.reasons, self.raw, self.too_few)


def _choose(column: str, choices: Sequence[str]) -> Mutation:
    def mutate(values: Values, rng: random.Random) -> None:
        values[column] = rng.choice(choices)

    return mutate


def _assign(column: str, source: Callable[[], str]) -> Mutation:
    def mutate(values: Values, rng: random.Random) -> None:
        values[column] = source()

    return mutate


def _negative(column: Column) -> Mutation:
    def mutate(values: Values, rng: random.Random) -> None:
        cents = f".{rng.randint(0, 99):02d}" if column.type.startswith("decimal") else ""
        values[column.name] = f"-{rng.randint(1, 999)}{cents}"

    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(values: Values, rng: random.Random) -> None:
        for one in mutations:
            one(values, rng)

    return mutate


def _bad_values(column: Column) -> tuple[str, ...]:
    if column.accepted_values:
        return _BAD_CATEGORIES
    if column.name in REFERENCE_CHECKED:
        return _BAD_COUNTRIES
    if column.type == "date":
        return _BAD_DATES
    return _BAD_DECIMALS if column.type.startswith("decimal") else _BAD_INTEGERS


def _end_before_start(values: Values, rng: random.Random) -> None:
    start = date.fromisoformat(values["start_date"])
    values["end_date"] = (start - timedelta(days=rng.randint(1, 30))).isoformat()


def _daily_over_total(values: Values, rng: random.Random) -> None:
    values["budget_total"] = str((Decimal(values["budget_daily"]) / 2).quantize(Decimal("0.01")))


def _clicks_over_impressions(values: Values, rng: random.Random) -> None:
    values["clicks"] = str(int(values["impressions"]) + rng.randint(1, 50))


def _conversions_over_clicks(values: Values, rng: random.Random) -> None:
    values["conversions"] = str(int(values["clicks"]) + rng.randint(1, 5))


def _rule_kinds(table: str, orphan_key: Callable[[], str]) -> list[Kind]:
    columns = {c.name: c for c in _source_columns(table)}
    if table == "advertisers":
        both = _all(_choose("advertiser_name", _BLANKS), _choose("country", _BAD_COUNTRIES))
        return [Kind("multiple_defects", ("invalid_country", "missing_advertiser_name"), both)]
    if table == "campaigns":
        three = _all(_choose("campaign_type", ("Radio",)), _negative(columns["budget_daily"]), _end_before_start)
        return [
            Kind("end_before_start", ("end_before_start",), _end_before_start),
            Kind("daily_budget_gt_total", ("daily_budget_gt_total",), _daily_over_total),
            Kind("orphan_advertiser_id", ("orphan_advertiser_id",), _assign("advertiser_id", orphan_key)),
            Kind("multiple_defects", ("end_before_start", "invalid_campaign_type", "negative_budget_daily"), three),
        ]
    three = _all(_choose("date", ("2024-02-30",)), _negative(columns["cost"]), _conversions_over_clicks)
    return [
        Kind("clicks_gt_impressions", ("clicks_gt_impressions",), _clicks_over_impressions),
        Kind("conversions_gt_clicks", ("conversions_gt_clicks",), _conversions_over_clicks),
        Kind("orphan_campaign_id", ("orphan_campaign_id",), _assign("campaign_id", orphan_key)),
        Kind("multiple_defects", ("conversions_gt_clicks", "invalid_date", "negative_cost"), three),
    ]


def _malformed_kinds(table: str) -> list[Kind]:
    column, split_text, broken_text = _MALFORMED_TEXT[table]
    reasons = ("malformed_line",)
    return [
        Kind("malformed_too_many_fields", reasons, raw=((column, split_text),)),
        Kind("malformed_too_few_fields", reasons, too_few=True),
        Kind("malformed_broken_quoting", reasons, raw=((column, broken_text),)),
    ]


def carrier_kinds(table: str, orphan_key: Callable[[], str]) -> tuple[Kind, ...]:
    """Kinds written as extra rows with fresh keys; each is quarantined for exactly ``Kind.reasons``.

    Args:
        table: landing table name.
        orphan_key: returns a parent key that exists nowhere (used by the orphan kinds).
    """
    columns = {c.name: c for c in _source_columns(table)}
    return (
        *(Kind(f"missing_{n}", (f"missing_{n}",), _choose(n, _BLANKS)) for n in required_columns(table)),
        *(Kind(f"invalid_{n}", (f"invalid_{n}",), _choose(n, _bad_values(columns[n]))) for n in checked_columns(table)),
        *(
            Kind(f"negative_{n}", (f"negative_{n}", *NEGATIVE_IMPLIES.get(n, ())), _negative(columns[n]))
            for n in negative_columns(table)
        ),
        *_rule_kinds(table, orphan_key),
        *_malformed_kinds(table),
    )


def _pad_all(values: Values, rng: random.Random) -> None:
    for column, value in values.items():
        values[column] = f" {value} "


def _odd_advertiser(values: Values, rng: random.Random) -> None:
    values["industry"] = f"  {rng.choice((str.upper, str.lower))(values['industry'])} "
    values["country"] = " uk "  # a British advertiser as people write it; Silver maps UK to GB


def _odd_campaign(values: Values, rng: random.Random) -> None:
    values["campaign_type"] = f"  {values['campaign_type'].lower()} "
    values["status"] = values["status"].upper()
    values["objective"] = f" {values['objective'].lower()}"


def _odd_performance(values: Values, rng: random.Random) -> None:
    values["date"] = f" {values['date']} "
    values["clicks"] = f"{values['clicks']}  "
    values["cost"] = f" {values['cost']}"


_ODD_SPELLING: dict[str, Mutation] = {
    "advertisers": _odd_advertiser,
    "campaigns": _odd_campaign,
    "performance": _odd_performance,
}


def valid_kinds(table: str) -> tuple[Kind, ...]:
    """Kinds applied to real rows that Silver must keep: odd spelling, and copies it must collapse."""
    return (
        Kind("casing_whitespace", mutate=_ODD_SPELLING[table], placement="replace"),
        Kind("exact_duplicate", placement="same_file"),
        Kind("normalized_duplicate", mutate=_pad_all, placement="next_file"),
    )


def _changed(values: Values) -> Values:
    """A second version of a row: same key, one value changed, still valid."""
    changed = dict(values)
    if "revenue" in changed:
        changed["revenue"] = str(Decimal(changed["revenue"]) + 1)
    elif "status" in changed:
        changed["status"] = "Paused" if changed["status"] != "Paused" else "Active"
    else:
        changed["advertiser_name"] += " Holdings"
    return changed


@dataclass
class TablePlan:
    """Where a table's injected rows go: carriers by file index, valid kinds by global clean-row index."""

    carriers: dict[int, list[Injected]] = field(default_factory=dict)
    real_rows: dict[int, Kind] = field(default_factory=dict)


def plan_table(
    table: str,
    *,
    n_rows: int,
    n_files: int,
    dirty_rate: float,
    rng: random.Random,
    base_row: Callable[[int], Values],
    orphan_key: Callable[[], str],
) -> TablePlan:
    """Choose every injected row of one table: about ``dirty_rate * n_rows`` in all, at least one per kind.

    Args:
        table: landing table name.
        n_rows: clean rows the table holds (indices ``0..n_rows-1`` in write order).
        n_files: landing files of the table (at least 2, so a key can be re-delivered in a later file).
        dirty_rate: share of defective rows; 0 injects nothing.
        rng: the table's defect random stream.
        base_row: a valid row with a fresh key for the file with the given index.
        orphan_key: a parent key that exists nowhere.
    """
    plan = TablePlan({index: [] for index in range(n_files)})
    if dirty_rate == 0:
        return plan
    carriers, valid = carrier_kinds(table, orphan_key), valid_kinds(table)
    per_kind = max(1, round(dirty_rate * n_rows / (len(carriers) + len(valid) + 2)))
    for kind in carriers:
        for _ in range(per_kind):
            index = rng.randrange(n_files)
            plan.carriers[index].append(kind.inject(table, base_row(index), rng))
    for _ in range(per_kind):
        first = rng.randrange(n_files - 1)
        later = rng.randrange(first + 1, n_files)
        original = base_row(first)
        for index, values in ((first, original), (later, _changed(original))):
            plan.carriers[index].append(Injected(table, "conflicting_duplicate", values, ("conflicting_duplicate",)))
        plan.carriers[rng.randrange(n_files)].append(Injected(table, "blank_line", None))
    per_real = min(per_kind, n_rows // len(valid))
    for position, index in enumerate(rng.sample(range(n_rows), per_real * len(valid))):
        plan.real_rows[index] = valid[position % len(valid)]
    return plan
