"""Bronze: every landing record, verbatim as text, with ingestion metadata — in Delta and in PostgreSQL.

One run is one batch (``_batch_id``, sortable by time). The batch is planned in the ingest log
(``bronze/_ingest_log``, a Delta table) before anything is written, so a run that dies midway is resumed by
the next one with the same batch id, files and timestamp; every write is idempotent per batch (Delta
transaction identifiers; the warehouse's batch ledger), and the batch is marked completed only when both
stores have it. A file whose content (SHA-256) was already ingested is skipped. Files are checked when they
are discovered (:func:`lakehouse.bronze.landing.discover`), so a file that cannot load is refused before it
joins a batch; a batch that still cannot be resumed is given up with
:func:`lakehouse.bronze.ingest_log.abandon_batch`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
import uuid
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.adapters.loader import TableLoad, load_many
from lakehouse.adapters.spark import empty_frame, in_parallel_timed
from lakehouse.bronze.ingest_log import Batch, BatchStateError, ingest_log_uri, log_rows, read_ingest_log
from lakehouse.bronze.landing import LandingFile
from lakehouse.bronze.parse import parse_files
from lakehouse.bronze.transforms import records_only, with_bronze_metadata
from lakehouse.contracts import TABLES, bronze_table, raw_table
from lakehouse.report import SummaryRow
from lakehouse.settings import PostgresSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class TableReport:
    table: str
    files: int = 0
    rows: int = 0
    corrupt: int = 0
    blank_lines: int = 0
    csv_bytes: int = 0
    parquet_bytes: int = 0
    seconds: float = 0.0


@dataclass
class BronzeReport:
    batches: list[str] = field(default_factory=list)
    tables: dict[str, TableReport] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    warehouse_seconds: float = 0.0

    def summary_rows(self) -> list[SummaryRow]:
        """One summary row per table, then the PostgreSQL publish."""
        rows = [
            SummaryRow(
                "bronze",
                t.table,
                files=t.files,
                rows_in=t.rows,
                rows_out=t.rows,
                corrupt=t.corrupt,
                csv_bytes=t.csv_bytes,
                parquet_bytes=t.parquet_bytes,
                seconds=t.seconds,
            )
            for t in self.tables.values()
        ]
        return [*rows, SummaryRow("bronze", "-> PostgreSQL", seconds=self.warehouse_seconds)]


def new_batch_id(now: dt.datetime) -> str:
    """Sortable by time: ``20240209T101500Z-1a2b3c4d``."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def ingest(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    files: list[LandingFile],
    *,
    now: dt.datetime | None = None,
) -> BronzeReport:
    """Ingest the landing ``files`` not yet ingested (by content), resuming any unfinished batch first."""
    report = BronzeReport(tables={t: TableReport(t) for t in TABLES})
    log_uri = ingest_log_uri(settings)
    seen, pending = read_ingest_log(spark, log_uri)
    batches = [_resume(batch_id, when, hashes, files) for batch_id, (when, hashes) in sorted(pending.items())]
    fresh: dict[str, LandingFile] = {}
    for f in files:
        if f.content_hash in seen or any(f.content_hash in {x.content_hash for x in b.files} for b in batches):
            log.info("skipping %s: its content was already ingested", f.source_file)
            report.skipped_files.append(f.source_file)
        elif f.content_hash in fresh:
            log.info("skipping %s: same content as %s", f.source_file, fresh[f.content_hash].source_file)
            report.skipped_files.append(f.source_file)
        else:
            fresh[f.content_hash] = f
    if fresh:
        when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        batches.append(Batch(new_batch_id(when), when, tuple(fresh.values())))
    for batch in batches:
        _run_batch(spark, settings, pg, batch, log_uri, report)
        report.batches.append(batch.batch_id)
    return report


def read_bronze(spark: SparkSession, settings: Settings, table: str, batches: list[str]) -> DataFrame:
    """The bronze rows of ``table`` from ``batches`` (an empty frame with the bronze schema if none)."""
    uri = lake.table_uri(settings, "bronze", table)
    if not batches or not lake.is_table(spark, uri):
        return empty_frame(spark, bronze_table(table).spark_schema())
    return lake.read_table(spark, uri).where(F.col("_batch_id").isin(batches))


