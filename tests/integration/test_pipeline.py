"""Generate -> bronze -> silver on real MinIO (s3a) and PostgreSQL, reconciled with the generator's manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.adapters.warehouse import connect
from lakehouse.bronze import layer as bronze
from lakehouse.bronze.ingest_log import completed_batches
from lakehouse.bronze.landing import discover
from lakehouse.contracts import TABLES
from lakehouse.sample import generate
from lakehouse.settings import PostgresSettings, S3Settings, Settings, load_settings
from lakehouse.silver.layer import build_silver

pytestmark = pytest.mark.integration
UTC = dt.UTC


def _query(pg: PostgresSettings, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


@pytest.fixture
def s3_settings(tmp_path: Path, s3_service: S3Settings, s3_bucket: str) -> Settings:
    return load_settings(
        {"LAKEHOUSE_DATA_DIR": str(tmp_path / "data"), "LAKEHOUSE_LAKE_URI": f"s3a://{s3_bucket}/lake"}
        | s3_service.aws_env(),
        dotenv_path=None,
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("landing")
    return out, generate(out, scale=0.05, seed=7, dirty_rate=0.05)


def test_generated_sample_reconciles_in_both_stores(
    spark: Any,
    s3_settings: Settings,
    pg_database: PostgresSettings,
    sample: tuple[Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    source, manifest = sample
    landing = tmp_path / "landing"
    shutil.copytree(source, landing)
    (landing / "campaigns_bad_header.csv").write_text("campaign_id,nonsense\n1,2\n")

    files, refused = discover(landing)
    report = bronze.ingest(spark, s3_settings, pg_database, files, now=dt.datetime(2024, 2, 9, 10, tzinfo=UTC))

    # The refused file is named with its columns; everything else loaded.
    assert [(r.path.name, "unknown: nonsense" in r.reason) for r in refused] == [("campaigns_bad_header.csv", True)]
    assert {f.source_file for f in files} == set(manifest["files"])
    # Per table and per file, bronze rows equal the manifest's records, in Delta and in PostgreSQL.
    expected_per_file = {name: f["records"] for name, f in manifest["files"].items()}
    for table in TABLES:
        delta = lake.read_table(spark, lake.table_uri(s3_settings, "bronze", table))
        delta_counts = {r["_source_file"]: r["count"] for r in delta.groupBy("_source_file").count().collect()}
        pg_counts = dict(_query(pg_database, f"select _source_file, count(*) from bronze.raw_{table} group by 1"))
        expected = {k: v for k, v in expected_per_file.items() if manifest["files"][k]["table"] == table}
        assert delta_counts == expected == pg_counts
        assert report.tables[table].rows == manifest["tables"][table]["records"]
        assert report.tables[table].corrupt == manifest["tables"][table]["malformed"]

    silver = build_silver(spark, s3_settings, pg_database, run_id="r1", processed_at=dt.datetime.now(UTC))

    for table in TABLES:
        expected = manifest["tables"][table]
        got = silver.tables[table]
        assert (got.silver_rows, got.quarantined, got.duplicates, got.superseded) == (
            expected["silver_rows"],
            expected["quarantined"],
            expected["duplicates"],
            expected["superseded"],
        ), table
        by_rule = dict(
            _query(pg_database, f"select r, count(*) from quarantine.{table}, unnest(_reasons) r group by 1")
        )
        assert by_rule == expected["quarantined_by_rule"], table
        assert got.by_rule == expected["quarantined_by_rule"], table
        silver_delta = lake.read_table(spark, lake.table_uri(s3_settings, "silver", table)).count()
        assert (
            silver_delta == expected["silver_rows"] == _query(pg_database, f"select count(*) from silver.{table}")[0][0]
        )
    reconciliation = _query(
        pg_database,
        "select table_name, bronze_rows, silver_rows + quarantined + duplicates + superseded, reconciled"
        " from ops.reconciliation where run_id = 'r1'",
    )
    assert sorted(reconciliation) == sorted(
        (t, manifest["tables"][t]["records"], manifest["tables"][t]["records"], True) for t in TABLES
    )

    # The seed guide's queries run as written (its gold table arrives with dbt; the rest is here).
    lineage = _query(
        pg_database,
        "SELECT campaign_id, _silver_processed_at, _silver_processed_at - _ingestion_timestamp as processing_time"
        " FROM silver.campaigns LIMIT 5;",
    )
    assert len(lineage) == 5
    assert all(row[2] >= dt.timedelta(0) for row in lineage)
    counts = _query(
        pg_database,
        "SELECT 'bronze.raw_campaigns' as table, COUNT(*) FROM bronze.raw_campaigns UNION ALL "
        "SELECT 'silver.campaigns', COUNT(*) FROM silver.campaigns;",
    )
    assert counts == [
        ("bronze.raw_campaigns", manifest["tables"]["campaigns"]["records"]),
        ("silver.campaigns", manifest["tables"]["campaigns"]["silver_rows"]),
    ]
    by_status = dict(_query(pg_database, "SELECT status, COUNT(*) FROM silver.campaigns GROUP BY status;"))
    assert set(by_status) <= {"Active", "Paused", "Completed", "Draft"}

    # Running silver again changes nothing but the processing time.
    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        tables = {}
        for table in TABLES:
            for schema in ("silver", "quarantine"):
                columns = _query(
                    pg_database,
                    "select string_agg(quote_ident(column_name), ', ' order by ordinal_position)"
                    f" from information_schema.columns where table_schema = '{schema}' and table_name = '{table}'"
                    " and column_name <> '_silver_processed_at'",
                )[0][0]
                rows = _query(pg_database, f"select {columns} from {schema}.{table}")
                tables[f"{schema}.{table}"] = sorted(rows, key=repr)
        return tables

    before = snapshot()
    build_silver(spark, s3_settings, pg_database, run_id="r2", processed_at=dt.datetime.now(UTC))
    assert snapshot() == before

    # A second run over the same landing directory adds nothing anywhere.
    again = bronze.ingest(spark, s3_settings, pg_database, files)
    assert again.batches == []
    assert sorted(again.skipped_files) == sorted(f.source_file for f in files)
    for table in TABLES:
        assert (
            _query(pg_database, f"select count(*) from bronze.raw_{table}")[0][0]
            == manifest["tables"][table]["records"]
        )


def test_an_interrupted_batch_is_completed_by_the_next_run(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings, sample: tuple[Path, dict[str, Any]]
) -> None:
    """The batch is planned, bronze Delta is written, then the run dies before PostgreSQL: the next run
    resumes the same batch (same id and timestamp) and the two stores end up equal, without duplicates."""
    settings = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "data")}, dotenv_path=None)
    files, _ = discover(sample[0])
    original = bronze.load_many

    def die(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed before the warehouse load")

    bronze.load_many = die  # type: ignore[assignment]
    try:
        with pytest.raises(RuntimeError, match="killed"):
            bronze.ingest(spark, settings, pg_database, files, now=dt.datetime(2024, 2, 9, tzinfo=UTC))
    finally:
        bronze.load_many = original  # type: ignore[assignment]
    assert completed_batches(spark, settings) == []  # not visible to silver

    resumed = bronze.ingest(spark, settings, pg_database, files, now=dt.datetime(2024, 3, 1, tzinfo=UTC))

    [batch] = resumed.batches
    assert batch.startswith("20240209T000000Z-")
    assert completed_batches(spark, settings) == [batch]
    for table in TABLES:
        delta = lake.read_table(spark, lake.table_uri(settings, "bronze", table))
        assert delta.select("_batch_id").distinct().collect() == [(batch,)]
        pg_rows = _query(pg_database, f"select count(*), count(distinct _batch_id) from bronze.raw_{table}")[0]
        assert pg_rows == (delta.count(), 1)
        assert delta.where(F.col("_ingestion_timestamp") != dt.datetime(2024, 2, 9)).count() == 0
    assert Counter(
        r.status for r in lake.read_table(spark, lake.table_uri(settings, "bronze", "_ingest_log")).collect()
    )["completed"] == len(files)
