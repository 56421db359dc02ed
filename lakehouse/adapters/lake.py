"""Delta Lake tables at layer locations, on ``file://`` or ``s3a://``, through Spark and Hadoop's FileSystem.

Guarantees, all from Delta's transaction log (a plain Parquet folder on an object store gives none of them):

- ``append`` with an ``idempotency_key`` writes at most once per key: Delta records the key as a transaction
  identifier in the same commit as the data, and skips a later write carrying the same key.
- ``replace`` is one commit: readers see the previous version or the new one, never a mix or an empty table.
- Files are sized for the data: one file per partition value per write (or one file for an unpartitioned
  write), not one per Spark task. A clustered write (``cluster_by``) is one file per month of its first column,
  rows sorted by every cluster column: Delta's per-file min/max statistics then skip the files a date-range
  query does not need, without the small files of a partition per day.
- Parquet is zstd-compressed with the v2 encodings (delta, dictionary, byte-stream) set in
  :func:`lakehouse.adapters.spark.spark_conf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lakehouse.adapters.objectstore import bucket_of, ensure_bucket
from lakehouse.settings import LAKE_LAYERS, Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_TXN_VERSION = 0  # one Delta transaction "application" per idempotency key, written once


def table_uri(settings: Settings, layer: str, table: str) -> str:
    """Where ``layer``'s ``table`` lives, e.g. ``s3a://silver/campaigns`` or ``file:///…/lake/silver/campaigns``."""
    return f"{settings.layer_uri(layer)}/{table}"


def ensure_layers(settings: Settings) -> None:
    """Create the bucket behind every layer (S3) or nothing (local folders appear on first write)."""
    if settings.s3 is None or settings.lake_kind != "s3":
        return
    for bucket in sorted({bucket_of(settings.layer_uri(layer)) for layer in LAKE_LAYERS}):
        ensure_bucket(settings.s3, bucket)


def _fs_and_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the SparkSession has been stopped"
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def list_tables(spark: SparkSession, layer_root: str) -> list[str]:
    """Names of the Delta tables directly below ``layer_root`` (folders holding a ``_delta_log``)."""
    fs, root = _fs_and_path(spark, layer_root)
    if not fs.exists(root):
        return []
    names = []
    for status in fs.listStatus(root):
        child = status.getPath()
        if status.isDirectory() and fs.exists(child.suffix("/_delta_log")):
            names.append(str(child.getName()))
    return sorted(names)


def delete_path(spark: SparkSession, uri: str) -> None:
    """Remove ``uri`` recursively (used for probes and tests, never for layer data)."""
    fs, path = _fs_and_path(spark, uri)
    fs.delete(path, True)


@dataclass(frozen=True)
class WriteResult:
    """What a :func:`write_table` committed: nothing (an idempotent skip) or one Delta version."""

    written: bool
    version: int | None
    files: int = 0
    bytes: int = 0


def write_table(
    df: DataFrame,
    uri: str,
    *,
    mode: Literal["append", "replace"],
    partition_by: Sequence[str] = (),
    cluster_by: Sequence[str] = (),
    idempotency_key: str | None = None,
) -> WriteResult:
    """Write ``df`` as the Delta table at ``uri`` in one commit.

    ``replace`` overwrites data and schema; ``append`` adds rows. With ``idempotency_key``, a key already
    committed to this table is skipped (``written`` is False). Rows are shuffled so that each partition value
    (or the whole unpartitioned write) lands in one file; with ``cluster_by`` (a date column first), each month
    of the first column lands in one file, rows sorted by the cluster columns.
    """
    spark = df.sparkSession
    before = table_version(spark, uri)
    if cluster_by:
        shaped = _clustered(df, cluster_by)
    else:
        shaped = df.repartition(*partition_by) if partition_by else df.repartition(1)
    writer = shaped.write.format("delta").partitionBy(*partition_by)
    writer = writer.mode("overwrite").option("overwriteSchema", "true") if mode == "replace" else writer.mode("append")
    if idempotency_key is not None:
        writer = writer.option("txnAppId", idempotency_key).option("txnVersion", _TXN_VERSION)
    writer.save(uri)
    after, metrics = _latest_commit(spark, uri)  # one log read: the version and what it wrote
    if after == before:
        return WriteResult(False, after)
    return WriteResult(True, after, int(metrics.get("numFiles", 0)), int(metrics.get("numOutputBytes", 0)))


