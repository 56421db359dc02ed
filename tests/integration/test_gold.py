"""The gold layer on a real PostgreSQL: dbt build, KPIs recomputed independently, incremental and snapshot behaviour.

The module shares one database (``gold_<uuid>``, so the fixed schemas ``core`` and ``analytics`` never meet
another test's) and runs as a story, in file order: a first build, a rerun without new input, a late correction,
a dimension change, then a deliberately broken silver row. Each step starts from the state the previous left.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg2 import sql

from lakehouse import bookkeeping
from lakehouse.adapters.warehouse import connect
from lakehouse.errors import ServiceUnavailableError
from lakehouse.gold import DBT_PROJECT_DIR, GoldResult, docs_generate, run_gold
from lakehouse.quality import CheckResult
from lakehouse.settings import PostgresSettings, Secret
from tests.gold_fixtures import PERFORMANCE, create_silver, expected_marts, rebuild_silver

pytestmark = pytest.mark.integration

# Later bronze runs: each run stamps its rows with one, newer, ingestion time.
SECOND_BATCH = ("batch-0002", dt.datetime(2024, 3, 16, 6, 0, tzinfo=dt.UTC))
THIRD_BATCH = ("batch-0003", dt.datetime(2024, 3, 17, 6, 0, tzinfo=dt.UTC))
MARTS = {  # table: key columns, in the order rows are compared
    "analytics.campaign_performance_summary": ("campaign_id",),
    "analytics.advertiser_performance": ("advertiser_id",),
    "analytics.daily_channel_performance": ("performance_date", "campaign_type"),
    "analytics.budget_pacing": ("campaign_id",),
}
CORE = {
    "core.dim_advertisers": ("advertiser_id",),
    "core.dim_campaigns": ("campaign_id",),
    "core.dim_dates": ("date_day",),
    "core.fct_performance": ("performance_id",),
}


@pytest.fixture(scope="module")
def warehouse(pg_service: PostgresSettings) -> Iterator[PostgresSettings]:
    """A fresh database holding the hand-made ``silver.*`` dataset; dropped afterwards."""
    name = f"gold_{uuid.uuid4().hex[:12]}"
    admin = dataclasses.replace(pg_service, database="postgres")
    run_sql(admin, sql.SQL("create database {}").format(sql.Identifier(name)), autocommit=True)
    pg = dataclasses.replace(pg_service, database=name)
    try:
        create_silver(pg)
        yield pg
    finally:
        run_sql(admin, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)), autocommit=True)


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dbt artifacts for this module only, so a concurrent ``runner.py gold`` never shares them."""
    return tmp_path_factory.mktemp("dbt_target")


@pytest.fixture(scope="module")
def first_build(warehouse: PostgresSettings, target_dir: Path) -> GoldResult:
    return build(warehouse, target_dir)


def build(pg: PostgresSettings, target_dir: Path, *, full_refresh: bool = False) -> GoldResult:
    lines: list[str] = []
    result = run_gold(pg, target_dir=target_dir, full_refresh=full_refresh, log=lines.append)
    print("\n".join(lines))
    return result


def run_sql(
    pg: PostgresSettings, statement: str | sql.Composed, params: tuple[Any, ...] = (), *, autocommit: bool = False
) -> list[dict[str, Any]]:
    """Run one statement in its own transaction; its result rows as dicts (none for DDL and updates)."""
    conn = connect(pg, autocommit=autocommit)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            columns = [c.name for c in cur.description or ()]
            found = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()] if columns else []
        conn.commit()
    finally:
        conn.close()
    return found


def contents(pg: PostgresSettings, tables: dict[str, tuple[str, ...]]) -> dict[str, list[dict[str, Any]]]:
    return {table: run_sql(pg, f"select * from {table} order by {', '.join(key)}") for table, key in tables.items()}


def snapshot_versions(pg: PostgresSettings, snapshot: str, key: str) -> dict[int, int]:
    counts = run_sql(pg, f"select {key} as id, count(*) as versions from snapshots.{snapshot} group by {key}")
    return {row["id"]: row["versions"] for row in counts}


def test_first_build_is_green_on_every_layer(first_build: GoldResult, warehouse: PostgresSettings) -> None:
    assert first_build.ok, first_build.failed_tests
    assert first_build.failed_tests == ()
    assert {n.status for n in first_build.nodes} <= {"success", "pass"}
    assert first_build.node("fct_performance").rows_affected == len(PERFORMANCE)
    unit_tests = [n for n in first_build.nodes if n.resource_type == "unit_test"]
    assert len(unit_tests) >= 10
    tables = run_sql(
        warehouse,
        "select table_schema || '.' || table_name as name from information_schema.tables"
        " where table_schema in ('core', 'analytics')",
    )
    assert {t["name"] for t in tables} == set(MARTS) | set(CORE)


