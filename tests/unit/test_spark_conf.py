"""The Spark configuration is pure and checked without a JVM; the Java check reads real `java -version` output."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lakehouse.adapters.spark import MIN_JAVA, java_major_version, spark_conf
from lakehouse.errors import JavaNotFoundError
from lakehouse.settings import load_settings

S3_ENV = {
    "LAKEHOUSE_LAKE_URI": "s3a://",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_ACCESS_KEY_ID": "minioadmin",
    "AWS_SECRET_ACCESS_KEY": "minioadmin123",
}


def test_local_lake_conf_enables_delta_and_leaves_s3a_out(tmp_path: Path) -> None:
    conf = spark_conf(load_settings({}, dotenv_path=None, base_dir=tmp_path), [tmp_path / "a.jar"])

    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.jars"] == str(tmp_path / "a.jar")
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in conf)


def test_s3_lake_conf_uses_path_style_minio_and_the_magic_committer(tmp_path: Path) -> None:
    conf = spark_conf(load_settings(S3_ENV, dotenv_path=None, base_dir=tmp_path), [])

    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.committer.name"] == "magic"
    assert conf["spark.hadoop.fs.s3a.committer.magic.enabled"] == "true"
    assert conf["spark.sql.sources.commitProtocolClass"].endswith("PathOutputCommitProtocol")
    assert conf["spark.sql.parquet.output.committer.class"].endswith("BindingParquetOutputCommitter")


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