def replace_matching(
    inserts: DataFrame, uri: str, *, deletes: DataFrame, match: Sequence[tuple[str, Any]]
) -> WriteResult:
    """In one commit, delete the rows of the Delta table at ``uri`` that match a row of ``deletes`` and add
    ``inserts`` (the table's columns). ``match`` pairs each column of ``deletes`` (distinct rows) with the Spark
    column of a target row it must equal, e.g. ``("_key", F.col("campaign_id"))``; a target row matches a
    ``deletes`` row when every pair is equal. Nothing to delete and nothing to insert commits nothing."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    spark = inserts.sparkSession
    before = table_version(spark, uri)
    marked = deletes.select(*(F.col(name).alias(f"_delete_{name}") for name, _ in match))
    source = inserts.unionByName(marked, allowMissingColumns=True)  # an insert has null marks: it matches nothing
    target = DeltaTable.forPath(spark, uri).alias("t")
    condition = None
    for name, column in match:
        equal = column == F.col(f"s._delete_{name}")
        condition = equal if condition is None else condition & equal
    assert condition is not None, "match names at least one column"
    inserted: dict[str, str | Column] = {c: F.col(f"s.`{c}`") for c in inserts.columns}
    first_mark = F.col(f"s._delete_{match[0][0]}")
    (
        target.merge(source.alias("s"), condition)
        .whenMatchedDelete()
        .whenNotMatchedInsert(condition=first_mark.isNull(), values=inserted)
        .execute()
    )
    after, metrics = _latest_commit(spark, uri)
    if after == before:
        return WriteResult(False, after)
    return WriteResult(True, after, int(metrics.get("numTargetFilesAdded", 0)), int(metrics.get("numOutputBytes", 0)))


def _clustered(df: DataFrame, cluster_by: Sequence[str]) -> DataFrame:
    """One range of months per task (one file each), rows sorted by ``cluster_by`` (sorted data compresses better)."""
    from pyspark.sql import functions as F

    month = F.trunc(F.col(cluster_by[0]), "month")
    months = df.select(month).distinct().count()  # the range partitioner needs the number of files up front
    return df.repartitionByRange(max(months, 1), month).sortWithinPartitions(*cluster_by)


def _latest_commit(spark: SparkSession, uri: str) -> tuple[int | None, dict[str, str]]:
    """The latest version of an existing Delta table and its operation metrics (numFiles, numOutputBytes, …)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, uri).history(1).select("version", "operationMetrics").first()
    return (int(row[0]), dict(row[1] or {})) if row else (None, {})


def read_table(spark: SparkSession, uri: str, *, as_of: str | int | None = None) -> DataFrame:
    """The Delta table at ``uri``: its latest version, or with ``as_of`` the version it was then.

    ``as_of`` is a version number (an int or a string of digits) or a timestamp Delta understands
    (``2024-02-09``, ``2024-02-09 10:15:00``): the latest version committed at or before that time.
    """
    reader = spark.read.format("delta")
    if as_of is not None:
        text = str(as_of).strip()
        reader = reader.option("versionAsOf", int(text)) if text.isdigit() else reader.option("timestampAsOf", text)
    return reader.load(uri)


def is_table(spark: SparkSession, uri: str) -> bool:
    """Whether a Delta table is at ``uri`` (a look at its log folder; no Spark job)."""
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, uri))


def table_version(spark: SparkSession, uri: str) -> int | None:
    """The latest committed version of the Delta table at ``uri``, or None when there is no table."""
    from delta.tables import DeltaTable

    if not is_table(spark, uri):
        return None
    row = DeltaTable.forPath(spark, uri).history(1).select("version").first()
    return int(row[0]) if row else None


def table_size(spark: SparkSession, uri: str) -> tuple[int, int]:
    """``(files, bytes)`` of the Delta table's current version; ``(0, 0)`` when there is no table."""
    if not is_table(spark, uri):
        return 0, 0
    row = spark.sql(f"describe detail delta.`{uri}`").select("numFiles", "sizeInBytes").first()
    return (int(row[0]), int(row[1])) if row else (0, 0)
