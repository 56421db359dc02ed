"""Silver's pure transforms: classify bronze rows into silver, quarantine, duplicates and superseded versions.

Every bronze row ends in exactly one place — silver, quarantine (with every rule it breaks), ``duplicates``
(an identical copy of a valid row in the same batch) or ``superseded`` (a valid version from an older batch
than the winning one) — so ``bronze = silver + quarantined + duplicates + superseded`` holds by construction
and is checked against what was actually written.

Dedup is deterministic and independent of row order and partitioning: identical versions of a key in one
batch collapse to one; different versions of a key in one batch are all quarantined as
``conflicting_duplicate``; across batches the latest batch (batch ids sort by time) wins. Among quarantined
rows nothing wins, so an older valid version can remain the silver row.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.contracts import NO_TEXT, SILVER, SOURCE_COLUMNS, quarantine_table, source_columns
from lakehouse.rules import foreign_key
from lakehouse.silver.validation import reasons, typed, typed_struct

SILVER_ROW, QUARANTINED, DUPLICATE, SUPERSEDED = "silver", "quarantined", "duplicate", "superseded"
OUTCOMES = (SILVER_ROW, QUARANTINED, DUPLICATE, SUPERSEDED)


def with_row_reasons(bronze: DataFrame, table: str) -> DataFrame:
    """Add ``_typed`` (normalized, typed business columns) and ``_reasons`` (row-level rules broken).

    Input grain: one row per bronze record (raw text columns, ``_corrupt_record``, lineage).
    """
    return bronze.withColumn("_typed", typed_struct(table)).withColumn("_reasons", reasons(table))


def with_orphan_reasons(df: DataFrame, table: str, parent: DataFrame | None) -> DataFrame:
    """Append the orphan rule to rows whose foreign key is not a key of the final silver ``parent``."""
    fk = foreign_key(table)
    if fk is None:
        return df
    column, parent_table, rule = fk.column, fk.parent, fk.name
    if parent is None:
        raise ValueError(f"{table} needs the silver {parent_table} table to check {column}")
    parent_key = SILVER[parent_table].key[0]
    keys = parent.select(F.col(parent_key).alias("_parent_key")).distinct()
    joined = df.join(F.broadcast(keys), F.col(f"_typed.{column}") == F.col("_parent_key"), how="left")
    orphan = F.col("_corrupt_record").isNull() & F.col(f"_typed.{column}").isNotNull() & F.col("_parent_key").isNull()
    return joined.withColumn(
        "_reasons", F.when(orphan, F.array_append("_reasons", F.lit(rule))).otherwise(F.col("_reasons"))
    ).drop("_parent_key")


def with_outcome(df: DataFrame, table: str) -> DataFrame:
    """Add ``_outcome`` (one of :data:`OUTCOMES`), marking conflicting versions in ``_reasons``.

    Requires ``_typed``, ``_reasons``, ``_batch_id`` and ``_source_file``.
    """
    key = f"_typed.{SILVER[table].key[0]}"
    valid = F.size("_reasons") == 0
    version = F.sha2(F.to_json(F.col("_typed")), 256)
    in_batch = Window.partitionBy(F.col(key), "_batch_id")
    versions = F.size(F.collect_set(F.when(valid, version)).over(in_batch))
    raw_text = F.to_json(F.struct(*SOURCE_COLUMNS[table]))
    flagged = df.withColumn("_conflict", valid & (versions > 1)).withColumn(
        "_reasons", F.when(F.col("_conflict"), F.array(F.lit("conflicting_duplicate"))).otherwise(F.col("_reasons"))
    )
    candidate = F.size("_reasons") == 0
    copy_rank = F.row_number().over(in_batch.orderBy(candidate.desc(), "_source_file", raw_text))
    ranked = flagged.withColumn("_copy", copy_rank).withColumn("_candidate", candidate & (F.col("_copy") == 1))
    by_key = Window.partitionBy(F.col(key)).orderBy(F.col("_candidate").desc(), F.col("_batch_id").desc())
    ranked = ranked.withColumn("_winner", F.col("_candidate") & (F.row_number().over(by_key) == 1))
    outcome = (
        F.when(F.size("_reasons") > 0, F.lit(QUARANTINED))
        .when(F.col("_winner"), F.lit(SILVER_ROW))
        .when(F.col("_candidate"), F.lit(SUPERSEDED))
        .otherwise(F.lit(DUPLICATE))
    )
    return ranked.withColumn("_outcome", outcome).drop("_conflict", "_copy", "_candidate", "_winner")


def classify(bronze: DataFrame, table: str, parent: DataFrame | None) -> DataFrame:
    """Bronze rows of ``table`` -> the same rows with ``_typed``, ``_reasons`` and ``_outcome``."""
    return with_outcome(with_orphan_reasons(with_row_reasons(bronze, table), table, parent), table)


def silver_rows(classified: DataFrame, table: str, *, processed_at: dt.datetime) -> DataFrame:
    """The winning rows in the silver contract's columns, with lineage."""
    business = [F.col(f"_typed.{c.name}").alias(c.name) for c in source_columns(table)]
    return classified.where(F.col("_outcome") == SILVER_ROW).select(
        *business, "_batch_id", "_source_file", "_ingestion_timestamp", _processed(processed_at)
    )


