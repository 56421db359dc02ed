"""The ingest log (``bronze/_ingest_log``, a Delta table): which landing files each batch holds, and whether
the batch is only *planned*, *completed* (in both stores) or *abandoned*. Later layers read completed batches only.

Timestamps are read back as microseconds since the epoch, never as Python datetimes: PySpark's ``collect``
turns a ``timestamp`` into a naive datetime in the Python process's local time zone, which would move a
resumed batch's ingestion time by the host's UTC offset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.bronze.landing import LandingFile
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

INGEST_LOG = "_ingest_log"
Status = Literal["planned", "completed", "abandoned"]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class BatchStateError(LakehouseError):
    """A batch id is not in the ingest log, or its state does not allow what was asked."""


def ingest_log_uri(settings: Settings) -> str:
    return lake.table_uri(settings, "bronze", INGEST_LOG)


@dataclass(frozen=True)
class Batch:
    """One batch: its id, its one ingestion timestamp, and its landing files."""

    batch_id: str
    ingested_at: dt.datetime
    files: tuple[LandingFile, ...]


@dataclass(frozen=True)
class AbandonedBatch:
    """What :func:`abandon_batch` gave up: the batch, its timestamp, and its files ``(source file, SHA-256)``."""

    batch_id: str
    ingested_at: dt.datetime
    files: tuple[tuple[str, str], ...]
    already_abandoned: bool


def completed_batches(spark: SparkSession, settings: Settings) -> list[str]:
    """Batch ids whose files are in both stores, oldest first: the only bronze rows later layers read."""
    uri = ingest_log_uri(settings)
    if not lake.is_table(spark, uri):
        return []
    rows = lake.read_table(spark, uri).where(F.col("status") == "completed").select("batch_id").distinct().collect()
    return sorted(r.batch_id for r in rows)


def tables_in(spark: SparkSession, settings: Settings, batches: list[str]) -> set[str]:
    """The tables with a landing file in any of the completed ``batches`` (a table without one has no row there)."""
    uri = ingest_log_uri(settings)
    if not batches or not lake.is_table(spark, uri):
        return set()
    log = lake.read_table(spark, uri).where((F.col("status") == "completed") & F.col("batch_id").isin(batches))
    return {r.table for r in log.select("table").distinct().collect()}


def ingested_csv_bytes(spark: SparkSession, settings: Settings) -> int:
    """Bytes of every landing file in a completed batch (the CSV side of the storage comparison)."""
    uri = ingest_log_uri(settings)
    if not lake.is_table(spark, uri):
        return 0
    row = lake.read_table(spark, uri).where(F.col("status") == "completed").agg(F.sum("csv_bytes")).first()
    return int(row[0] or 0) if row else 0


def read_ingest_log(spark: SparkSession, uri: str) -> tuple[set[str], dict[str, tuple[dt.datetime, set[str]]]]:
    """Hashes of completed files, and interrupted batches (planned, neither completed nor abandoned)
    ``{batch: (timestamp, hashes)}``."""
    if not lake.is_table(spark, uri):
        return set(), {}
    rows = _entries(spark, uri).collect()
    statuses: dict[str, set[str]] = {}
    for r in rows:
        statuses.setdefault(r.batch_id, set()).add(r.status)
    seen = {r.content_hash for r in rows if "completed" in statuses[r.batch_id]}
    pending: dict[str, tuple[dt.datetime, set[str]]] = {}
    for r in rows:
        if r.status == "planned" and statuses[r.batch_id] == {"planned"}:
            pending.setdefault(r.batch_id, (_instant(r.micros), set()))[1].add(r.content_hash)
    return seen, pending


def abandon_batch(spark: SparkSession, settings: Settings, batch_id: str) -> AbandonedBatch:
    """Record that the interrupted batch ``batch_id`` is abandoned: it is never resumed, later layers never read
    it, and its files (if still landed) are planned again in a fresh batch by the next bronze run.

    Bronze Delta rows the batch may have written stay, unread (later layers read completed batches only).
    Abandoning a batch already abandoned records nothing and returns it with ``already_abandoned`` set.

    Raises:
        BatchStateError: no batch ``batch_id`` in the ingest log, or the batch is completed.
    """
    uri = ingest_log_uri(settings)
    if not lake.is_table(spark, uri):
        raise BatchStateError(f"no batch {batch_id!r} in the ingest log: nothing has been ingested into {uri} yet")
    rows = _entries(spark, uri).where(F.col("batch_id") == batch_id).collect()
    statuses = {r.status for r in rows}
    if not rows:
        raise BatchStateError(f"no batch {batch_id!r} in the ingest log {uri}")
    if "completed" in statuses:
        raise BatchStateError(f"batch {batch_id} is completed (in both stores): only an interrupted batch is abandoned")
    planned = [r for r in rows if r.status == "planned"]
    if "abandoned" not in statuses:
        abandoned = lake.read_table(spark, uri).where((F.col("batch_id") == batch_id) & (F.col("status") == "planned"))
        lake.write_table(
            abandoned.withColumn("status", F.lit("abandoned")),
            uri,
            mode="append",
            idempotency_key=f"abandon:{batch_id}",
        )
    return AbandonedBatch(
        batch_id,
        _instant(planned[0].micros),
        tuple(sorted((r.source_file, r.content_hash) for r in planned)),
        already_abandoned="abandoned" in statuses,
    )


def log_rows(spark: SparkSession, batch: Batch, status: Status, stats: dict[str, tuple[int, int, int]]) -> DataFrame:
    """One ingest-log row per file of ``batch`` with ``status`` and, once completed, its counts."""
    if batch.ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware (UTC)")
    rows = [
        (
            batch.batch_id,
            f.table,
            f.source_file,
            f.content_hash,
            f.bytes,
            status,
            batch.ingested_at,  # aware: PySpark converts it to the instant, whatever the local time zone
            *stats.get(f.source_file, (None,) * 3),
        )
        for f in batch.files
    ]
    schema = (
        "batch_id string, table string, source_file string, content_hash string, csv_bytes long, status string, "
        "ingested_at timestamp, records long, corrupt long, blank_lines long"
    )
    return spark.createDataFrame(rows, schema)


def _entries(spark: SparkSession, uri: str) -> DataFrame:
    return lake.read_table(spark, uri).select(
        "batch_id", "source_file", "content_hash", "status", F.unix_micros("ingested_at").alias("micros")
    )


def _instant(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)
