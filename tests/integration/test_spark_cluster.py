"""The whole pipeline on a real Spark standalone cluster (a master and two one-core workers started from pyspark's
own distribution) builds what a local Spark builds from the same landing prefix on MinIO: every silver,
quarantine, core and analytics table equal, and both workers' executors did the work, the loader's COPYs into
PostgreSQL included.

Both runs are real runner processes (``runner.py run``) with the lake on MinIO (s3a) and a database of their own
on the fixtures' PostgreSQL; the cluster run writes a Spark event log, read back for which executor ran what.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.adapters.objectstore import s3_client
from lakehouse.adapters.spark import spark_events
from lakehouse.contracts import TABLES
from lakehouse.errors import ServiceUnavailableError
from lakehouse.sample import generate
from lakehouse.services.spark_cluster import ClusterShape, LocalSparkCluster
from lakehouse.settings import PostgresSettings, S3Settings, load_settings
from tests.databases import fresh_database, table_checksums

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ("silver", "quarantine", "core", "analytics")
PER_RUN = ("_batch_id", "_ingestion_timestamp", "ingest_date", "_silver_processed_at")
LOADER = "lakehouse/adapters/loader.py"  # the call site Spark names the loader's COPY stages after


@pytest.fixture
def spark_cluster(tmp_path: Path) -> Iterator[LocalSparkCluster]:
    """A standalone master and two workers (one core, 1 GB each) on loopback; stopped, executors and all, at the
    end whatever happened. A cluster that does not come up fails the test, naming its logs."""
    cluster = LocalSparkCluster(tmp_path / "cluster")
    try:
        cluster.start()
    except ServiceUnavailableError as exc:
        pytest.fail(f"the Spark standalone cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
    assert cluster.stopped_cleanly, f"a daemon or an executor outlived the cluster's stop (see {cluster.work_dir})"


def _env(data_dir: Path, s3: S3Settings, pg: PostgresSettings, *, lake_uri: str, landing: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    return (
        base
        | pg.libpq_env()
        | s3.aws_env()
        | {
            "LAKEHOUSE_DATA_DIR": str(data_dir),
            "LAKEHOUSE_LAKE_URI": lake_uri,
            "LAKEHOUSE_LANDING_URI": landing,
            "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
            "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
            "LAKEHOUSE_PGPASSFILE": str(data_dir.parent / "pgpass"),  # the roles are the server's: one passfile
            "SPARK_LOCAL_IP": "127.0.0.1",  # the driver listens where the loopback executors can reach it
        }
    )


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``runner.py run`` (no Soda scans and no upkeep: the layers are what is compared), its output piped."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), "run", "--no-quality", "--no-maintain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def _finish(proc: subprocess.Popen[str], label: str) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"runner run ({label}):\n{err[-6000:]}"


def _lake_checksum(spark: Any, uri: str) -> tuple[int, int]:
    """Rows and the sum of every row's hash over its stable columns: equal for equal tables, in any order."""
    frame = lake.read_table(spark, uri).drop(*PER_RUN)
    row = frame.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).first()
    assert row is not None
    return int(row[0]), int(row[1] or 0)


def _timeline(event_log_dir: Path) -> tuple[dict[str, str], list[tuple[str, str, int, int]]]:
    """``({executor id: worker web UI port}, [(executor id, stage name, launch ms, finish ms) per task])``."""
    workers, stages, tasks = {}, {}, []
    for event in spark_events(
        event_log_dir, "SparkListenerExecutorAdded", "SparkListenerStageSubmitted", "SparkListenerTaskEnd"
    ):
        if event["Event"] == "SparkListenerExecutorAdded":
            stdout = event["Executor Info"]["Log Urls"]["stdout"]
            workers[event["Executor ID"]] = str(urlsplit(stdout).port)
        elif event["Event"] == "SparkListenerStageSubmitted":
            stages[event["Stage Info"]["Stage ID"]] = event["Stage Info"]["Stage Name"]
        else:
            info = event["Task Info"]
            tasks.append((info["Executor ID"], stages[event["Stage ID"]], info["Launch Time"], info["Finish Time"]))
    return workers, tasks


