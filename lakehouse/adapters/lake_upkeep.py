"""Upkeep of the lake's Delta tables: what they take up, compaction, VACUUM and each table's history.

Delta keeps the files of superseded versions until a VACUUM deletes those superseded longer ago than the
retention window, so a reader that pinned an older version (time travel, an audit export, a long query) keeps
working inside the window. The current version's files are never deleted. Every write and the maintenance
itself hold the lake's run lock, so the window only has to cover readers, not concurrent writers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.adapters.lake import delta_table, location, rows_if_table, table_sizes
from lakehouse.adapters.spark import is_connect
from lakehouse.settings import MIN_RETENTION_HOURS, check_retention

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class TableStorage:
    """Bytes of one Delta table: its current version's data files, every file below it, and its log."""

    current_bytes: int = 0
    disk_bytes: int = 0
    log_bytes: int = 0

    @property
    def reclaimable_bytes(self) -> int:
        """Data files no current reader needs: superseded versions' files (VACUUM deletes them past the window)."""
        return max(self.disk_bytes - self.current_bytes - self.log_bytes, 0)

    def __add__(self, other: TableStorage) -> TableStorage:
        return TableStorage(
            self.current_bytes + other.current_bytes,
            self.disk_bytes + other.disk_bytes,
            self.log_bytes + other.log_bytes,
        )


@dataclass(frozen=True)
class Version:
    """One commit of a table's history. ``rows`` is what the commit wrote (None for compaction, VACUUM…)."""

    version: int
    timestamp: dt.datetime
    operation: str
    rows: int | None
    run_id: str | None


def table_storage(spark: SparkSession, uri: str) -> TableStorage:
    """The table's current-version bytes, its bytes on disk (or in the bucket) and its log's bytes."""
    return table_storages(spark, [uri])[uri]


def table_storages(spark: SparkSession, uris: Sequence[str]) -> dict[str, TableStorage]:
    """:func:`table_storage` of each of ``uris``, without replaying any log: their current bytes from
    :func:`~lakehouse.adapters.lake.table_sizes`, and one listing for them all.

    The files on disk are what Spark lists for the tables' folders and logs (the ``binaryFile`` source, path and
    length only: no file is read), which also works on Spark Connect, where there is no Hadoop FileSystem at
    hand. Like any Spark listing it leaves out hidden files (``.``/``_`` names: ``_last_checkpoint``, local
    checksums of files).
    """
    sizes = table_sizes(spark, uris)
    tables = [uri for uri in uris if uri in sizes]
    disk = {uri: 0 for uri in tables}
    log = {uri: 0 for uri in tables}
    if tables:
        roots = [*tables, *(f"{uri}/_delta_log" for uri in tables)]
        files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(roots)
        folders = {uri: location(uri) for uri in tables}
        for path, length in files.select("path", "length").collect():
            host, file = location(path)
            for uri, (table_host, folder) in folders.items():
                if host == table_host and file.startswith(f"{folder}/"):
                    disk[uri] += int(length)
                    log[uri] += int(length) if file.startswith(f"{folder}/_delta_log/") else 0
                    break
    return {uri: TableStorage(sizes[uri][1], disk[uri], log[uri]) if uri in sizes else TableStorage() for uri in uris}


def compact(spark: SparkSession, uri: str) -> int:
    """Bin-pack the table's small files (per partition) into larger ones; the number of files it replaced."""
    metrics = spark.sql(f"optimize {delta_table(uri)}").select("metrics.numFilesRemoved").first()
    return int(metrics[0]) if metrics and metrics[0] is not None else 0


def vacuum(
    spark: SparkSession, uri: str, *, retention_hours: float, min_retention_hours: float = MIN_RETENTION_HOURS
) -> None:
    """Delete the files no version inside the retention window needs.

    Raises:
        UnsafeRetentionError: ``retention_hours`` is below ``min_retention_hours`` (nothing is deleted).
    """
    check_retention(retention_hours, min_retention_hours=min_retention_hours)
    with _console_on_stderr(spark):
        spark.sql(f"vacuum {delta_table(uri)} retain {float(retention_hours):f} hours").collect()


@contextlib.contextmanager
def _console_on_stderr(spark: SparkSession) -> Iterator[None]:
    """Delta's VACUUM reports "Deleted N files…" with Scala's ``println``, on the runner's stdout (where it would
    break ``--json``); point this thread's Scala console at stderr meanwhile (py4j pins a JVM thread per Python
    thread).

    One of the library's two uses of the JVM (:func:`~lakehouse.adapters.spark.call_site` is the other),
    unavoidable: Scala's console is JVM state no Spark API reaches. On Spark Connect it does nothing, and needs to do
    nothing: the ``println`` lands on the server's stdout, not ours.
    """
    if is_connect(spark):
        yield
        return
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "the SparkSession has been stopped"
    console = getattr(getattr(jvm.scala, "Console$"), "MODULE$")  # the Scala object, not its static forwarders
    saved = console.out()
    console.setOutDirect(jvm.java.lang.System.err)
    try:
        yield
    finally:
        console.setOutDirect(saved)


