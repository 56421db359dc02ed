"""The one place a SparkSession is built: Delta Lake enabled, S3A configured for MinIO, console quiet.

:func:`spark_conf` is pure (settings + jar paths in, a ``dict`` out) so the configuration is unit-tested
without a JVM; :func:`build_spark` checks Java, resolves the jars and starts the session.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lakehouse.adapters.jars import Artifact, check_hadoop_version, required_artifacts, resolve_jars
from lakehouse.adapters.lake import SMALL_FILE_BYTES
from lakehouse.errors import JavaNotFoundError
from lakehouse.settings import S3Settings, Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")
MIN_JAVA = 17
_JAVA_HINT = (
    "Spark 4 needs Java 17 or newer. Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; "
    "macOS: brew install openjdk@17) and make sure `java` is on PATH or JAVA_HOME points at it."
)


def java_major_version(java: str | None = None) -> int:
    """Major version of the ``java`` Spark will launch (``$JAVA_HOME/bin/java``, else ``java`` on PATH)."""
    executable = java or _java_executable()
    if executable is None:
        raise JavaNotFoundError(f"no Java runtime found. {_JAVA_HINT}")
    try:
        proc = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise JavaNotFoundError(f"could not run {executable}: {exc}. {_JAVA_HINT}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        raise JavaNotFoundError(f"could not read the version of {executable}. {_JAVA_HINT}")
    major = int(match.group(1))
    # Java 8 and older report themselves as 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> int:
    """Raise :class:`JavaNotFoundError` naming what to install unless Java 17+ is available."""
    major = java_major_version()
    if major < MIN_JAVA:
        raise JavaNotFoundError(f"found Java {major}. {_JAVA_HINT}")
    return major


def _java_executable() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def spark_conf(settings: Settings, jars: list[Path]) -> dict[str, str]:
    """Every Spark setting the project relies on, in one mapping."""
    log4j = resources.files("lakehouse") / "resources" / "log4j2.properties"
    conf = {
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.default.parallelism": str(settings.shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # OPTIMIZE packs only the small files (Delta's default, 1 GiB, made every compaction of a bronze table
        # rewrite its history: 50 MB at --scale 10, each time it was due).
        "spark.databricks.delta.optimize.minFileSize": str(SMALL_FILE_BYTES),
        # VACUUM lists a table's folders in a Spark job of this many tasks: Spark's default of 10,000 made a
        # VACUUM of a one-file table launch ~100,000 tasks and take 15-30 s on two cores (1.5 s with this).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Python workers build naive datetimes in the process time zone; pin it so timestamps stay UTC.
        "spark.executorEnv.TZ": "UTC",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={log4j} -Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": (settings.data_dir / "spark-warehouse").as_uri(),
        # The local lake is owner-only: Hadoop's local file system chmods what it creates with this mask.
        "spark.hadoop.fs.permissions.umask-mode": "077",
        # Storage: zstd with Parquet's v2 encodings (delta-packed integers, prefix-shared strings) stores the
        # sample about 70 % smaller than its CSV; snappy with v1 pages saved under half.
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.hadoop.parquet.compression.codec.zstd.level": "9",
        "spark.hadoop.parquet.writer.version": "v2",
        # VACUUM's minimum retention is enforced by lakehouse.adapters.lake_upkeep (LAKEHOUSE_RETENTION_HOURS).
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    }
    if settings.spark_event_log_dir is not None:
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = settings.spark_event_log_dir.as_uri()
    if settings.s3 is not None:
        conf |= s3a_conf(settings.s3)
    return conf


# Settings a session takes only when it starts: on Spark Connect they are the server's (see README).
_LAUNCH_ONLY = frozenset({"spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.sql.warehouse.dir"})


def session_conf(settings: Settings) -> dict[str, str]:
    """The part of :func:`spark_conf` a running session takes (``spark.conf.set``), for a Spark Connect server:
    the SQL, Delta and Hadoop settings, Hadoop's without their ``spark.hadoop.`` prefix (a session hands its
    settings to every Hadoop configuration it makes as they are). Master, jars, memory, Java options, Python and
    Delta's extension and catalog are the server's, set when it was started. No credentials: see
    :func:`configure_s3a`."""
    conf = {}
    for key, value in spark_conf(settings, []).items():
        if key.startswith("spark.hadoop."):
            conf[key.removeprefix("spark.hadoop.")] = value
        elif key.startswith(("spark.sql.", "spark.databricks.")) and key not in _LAUNCH_ONLY:
            conf[key] = value
    return conf


def s3a_conf(s3: S3Settings) -> dict[str, str]:
    """S3A for MinIO/S3: path-style endpoint, fast failure, and the magic committer. No credentials.

    Every entry here reaches ``spark-submit``'s command line, which every local user can read (``ps``), so the
    keys never do: the JVM reads them from its environment (:func:`build_spark` puts them there for its launch
    only), or, for a session pointed at an endpoint later, from its live Hadoop configuration
    (:func:`configure_s3a`).
    """
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.aws.credentials.provider": CREDENTIAL_PROVIDERS,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.ssl_enabled).lower(),
        # wildfly-openssl is optional; plain JSSE avoids a warning and a missing-class fallback.
        "spark.hadoop.fs.s3a.ssl.channel.mode": "default_jsse",
        # A stopped MinIO should fail a run in seconds, not after the SDK's minutes of retries.
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.retry.interval": "500ms",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "15s",
        "spark.hadoop.fs.s3a.connection.timeout": "60s",
        # The magic committer writes task output straight to its final place as pending multipart uploads and
        # makes it visible only at job commit: no rename (a copy on S3) and no half-written output.
        "spark.hadoop.fs.s3a.committer.name": "magic",
        "spark.hadoop.fs.s3a.committer.magic.enabled": "true",
        "spark.hadoop.mapreduce.outputcommitter.factory.scheme.s3a": (
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory"
        ),
        "spark.sql.sources.commitProtocolClass": "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
        "spark.sql.parquet.output.committer.class": (
            "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter"
        ),
    }
    if s3.endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint_url
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
    return conf


CREDENTIAL_PROVIDERS = ",".join(
    (
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",  # fs.s3a.access.key/secret.key, set at run time
        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",  # AWS_* of the JVM
    )
)


@contextlib.contextmanager
def _jvm_environment(s3: S3Settings | None) -> Iterator[None]:
    """``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in this process's environment while the JVM is launched
    (it inherits them; ``/proc/<pid>/environ`` is readable by the owner alone), restored afterwards."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    saved = {name: os.environ.get(name) for name in names}
    if s3 is not None:
        os.environ.update(zip(names, (s3.access_key_id, s3.secret_access_key.reveal()), strict=True))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_spark_dirs(settings: Settings) -> None:
    """The folders a Spark started here writes to (data dir, event log), owner-only, before it starts."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.spark_event_log_dir is not None:
        settings.spark_event_log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def build_spark(
    settings: Settings,
    *,
    app_name: str = "lakehouse",
    extra_conf: dict[str, str] | None = None,
    s3_jars: bool | None = None,
    extra_artifacts: tuple[Artifact, ...] = (),
) -> SparkSession:
    """Start (or return the running) SparkSession configured for ``settings``; with ``LAKEHOUSE_SPARK_REMOTE``, a
    session on that Spark Connect server instead (no Java or jars needed here: the server has them).

    ``s3_jars`` puts the S3A connector on the classpath even when ``settings`` has no S3 endpoint yet, so
    that :func:`configure_s3a` can point the live session at one later (tests start MinIO lazily).

    Raises:
        JavaNotFoundError: Java is missing or older than 17.
        JarResolutionError: a connector jar could not be fetched or pyspark's Hadoop does not match.
    """
    if settings.spark_remote is not None:
        return _connect_session(settings, app_name=app_name)
    check_java()
    import pyspark
    from pyspark.sql import SparkSession

    check_hadoop_version(Path(pyspark.__file__).parent / "jars")
    jars = resolve_jars(
        required_artifacts(s3=settings.s3 is not None if s3_jars is None else s3_jars) + extra_artifacts,
        settings.jar_cache_dir,
        repository=settings.maven_repository,
    )
    make_spark_dirs(settings)
    # PySpark picks the worker interpreter from this variable, not from spark.pyspark.python; without it,
    # workers run whatever `python3` is first on PATH, which may lack this virtualenv's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in (spark_conf(settings, jars) | (extra_conf or {})).items():
        builder = builder.config(key, value)
    with _jvm_environment(settings.s3):
        return builder.getOrCreate()


def _connect_session(settings: Settings, *, app_name: str) -> SparkSession:
    """A session on the Spark Connect server of ``settings``, with the settings a running session takes."""
    from pyspark.sql import SparkSession

    assert settings.spark_remote is not None
    spark = SparkSession.builder.remote(settings.spark_remote.reveal()).appName(app_name).getOrCreate()
    for key, value in session_conf(settings).items():
        spark.conf.set(key, value)
    if settings.s3 is not None:
        configure_s3a(spark, settings.s3)
    return spark


def configure_s3a(spark: SparkSession, s3: S3Settings) -> None:
    """Point a running session (started with the S3A jars) at ``s3``, credentials included.

    Through the session's configuration, not the JVM's Hadoop configuration (Spark Connect has no JVM on the
    client): Spark copies a session's settings into the Hadoop configuration of every file system it opens for
    it, and its event log redacts the keys. Hadoop caches one FileSystem per bucket, so this applies to buckets
    first touched after the call.
    """
    keys = {"spark.hadoop.fs.s3a.access.key": s3.access_key_id}
    keys["spark.hadoop.fs.s3a.secret.key"] = s3.secret_access_key.reveal()
    for key, value in (s3a_conf(s3) | keys).items():
        spark.conf.set(key.removeprefix("spark.hadoop."), value)


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no JVM, SparkContext or RDDs on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def empty_frame(spark: SparkSession, schema: str) -> DataFrame:
    """An empty frame of the DDL ``schema`` that Spark knows is empty: a local relation, so actions on it start no
    task. (``createDataFrame([])`` alone is a Python RDD: about a second per action for its Python workers.)"""
    return spark.createDataFrame([], schema).limit(0)


def parallelism(spark: SparkSession) -> int:
    """How many tasks the session runs at once: ``spark.default.parallelism`` (:func:`spark_conf` sets it to the
    shuffle partitions; a Connect server reports its own), else the shuffle partitions."""
    value = spark.conf.get("spark.default.parallelism", None) or spark.conf.get("spark.sql.shuffle.partitions")
    return max(int(value or 1), 1)


JOB_TAG_PREFIX = "lakehouse-"
# How a session tag appears among a job's tags: ``spark-session-<id>-lakehouse-<name>`` in a local session,
# ``SparkConnect_SessionTag_User_<user>_Session_<id>_Tag_lakehouse-<name>`` on a Spark Connect server.
_TAGGED = re.compile(rf"(?:-|_Tag_){re.escape(JOB_TAG_PREFIX)}(.+)$")


@contextlib.contextmanager
def tagged(spark: SparkSession | None, name: str) -> Iterator[None]:
    """Tag the Spark jobs this thread starts in the block ``lakehouse-<name>`` (a layer, ``maintenance``): the
    event log and the UI attribute each job to it, and ``spark.interruptTag`` can cancel them. Session tags work
    with Spark Connect too. Nothing happens without a session."""
    if spark is None:
        yield
        return
    tag = f"{JOB_TAG_PREFIX}{name}"
    spark.addTag(tag)
    try:
        yield
    finally:
        spark.removeTag(tag)


@contextlib.contextmanager
def call_site(spark: SparkSession, where: str) -> Iterator[None]:
    """Name the Spark stages this thread starts in the block ``where`` (their name in the UI and the event log).

    PySpark names a stage after the Python line whose action started it, but for one thread at a time (its depth
    counter is process-wide): an action started meanwhile on another thread (:func:`in_parallel`) gets a JVM
    frame's name. A session on Spark Connect is left alone: the server names its stages."""
    if is_connect(spark):
        yield
        return
    context = spark.sparkContext
    for form in ("short", "long"):
        context.setLocalProperty(f"callSite.{form}", where)
    try:
        yield
    finally:
        for form in ("short", "long"):
            context.setLocalProperty(f"callSite.{form}", None)  # type: ignore[arg-type]


