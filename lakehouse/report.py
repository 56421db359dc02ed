"""The run summary, formatted: a text table, quality lines, the storage comparison and a JSON document.

Only formatting lives here. Each layer's report yields its own :class:`SummaryRow` list; scans are read through
the small :class:`Scan` shape, so this module imports nothing from the layers or the quality gate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SummaryRow:
    """A row of the run summary: what one layer did to one table (or a step such as ``-> PostgreSQL``).

    Counts that do not apply stay None and print as ``-``.
    """

    layer: str
    table_name: str
    rows_in: int | None = None
    rows_out: int | None = None
    quarantined: int | None = None
    duplicates: int | None = None
    superseded: int | None = None
    csv_bytes: int | None = None
    parquet_bytes: int | None = None
    seconds: float | None = None
    files: int | None = None
    corrupt: int | None = None


class Check(Protocol):
    @property
    def check_name(self) -> str: ...
    @property
    def table_name(self) -> str: ...
    @property
    def diagnostics(self) -> str: ...


class Scan(Protocol):
    """One layer's quality scan, as this module reads it (:class:`lakehouse.quality.LayerQuality` is one)."""

    @property
    def layer(self) -> str: ...
    @property
    def seconds(self) -> float: ...
    @property
    def results(self) -> Sequence[Any]: ...
    @property
    def failed(self) -> Sequence[Check]: ...
    @property
    def warned(self) -> Sequence[Check]: ...


_COLUMNS = (
    ("layer", "layer", "<"),
    ("table_name", "table", "<"),
    ("files", "files", ">"),
    ("rows_out", "rows", ">"),
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


def layer_loads(rows: Sequence[SummaryRow]) -> list[SummaryRow]:
    """The per-table rows of a layer for ``ops.layer_loads`` (the PostgreSQL timing rows are left out)."""
    return [r for r in rows if not r.table_name.startswith("->")]


# Below this much CSV a Parquet file's fixed cost (footer, schema, Delta log) outweighs the data itself, so a
# percentage says nothing about the format: ~1 KB of CSV becomes ~35 KB of Parquet ("2898 % larger").
TINY_CSV_BYTES = 1_000_000


@dataclass(frozen=True)
class LayerBytes:
    """One lake layer's bytes: the current versions' data, everything on disk (or in the bucket: superseded
    versions and the Delta log included), and what VACUUM deletes once past the retention window."""

    layer: str
    current_bytes: int
    disk_bytes: int
    reclaimable_bytes: int

    def render(self) -> str:
        return (
            f"{self.layer}: current version {human_bytes(self.current_bytes)}, on disk "
            f"{human_bytes(self.disk_bytes)}, reclaimable {human_bytes(self.reclaimable_bytes)}"
        )


@dataclass(frozen=True)
class Storage:
    """The seed guide's storage comparison, measured: landing CSV against the lake's Parquet, and per lake layer
    the bytes of the current versions against the bytes on disk.

    A layer with no Parquet yet (silver after a bronze-only run) and a tiny input get no percentage.
    """

    csv_bytes: int
    bronze_parquet_bytes: int
    silver_parquet_bytes: int
    layers: tuple[LayerBytes, ...] = ()

    def saving(self, parquet: int) -> float | None:
        """Percent smaller than the CSV (negative: larger); None when there is nothing meaningful to compare."""
        if not self.csv_bytes or not parquet or (self.csv_bytes < TINY_CSV_BYTES and parquet > self.csv_bytes):
            return None
        return 100 * (1 - parquet / self.csv_bytes)

    def render(self) -> str:
        lines = [f"storage: landing CSV {human_bytes(self.csv_bytes)}"]
        for name, size in (("bronze", self.bronze_parquet_bytes), ("silver", self.silver_parquet_bytes)):
            lines.append(f"  {name} Parquet (Delta){self.versus(size)}")
        lines += [f"  {layer.render()}" for layer in self.layers]
        return "\n".join(lines)

    def versus(self, size: int) -> str:
        """``" 4.5 MB, 70 % smaller"``, or why there is no comparison (text after the layer's name)."""
        if not size:
            return ": not built yet"
        saving = self.saving(size)
        if saving is None and self.csv_bytes:
            return (
                f" {human_bytes(size)}: the input is too small to compare ({human_bytes(self.csv_bytes)} of CSV;"
                " Parquet's footer and the Delta log outweigh the data)"
            )
        if saving is None:
            return f" {human_bytes(size)}"
        return f" {human_bytes(size)}, {abs(saving):.0f} % {'smaller' if saving >= 0 else 'larger'}"


def quality_lines(scans: Sequence[Scan]) -> list[str]:
    """One line per layer: checks passed / warned / failed, and the names of the failing ones."""
    lines = []
    for scan in scans:
        passed = len(scan.results) - len(scan.warned) - len(scan.failed)
        lines.append(
            f"quality {scan.layer}: {passed} passed, {len(scan.warned)} warned, {len(scan.failed)} failed "
            f"({scan.seconds:.1f}s)"
        )
        lines += [f"  FAIL {r.table_name}: {r.check_name} ({r.diagnostics})" for r in scan.failed]
        lines += [f"  warn {r.table_name}: {r.check_name} ({r.diagnostics})" for r in scan.warned]
    return lines


def as_json(
    *,
    run_id: str,
    status: str,
    rows: Sequence[SummaryRow],
    scans: Sequence[Scan],
    storage: Storage | None,
    seconds: float,
    report: object = None,
) -> str:
    """The run summary as JSON (``runner.py --json``); ``report`` is the HTML report's path, when one was written."""
    document = {
        "run_id": run_id,
        "status": status,
        "seconds": round(seconds, 3),
        "report": None if report is None else str(report),
        "tables": [asdict(r) for r in rows],
        "quality": [
            {
                "layer": q.layer,
                "passed": len(q.results) - len(q.warned) - len(q.failed),
                "warned": len(q.warned),
                "failed": len(q.failed),
                "checks": [asdict(r) for r in q.results],
            }
            for q in scans
        ],
        "storage": None
        if storage is None
        else asdict(storage)
        | {
            "bronze_saving_pct": storage.saving(storage.bronze_parquet_bytes),
            "silver_saving_pct": storage.saving(storage.silver_parquet_bytes),
        },
    }
    return json.dumps(document, indent=2, default=str)