def test_every_dbt_test_is_recorded_beside_the_soda_checks(
    first_build: GoldResult, warehouse: PostgresSettings
) -> None:
    tests = [n for n in first_build.nodes if n.resource_type in ("test", "unit_test")]
    bookkeeping.start_run(warehouse, run_id="gold-checks", version="test", arguments=[])
    soda = [CheckResult("gold tables have rows", "core.dim_dates", "pass", 1.0)]
    bookkeeping.record_quality(warehouse, "gold-checks", "gold", soda)

    written = bookkeeping.record_quality(warehouse, "gold-checks", "gold", first_build.checks, source="dbt")
    bookkeeping.record_quality(warehouse, "gold-checks", "gold", first_build.checks, source="dbt")  # replaces

    assert written == len(tests) >= 160
    rows = run_sql(
        warehouse,
        "select source, table_name, outcome, value, diagnostics from ops.quality_results"
        " where run_id = 'gold-checks' and layer = 'gold'",
    )
    assert sum(r["source"] == "soda" for r in rows) == 1  # dbt's results sit beside Soda's, not over them
    dbt = [r for r in rows if r["source"] == "dbt"]
    assert len(dbt) == len(tests)
    assert {(r["outcome"], r["value"]) for r in dbt} == {("pass", 0.0)}
    assert {r["diagnostics"] for r in dbt} == {"test", "unit_test"}
    assert {"fct_performance", "dim_campaigns", "campaign_performance_summary"} <= {r["table_name"] for r in dbt}


def test_core_and_analytics_tables_have_their_contract_types(
    first_build: GoldResult, warehouse: PostgresSettings
) -> None:
    declared: dict[str, list[tuple[str, str]]] = {}
    for folder in ("core", "analytics"):
        for model in yaml.safe_load((DBT_PROJECT_DIR / "models" / folder / f"_{folder}__models.yml").read_text())[
            "models"
        ]:
            types = [(c["name"], TYPE_SPELLING.get(c["data_type"], c["data_type"])) for c in model["columns"]]
            declared[f"{folder}.{model['name']}"] = types
    assert set(declared) == set(MARTS) | set(CORE)
    columns = run_sql(
        warehouse,
        "select n.nspname || '.' || c.relname as name, a.attname as column_name,"
        " format_type(a.atttypid, a.atttypmod) as data_type"
        " from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('core', 'analytics') and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
        " order by n.nspname, c.relname, a.attnum",
    )
    actual: dict[str, list[tuple[str, str]]] = {}
    for row in columns:
        actual.setdefault(row["name"], []).append((row["column_name"], row["data_type"]))
    assert actual == declared


TYPE_SPELLING = {"timestamptz": "timestamp with time zone"}  # format_type()'s spelling of a declared type


def test_project_declares_at_least_150_data_tests(first_build: GoldResult) -> None:
    tests = [n.name for n in first_build.nodes if n.resource_type == "test"]
    assert len(tests) >= 150, len(tests)
    assert len(set(tests)) == len(tests)


def test_analytics_kpis_equal_an_independent_recomputation(
    first_build: GoldResult, warehouse: PostgresSettings
) -> None:
    silver = {t: run_sql(warehouse, f"select * from silver.{t}") for t in ("advertisers", "campaigns", "performance")}
    project_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    thresholds = (Decimal(str(project_vars["pacing_under_below"])), Decimal(str(project_vars["pacing_over_above"])))
    expected = expected_marts(silver, thresholds)
    every_row = [row for mart in expected.values() for row in mart.values()]
    for kpi in ("ctr", "cvr", "cpc", "cpm", "cpa", "roas", "roi"):  # the dataset exercises both kinds of value
        assert {row[kpi] is None for row in every_row if kpi in row} == {True, False}, kpi
    assert {row["pacing_status"] for row in expected["budget_pacing"].values()} == {"under", "on_track", "over", None}
    actual = contents(warehouse, MARTS)
    for table, key in MARTS.items():
        name = table.split(".")[1]
        rows = {tuple(row[k] for k in key): row for row in actual[table]}
        assert set(rows) == set(expected[name]), table
        for row_key, want in expected[name].items():
            for column, value in want.items():
                got = rows[row_key][column]
                where = f"{table} {row_key} {column}: got {got!r}, expected {value!r}"
                if isinstance(value, Decimal) and column in RATIOS:
                    assert got is not None, where
                    assert abs(got - value) <= Decimal("1e-9"), where
                else:
                    assert got == value, where  # money, counts, dates, statuses and NULLs exactly


RATIOS = frozenset(
    {"ctr", "cvr", "cpc", "cpm", "cpa", "roas", "roi", "budget_spent_share", "flight_elapsed_share", "pacing_index"}
)


def test_rerun_without_new_input_processes_no_rows_and_changes_nothing(
    first_build: GoldResult, warehouse: PostgresSettings, target_dir: Path
) -> None:
    before = contents(warehouse, MARTS | CORE)
    versions = snapshot_versions(warehouse, "campaigns_snapshot", "campaign_id")
    rebuild_silver(warehouse)  # silver's full rebuild restamps _silver_processed_at on every row

    rerun = build(warehouse, target_dir)

    assert rerun.ok, rerun.failed_tests
    assert rerun.node("fct_performance").rows_affected == 0
    run_results = json.loads((target_dir / "run_results.json").read_text())
    fact = next(r for r in run_results["results"] if r["unique_id"] == "model.lakehouse.fct_performance")
    assert fact["adapter_response"]["rows_affected"] == 0
    assert run_results["args"]["threads"] == os.cpu_count()  # one dbt model per core
    assert contents(warehouse, MARTS | CORE) == before
    assert snapshot_versions(warehouse, "campaigns_snapshot", "campaign_id") == versions


