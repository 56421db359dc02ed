"""Bronze under faults, in both stores: a hostile landing directory, a batch that cannot be resumed, and hosts
whose time zone is not UTC (the pipeline's bronze step in subprocesses, one of them killed with SIGKILL)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.adapters.warehouse import connect
from lakehouse.bronze import layer as bronze
from lakehouse.bronze.ingest_log import BatchStateError, abandon_batch, completed_batches, ingest_log_uri
from lakehouse.bronze.landing import discover
from lakehouse.contracts import SOURCE_COLUMNS, TABLES
from lakehouse.settings import PostgresSettings, Settings, load_settings
from tests.hostile import NUL_FIELD, campaigns_csv, land_hostile_names

pytestmark = pytest.mark.integration
UTC = dt.UTC
T1, T2 = dt.datetime(2024, 2, 9, 10, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC)


def _query(pg: PostgresSettings, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def _settings(data_dir: Path) -> Settings:
    return load_settings({"LAKEHOUSE_DATA_DIR": str(data_dir)}, dotenv_path=None)


def _advertisers_csv(name: str) -> str:
    return ",".join(SOURCE_COLUMNS["advertisers"]) + f"\n1,{name},Retail,US,Jane\n"


def _die(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("killed before the warehouse load")


def test_a_hostile_landing_directory_loads_every_loadable_file_into_both_stores(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings
) -> None:
    settings = _settings(tmp_path / "data")
    landing = tmp_path / "landing"
    expected = set(land_hostile_names(landing))
    for day in ("2024-02-09", "2024-02-10"):
        (landing / day).mkdir()
        (landing / day / "advertisers.csv").write_text(_advertisers_csv(f"Acme {day}"))
        expected.add(f"{day}/advertisers.csv")
    (landing / "campaigns_nul.csv").write_text(campaigns_csv("fine", NUL_FIELD))
    (landing / "campaigns_link.csv").symlink_to(landing / "campaigns (1).csv")

    files, refused = discover(landing)
    report = bronze.ingest(spark, settings, pg_database, files, now=T1)

    reasons = {r.path.name: r.reason for r in refused}
    assert set(reasons) == {"campaigns_link.csv", "campaigns_nul.csv"}
    assert reasons["campaigns_link.csv"].startswith("campaigns_link.csv: a symbolic link")
    assert reasons["campaigns_nul.csv"].startswith("campaigns_nul.csv: line 3: a NUL byte")
    [batch] = report.batches
    assert completed_batches(spark, settings) == [batch]
    in_delta, in_postgres = set(), set()
    for table in TABLES:
        if lake.table_version(spark, lake.table_uri(settings, "bronze", table)) is None:
            continue
        delta = lake.read_table(spark, lake.table_uri(settings, "bronze", table))
        in_delta |= {r[0] for r in delta.select("_source_file").distinct().collect()}
        in_postgres |= {r[0] for r in _query(pg_database, f"select distinct _source_file from bronze.raw_{table}")}
    logged = lake.read_table(spark, ingest_log_uri(settings)).where(F.col("status") == "completed")
    assert in_delta == in_postgres == {r[0] for r in logged.select("source_file").collect()} == expected


def test_a_batch_that_cannot_be_resumed_is_abandoned_and_its_files_are_planned_again(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path / "data")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "campaigns_a.csv").write_text(campaigns_csv("a"))
    (landing / "campaigns_b.csv").write_text(campaigns_csv("b"))
    planned, _ = discover(landing)
    with monkeypatch.context() as patch:
        patch.setattr(bronze, "load_many", _die)
        with pytest.raises(RuntimeError, match="killed"):
            bronze.ingest(spark, settings, pg_database, planned, now=T1)
    [stuck] = [r[0] for r in lake.read_table(spark, ingest_log_uri(settings)).select("batch_id").distinct().collect()]
    (landing / "campaigns_b.csv").write_text(campaigns_csv("b corrected"))
    files, _ = discover(landing)

    with pytest.raises(BatchStateError, match=f"cannot be resumed.*--abandon {stuck}"):
        bronze.ingest(spark, settings, pg_database, files, now=T2)
    with pytest.raises(BatchStateError, match="no batch 'nope'"):
        abandon_batch(spark, settings, "nope")
    abandoned = abandon_batch(spark, settings, stuck)
    assert (abandoned.batch_id, abandoned.ingested_at, abandoned.already_abandoned) == (stuck, T1, False)
    assert abandoned.files == tuple((f.source_file, f.content_hash) for f in planned)
    assert abandon_batch(spark, settings, stuck).already_abandoned

    [fresh] = bronze.ingest(spark, settings, pg_database, files, now=T2).batches

    assert fresh != stuck
    assert completed_batches(spark, settings) == [fresh]
    silver_input = bronze.read_bronze(spark, settings, "campaigns", completed_batches(spark, settings))
    assert sorted(silver_input.select("campaign_name", "_batch_id").collect()) == [("a", fresh), ("b corrected", fresh)]
    assert sorted(_query(pg_database, "select campaign_name, _batch_id from bronze.raw_campaigns")) == [
        ("a", fresh),
        ("b corrected", fresh),
    ]
    assert bronze.ingest(spark, settings, pg_database, files, now=T2).batches == []  # never resumed again
    with pytest.raises(BatchStateError, match=f"batch {fresh} is completed"):
        abandon_batch(spark, settings, fresh)


_BRONZE_STEP = """
import os, signal, sys
from pathlib import Path
from lakehouse import pipeline
from lakehouse.bronze import layer
from lakehouse.settings import load_settings

