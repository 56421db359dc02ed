"""The run report as one self-contained HTML file: Jinja2 fills ``templates/report.html.j2`` with a run's facts
and pygal's inline SVG charts.

Why Jinja2: dbt already installs it, it escapes every value by default (check names and quarantined raw text are
data, not markup), and the page's layout stays a template rather than strings in Python. The file has no link to
anything it needs: styles are inline, the charts are SVG in the page, no script and no web font, so it opens
offline and never makes a network request.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, PackageLoader

from lakehouse._version import __version__
from lakehouse.contracts import LAYERS
from lakehouse.report import Storage, human_bytes
from lakehouse.runreport import charts
from lakehouse.runreport.facts import RunFacts, as_of, gather, latest_run_id
from lakehouse.settings import PostgresSettings

_ENV = Environment(loader=PackageLoader("lakehouse.runreport"), autoescape=True, trim_blocks=True)
_ENV.filters["bytes"] = human_bytes


def _number(value: object) -> str:
    """Counts with thousands separators, money and ratios with two decimals, nothing as a dash."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}"
    return str(value)


_ENV.filters["num"] = _number


def render(facts: RunFacts, *, docs_href: str | None = None) -> str:
    """The report page of ``facts`` (a complete HTML document)."""
    silver = [load for load in facts.loads if load["layer"] == "silver"]
    bronze = {load["table_name"]: load for load in facts.loads if load["layer"] == "bronze"}
    funnel_rows = silver or [{"table_name": t, "rows_in": b["rows_out"]} for t, b in bronze.items()]
    funnel = None
    if funnel_rows:
        series = (
            [(name, [int(r.get(key) or 0) for r in silver]) for name, key in _OUTCOMES]
            if silver
            else [("bronze (silver not built in this run)", [int(r["rows_in"] or 0) for r in funnel_rows])]
        )
        funnel = charts.stacked_bars("Bronze rows by silver outcome", [r["table_name"] for r in funnel_rows], series)
    timings = [(f"{load['layer']} {load['table_name']}", float(load["seconds"] or 0)) for load in facts.loads]
    csv_bytes = sum(int(load["csv_bytes"] or 0) for load in facts.loads if load["layer"] == "bronze")
    storage = [("landing CSV", csv_bytes)] + [
        (f"{layer} Parquet", sum(int(load["parquet_bytes"] or 0) for load in facts.loads if load["layer"] == layer))
        for layer in LAYERS[:2]
    ]
    versus = Storage(csv_bytes, storage[1][1], storage[2][1])  # the summary's wording: no percentage where none fits
    comparison = {name: versus.versus(size).lstrip(": ") for name, size in storage[1:]} if csv_bytes else {}
    labels = [f"{t['started_at'].astimezone(dt.UTC):%m-%d %H:%M}" for t in facts.trends]
    trend = {
        key: charts.line(title, labels, [t[key] for t in facts.trends])
        for key, title in (
            ("rows", "Rows (silver, else bronze)"),
            ("seconds", "Seconds"),
            ("quarantine_pct", "Quarantine rate %"),
            ("failed_checks", "Failed checks"),
        )
    }
    return _ENV.get_template("report.html.j2").render(
        facts=facts,
        version=__version__,
        arguments=" ".join(map(str, args)) if isinstance(args := facts.run["arguments"], list) else str(args),
        as_of=as_of(facts.run),
        headline=facts.first_failure(),
        funnel=funnel,
        funnel_rows=funnel_rows,
        quarantine_chart=charts.bars(
            "Quarantined rows by rule", [(f"{r['table_name']}: {r['rule']}", r["rows"]) for r in facts.quarantine_rules]
        )
        if facts.quarantine_rules
        else None,
        timings_chart=charts.bars("Seconds per layer and table", timings, unit=" s") if timings else None,
        storage=storage,
        comparison=comparison,
        storage_chart=charts.bars("Bytes (MB)", [(n, round(b / 1e6, 3)) for n, b in storage]) if csv_bytes else None,
        trend=trend if facts.trends else None,
        docs_href=docs_href,
    )


_OUTCOMES = (
    ("silver", "rows_out"),
    ("quarantined", "quarantined"),
    ("duplicates", "duplicates"),
    ("superseded", "superseded"),
)


def write_report(
    pg: PostgresSettings,
    reports_dir: Path,
    *,
    run_id: str | None = None,
    docs_href: str | None = None,
    marts: PostgresSettings | None = None,
) -> Path:
    """Write ``<reports_dir>/<run_id>.html`` (and ``latest.html`` when it is the latest run); return its path.

    Raises:
        ReportError: the run is not recorded.
    """
    facts = gather(pg, run_id, marts=marts)
    latest = run_id is None or latest_run_id(pg) == facts.run["run_id"]
    return publish_report(facts, reports_dir, latest=latest, docs_href=docs_href)


def publish_report(facts: RunFacts, reports_dir: Path, *, latest: bool, docs_href: str | None = None) -> Path:
    """Render ``facts`` into ``<reports_dir>/<run_id>.html`` (and ``latest.html`` when ``latest``).

    Each file is written beside itself and renamed into place, so a reader never sees half a page.
    """
    page = render(facts, docs_href=docs_href)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{facts.run['run_id']}.html"
    _publish(path, page)
    if latest:
        _publish(reports_dir / "latest.html", page)
    return path


def _publish(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
