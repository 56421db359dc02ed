"""Delta Lake tables at layer locations, on ``file://`` or ``s3a://``, through Spark's DataFrame and SQL APIs alone
(which Spark Connect sessions have too).

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

import functools
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from lakehouse.adapters.objectstore import bucket_of, delete_prefix, ensure_bucket
from lakehouse.errors import ConfigurationError
from lakehouse.settings import LAKE_LAYERS, Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row, SparkSession

_TXN_VERSION = 0  # one Delta transaction "application" per idempotency key, written once
# A file below this is small: compaction (OPTIMIZE, see spark_conf) packs small files together and leaves larger
# ones as they are, so its cost follows what arrived since, not the table's history.
SMALL_FILE_BYTES = 32 * 1024 * 1024


def table_uri(settings: Settings, layer: str, table: str) -> str:
    """Where ``layer``'s ``table`` lives, e.g. ``s3a://silver/campaigns`` or ``file:///…/lake/silver/campaigns``."""
    return f"{settings.layer_uri(layer)}/{table}"


def ensure_layers(settings: Settings) -> None:
    """Create the bucket behind every layer (S3) or nothing (local folders appear on first write)."""
    if settings.s3 is None or settings.lake_kind != "s3":
        return
    for bucket in sorted({bucket_of(settings.layer_uri(layer)) for layer in LAKE_LAYERS}):
        ensure_bucket(settings.s3, bucket)


def delta_table(uri: str) -> str:
    """The SQL name of the Delta table at ``uri``: ``delta.`<uri>``` (a backtick in the URI doubled)."""
    return "delta.`" + uri.replace("`", "``") + "`"


# What Spark answers when a path holds no Delta table: none there (DESCRIBE DETAIL), not one (DESCRIBE HISTORY).
_NO_TABLE = frozenset(
    {"DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_ONLY_OPERATION", "DELTA_TABLE_NOT_FOUND", "PATH_NOT_FOUND"}
)


def rows_if_table(spark: SparkSession, query: str, *columns: str | Column) -> list[Row] | None:
    """``columns`` of the rows of a SQL command on one Delta table (``describe detail delta.`…```), or None when
    the path holds no Delta table. SQL, not Delta's Python ``DeltaTable``: on Spark Connect that needs the Delta
    Connect plugin on the server, SQL only Delta's SQL extension."""
    from pyspark.errors import AnalysisException

    try:
        return spark.sql(query).select(*columns).collect()
    except AnalysisException as exc:
        if exc.getCondition() in _NO_TABLE:
            return None
        raise


def list_tables(spark: SparkSession, layer_root: str) -> list[str]:
    """Names of the Delta tables directly below ``layer_root`` (folders whose ``_delta_log`` holds a file).

    From the files Spark plans to read for ``<root>/*/_delta_log/*`` (``inputFiles``): a listing, no Spark job.
    The glob names the log's files, not the folder: Spark drops a path whose last part starts with ``_`` (and
    warns "All paths were ignored" on every run); it still drops the log's own ``_``/``.`` files, but every log
    also holds a commit or a checkpoint file.
    """
    from pyspark.errors import AnalysisException

    try:
        files = spark.read.format("binaryFile").load(f"{layer_root.rstrip('/')}/*/_delta_log/*").inputFiles()
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":  # no layer folder yet, or no table in it
            return []
        raise
    return sorted({unquote(f.split("/")[-3]) for f in files})


