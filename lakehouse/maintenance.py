"""Keeping the lake small, and reading it as it was: compaction and VACUUM of every Delta table, what each
layer takes up, and CSV exports of a table as of a version or a time (for audits).

:func:`maintain_lake` is ``runner.py maintain`` and what a run does after its layers (unless ``--no-maintain``;
a run does only what is due): small files are bin-packed (bronze appends one file per table per batch, the
ingest log two per batch), then files superseded longer ago than ``LAKEHOUSE_RETENTION_HOURS`` are deleted.
Only small files (below ``lake.SMALL_FILE_BYTES``) are packed, and a table is due when it has enough of them: a
compaction rewrites what arrived since the last one, never the history (a big first batch stays as it was).
Clustered tables (silver performance: one file per month, rows sorted by date) are not bin-packed: a rebuild
writes them whole, an incremental run's MERGE rewrites only the files holding the rows it replaces (17 files after
14 incremental runs at ``--scale 10``, measured), and packing would merge the month files that date-range queries
skip.
:func:`lake_storage` is the per-layer storage the run summary and ``runner.py check`` print.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.adapters import lake, lake_upkeep
from lakehouse.adapters.lake_upkeep import TableStorage
from lakehouse.adapters.spark import in_parallel
from lakehouse.contracts import SILVER
from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.report import LayerBytes, human_bytes
from lakehouse.settings import LAKE_LAYERS, MIN_RETENTION_HOURS, Settings, check_retention

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# A run compacts a table (that is not clustered) when it has at least this many small files (below
# lake.SMALL_FILE_BYTES; compaction packs those alone): bronze appends one per table per batch and the ingest log
# two per batch. Compacting fewer gains little and costs a commit.
COMPACT_MIN_FILES = 8


@dataclass(frozen=True)
class TableUpkeep:
    """What maintenance did to one table: files compacted, and its storage before and after."""

    layer: str
    table: str
    files_compacted: int
    vacuumed: bool
    before: TableStorage
    after: TableStorage

    @property
    def reclaimed_bytes(self) -> int:
        return self.before.disk_bytes - self.after.disk_bytes


@dataclass
class MaintenanceReport:
    retention_hours: float
    tables: list[TableUpkeep] = field(default_factory=list)  # the tables compacted or vacuumed
    checked: int = 0
    when_due: bool = False

    @property
    def reclaimed_bytes(self) -> int:
        return sum(t.reclaimed_bytes for t in self.tables)

    def lines(self) -> list[str]:
        compacted = sum(t.files_compacted for t in self.tables)
        vacuumed = sum(t.vacuumed for t in self.tables)
        if self.when_due and not self.tables:
            return [f"maintenance: none due ({self.checked} lake tables checked; `runner.py maintain` forces it)"]
        line = (
            f"maintenance: {self.checked} lake tables{', what was due' if self.when_due else ''}: "
            f"{compacted} small files compacted, {vacuumed} tables vacuumed, "
            f"{human_bytes(max(self.reclaimed_bytes, 0))} reclaimed (retention {self.retention_hours:g} hours)"
        )
        if self.reclaimed_bytes < 0:  # compacted copies and log entries, while what they replace is in the window
            line += f"; {human_bytes(-self.reclaimed_bytes)} added until superseded files leave the window"
        return [line]


def lake_tables(spark: SparkSession, settings: Settings) -> list[tuple[str, str]]:
    """``(layer, table)`` of every Delta table in the lake (the ingest log included)."""
    return [(layer, t) for layer in LAKE_LAYERS for t in lake.list_tables(spark, settings.layer_uri(layer))]


def table_uri(settings: Settings, name: str) -> str:
    """The location of ``layer/table`` or ``layer.table`` (e.g. ``silver/performance``).

    Raises:
        ConfigurationError: ``name`` does not name a layer and a table.
    """
    layer, _, table = name.replace(".", "/").partition("/")
    if layer not in LAKE_LAYERS or not table or "/" in table:
        raise ConfigurationError(
            f"{name!r} is not a lake table: write LAYER/TABLE with LAYER one of {', '.join(LAKE_LAYERS)}, "
            "e.g. silver/performance"
        )
    return lake.table_uri(settings, layer, table)


def maintain_lake(
    spark: SparkSession,
    settings: Settings,
    *,
    retention_hours: float | None = None,
    min_retention_hours: float = MIN_RETENTION_HOURS,
    when_due: bool = False,
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """Compact and VACUUM every lake table; ``retention_hours`` defaults to ``settings.retention_hours``.

    With ``when_due`` (what a run does when it ends) only what is due is done: a table with at least
    :data:`COMPACT_MIN_FILES` small files is compacted (only those are packed), and a VACUUM runs where
    :func:`lake_upkeep.vacuum_due` (as of ``now``) finds something to delete; a table with nothing due costs one
    history read (the small files of all tables are counted from one read of their latest checksums), where a
    VACUUM costs seconds and adds two commits to the log.

    Raises:
        UnsafeRetentionError: the retention is below ``min_retention_hours``; checked before any table is touched.
    """
    retention = settings.retention_hours if retention_hours is None else retention_hours
    check_retention(retention, min_retention_hours=min_retention_hours)
    moment = now or dt.datetime.now(dt.UTC)
    report = MaintenanceReport(retention, when_due=when_due)

    def due(layer: str, table: str, uri: str) -> tuple[bool, str | bool | None]:
        """Whether to compact the table, and why to VACUUM it (or not)."""
        clustered = layer == "silver" and table in SILVER and bool(SILVER[table].cluster_by)
        compact = not clustered and (not when_due or small.get(uri, 0) >= COMPACT_MIN_FILES)
        vacuum = not when_due or lake_upkeep.vacuum_due(spark, uri, retention_hours=retention, now=moment)
        return compact, vacuum

    # Every table's check at once (each mostly waits on its log reads); then the upkeep that is due, one by one.
    tables = [(layer, table, lake.table_uri(settings, layer, table)) for layer, table in lake_tables(spark, settings)]
    small = lake.small_files(spark, [uri for *_, uri in tables]) if when_due else {}  # one read for all
    plans = in_parallel(spark, [functools.partial(due, *table) for table in tables])
    report.checked = len(tables)
    for (layer, table, uri), (compact, vacuum) in zip(tables, plans, strict=True):
        if not (compact or vacuum):
            continue
        before = lake_upkeep.table_storage(spark, uri)
        compacted = lake_upkeep.compact(spark, uri) if compact else 0
        if vacuum:
            lake_upkeep.vacuum(spark, uri, retention_hours=retention, min_retention_hours=min_retention_hours)
        after = lake_upkeep.table_storage(spark, uri)
        report.tables.append(TableUpkeep(layer, table, compacted, bool(vacuum), before, after))
    return report


def table_storages(spark: SparkSession, settings: Settings) -> dict[tuple[str, str], TableStorage]:
    """Every lake table's storage (current bytes from each latest checksum, one listing for all), by layer and table."""
    uris = {(layer, table): lake.table_uri(settings, layer, table) for layer, table in lake_tables(spark, settings)}
    storages = lake_upkeep.table_storages(spark, list(uris.values()))
    return {key: storages[uri] for key, uri in uris.items()}


