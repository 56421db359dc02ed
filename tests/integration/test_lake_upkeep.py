"""Storage upkeep on a real local Delta lake: date-clustered files that a date-range query skips, compaction and
VACUUM that keep the lake near its current size, a retention window that protects pinned readers, and history."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import steps
from lakehouse.adapters import lake, lake_upkeep
from lakehouse.adapters.roles import WarehouseRoles
from lakehouse.adapters.warehouse import connect
from lakehouse.bookkeeping import start_run
from lakehouse.bronze.landing import discover
from lakehouse.contracts import SILVER
from lakehouse.errors import ConfigurationError, UnsafeRetentionError
from lakehouse.maintenance import COMPACT_MIN_FILES, maintain_lake
from lakehouse.sample import generate
from lakehouse.settings import PostgresSettings, Settings, load_settings
from lakehouse.steps import RunOutcome, run_layers, scan_as_of, storage

pytestmark = pytest.mark.integration
CLUSTER = ("date", "campaign_id")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path)}, dotenv_path=None)


def _performance(spark: Any, *, rows_per_day: int, seed: int) -> DataFrame:
    """A year of daily rows (2024) with a hard-to-compress payload, like the sample's measures."""
    days = spark.range(0, 366 * rows_per_day, numPartitions=2)
    return days.select(
        F.date_add(F.lit(dt.date(2024, 1, 1)), (F.col("id") % 366).cast("int")).alias("date"),
        (F.col("id") % 97).cast("int").alias("campaign_id"),
        F.sha2(F.concat_ws(":", F.lit(seed), F.col("id").cast("string")), 256).alias("payload"),
    )


def _files_read(df: DataFrame) -> int:
    """Run ``df`` and return how many files its scan read (the scan node's ``numFiles`` metric)."""
    df.collect()
    plan = df._jdf.queryExecution().executedPlan()
    if plan.getClass().getSimpleName() == "AdaptiveSparkPlanExec":
        plan = plan.executedPlan()
    leaves = plan.collectLeaves()
    scans = [leaves.apply(i) for i in range(leaves.size()) if "Scan" in leaves.apply(i).nodeName()]
    assert len(scans) == 1, [s.nodeName() for s in scans]
    return int(scans[0].metrics().get("numFiles").get().value())


def test_a_clustered_table_is_one_file_per_month_and_a_month_query_reads_one_file(spark: Any, local_lake: str) -> None:
    uri = f"{local_lake}/silver/performance"
    lake.write_table(_performance(spark, rows_per_day=20, seed=1), uri, mode="replace", cluster_by=CLUSTER)
    files = lake.table_size(spark, uri)[0]
    table = lake.read_table(spark, uri)

    march = table.where(F.col("date").between(dt.date(2024, 3, 1), dt.date(2024, 3, 31)))
    whole_year = table.where(F.col("date") >= dt.date(2024, 1, 1))

    assert files >= 10  # one per month, or a few neighbouring months together: never one file, never a day each
    assert _files_read(march) == 1
    assert march.count() == 31 * 20
    assert _files_read(whole_year) == files


def test_after_ten_runs_and_maintenance_the_lake_is_near_its_current_size(spark: Any, settings: Settings) -> None:
    bronze = lake.table_uri(settings, "bronze", "performance")
    silver = lake.table_uri(settings, "silver", "performance")
    for run in range(10):  # each run: a new bronze batch appended, silver rewritten whole
        batch = _performance(spark, rows_per_day=10, seed=run).withColumn("ingest_date", F.lit(dt.date(2024, 6, 1)))
        lake.write_table(batch, bronze, mode="append", partition_by=("ingest_date",), idempotency_key=f"b{run}")
        lake.write_table(_performance(spark, rows_per_day=60, seed=100 + run), silver, mode="replace")
    grown = lake_upkeep.table_storage(spark, silver)
    assert grown.disk_bytes > 5 * grown.current_bytes  # nine superseded versions: the growth the issue describes
    assert lake.table_size(spark, bronze)[0] == 10  # one small file per batch

    report = maintain_lake(spark, settings, retention_hours=0, min_retention_hours=0)

    for uri in (bronze, silver):
        after = lake_upkeep.table_storage(spark, uri)
        assert after.disk_bytes <= 1.2 * after.current_bytes, (uri, after)
        assert after.reclaimable_bytes == 0
    assert lake.table_size(spark, bronze)[0] == 1  # ten batch files compacted into one
    assert lake.read_table(spark, bronze).count() == 10 * 10 * 366
    assert report.reclaimed_bytes > 5 * lake.table_size(spark, silver)[1]  # most of nine superseded versions


