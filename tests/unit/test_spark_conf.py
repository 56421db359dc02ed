"""The Spark configuration follows the settings (checked without a JVM), the session it builds speaks Delta SQL,
and the Java check reads real `java -version` output."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters import lake
from lakehouse.adapters.spark import (
    MIN_JAVA,
    java_major_version,
    jobs_by_tag,
    session_conf,
    spark_conf,
    spark_events,
)
from lakehouse.errors import JavaNotFoundError
from lakehouse.settings import load_settings


def test_the_conf_carries_the_settings_and_the_resolved_jars_and_no_s3a_for_a_local_lake(tmp_path: Path) -> None:
    env = {
        "LAKEHOUSE_SPARK_MASTER": "local[3]",
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "5",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "3g",
        "LAKEHOUSE_DATA_DIR": "somewhere",
    }
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]

    conf = spark_conf(load_settings(env, dotenv_path=None, base_dir=tmp_path), jars)

    assert conf["spark.jars"].split(",") == [str(j) for j in jars]
    assert conf["spark.master"] == "local[3]"
    assert conf["spark.sql.shuffle.partitions"] == conf["spark.default.parallelism"] == "5"
    assert conf["spark.driver.memory"] == "3g"
    # Spark's scratch tables go below the data dir, not into whatever directory the runner was started from.
    assert conf["spark.sql.warehouse.dir"] == (tmp_path / "somewhere" / "spark-warehouse").as_uri()
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in conf)


@pytest.mark.parametrize(
    ("endpoint", "ssl", "path_style"),
    [
        ("http://127.0.0.1:9000", "false", "true"),  # MinIO in development
        ("https://minio.internal:9000", "true", "true"),  # MinIO behind TLS
        (None, "true", None),  # AWS S3 itself: virtual-host style on the regional endpoint
    ],
)
def test_s3a_follows_the_endpoint_credentials_and_region(
    tmp_path: Path, endpoint: str | None, ssl: str, path_style: str | None
) -> None:
    env = {
        "LAKEHOUSE_LAKE_URI": "s3a://",
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY": "the-secret",
        "AWS_REGION": "eu-west-3",
    } | ({"AWS_ENDPOINT_URL": endpoint} if endpoint else {})

    conf = spark_conf(load_settings(env, dotenv_path=None, base_dir=tmp_path), [])

    assert conf.get("spark.hadoop.fs.s3a.endpoint") == endpoint
    assert conf.get("spark.hadoop.fs.s3a.path.style.access") == path_style
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == ssl
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-3"
    # The configuration becomes spark-submit's command line, which every local user can read: no key in it.
    # The JVM reads them from its own environment instead (EnvironmentVariableCredentialsProvider).
    assert not [value for value in conf.values() if "the-secret" in value or "key-id" in value]
    assert "EnvironmentVariableCredentialsProvider" in conf["spark.hadoop.fs.s3a.aws.credentials.provider"]


def test_the_built_session_runs_the_delta_sql_the_lake_adapter_relies_on(spark: Any, tmp_path: Path) -> None:
    """``describe detail`` (lake.table_size), ``describe history`` and ``delete`` on a path need Delta's SQL
    extension and catalog in the session that :func:`build_spark` configures."""
    uri = (tmp_path / "table").as_uri()
    written = lake.write_table(spark.range(10), uri, mode="replace")

    assert lake.table_size(spark, uri) == (1, written.bytes)
    spark.sql(f"delete from delta.`{uri}` where id < 4")
    assert [r.version for r in spark.sql(f"describe history delta.`{uri}`").collect()] == [1, 0]
    assert sorted(r.id for r in lake.read_table(spark, uri).collect()) == [4, 5, 6, 7, 8, 9]


def _fake_java(tmp_path: Path, version_line: str) -> str:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return str(java)


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
    ],
)
def test_java_major_version_reads_old_and_new_schemes(tmp_path: Path, line: str, major: int) -> None:
    assert java_major_version(_fake_java(tmp_path, line)) == major


def test_unreadable_java_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JavaNotFoundError, match="Java 17 or newer"):
        java_major_version(_fake_java(tmp_path, "garbage"))


def test_the_machine_java_is_new_enough() -> None:
    assert java_major_version() >= MIN_JAVA


def test_a_connect_session_gets_every_runtime_setting_and_never_a_launch_one(tmp_path: Path) -> None:
    """A Spark Connect server is already running: its session takes the SQL, Delta and Hadoop settings (Hadoop's
    without the ``spark.hadoop.`` prefix: a session hands its settings to Hadoop as they are), not the launch ones
    (master, jars, memory, extensions), which are the server's."""
    env = {"LAKEHOUSE_SHUFFLE_PARTITIONS": "3", "LAKEHOUSE_LAKE_URI": "s3a://", "AWS_ACCESS_KEY_ID": "key-id"}
    settings = load_settings(env | {"AWS_SECRET_ACCESS_KEY": "the-secret"}, dotenv_path=None, base_dir=tmp_path)

    conf = session_conf(settings)

    assert conf["spark.sql.shuffle.partitions"] == conf["spark.databricks.delta.snapshotPartitions"] == "3"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["parquet.writer.version"] == "v2"
    assert conf["fs.s3a.committer.name"] == "magic"
    assert conf["spark.sql.sources.commitProtocolClass"].endswith("PathOutputCommitProtocol")
    launch = {"spark.master", "spark.jars", "spark.driver.memory", "spark.sql.extensions", "spark.sql.warehouse.dir"}
    assert launch.isdisjoint(conf)
    assert not [k for k in conf if k.startswith(("spark.hadoop.", "spark.driver.", "spark.executor", "spark.ui."))]
    assert not [value for value in conf.values() if "the-secret" in value]  # keys go through configure_s3a