def lake_storage(
    spark: SparkSession, settings: Settings, storages: Mapping[tuple[str, str], TableStorage] | None = None
) -> tuple[LayerBytes, ...]:
    """Per lake layer: current-version bytes, bytes on disk (or in the bucket) and reclaimable bytes; from
    ``storages`` (:func:`table_storages`) when the caller has them."""
    totals = {layer: TableStorage() for layer in LAKE_LAYERS}
    for (layer, _), table in (table_storages(spark, settings) if storages is None else storages).items():
        totals[layer] += table
    return tuple(LayerBytes(layer, s.current_bytes, s.disk_bytes, s.reclaimable_bytes) for layer, s in totals.items())


def export_csv(spark: SparkSession, uri: str, out: Path, *, as_of: str | int | None = None) -> int:
    """Write the table at ``uri`` (as of a version or timestamp, for audits) to the CSV file ``out``; its rows.

    Nulls are empty fields, arrays JSON. Raises :class:`LakehouseError` naming the table and the version when
    the version does not exist or its files were vacuumed (older than the retention window).
    """
    try:
        frame = lake.read_table(spark, uri, as_of=as_of)
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(frame.columns)
            for row in frame.toLocalIterator():
                writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, list) else v for v in row])
                rows += 1
    except OSError:
        raise  # the output file: the message names it
    except Exception as exc:  # Delta's errors (no such version, vacuumed files) arrive as py4j/Spark exceptions
        out.unlink(missing_ok=True)
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise LakehouseError(
            f"cannot read {uri} as of {as_of if as_of is not None else 'now'}: {detail} (a version older than "
            "LAKEHOUSE_RETENTION_HOURS may have been vacuumed; `runner.py history` lists the versions)"
        ) from None
    return rows