@pytest.mark.parametrize("checksum", ["present", "missing", "not-json"])
def test_a_tables_current_files_and_bytes_are_its_latest_versions_with_or_without_a_checksum(
    spark: Any, local_lake: str, checksum: str
) -> None:
    """The current files and bytes (and small files) are the current version's data files: read from the latest
    commit's checksum, or from the log when that checksum is missing or not JSON; a folder with no table has
    none."""
    uri = f"{local_lake}/silver/sized"
    lake.write_table(_performance(spark, rows_per_day=5, seed=1), uri, mode="replace", cluster_by=CLUSTER)
    lake.write_table(_performance(spark, rows_per_day=1, seed=2), uri, mode="append")
    deletes = spark.createDataFrame([(3,), (5,)], "k int")
    lake.replace_matching(
        _performance(spark, rows_per_day=1, seed=3), uri, deletes=deletes, match=[("k", F.col("campaign_id"))]
    )
    version = lake.table_version(spark, uri)
    log = Path(uri.removeprefix("file:")) / "_delta_log"
    latest = log / f"{version:020d}.crc"
    assert latest.exists()
    if checksum == "missing":
        latest.unlink()
    elif checksum == "not-json":
        latest.write_text('{"numFiles": 1, "tableSiz')  # torn
        latest.with_name(f".{latest.name}.crc").unlink(missing_ok=True)  # the local file system's own checksum
    files = lake.read_table(spark, uri).inputFiles()
    current = sum(Path(f.removeprefix("file:")).stat().st_size for f in files)
    absent = f"{local_lake}/silver/absent"

    sizes = lake.table_sizes(spark, [uri, absent])
    storages = lake_upkeep.table_storages(spark, [uri, absent])

    assert sizes == {uri: (len(files), current)}
    assert lake.small_files(spark, [uri, absent]) == {uri: len(files)}  # every file is small here
    assert storages[uri].current_bytes == current > 0
    assert storages[uri].disk_bytes > current  # the replaced files are still on disk
    assert storages[absent] == lake_upkeep.TableStorage()


def _vacuums(spark: Any, uri: str) -> int:
    return sum(v.operation == "VACUUM END" for v in lake_upkeep.history(spark, uri))


def test_a_runs_maintenance_does_only_what_is_due(spark: Any, settings: Settings) -> None:
    """A run's maintenance compacts a table with many files, and VACUUMs a table only when a commit since its last
    VACUUM removed files longer ago than the retention, or its last VACUUM (or creation) is over a day old."""
    appended = lake.table_uri(settings, "bronze", "advertisers")  # one file per batch
    for batch in range(COMPACT_MIN_FILES):
        lake.write_table(spark.range(10).withColumn("batch", F.lit(batch)), appended, mode="append")
    replaced = lake.table_uri(settings, "silver", "advertisers")  # its first version's file is superseded
    for value in ("v0", "v1"):
        lake.write_table(spark.range(10).withColumn("v", F.lit(value)), replaced, mode="replace")
    now = dt.datetime.now(dt.UTC)

    report = maintain_lake(spark, settings, when_due=True, now=now)

    assert [(t.table, t.layer, t.files_compacted, t.vacuumed) for t in report.tables] == [
        ("advertisers", "bronze", COMPACT_MIN_FILES, False)
    ]
    assert report.checked == 2
    assert lake.table_size(spark, appended)[0] == 1
    assert _vacuums(spark, replaced) == 0
    assert maintain_lake(spark, settings, when_due=True, now=now).lines() == [
        "maintenance: none due (2 lake tables checked; `runner.py maintain` forces it)"
    ]

    # With no retention, superseded files are past it at once: the replaced table's first file, and the appended
    # table's batch files, which its compaction replaced. Both are due, once.
    now = dt.datetime.now(dt.UTC)  # after the compaction
    late = maintain_lake(spark, settings, when_due=True, now=now, retention_hours=0, min_retention_hours=0)
    assert sorted((t.layer, t.vacuumed) for t in late.tables) == [("bronze", True), ("silver", True)]
    assert lake_upkeep.table_storage(spark, replaced).reclaimable_bytes == 0
    assert lake_upkeep.table_storage(spark, appended).reclaimable_bytes == 0
    assert maintain_lake(spark, settings, when_due=True, now=now, retention_hours=0, min_retention_hours=0).tables == []

    # A day after its last VACUUM, a table is swept again (files no commit names: a killed writer's).
    tomorrow = now + dt.timedelta(hours=lake_upkeep.VACUUM_SWEEP_HOURS, minutes=1)
    swept = maintain_lake(spark, settings, when_due=True, now=tomorrow)
    assert sorted((t.layer, t.files_compacted, t.vacuumed) for t in swept.tables) == [
        ("bronze", 0, True),
        ("silver", 0, True),
    ]
    assert _vacuums(spark, replaced) == 2