def test_jobs_are_counted_by_layer_from_a_local_sessions_tags_and_a_connect_servers(tmp_path: Path) -> None:
    """A local session's tag is ``spark-session-<id>-lakehouse-<name>``; a Spark Connect server writes a client's
    tag as ``SparkConnect_SessionTag_User_<user>_Session_<id>_Tag_lakehouse-<name>``."""
    local = "spark-session-1f2e-lakehouse-bronze,spark-session-1f2e"
    connect = ",".join(
        (
            "SparkConnect_OperationTag_User__Session_9a_Operation_7c",
            "SparkConnect_SessionTag_User__Session_9a_Tag_lakehouse-silver",
        )
    )
    events = [{"Event": "SparkListenerJobStart", "Properties": {"spark.job.tags": t}} for t in (local, connect, "")]
    events.append({"Event": "SparkListenerJobEnd", "Properties": {"spark.job.tags": local}})
    (tmp_path / "events_1_local-1").write_text("\n".join(json.dumps(e) for e in events))

    assert jobs_by_tag(tmp_path) == {"bronze": 1, "silver": 1, "other": 1}


def test_a_standalone_clusters_event_log_is_read_and_a_rolling_logs_status_file_is_not(tmp_path: Path) -> None:
    """A standalone master names its applications ``app-<time>-<n>``, and so their event log files; a rolling
    event log's folder holds an ``appstatus_*`` marker beside its ``events_*`` files."""
    job = {"Event": "SparkListenerJobStart", "Properties": {"spark.job.tags": "spark-session-1-lakehouse-gold"}}
    task = {"Event": "SparkListenerTaskEnd", "Stage ID": 3, "Task Info": {"Executor ID": "1"}}
    (tmp_path / "app-20261205200620-0000").write_text(f"{json.dumps(job)}\n{json.dumps(task)}\n")
    (tmp_path / "eventlog_v2_app-1").mkdir()
    (tmp_path / "eventlog_v2_app-1" / "appstatus_app-1.inprogress").write_text(json.dumps(job))

    assert jobs_by_tag(tmp_path) == {"gold": 1}
    assert list(spark_events(tmp_path, "SparkListenerTaskEnd")) == [task]
