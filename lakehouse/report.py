"""The run summary: one row per layer and table, printed as a table (and, later, JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse.bronze import BronzeReport
    from lakehouse.gold import GoldResult
    from lakehouse.silver_layer import SilverReport


@dataclass(frozen=True)
class SummaryRow:
    layer: str
    table: str
    files: int | None = None
    rows: int | None = None
    corrupt: int | None = None
    quarantined: int | None = None
    duplicates: int | None = None
    superseded: int | None = None
    csv_bytes: int | None = None
    parquet_bytes: int | None = None
    seconds: float | None = None


_COLUMNS = (
    ("layer", "layer", "<"),
    ("table", "table", "<"),
    ("files", "files", ">"),
    ("rows", "rows", ">"),
    ("corrupt", "corrupt", ">"),
    ("quarantined", "quarantined", ">"),
    ("duplicates", "dups", ">"),
    ("superseded", "superseded", ">"),
    ("csv_bytes", "CSV", ">"),
    ("parquet_bytes", "Parquet", ">"),
    ("seconds", "seconds", ">"),
)


def _cell(name: str, value: object) -> str:
    if value is None:
        return "-"
    if name.endswith("_bytes") and isinstance(value, int):
        return human_bytes(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def render_table(rows: Sequence[SummaryRow]) -> str:
    """A fixed-width text table with a header line, numbers right-aligned."""
    cells = [[title for _, title, _ in _COLUMNS]]
    cells += [[_cell(name, getattr(row, name)) for name, _, _ in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append(
            "  ".join(
                f"{cell:{align}{width}}" for cell, width, (_, _, align) in zip(line, widths, _COLUMNS, strict=True)
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bronze_summary(report: BronzeReport) -> list[SummaryRow]:
    rows = [
        SummaryRow(
            "bronze",
            t.table,
            files=t.files,
            rows=t.rows,
            corrupt=t.corrupt,
            csv_bytes=t.csv_bytes,
            parquet_bytes=t.parquet_bytes,
            seconds=t.seconds,
        )
        for t in report.tables.values()
    ]
    return [*rows, SummaryRow("bronze", "-> PostgreSQL", seconds=report.warehouse_seconds)]


def silver_summary(report: SilverReport) -> list[SummaryRow]:
    rows = [
        SummaryRow(
            "silver",
            t.table,
            rows=t.silver_rows,
            quarantined=t.quarantined,
            duplicates=t.duplicates,
            superseded=t.superseded,
            parquet_bytes=t.parquet_bytes,
            seconds=t.seconds,
        )
        for t in report.tables.values()
    ]
    return [*rows, SummaryRow("silver", "-> PostgreSQL", seconds=report.warehouse_seconds)]


def gold_summary(result: GoldResult) -> list[SummaryRow]:
    models = [n for n in result.nodes if n.resource_type in ("model", "snapshot")]
    tests = [n for n in result.nodes if n.resource_type in ("test", "unit_test")]
    return [
        SummaryRow("gold", f"{len(models)} models/snapshots", rows=len(models), seconds=result.seconds),
        SummaryRow("gold", f"{len(tests)} dbt tests", rows=len(tests) - len(result.failed_tests)),
    ]