def test_the_pipeline_on_a_standalone_cluster_builds_what_a_local_spark_builds(
    spark: Any,
    s3_service: S3Settings,
    s3_bucket: str,
    pg_service: PostgresSettings,
    spark_cluster: LocalSparkCluster,
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    generate(landing, scale=0.02, seed=11, dirty_rate=0.05)  # defects too: quarantine has rows
    client = s3_client(s3_service)
    for path in sorted(landing.glob("*.csv")):
        client.put_object(Bucket=s3_bucket, Key=f"landing/{path.name}", Body=path.read_bytes())
    events = tmp_path / "events"
    with fresh_database(pg_service) as on_cluster, fresh_database(pg_service) as on_local:
        common = {"landing": f"s3a://{s3_bucket}/landing"}
        cluster_env = _env(tmp_path / "cluster-run", s3_service, on_cluster, lake_uri=f"s3a://{s3_bucket}/c", **common)
        local_env = _env(tmp_path / "local-run", s3_service, on_local, lake_uri=f"s3a://{s3_bucket}/l", **common)
        cluster_env |= {"LAKEHOUSE_SPARK_MASTER": spark_cluster.url, "LAKEHOUSE_SPARK_EVENT_LOG_DIR": str(events)}
        local_env |= {"LAKEHOUSE_SPARK_MASTER": "local[2]"}

        # One after the other: run side by side on two cores they took as long, and both would create the
        # server's roles at once.
        _finish(_start(cluster_env, tmp_path), "cluster")
        _finish(_start(local_env, tmp_path), "local[2]")

        ours, theirs = table_checksums(on_cluster, SCHEMAS), table_checksums(on_local, SCHEMAS)
    assert ours == theirs
    for schema, table in [(s, t) for s in ("silver", "quarantine") for t in TABLES] + [
        ("core", "fct_performance"),
        ("analytics", "campaign_performance_summary"),
    ]:
        assert ours[f"{schema}.{table}"][0] > 0, f"{schema}.{table} is empty: the comparison would prove nothing"
    for layer in ("silver", "quarantine"):  # and the lakes the two runs wrote
        for table in TABLES:
            one, other = (
                _lake_checksum(spark, lake.table_uri(load_settings(env, dotenv_path=None), layer, table))
                for env in (cluster_env, local_env)
            )
            assert one == other, (layer, table)
            assert one[0] == ours[f"{layer}.{table}"][0], (layer, table)  # the lake holds what PostgreSQL holds

    workers, tasks = _timeline(events)
    by_executor: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for executor, stage, launched, finished in tasks:
        by_executor[executor].append((stage, launched, finished))
    assert sorted(set(workers.values())) == sorted(str(p) for p in spark_cluster.worker_ui_ports), workers
    assert "driver" not in by_executor, "a cluster runs no task in the driver"
    assert set(by_executor) == set(workers), {e: len(t) for e, t in by_executor.items()}  # tasks on both workers
    copies = {e: [t for t in ts if LOADER in t[0]] for e, ts in by_executor.items()}
    assert all(copies.values()), {e: len(c) for e, c in copies.items()}  # each executor COPYed into PostgreSQL
    [(_, first), (_, second)] = sorted(copies.items())
    # A load stages its tables at once, one COPY stream per 250,000 rows: the sample's tables take one each, so
    # the COPYs that run side by side are of different tables (different stages) as often as of one.
    side_by_side = [(a, b) for a in first for b in second if a[1] < b[2] and b[1] < a[2]]
    assert side_by_side, "no COPY of one executor ran while the other's did"
    for executor, ts in sorted(by_executor.items()):  # the timeline, for the record (pytest -s)
        print(f"executor {executor} (worker UI :{workers[executor]}): {len(ts)} tasks, {len(copies[executor])} COPYs")
    print(f"COPYs of both executors at once: {len(side_by_side)} pairs of {len(first)}/{len(second)} per executor")


def test_a_cluster_that_does_not_come_up_fails_naming_the_daemon_and_its_log_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    cluster = LocalSparkCluster(tmp_path / "cluster", shape=ClusterShape(workers=1, memory="0m"))  # no memory to offer

    with pytest.raises(ServiceUnavailableError, match=r"(?s)the worker-0 exited with code 1.*worker-0\.log"):
        cluster.start()

    master_log = cluster.log("master").read_text()
    assert "Starting Spark master" in master_log  # the master did start: what failed was the worker
    assert cluster.stopped_cleanly, "a daemon (or an executor in its group) outlived stop()"