def test_compaction_packs_only_the_small_files_and_leaves_a_large_one_as_it_was(spark: Any, settings: Settings) -> None:
    """Compaction's cost follows what arrived, not the history: it packs the files below
    :data:`~lakehouse.adapters.lake.SMALL_FILE_BYTES` and leaves a large file (a big first batch) as it was, and a
    table is due only when it has :data:`COMPACT_MIN_FILES` small files, however many large ones it has."""
    uri = lake.table_uri(settings, "bronze", "performance")
    rows = lake.SMALL_FILE_BYTES // 8 + 500_000  # random doubles: about 8 bytes each, compressed or not
    lake.write_table(spark.range(rows, numPartitions=1).select(F.rand(7).alias("x")), uri, mode="append")
    [large] = lake.read_table(spark, uri).inputFiles()
    assert Path(large.removeprefix("file:")).stat().st_size > lake.SMALL_FILE_BYTES
    for batch in range(COMPACT_MIN_FILES):
        lake.write_table(spark.range(10, numPartitions=1).select(F.lit(float(batch)).alias("x")), uri, mode="append")

    report = maintain_lake(spark, settings, when_due=True)

    assert [(t.table, t.files_compacted) for t in report.tables] == [("performance", COMPACT_MIN_FILES)]
    files = lake.read_table(spark, uri).inputFiles()
    assert len(files) == 2  # the large file as it was, and one file of the small ones
    assert large in files
    assert lake.read_table(spark, uri).count() == rows + 10 * COMPACT_MIN_FILES

    for _ in range(COMPACT_MIN_FILES - 2):  # with the packed file: one small file short of due
        lake.write_table(spark.range(10, numPartitions=1).select(F.lit(-1.0).alias("x")), uri, mode="append")
    assert maintain_lake(spark, settings, when_due=True).tables == []


