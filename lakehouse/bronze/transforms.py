"""Bronze's pure transforms: parsed landing records -> bronze rows with ingestion metadata. No I/O, no action."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.contracts import SOURCE_COLUMNS

STATS = ("_records", "_corrupt", "_blank_lines", "_misaligned")


def parsed_schema(table: str) -> str:
    """Rows of :func:`lakehouse.bronze.parse.parse_files`: source columns, ``_corrupt_record``, ``_source_file``
    and per-file stats."""
    sources = ", ".join(f"`{c}` string" for c in SOURCE_COLUMNS[table])
    return f"{sources}, _corrupt_record string, _source_file string, " + ", ".join(f"{s} long" for s in STATS)


def records_only(parsed: DataFrame, table: str) -> DataFrame:
    """Drop the per-file stats rows of the parsed frame; one row per landing record remains."""
    return parsed.where(F.col("_records").isNull()).select(*SOURCE_COLUMNS[table], "_corrupt_record", "_source_file")


def with_bronze_metadata(df: DataFrame, *, table: str, batch_id: str, ingested_at: dt.datetime) -> DataFrame:
    """Add ``_ingestion_timestamp`` (UTC), ``_batch_id`` and ``ingest_date`` (the UTC date of the run).

    Input: one row per record with the source columns, ``_corrupt_record`` and ``_source_file``.
    Output: the same rows in the bronze contract's column order. Nulls are kept as they are.
    """
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware (UTC)")
    instant = ingested_at.astimezone(dt.UTC)
    return df.select(
        *SOURCE_COLUMNS[table],
        "_corrupt_record",
        F.lit(instant).cast("timestamp").alias("_ingestion_timestamp"),
        F.lit(batch_id).alias("_batch_id"),
        "_source_file",
        F.lit(instant.date()).alias("ingest_date"),
    )