def quarantine_rows(classified: DataFrame, table: str, *, processed_at: dt.datetime) -> DataFrame:
    """The rejected rows: raw bronze text, every rule broken, lineage."""
    columns = quarantine_table(table).column_names[:-1]  # all but _silver_processed_at
    return classified.where(F.col("_outcome") == QUARANTINED).select(*columns, _processed(processed_at))


def _processed(at: dt.datetime) -> SparkColumn:
    if at.tzinfo is None:
        raise ValueError("processed_at must be timezone-aware (UTC)")
    return F.lit(at.astimezone(dt.UTC)).cast("timestamp").alias("_silver_processed_at")


def tally(classified: DataFrame) -> DataFrame:
    """Counts of a classification in one pass: one row per ``(_outcome, _rule)`` with ``rows`` (rows with that
    outcome, counted under their first rule) and ``broken`` (rows breaking ``_rule``; null for unbroken rows).

    Sum ``rows`` by ``_outcome`` for the outcome counts, ``broken`` by ``_rule`` for quarantined rows per rule.
    """
    reasons_if_quarantined = F.when(F.col("_outcome") == QUARANTINED, F.col("_reasons"))
    exploded = classified.select("_outcome", F.posexplode_outer(reasons_if_quarantined).alias("_pos", "_rule"))
    first = F.col("_pos").isNull() | (F.col("_pos") == 0)
    return exploded.groupBy("_outcome", "_rule").agg(
        F.count(F.when(first, F.lit(1))).alias("rows"), F.count("_rule").alias("broken")
    )


# Incremental silver (see :mod:`lakehouse.silver.layer`): a row's outcome depends only on the bronze rows of its
# key and on whether its foreign key is a silver key of the parent, so re-classifying every row of the keys a
# batch touches (and the rows whose parent key came or went) gives what a rebuild from all history gives.


def typed_value(table: str, name: str) -> SparkColumn:
    """Column ``name`` of a row holding ``table``'s raw columns (bronze or quarantine) as its silver row holds it;
    null if unparseable."""
    column = SILVER[table].column(name)
    return typed(column).cast(column.spark_type)


def typed_key(table: str) -> SparkColumn:
    """The typed primary key of a row holding ``table``'s raw columns (bronze or quarantine); null if unparseable."""
    return typed_value(table, SILVER[table].key[0])


def typed_foreign_key(table: str) -> SparkColumn | None:
    """The typed foreign key of a row holding ``table``'s raw columns, or None when ``table`` has no parent."""
    fk = foreign_key(table)
    return None if fk is None else typed_value(table, fk.column)


def value_range(rows: DataFrame, table: str, name: str) -> DataFrame:
    """One row, ``(low, high)``: the least and greatest typed ``name`` of bronze ``rows`` (nulls when none parses)."""
    value = typed_value(table, name)
    return rows.agg(F.min(value).alias("low"), F.max(value).alias("high"))


def match_texts(rows: DataFrame, table: str) -> DataFrame:
    """Distinct ``(_match_key, _match_fk)`` of bronze ``rows``: what their quarantine rows are matched by."""
    fk = foreign_key(table)
    raw_fk = F.col(fk.column) if fk else F.lit(None).cast("string")
    return rows.select(
        F.coalesce(F.col(SILVER[table].key[0]), F.lit(NO_TEXT)).alias("_match_key"),
        F.coalesce(raw_fk, F.lit(NO_TEXT)).alias("_match_fk"),
    ).distinct()


def keys_touched(rows: DataFrame, table: str) -> DataFrame:
    """Distinct typed keys (column ``_key``) of bronze ``rows``, nulls left out."""
    return rows.select(typed_key(table).alias("_key")).where(F.col("_key").isNotNull()).distinct()


def rows_of_keys(bronze: DataFrame, table: str, keys: DataFrame) -> DataFrame:
    """The rows of ``bronze`` whose typed key is one of ``keys`` (column ``_key``)."""
    return bronze.join(F.broadcast(keys), typed_key(table) == F.col("_key"), "left_semi")


def rows_of_parents(bronze: DataFrame, table: str, parent_keys: DataFrame) -> DataFrame:
    """The rows of ``bronze`` whose typed foreign key is one of ``parent_keys`` (column ``_key``)."""
    fk = typed_foreign_key(table)
    if fk is None:
        raise ValueError(f"{table} has no parent")
    return bronze.join(F.broadcast(parent_keys), fk == F.col("_key"), "left_semi")


def changed_keys(before: DataFrame, after: DataFrame) -> DataFrame:
    """Keys (``_key``) in exactly one of ``before`` and ``after``: the parents that came or went."""
    return before.exceptAll(after).unionByName(after.exceptAll(before)).distinct()
