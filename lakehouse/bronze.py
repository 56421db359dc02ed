"""Bronze: every landing record, verbatim as text, with ingestion metadata — in Delta and in PostgreSQL.

One run is one batch (``_batch_id``, sortable by time). The batch is planned in the ingest log
(``bronze/_ingest_log``, a Delta table) before anything is written, so a run that dies midway is resumed by
the next one with the same batch id, files and timestamp; every write is idempotent per batch (Delta
transaction identifiers; the warehouse's batch ledger), and the batch is marked completed only when both
stores have it. A file whose content (SHA-256) was already ingested is skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import lake
from lakehouse.contracts import SOURCE_COLUMNS, TABLES, Table, bronze_table
from lakehouse.errors import LakehouseError
from lakehouse.ingest_log import Batch, ingest_log_uri, log_rows, read_ingest_log
from lakehouse.landing import LandingFile, ParseStats, parse_records
from lakehouse.loader import TableLoad, load_many
from lakehouse.settings import PostgresSettings, Settings

log = logging.getLogger(__name__)

_STATS = ("_records", "_corrupt", "_blank_lines")
_ARROW_BATCH = 8192


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


# ---- pure transforms ------------------------------------------------------------------------------------------


def parsed_schema(table: str) -> str:
    """Rows of :func:`parse_files`: source columns, ``_corrupt_record``, ``_source_file`` and per-file stats."""
    sources = ", ".join(f"`{c}` string" for c in SOURCE_COLUMNS[table])
    return f"{sources}, _corrupt_record string, _source_file string, " + ", ".join(f"{s} long" for s in _STATS)


def records_only(parsed: DataFrame, table: str) -> DataFrame:
    """Drop the per-file stats rows of :func:`parse_files`; one row per landing record remains."""
    return parsed.where(F.col("_records").isNull()).select(*SOURCE_COLUMNS[table], "_corrupt_record", "_source_file")


def with_bronze_metadata(df: DataFrame, *, table: str, batch_id: str, ingested_at: dt.datetime) -> DataFrame:
    """Add ``_ingestion_timestamp`` (UTC), ``_batch_id`` and ``ingest_date`` (the UTC date of the run).

    Input: one row per record with the source columns, ``_corrupt_record`` and ``_source_file``.
    Output: the same rows in the bronze contract's column order. Nulls are kept as they are.
    """
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware (UTC)")
    instant = ingested_at.astimezone(dt.timezone.utc)
    return df.select(
        *SOURCE_COLUMNS[table],
        "_corrupt_record",
        F.lit(instant).cast("timestamp").alias("_ingestion_timestamp"),
        F.lit(batch_id).alias("_batch_id"),
        "_source_file",
        F.lit(instant.date()).alias("ingest_date"),
    )


# ---- parsing on the executors ---------------------------------------------------------------------------------


def _parse_batches(table: str):  # type: ignore[no-untyped-def]  # returns a mapInArrow function
    columns = SOURCE_COLUMNS[table]
    names = [*columns, "_corrupt_record", "_source_file", *_STATS]
    schema = pa.schema(
        [(n, pa.string()) for n in (*columns, "_corrupt_record", "_source_file")] + [(s, pa.int64()) for s in _STATS]
    )

    def flush(rows: list[tuple[object, ...]]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.array(col) for col in zip(*rows, strict=True)], schema=schema)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows: list[tuple[object, ...]] = []
        for batch in batches:
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                name = path.rsplit("/", 1)[-1]
                stats = ParseStats()
                for values, corrupt in parse_records(content.decode("utf-8"), columns, file=name, stats=stats):
                    rows.append((*values, corrupt, name, None, None, None))
                    if len(rows) >= _ARROW_BATCH:
                        yield flush(rows)
                        rows = []
                rows.append((*([None] * (len(columns) + 1)), name, stats.records, stats.corrupt, stats.blank_lines))
        if rows:
            yield flush(rows)

    assert len(names) == len(schema)
    return run


def parse_files(spark: SparkSession, table: str, files: list[LandingFile]) -> DataFrame:
    """Parse ``files`` (all of one table) on the executors; one task per file. The result is cached."""
    raw = spark.read.format("binaryFile").load([f.path.resolve().as_uri() for f in files])
    return raw.select("path", "content").mapInArrow(_parse_batches(table), parsed_schema(table)).cache()


def file_stats(parsed: DataFrame) -> dict[str, tuple[int, int, int]]:
    """``{file: (records, corrupt, blank lines)}`` from the stats rows of :func:`parse_files`."""
    rows = parsed.where(F.col("_records").isNotNull()).select("_source_file", *_STATS).collect()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


# ---- the layer ------------------------------------------------------------------------------------------------


def raw_table(table: str) -> Table:
    """The PostgreSQL mirror's contract: ``bronze.raw_<table>``."""
    return replace(bronze_table(table), name=f"raw_{table}")