def _resume(batch_id: str, when: dt.datetime, hashes: set[str], files: list[LandingFile]) -> Batch:
    by_hash = {f.content_hash: f for f in files}
    missing = hashes - by_hash.keys()
    if missing:
        raise BatchStateError(
            f"batch {batch_id} was interrupted and cannot be resumed: {len(missing)} of its files are no longer in "
            "the landing directory as they were (gone, changed or refused). Put them back (same content) and run "
            f"again, or abandon the batch (`runner.py bronze --abandon {batch_id}`) to plan its files afresh."
        )
    log.info("resuming interrupted batch %s (%d files)", batch_id, len(hashes))
    return Batch(batch_id, when, tuple(by_hash[h] for h in sorted(hashes)))


def _run_batch(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, batch: Batch, log_uri: str, report: BronzeReport
) -> None:
    lake.write_table(
        log_rows(spark, batch, "planned", {}), log_uri, mode="append", idempotency_key=f"plan:{batch.batch_id}"
    )
    tables = [(table, [f for f in batch.files if f.table == table]) for table in TABLES]
    tables = [(table, files) for table, files in tables if files]
    # Every table at once: the small tables' fixed costs (planning, the Delta log, the commit) overlap the big
    # table's tasks instead of adding to them. Each table's seconds are its share of the wall time.
    parsed: list[DataFrame] = []  # every cached parse, unpersisted whatever happens
    try:
        ingested = in_parallel_timed(
            spark, [functools.partial(_ingest_table, spark, settings, batch, *t, parsed) for t in tables]
        )
        stats: dict[str, tuple[int, int, int]] = {}
        for (table, table_files), (done, seconds) in zip(tables, ingested, strict=True):
            stats |= done.stats
            entry = report.tables[table]
            entry.files += len(table_files)
            entry.rows += sum(s[0] for s in done.stats.values())
            entry.corrupt += sum(s[1] for s in done.stats.values())
            entry.blank_lines += sum(s[2] for s in done.stats.values())
            entry.csv_bytes += sum(f.bytes for f in table_files)
            entry.parquet_bytes += done.written.bytes
            entry.seconds += seconds
        loads = [
            TableLoad(done.rows, raw_table(table), "bronze", expected_rows=sum(s[0] for s in done.stats.values()))
            for (table, _), (done, _) in zip(tables, ingested, strict=True)
        ]
        started = time.monotonic()
        load_many(loads, pg, mode="append", batch_id=batch.batch_id)
        report.warehouse_seconds += time.monotonic() - started
        lake.write_table(
            log_rows(spark, batch, "completed", stats), log_uri, mode="append", idempotency_key=f"done:{batch.batch_id}"
        )
    finally:
        for frame in parsed:
            frame.unpersist()


@dataclass(frozen=True)
class _Ingested:
    """One table of a batch in the lake: its bronze rows, the write and the stats per file (records, corrupt,
    blank lines)."""

    rows: DataFrame
    written: lake.WriteResult
    stats: dict[str, tuple[int, int, int]]


def _ingest_table(
    spark: SparkSession,
    settings: Settings,
    batch: Batch,
    table: str,
    files: list[LandingFile],
    parsed_frames: list[DataFrame],
) -> _Ingested:
    """Parse ``files`` of ``table`` (the cached parse joins ``parsed_frames``) and append their records to its
    Delta table (idempotent per batch)."""
    parsed = parse_files(spark, table, files)
    parsed_frames.append(parsed.frame)
    rows = with_bronze_metadata(
        records_only(parsed.frame, table), table=table, batch_id=batch.batch_id, ingested_at=batch.ingested_at
    )
    written = lake.write_table(
        rows,
        lake.table_uri(settings, "bronze", table),
        mode="append",
        partition_by=("ingest_date",),
        idempotency_key=batch.batch_id,
    )
    records, corrupt = (sum(s[i] for s in parsed.stats.values()) for i in (0, 1))
    log.info("bronze/%s: %d files, %d records (%d corrupt)", table, len(files), records, corrupt)
    return _Ingested(rows, written, parsed.stats)