def test_the_vacuum_check_reads_a_bounded_number_of_commits(
    spark: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its cost stays flat as the history grows: it reads the latest commits only, and a table with that many
    commits since its last VACUUM is due."""
    monkeypatch.setattr(lake_upkeep, "VACUUM_CHECK_DEPTH", 3)
    uri = lake.table_uri(settings, "bronze", "campaigns")
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    due = []
    for batch in range(4):  # appends: they remove nothing, and the table is minutes old
        lake.write_table(spark.range(10).withColumn("batch", F.lit(batch)), uri, mode="append")
        due.append(lake_upkeep.vacuum_due(spark, uri, retention_hours=168, now=now))

    assert due == [None, None, None, "no VACUUM in its last 3 commits"]
    lake_upkeep.vacuum(spark, uri, retention_hours=168)
    assert lake_upkeep.vacuum_due(spark, uri, retention_hours=168, now=now) is None


def test_the_storage_summary_reports_each_tables_current_bytes_and_each_layers_disk(
    spark: Any, settings: Settings
) -> None:
    sizes = {}
    for scale, layer in enumerate(("bronze", "silver", "quarantine"), start=1):  # sizes differ between layers
        for table, rows in (("advertisers", 100), ("performance", 3000)):
            uri = lake.table_uri(settings, layer, table)
            for _ in range(2):  # a superseded version: on disk, not current
                lake.write_table(spark.range(rows * scale), uri, mode="replace")
            sizes[layer, table] = lake.table_size(spark, uri)[1]

    summary = storage(spark, settings)

    assert summary.bronze_parquet_bytes == sizes["bronze", "advertisers"] + sizes["bronze", "performance"]
    assert summary.silver_parquet_bytes == sizes["silver", "advertisers"] + sizes["silver", "performance"]
    layers = {b.layer: b for b in summary.layers}
    assert layers["quarantine"].current_bytes == sizes["quarantine", "advertisers"] + sizes["quarantine", "performance"]
    assert all(b.disk_bytes > b.current_bytes and b.reclaimable_bytes > 0 for b in layers.values()), layers


def test_a_reader_pinned_inside_the_retention_window_still_reads_its_version(spark: Any, settings: Settings) -> None:
    uri = lake.table_uri(settings, "silver", "campaigns")
    for value in ("v0", "v1"):
        lake.write_table(spark.range(500).withColumn("v", F.lit(value)), uri, mode="replace")
    pinned_version = lake.table_version(spark, uri)
    pinned = lake.read_table(spark, uri, as_of=pinned_version)
    lake.write_table(spark.range(500).withColumn("v", F.lit("v2")), uri, mode="replace")

    maintain_lake(spark, settings)  # the default window: 168 hours

    assert {r.v for r in pinned.collect()} == {"v1"}
    assert pinned.count() == 500
    # Without the window, the same version's files are gone: the window is what protects the reader.
    lake_upkeep.vacuum(spark, uri, retention_hours=0, min_retention_hours=0)
    with pytest.raises(Exception, match=r"(?i)not.?found|does not exist"):
        lake.read_table(spark, uri, as_of=pinned_version).collect()


def test_a_vacuum_below_the_safe_minimum_is_refused_and_deletes_nothing(spark: Any, settings: Settings) -> None:
    uri = lake.table_uri(settings, "silver", "advertisers")
    for value in ("v0", "v1"):
        lake.write_table(spark.range(100).withColumn("v", F.lit(value)), uri, mode="replace")
    before = lake_upkeep.table_storage(spark, uri)

    with pytest.raises(UnsafeRetentionError, match=r"retention of 0.5 hours: the safe minimum is 1 hours"):
        maintain_lake(spark, settings, retention_hours=0.5)
    with pytest.raises(UnsafeRetentionError, match="LAKEHOUSE_RETENTION_HOURS"):
        lake_upkeep.vacuum(spark, uri, retention_hours=0)

    assert lake_upkeep.table_storage(spark, uri) == before
    assert lake.read_table(spark, uri, as_of=0).count() == 100


def _tasks_run(spark: Any, action: Callable[[], object]) -> int:
    """Run ``action`` and return how many Spark tasks its jobs launched (from the status tracker)."""
    context, group = spark.sparkContext, f"count-tasks-{time.monotonic_ns()}"
    context.setJobGroup(group, "counting tasks")
    try:
        action()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    tracker = context.statusTracker()
    jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
    stages = [tracker.getStageInfo(s) for job in jobs if job for s in job.stageIds]
    return sum(stage.numTasks for stage in stages if stage)


def test_a_vacuum_of_a_small_table_launches_a_handful_of_tasks(spark: Any, settings: Settings) -> None:
    """VACUUM lists the table's folders in a Spark job with one task per slot of the listing parallelism; Spark's
    default of 10,000 made a VACUUM of a one-file table launch ~100,000 tasks (15-30 s on two cores); with the
    listing parallelism set to the shuffle partitions (two here) it is ~80, over the several jobs of a VACUUM."""
    uri = lake.table_uri(settings, "silver", "advertisers")
    lake.write_table(spark.range(100), uri, mode="replace")

    tasks = _tasks_run(spark, lambda: lake_upkeep.vacuum(spark, uri, retention_hours=168))

    assert 0 < tasks <= 200, tasks


def test_history_names_each_versions_operation_rows_and_run(spark: Any, local_lake: str) -> None:
    uri = f"{local_lake}/silver/history"
    try:
        for run_id, rows in (("run-a", 10), ("run-b", 25)):
            lake_upkeep.tag_commits(spark, run_id)
            lake.write_table(spark.range(rows), uri, mode="replace")
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")

    versions = lake_upkeep.history(spark, uri)

    assert [(v.version, v.operation, v.rows, v.run_id) for v in versions] == [
        (0, "WRITE", 10, "run-a"),
        (1, "WRITE", 25, "run-b"),
    ]
    assert lake.read_table(spark, uri, as_of="0").count() == 10
    as_of_time = versions[0].timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert lake.read_table(spark, uri, as_of=as_of_time).count() == 10


def test_a_layers_quality_scan_reruns_on_the_lake_as_it_was(
    spark: Any, settings: Settings, pg_database: PostgresSettings, tmp_path: Path
) -> None:
    """``quality --layer silver --as-of``: the scan judges the lake's tables as they were then, not as now, and
    leaves the published tables and no private schema behind."""
    generate(tmp_path / "landing", scale=0.01, seed=7, dirty_rate=0.0)
    files, _ = discover(tmp_path / "landing")
    built = run_layers(settings, pg_database, layers=("bronze", "silver"), spark=spark, files=files, maintain=False)
    assert built.ok, built.gate_failures
    clean = dt.datetime.now(dt.UTC)
    time.sleep(1.5)
    uri = lake.table_uri(settings, "silver", "performance")  # then silver is damaged in the lake alone
    damaged = lake.read_table(spark, uri).withColumn("cost", F.lit(-1).cast("decimal(12,2)")).localCheckpoint()
    lake.write_table(damaged, uri, mode="replace", cluster_by=SILVER["performance"].cluster_by)
    roles = WarehouseRoles.single(pg_database)

    then, now = RunOutcome("as-of-then"), RunOutcome("as-of-now")
    for outcome in (then, now):  # recorded as runs, as `runner.py quality --as-of` does
        start_run(pg_database, run_id=outcome.run_id, version="test", arguments=["quality", "--as-of"])
    assert scan_as_of(spark, settings, roles, "silver", clean.isoformat(), then)
    assert not scan_as_of(spark, settings, roles, "silver", dt.datetime.now(dt.UTC).isoformat(), now)

    assert {r.table_name for r in now.quality[0].failed} == {"silver.performance"}, now.quality[0].failed
    assert len(then.quality[0].results) == len(now.quality[0].results) > 10
    with connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from silver.performance where cost < 0")
        assert cur.fetchone() == (0,)  # the published table was not touched
        cur.execute("select count(*) from pg_namespace where nspname like '\\_lakehouse\\_candidate%'")
        assert cur.fetchone() == (0,)
    with pytest.raises(ConfigurationError, match="expected a version number or an ISO 8601 timestamp"):
        scan_as_of(spark, settings, roles, "silver", "last tuesday", RunOutcome("bad"))


def test_the_last_gate_runs_alongside_the_lakes_upkeep_and_still_fails_the_run(
    spark: Any, settings: Settings, pg_database: PostgresSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No layer waits on the last layer's gate, so it scans PostgreSQL while Spark maintains and measures the lake.
    A gate that fails there still fails the run and is recorded, and the upkeep and the storage report still
    happen: here a trigger damages silver as it is published, behind silver's audit."""
    generate(tmp_path / "landing", scale=0.01, seed=11, dirty_rate=0.0)
    files, _ = discover(tmp_path / "landing")
    built = run_layers(settings, pg_database, layers=("bronze", "silver"), spark=spark, files=files, maintain=False)
    assert built.ok, built.gate_failures
    with connect(pg_database, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "create function damage() returns trigger language plpgsql as $$ begin new.cost := -1; return new; end $$;"
            " create trigger damage before insert on silver.performance for each row execute function damage()"
        )
    spans: dict[str, tuple[float, float]] = {}

    def timed(name: str, work: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return work(*args, **kwargs)
            finally:
                spans[name] = (started, time.monotonic())

        return run

    monkeypatch.setattr(steps, "gate", timed("gate", steps.gate))
    monkeypatch.setattr(steps, "_lake_upkeep", timed("upkeep", steps._lake_upkeep))

    outcome = run_layers(settings, pg_database, layers=("silver",), spark=spark, full_refresh=True)

    assert outcome.status == "failed"
    assert {r.table_name for r in outcome.gate_failures} == {"silver.performance"}, outcome.gate_failures
    assert outcome.maintenance is not None
    assert outcome.maintenance.checked > 0
    assert outcome.storage is not None
    assert outcome.storage.silver_parquet_bytes > 0
    (gate_start, gate_end), (upkeep_start, upkeep_end) = spans["gate"], spans["upkeep"]
    assert max(gate_start, upkeep_start) < min(gate_end, upkeep_end), spans  # at once, not one after the other
    with connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute(
            "select r.table_name, p.status from ops.quality_results r join ops.pipeline_runs p using (run_id)"
            " where run_id = %s and r.layer = 'silver' and r.outcome = 'fail'",
            (outcome.run_id,),
        )
        assert set(cur.fetchall()) == {("silver.performance", "failed")}