def in_parallel(spark: SparkSession, tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``tasks`` at once, one thread each, and return their results in order; raise the first failed task's
    error after every task has ended (none is left running), with a note naming each other task's error.

    For independent Spark work that waits more than it computes, e.g. Delta commits to different tables: each
    runs its own jobs, and the scheduler interleaves them, so one's log reads and planning overlap another's
    tasks. Each thread carries this thread's job tags (:func:`tagged`), which Spark keeps per thread."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    tags = sorted(spark.getTags())

    def carried(task: Callable[[], T]) -> T:
        for tag in tags:
            spark.addTag(tag)
        try:
            return task()
        finally:
            for tag in tags:
                spark.removeTag(tag)

    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="lakehouse-parallel") as pool:
        futures = [pool.submit(carried, task) for task in tasks]
        errors = [error for f in futures if (error := f.exception()) is not None]  # waits for every task
    if errors:
        first, *others = errors
        for other in others:  # shown with the first one's traceback: no task's error is lost
            first.add_note(f"another task failed too: {type(other).__name__}: {other}")
        raise first
    return [f.result() for f in futures]


def in_parallel_timed(spark: SparkSession, tasks: Sequence[Callable[[], T]]) -> list[tuple[T, float]]:
    """:func:`in_parallel`, each result with its task's share of the wall time: in proportion to the task's own
    time (the tasks overlap, so their own times add up to more than the wall time). The shares add up to the wall
    time, so per-table seconds built from them still add up to the run's."""

    def timed(task: Callable[[], T]) -> tuple[T, float]:
        started = time.monotonic()
        return task(), time.monotonic() - started

    started = time.monotonic()
    results = in_parallel(spark, [functools.partial(timed, task) for task in tasks])
    wall = time.monotonic() - started
    own = sum(seconds for _, seconds in results) or 1.0
    return [(result, wall * seconds / own) for result, seconds in results]