def new_batch_id(now: dt.datetime) -> str:
    """Sortable by time: ``20240209T101500Z-1a2b3c4d``."""
    return f"{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


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
            log.info("skipping %s: its content was already ingested", f.name)
            report.skipped_files.append(f.name)
        elif f.content_hash in fresh:
            log.info("skipping %s: same content as %s", f.name, fresh[f.content_hash].name)
            report.skipped_files.append(f.name)
        else:
            fresh[f.content_hash] = f
    if fresh:
        when = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
        batches.append(Batch(new_batch_id(when), when, tuple(fresh.values())))
    for batch in batches:
        _run_batch(spark, settings, pg, batch, log_uri, report)
        report.batches.append(batch.batch_id)
    return report


def read_bronze(spark: SparkSession, settings: Settings, table: str, batches: list[str]) -> DataFrame:
    """The bronze rows of ``table`` from ``batches`` (an empty frame with the bronze schema if none)."""
    uri = lake.table_uri(settings, "bronze", table)
    if not batches or lake.table_version(spark, uri) is None:
        return spark.createDataFrame([], bronze_table(table).spark_schema())
    return lake.read_table(spark, uri).where(F.col("_batch_id").isin(batches))


def _resume(batch_id: str, when: dt.datetime, hashes: set[str], files: list[LandingFile]) -> Batch:
    by_hash = {f.content_hash: f for f in files}
    missing = hashes - by_hash.keys()
    if missing:
        raise LakehouseError(
            f"batch {batch_id} was interrupted and cannot be resumed: {len(missing)} of its files are no longer in "
            "the landing directory. Put them back (same content) and run again."
        )
    log.info("resuming interrupted batch %s (%d files)", batch_id, len(hashes))
    return Batch(batch_id, when, tuple(by_hash[h] for h in sorted(hashes)))


def _run_batch(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, batch: Batch, log_uri: str, report: BronzeReport
) -> None:
    lake.write_table(
        log_rows(spark, batch, "planned", {}), log_uri, mode="append", idempotency_key=f"plan:{batch.batch_id}"
    )
    loads: list[TableLoad] = []
    parsed_frames: list[DataFrame] = []
    stats: dict[str, tuple[int, int, int]] = {}
    for table in TABLES:
        table_files = [f for f in batch.files if f.table == table]
        if not table_files:
            continue
        started = time.monotonic()
        parsed = parse_files(spark, table, table_files)
        parsed_frames.append(parsed)
        rows = with_bronze_metadata(
            records_only(parsed, table), table=table, batch_id=batch.batch_id, ingested_at=batch.ingested_at
        )
        written = lake.write_table(
            rows,
            lake.table_uri(settings, "bronze", table),
            mode="append",
            partition_by=("ingest_date",),
            idempotency_key=batch.batch_id,
        )
        table_stats = file_stats(parsed)
        stats |= table_stats
        entry = report.tables[table]
        entry.files += len(table_files)
        entry.rows += sum(s[0] for s in table_stats.values())
        entry.corrupt += sum(s[1] for s in table_stats.values())
        entry.blank_lines += sum(s[2] for s in table_stats.values())
        entry.csv_bytes += sum(f.bytes for f in table_files)
        entry.parquet_bytes += written.bytes
        entry.seconds += time.monotonic() - started
        loads.append(TableLoad(rows, raw_table(table), "bronze"))
        log.info("bronze/%s: %d files, %d records (%d corrupt)", table, len(table_files), entry.rows, entry.corrupt)
    started = time.monotonic()
    load_many(loads, pg, mode="append", batch_id=batch.batch_id)
    report.warehouse_seconds += time.monotonic() - started
    lake.write_table(
        log_rows(spark, batch, "completed", stats), log_uri, mode="append", idempotency_key=f"done:{batch.batch_id}"
    )
    for parsed in parsed_frames:
        parsed.unpersist()
