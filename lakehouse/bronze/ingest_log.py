"""The ingest log (``bronze/_ingest_log``, a Delta table): which landing files each batch holds, and whether
the batch is only *planned* or *completed* (in both stores). Later layers read completed batches only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.bronze.landing import LandingFile
from lakehouse.settings import Settings

INGEST_LOG = "_ingest_log"


def ingest_log_uri(settings: Settings) -> str:
    return lake.table_uri(settings, "bronze", INGEST_LOG)


@dataclass(frozen=True)
class Batch:
    """One batch: its id, its one ingestion timestamp, and its landing files."""

    batch_id: str
    ingested_at: dt.datetime
    files: tuple[LandingFile, ...]


def completed_batches(spark: SparkSession, settings: Settings) -> list[str]:
    """Batch ids whose files are in both stores, oldest first: the only bronze rows later layers read."""
    uri = ingest_log_uri(settings)
    if lake.table_version(spark, uri) is None:
        return []
    rows = lake.read_table(spark, uri).where(F.col("status") == "completed").select("batch_id").distinct().collect()
    return sorted(r.batch_id for r in rows)


def ingested_csv_bytes(spark: SparkSession, settings: Settings) -> int:
    """Bytes of every landing file in a completed batch (the CSV side of the storage comparison)."""
    uri = ingest_log_uri(settings)
    if lake.table_version(spark, uri) is None:
        return 0
    row = lake.read_table(spark, uri).where(F.col("status") == "completed").agg(F.sum("csv_bytes")).first()
    return int(row[0] or 0) if row else 0


def read_ingest_log(spark: SparkSession, uri: str) -> tuple[set[str], dict[str, tuple[dt.datetime, set[str]]]]:
    """Hashes of completed files, and planned-but-unfinished batches ``{batch: (timestamp, hashes)}``."""
    if lake.table_version(spark, uri) is None:
        return set(), {}
    rows = lake.read_table(spark, uri).select("batch_id", "content_hash", "status", "ingested_at").collect()
    completed = {r.batch_id for r in rows if r.status == "completed"}
    seen = {r.content_hash for r in rows if r.batch_id in completed}
    pending: dict[str, tuple[dt.datetime, set[str]]] = {}
    for r in rows:
        if r.batch_id not in completed and r.status == "planned":
            when = r.ingested_at.replace(tzinfo=dt.UTC)
            pending.setdefault(r.batch_id, (when, set()))[1].add(r.content_hash)
    return seen, pending


def log_rows(spark: SparkSession, batch: Batch, status: str, stats: dict[str, tuple[int, int, int]]) -> DataFrame:
    rows = [
        (
            batch.batch_id,
            f.table,
            f.name,
            f.content_hash,
            f.bytes,
            status,
            batch.ingested_at,
            *stats.get(f.name, (None,) * 3),
        )
        for f in batch.files
    ]
    schema = (
        "batch_id string, table string, source_file string, content_hash string, csv_bytes long, status string, "
        "ingested_at timestamp, records long, corrupt long, blank_lines long"
    )
    return spark.createDataFrame(rows, schema)