def jobs_by_tag(event_log_dir: Path) -> Counter[str]:
    """Spark jobs per :func:`tagged` name (``other`` for untagged ones) in the event logs under ``event_log_dir``
    (``LAKEHOUSE_SPARK_EVENT_LOG_DIR``, or a Spark Connect server's)."""
    jobs: Counter[str] = Counter()
    for event in spark_events(event_log_dir, "SparkListenerJobStart"):
        tags = str(event.get("Properties", {}).get("spark.job.tags", "")).split(",")
        names = [m[1] for t in tags if (m := _TAGGED.search(t))]
        jobs[names[-1] if names else "other"] += 1
    return jobs


def spark_events(event_log_dir: Path, *kinds: str) -> Iterator[dict[str, Any]]:
    """The events of the ``kinds`` given (``SparkListenerTaskEnd``…) in the Spark event logs under
    ``event_log_dir``, in order: plain or zstd-compressed (Spark's default), rolling or not."""
    import json

    import pyarrow as pa

    for path in sorted(
        p for p in event_log_dir.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))
    ):
        with pa.OSFile(str(path)) as raw:
            stream = pa.CompressedInputStream(raw, "zstd") if path.suffix == ".zstd" else raw
            text = stream.read().decode()
        for line in text.splitlines():
            if any(f'"{kind}"' in line for kind in kinds):
                event = json.loads(line)
                if event.get("Event") in kinds:
                    yield event


def stop_spark(spark: SparkSession, settings: Settings) -> None:
    """Stop the session; then make its event logs owner-only (Spark writes them group-readable, mode 770,
    for a history server in the group; the folder itself is created owner-only, so nobody else reached them)."""
    spark.stop()
    owner_only_event_logs(settings)


def owner_only_event_logs(settings: Settings) -> None:
    """Make the event logs of a Spark that has stopped owner-only (as :func:`make_spark_dirs` made their folder)."""
    if settings.spark_event_log_dir is not None and settings.spark_event_log_dir.is_dir():
        for path in (settings.spark_event_log_dir, *settings.spark_event_log_dir.rglob("*")):
            path.chmod(path.stat().st_mode & 0o700)