if sys.argv[2] == "kill-before-postgres":  # the bronze Delta tables are written; the process dies for real
    layer.load_many = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
pipeline.run(load_settings(dotenv_path=None), layers=("bronze",), input_dir=Path(sys.argv[1]), scan=False)
"""


def test_ingestion_timestamps_agree_everywhere_when_the_host_is_not_on_utc(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings, env_settings: Settings
) -> None:
    """New York plans a batch and is killed; New York resumes it; Kolkata ingests a second batch. Every
    timestamp of a batch — ingest log (planned and completed), bronze Delta, bronze.raw_* — is the instant in
    its batch id."""
    data, landing = tmp_path / "data", tmp_path / "landing"
    landing.mkdir()
    (landing / "advertisers.csv").write_text(_advertisers_csv("Acme"))
    (landing / "campaigns.csv").write_text(campaigns_csv("first"))
    keep = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LAKEHOUSE_LAKE_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in keep}
    env |= pg_database.libpq_env() | {
        "LAKEHOUSE_DATA_DIR": str(data),
        "LAKEHOUSE_CACHE_DIR": str(env_settings.cache_dir),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
    }

    def bronze_step(tz: str, mode: str = "") -> int:
        proc = subprocess.run(
            [sys.executable, "-c", _BRONZE_STEP, str(landing), mode],
            env=env | {"TZ": tz},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode in (0, -9), proc.stderr[-3000:]
        return proc.returncode

    assert bronze_step("America/New_York", "kill-before-postgres") == -9
    settings = _settings(data)
    assert completed_batches(spark, settings) == []  # interrupted after planning
    assert bronze_step("America/New_York") == 0
    (landing / "performance.csv").write_text(",".join(SOURCE_COLUMNS["performance"]) + "\n1,900,2024-02-09,1,1,1,1,1\n")
    assert bronze_step("Asia/Kolkata") == 0

    batches = completed_batches(spark, settings)
    assert len(batches) == 2
    expected = {b: {_micros(dt.datetime.strptime(b[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))} for b in batches}
    log = lake.read_table(spark, ingest_log_uri(settings))
    for status in ("planned", "completed"):
        assert _times(log.where(F.col("status") == status), "batch_id", "ingested_at") == expected, status
    for table in TABLES:
        delta = lake.read_table(spark, lake.table_uri(settings, "bronze", table))
        assert _times(delta, "_batch_id", "_ingestion_timestamp").items() <= expected.items(), table
        days = {(r[0], r[1]) for r in delta.select("_batch_id", "ingest_date").distinct().collect()}
        assert days <= {(b, dt.datetime.strptime(b[:8], "%Y%m%d").date()) for b in batches}, table
        in_postgres: dict[str, set[int]] = defaultdict(set)
        for batch, at in _query(
            pg_database, f"select distinct _batch_id, _ingestion_timestamp from bronze.raw_{table}"
        ):
            in_postgres[batch].add(_micros(at))
        assert in_postgres == _times(delta, "_batch_id", "_ingestion_timestamp"), table


def _micros(at: dt.datetime) -> int:
    return (at - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def _times(df: Any, batch: str, column: str) -> dict[str, set[int]]:
    """``{batch: {microseconds since the epoch}}``, read without a Python datetime (collect would use local time)."""
    found: dict[str, set[int]] = defaultdict(set)
    for row in df.select(batch, F.unix_micros(column)).distinct().collect():
        found[row[0]].add(row[1])
    return dict(found)