def tag_commits(spark: SparkSession, run_id: str) -> None:
    """Record ``run_id`` in every Delta commit this session makes from now on (``history``'s run id)."""
    spark.conf.set(_USER_METADATA, run_id)


def history(spark: SparkSession, uri: str) -> list[Version]:
    """Every version of the table still in its log, oldest first (empty when there is no table)."""
    columns = ("version", "timestamp", "operation", "operationMetrics", "userMetadata")
    rows = sorted(rows_if_table(spark, f"describe history {delta_table(uri)}", *columns) or [], key=lambda r: r[0])
    return [Version(int(r[0]), r[1], str(r[2]), _rows_written(r[3] or {}), r[4] or None) for r in rows]


VACUUM_OPERATIONS = ("VACUUM START", "VACUUM END")
UPKEEP_OPERATIONS = ("OPTIMIZE", *VACUUM_OPERATIONS)
# A VACUUM also deletes files no commit names (left by a writer killed mid-write): sweep each table this often.
VACUUM_SWEEP_HOURS = 24.0
# How many of a table's latest commits the due check reads: its cost stays flat however long the history grows,
# and a table with this many commits since its last VACUUM is due anyway.
VACUUM_CHECK_DEPTH = 100


def vacuum_due(spark: SparkSession, uri: str, *, retention_hours: float, now: dt.datetime) -> str | None:
    """Why the table needs a VACUUM at ``now`` (UTC), or None when it would delete nothing it knows of.

    Due when a commit since the last VACUUM replaced or removed files longer than ``retention_hours`` ago (only
    appends and VACUUM remove nothing; a compaction does), or when the last VACUUM (or the table's creation) is
    older than :data:`VACUUM_SWEEP_HOURS`, or when none of its last :data:`VACUUM_CHECK_DEPTH` commits is a
    VACUUM. One read of the table's latest commits; no listing.
    """
    from pyspark.sql import functions as F

    query = f"describe history {delta_table(uri)} limit {int(VACUUM_CHECK_DEPTH)}"
    mode = F.col("operationParameters").getItem("mode")
    rows = sorted(rows_if_table(spark, query, "version", "timestamp", "operation", mode) or [], key=lambda r: r[0])
    if not rows:
        return None
    vacuums = [r for r in rows if r[2] == "VACUUM END"]  # completed ones: a killed VACUUM leaves a START alone
    if not vacuums and len(rows) >= VACUUM_CHECK_DEPTH and rows[0][0] > 0:
        return f"no VACUUM in its last {VACUUM_CHECK_DEPTH} commits"
    since = [r for r in rows if not vacuums or r[0] > vacuums[-1][0]]
    moment = now.astimezone(dt.UTC).replace(tzinfo=None)  # history's timestamps are naive UTC (session zone)
    removed = [
        r for r in since
        if r[2] not in (*VACUUM_OPERATIONS, "CREATE TABLE") and not (r[2] == "WRITE" and r[3] == "Append")
    ]  # fmt: skip
    aged = [r for r in removed if moment - r[1] >= dt.timedelta(hours=retention_hours)]
    if aged:
        return f"files replaced at version {aged[0][0]} are past the {retention_hours:g}-hour retention"
    last = vacuums[-1][1] if vacuums else rows[0][1]
    if moment - last >= dt.timedelta(hours=VACUUM_SWEEP_HOURS):
        return f"{'last VACUUM' if vacuums else 'created'} over {VACUUM_SWEEP_HOURS:g} hours ago"
    return None


def last_writer(spark: SparkSession, uri: str, *, depth: int = 20) -> str | None:
    """The run id of the latest commit that changed the table's rows (upkeep commits are skipped), looking back
    ``depth`` commits; None when there is none or it carries no run id."""
    query = f"describe history {delta_table(uri)} limit {int(depth)}"
    rows = rows_if_table(spark, query, "version", "operation", "userMetadata") or []
    changes = sorted((r for r in rows if r[1] not in UPKEEP_OPERATIONS), key=lambda r: r[0])
    return (changes[-1][2] or None) if changes else None


def _rows_written(metrics: dict[str, Any]) -> int | None:
    rows = metrics.get("numOutputRows")  # writes, replaces and merges report it; OPTIMIZE and VACUUM do not
    return None if rows is None else int(rows)


def version_at(spark: SparkSession, uri: str, as_of: str) -> int | None:
    """The table's version ``as_of`` names: a version number as it is; for a timestamp (ISO 8601, UTC unless it
    says otherwise), the latest version committed at or before it. None when the table had no version by then.

    Unlike Delta's own ``timestampAsOf``, a timestamp after the table's last commit is its latest version, so one
    timestamp names a consistent state of every table of a layer.
    """
    text = as_of.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {as_of!r}: expected a version number or an ISO 8601 timestamp") from None
    if moment.tzinfo is not None:  # the session's time zone is UTC: history's timestamps are naive UTC
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    versions = [v.version for v in history(spark, uri) if v.timestamp <= moment]
    return max(versions) if versions else None