def test_late_correction_of_a_loaded_key_is_merged(warehouse: PostgresSettings, target_dir: Path) -> None:
    corrected = 101003
    run_sql(
        warehouse,
        "update silver.performance set clicks = clicks + 7, _batch_id = %s, _ingestion_timestamp = %s"
        " where performance_id = %s",
        (*SECOND_BATCH, corrected),
    )
    rebuild_silver(warehouse)
    (silver_clicks,) = run_sql(
        warehouse, "select clicks from silver.performance where performance_id = %s", (corrected,)
    )

    result = build(warehouse, target_dir)

    assert result.ok, result.failed_tests
    assert result.node("fct_performance").rows_affected == 1
    (fact,) = run_sql(
        warehouse, "select clicks, batch_id from core.fct_performance where performance_id = %s", (corrected,)
    )
    assert fact == {"clicks": silver_clicks["clicks"], "batch_id": SECOND_BATCH[0]}


def test_snapshots_version_business_changes_only(warehouse: PostgresSettings, target_dir: Path) -> None:
    campaigns_before = snapshot_versions(warehouse, "campaigns_snapshot", "campaign_id")
    advertisers_before = snapshot_versions(warehouse, "advertisers_snapshot", "advertiser_id")
    # campaign 101: a new total budget; advertiser 2: re-delivered unchanged (only lineage moves)
    run_sql(
        warehouse,
        "update silver.campaigns set budget_total = 3500.00, _batch_id = %s, _ingestion_timestamp = %s"
        " where campaign_id = 101",
        THIRD_BATCH,
    )
    run_sql(
        warehouse,
        "update silver.advertisers set _batch_id = %s, _ingestion_timestamp = %s, _source_file = 'late.csv'"
        " where advertiser_id = 2",
        THIRD_BATCH,
    )
    rebuild_silver(warehouse)

    result = build(warehouse, target_dir)

    assert result.ok, result.failed_tests
    assert snapshot_versions(warehouse, "campaigns_snapshot", "campaign_id") == campaigns_before | {101: 2}
    assert snapshot_versions(warehouse, "advertisers_snapshot", "advertiser_id") == advertisers_before
    history = run_sql(
        warehouse,
        "select budget_total, dbt_valid_to is null as is_current from snapshots.campaigns_snapshot"
        " where campaign_id = 101 order by dbt_valid_from",
    )
    assert history == [
        {"budget_total": Decimal("3000.00"), "is_current": False},
        {"budget_total": Decimal("3500.00"), "is_current": True},
    ]
    # A re-delivered campaign re-delivers its fact rows (their advertiser key comes from it): all 14 days.
    assert result.node("fct_performance").rows_affected == sum(1 for r in PERFORMANCE if r["campaign_id"] == 101)
    (pacing,) = run_sql(warehouse, "select budget_total from analytics.budget_pacing where campaign_id = 101")
    assert pacing["budget_total"] == Decimal("3500.00")


def test_docs_generate_works_offline(warehouse: PostgresSettings, target_dir: Path) -> None:
    site = docs_generate(warehouse, target_dir=target_dir, log=lambda line: None)
    assert site.is_file()
    catalog = json.loads((target_dir / "catalog.json").read_text())
    assert "model.lakehouse.fct_performance" in catalog["nodes"]


def test_a_broken_silver_row_fails_the_reconciliation_tests_by_name(
    warehouse: PostgresSettings, target_dir: Path
) -> None:
    # Changed in place without a new ingestion time: the watermark cannot see it, so fct_performance goes stale.
    run_sql(warehouse, "update silver.performance set cost = cost + 1 where performance_id = 102005")

    broken = build(warehouse, target_dir)

    assert not broken.ok
    assert set(broken.failed_tests) == {"assert_fct_performance_rows_match_silver"}  # its one owner
    assert broken.errors == ()
    (failed,) = [c for c in broken.checks if c.outcome != "pass"]
    assert (failed.check_name, failed.table_name, failed.outcome) == (
        "assert_fct_performance_rows_match_silver",
        "fct_performance",
        "fail",
    )
    assert failed.value == 1  # the failing rows dbt counted: the one changed row

    repaired = build(warehouse, target_dir, full_refresh=True)
    assert repaired.ok, repaired.failed_tests
    assert repaired.node("fct_performance").rows_affected == len(PERFORMANCE)


def test_unreachable_postgres_is_a_clear_error_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "the-callers-own")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pg = PostgresSettings("127.0.0.1", port, "analyst", "nowhere", password=Secret("s3cr3t-pw"))

    with pytest.raises(ServiceUnavailableError) as caught:
        run_gold(pg, target_dir=tmp_path, log=lambda line: None)

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)
    assert os.environ["PGPASSWORD"] == "the-callers-own"  # the environment is restored after a crash too
