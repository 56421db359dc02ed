"""Bronze and silver through a real Spark Connect server (a local process with Delta) give the lake a local Spark
run gives: the same rows in every bronze, silver and quarantine table.

The runs are real runner processes: pyspark switches a whole process to Spark Connect once it has a Connect
session, so the comparison reads both lakes from this process's local session instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters.spark import jobs_by_tag
from lakehouse.contracts import TABLES
from lakehouse.sample import generate
from lakehouse.services import free_port
from lakehouse.services.spark_connect import LocalSparkConnect
from lakehouse.settings import load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# What differs between any two runs of the same files: when they ran, and the batch ids made from the run.
PER_RUN = ("_batch_id", "_ingestion_timestamp", "ingest_date", "_silver_processed_at")


def _env(data_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    return base | {
        "LAKEHOUSE_DATA_DIR": str(data_dir),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port()),
    }


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, f"runner {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def test_bronze_and_silver_on_spark_connect_write_the_lake_a_local_spark_writes(spark: Any, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, scale=0.01, seed=11, dirty_rate=0.05)  # defects too: quarantine has rows
    layers = (["bronze", "--input", str(landing)], ["silver"])
    local, remote = _env(tmp_path / "local"), _env(tmp_path / "connect")
    server_events = tmp_path / "server-events"
    server_env = _env(tmp_path / "server") | {"LAKEHOUSE_SPARK_EVENT_LOG_DIR": str(server_events)}
    server = load_settings(server_env, dotenv_path=None)  # its own data dir: its Spark's scratch space is there

    with LocalSparkConnect(server, tmp_path / "connect-server.log") as url:
        for args in layers:
            _run([*args, "--no-quality"], remote | {"LAKEHOUSE_SPARK_REMOTE": url}, tmp_path)
    for args in layers:
        _run([*args, "--no-quality"], local, tmp_path)

    jobs = jobs_by_tag(server_events)  # the layers' Spark jobs ran in the server, tagged by layer
    assert min(jobs["bronze"], jobs["silver"]) > 0, jobs
    assert (tmp_path / "local" / "spark-warehouse").is_dir(), "a Spark started by the runner makes its scratch space"
    assert not (tmp_path / "connect" / "spark-warehouse").exists(), "the Connect runs started no Spark of their own"
    for layer in ("bronze", "silver", "quarantine"):
        for table in TABLES:
            ours, theirs = (
                spark.read.format("delta").load(str(tmp_path / run / "lake" / layer / table)).drop(*PER_RUN)
                for run in ("connect", "local")
            )
            assert ours.count() == theirs.count() > 0, (layer, table)  # the sample has defects: quarantine too
            assert ours.exceptAll(theirs).isEmpty(), (layer, table)
            assert theirs.exceptAll(ours).isEmpty(), (layer, table)