def delete_path(settings: Settings, uri: str) -> None:
    """Remove ``uri`` recursively (used for probes and tests, never for layer data).

    From this process, not through Spark (which deletes no files): a ``file://`` lake is the folder this machine
    sees, as it must be for a local Spark or a Connect server on this machine.
    """
    if uri.startswith("s3a://"):
        if settings.s3 is None:
            raise ConfigurationError(f"{uri} is on S3 but no S3 endpoint is configured")
        delete_prefix(settings.s3, uri)
    elif uri.startswith("file:"):
        shutil.rmtree(url2pathname(urlsplit(uri).path), ignore_errors=True)
    else:
        raise ConfigurationError(f"cannot delete {uri}: expected an s3a:// or file: URI")


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
    inserts: DataFrame,
    uri: str,
    *,
    deletes: DataFrame,
    match: Sequence[tuple[str, Any]],
    rewrite: bool = False,
    within: Any = None,
) -> WriteResult:
    """In one commit, delete the rows of the Delta table at ``uri`` that match a row of ``deletes`` and add
    ``inserts`` (the table's columns). ``match`` pairs each column of ``deletes`` (distinct rows) with the Spark
    column of a target row it must equal, e.g. ``("_key", F.col("campaign_id"))`` (bare names are the target's
    columns); a target row matches a ``deletes`` row when every pair is equal.

    A MERGE by default: it rewrites the files holding a matched row and adds the inserts as new files; nothing to
    delete and nothing to insert commits nothing. With ``rewrite``, the table is replaced by its unmatched rows and
    the inserts, in one file: for a small table of one file, which a MERGE rewrites as soon as one delete matches a
    row in it, the same bytes in about a third of the Spark jobs (it rewrites the file when no delete matches too).

    ``within`` is a condition on the target's columns alone that every row to delete meets, e.g. the
    range of dates the deleted rows can have: only rows meeting it are deleted, and the MERGE reads only the files
    whose statistics say they may hold such rows (on a clustered table, the months the change touches, not its
    history)."""
    from pyspark.sql import functions as F

    spark = inserts.sparkSession
    # The source's columns are renamed so that the condition's bare names can only mean the target's.
    marked = deletes.select(*(F.col(f"`{name}`").alias(f"_delete_{name}") for name, _ in match))
    condition = None
    for name, column in match:
        equal = column == F.col(f"_delete_{name}")
        condition = equal if condition is None else condition & equal
    assert condition is not None, "match names at least one column"
    if within is not None:
        condition = within & condition  # a target-only conjunct: Delta skips the files it excludes
    if rewrite:
        kept = read_table(spark, uri).join(F.broadcast(marked.distinct()), condition, "left_anti")
        return write_table(kept.unionByName(inserts), uri, mode="replace")  # it reads the version before itself
    before = table_version(spark, uri)
    renamed = inserts.select(*(F.col(f"`{c}`").alias(f"_insert_{c}") for c in inserts.columns))
    source = renamed.unionByName(marked, allowMissingColumns=True)  # an insert has null marks: it matches nothing
    inserted: dict[str, Column] = {f"`{c}`": F.col(f"`_insert_{c}`") for c in inserts.columns}
    first_mark = F.col(f"_delete_{match[0][0]}")
    (
        source.mergeInto(delta_table(uri), condition)
        .whenMatched()
        .delete()
        .whenNotMatched(first_mark.isNull())
        .insert(inserted)
        .merge()
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
    rows = rows_if_table(spark, f"describe history {delta_table(uri)} limit 1", "version", "operationMetrics")
    return (int(rows[0][0]), dict(rows[0][1] or {})) if rows else (None, {})


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
    """Whether a Delta table is at ``uri``: resolving its schema reads the log's latest state, no Spark job."""
    from pyspark.errors import AnalysisException

    try:
        spark.read.format("delta").load(uri).schema  # noqa: B018  # resolving it is the check
    except AnalysisException as exc:
        if exc.getCondition() in _NO_TABLE:
            return False
        raise
    return True


def table_version(spark: SparkSession, uri: str) -> int | None:
    """The latest committed version of the Delta table at ``uri``, or None when there is no table."""
    return _latest_commit(spark, uri)[0]


def table_size(spark: SparkSession, uri: str) -> tuple[int, int]:
    """``(files, bytes)`` of the Delta table's current version; ``(0, 0)`` when there is no table."""
    return table_sizes(spark, [uri]).get(uri, (0, 0))


def table_sizes(spark: SparkSession, uris: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``(files, bytes)`` of the current version of each Delta table among ``uris`` (a uri with no table is left
    out), without replaying any log.

    Which of them are tables, and each one's latest commit, come from what Spark plans to read in their logs
    (no job). The sizes are the ``numFiles`` and ``tableSizeBytes`` of that commit's checksum (``<version>.crc``,
    which Delta writes after each commit): one read for all the tables. A table whose latest commit has no
    checksum, or one that is not JSON, gets a ``describe detail`` (all of those at once), which replays its log."""
    from lakehouse.adapters.spark import in_parallel

    logs = _log_files(spark, uris)
    sizes = _checksum_sizes(spark, {uri: files for uri, files in logs.items() if files})
    unknown = [uri for uri, files in logs.items() if files and uri not in sizes]
    details = in_parallel(
        spark,
        [
            functools.partial(rows_if_table, spark, f"describe detail {delta_table(uri)}", "numFiles", "sizeInBytes")
            for uri in unknown
        ],
    )
    for uri, rows in zip(unknown, details, strict=True):
        if rows:
            sizes[uri] = (int(rows[0][0] or 0), int(rows[0][1] or 0))
    return sizes


_COMMIT = re.compile(r"(\d{20})\.json")


def _log_files(spark: SparkSession, uris: Sequence[str]) -> dict[str, list[str]]:
    """The files in each table's log (none where there is no table), from what Spark plans to read: no job."""
    from pyspark.errors import AnalysisException

    if not uris:
        return {}
    try:
        found = spark.read.format("binaryFile").load([f"{uri.rstrip('/')}/_delta_log/*" for uri in uris]).inputFiles()
    except AnalysisException as exc:
        if exc.getCondition() != "PATH_NOT_FOUND":
            raise
        if len(uris) == 1:
            return {uris[0]: []}
        return {uri: files for part in uris for uri, files in _log_files(spark, [part]).items()}
    logs: dict[str, list[str]] = {uri: [] for uri in uris}
    folders = {uri: location(f"{uri}/_delta_log") for uri in uris}
    for path in found:
        where = location(path)
        for uri, (host, folder) in folders.items():
            if where[0] == host and where[1].rpartition("/")[0] == folder:
                logs[uri].append(path)
                break
    return logs


def small_files(spark: SparkSession, uris: Sequence[str]) -> dict[str, int]:
    """The number of files below :data:`SMALL_FILE_BYTES` in the current version of each Delta table among
    ``uris`` (a uri with no table is left out): from the file list of its latest commit's checksum (one read for
    all, as :func:`table_sizes`). A table whose checksum does not list its files (Delta lists them for tables of
    fewer than 50) counts every file as small: at worst, a compaction that finds nothing to pack."""
    logs = _log_files(spark, uris)
    checksums = _checksums(spark, {uri: files for uri, files in logs.items() if files})
    counts: dict[str, int] = {}
    for uri, checksum in checksums.items():
        listed = checksum.get("allFiles")
        if isinstance(listed, list):
            counts[uri] = sum(1 for f in listed if int(f.get("size", 0)) < SMALL_FILE_BYTES)
    unknown = [uri for uri, files in logs.items() if files and uri not in counts]
    counts |= {uri: files for uri, (files, _) in table_sizes(spark, unknown).items()}
    return counts


def _checksum_sizes(spark: SparkSession, logs: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """``(files, bytes)`` of each table whose latest commit has a checksum, read from it (one read for all)."""
    sizes: dict[str, tuple[int, int]] = {}
    for uri, checksum in _checksums(spark, logs).items():
        files, size = checksum.get("numFiles"), checksum.get("tableSizeBytes")
        if isinstance(files, int) and isinstance(size, int):
            sizes[uri] = (files, size)
    return sizes


def _checksums(spark: SparkSession, logs: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """The checksum (``<version>.crc``, JSON) of each table's latest commit, where it has one that parses; one read
    for all the tables."""
    paths: dict[str, str] = {}
    for uri, files in logs.items():
        names = {path.rpartition("/")[2]: path for path in files}
        versions = [m[1] for m in map(_COMMIT.fullmatch, names) if m]
        latest = f"{max(versions)}.crc" if versions else None
        if latest in names:
            paths[names[latest]] = uri
    if not paths:
        return {}
    contents = spark.read.format("binaryFile").load(list(paths)).select("path", "content").collect()
    by_location = {location(path): uri for path, uri in paths.items()}
    checksums: dict[str, dict[str, Any]] = {}
    for path, content in contents:
        try:
            checksum = json.loads(bytes(content))
        except ValueError:  # not JSON (a torn write)
            continue
        if isinstance(checksum, dict):
            checksums[by_location[location(path)]] = checksum
    return checksums


def location(uri: str) -> tuple[str, str]:
    """``(bucket, path)`` of a URI, decoded, without a trailing slash: ``file:/a`` and ``file:///a`` are one place."""
    parts = urlsplit(uri)
    return parts.netloc, unquote(parts.path).rstrip("/")
