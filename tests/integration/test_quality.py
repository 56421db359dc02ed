"""Soda quality gates on a real PostgreSQL with real Soda: the hand-made dataset of tests/gold_fixtures.py as
bronze, silver and (after a real dbt build) gold; then broken with SQL, as nothing in the pipeline would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from lakehouse import bookkeeping, steps
from lakehouse.adapters.roles import WarehouseRoles
from lakehouse.adapters.warehouse import connect, create_table_sql
from lakehouse.contracts import LAYERS, TABLES, quarantine_table, raw_table
from lakehouse.errors import ServiceUnavailableError
from lakehouse.gold import run_gold
from lakehouse.quality import CheckResult, LayerQuality, has_failures, scan_layer, validate_configuration
from lakehouse.report import SummaryRow
from lakehouse.settings import PostgresSettings, Secret, load_settings
from lakehouse.steps import RunOutcome
from tests.gold_fixtures import FIRST_BATCH, SILVER_ROWS, create_silver

pytestmark = pytest.mark.integration
CORRUPT = "corrupt lines in the latest batch (%, warn > 1, fail > 20)"


def run_sql(pg: PostgresSettings, statement: str | sql.Composable, params: Any = ()) -> list[tuple[Any, ...]]:
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def bronze_rows(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Silver rows as bronze text, one batch, no corrupt line."""
    batch_id, ingested_at = FIRST_BATCH
    metadata = {"_corrupt_record": None, "_ingestion_timestamp": ingested_at, "_batch_id": batch_id}
    metadata |= {"_source_file": f"{table}.csv", "ingest_date": ingested_at.date()}
    return [metadata | {k: None if v is None else str(v) for k, v in row.items()} for row in rows]


def insert(pg: PostgresSettings, schema: str, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    statement = sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(schema, table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
    )
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(statement, rows)
    finally:
        conn.close()


@pytest.fixture
def warehouse(pg_database: PostgresSettings) -> PostgresSettings:
    """A fresh database with clean bronze.raw_*, silver.* and (empty) quarantine.* tables."""
    create_silver(pg_database)
    for schema in ("bronze", "quarantine"):
        run_sql(pg_database, sql.SQL("create schema {}").format(sql.Identifier(schema)))
    for table in TABLES:
        run_sql(pg_database, create_table_sql("bronze", raw_table(table)))
        run_sql(pg_database, create_table_sql("quarantine", quarantine_table(table)))
        insert(pg_database, "bronze", f"raw_{table}", bronze_rows(table, SILVER_ROWS[table]))
    return pg_database


def scan(pg: PostgresSettings, layer: str) -> LayerQuality:
    return scan_layer(pg, layer, log=lambda _: None)


def outcomes(quality: LayerQuality, *wanted: str) -> set[tuple[str, str]]:
    return {(r.table_name, r.check_name) for r in quality.results if r.outcome in wanted}


def result(quality: LayerQuality, table: str, name: str) -> CheckResult:
    [found] = [r for r in quality.results if (r.table_name, r.check_name) == (table, name)]
    return found


def test_clean_layers_pass_then_an_emptied_gold_table_fails_the_gold_gate(
    warehouse: PostgresSettings, tmp_path: Path
) -> None:
    assert run_gold(warehouse, target_dir=tmp_path / "dbt", log=lambda _: None).ok
    clean = {layer: scan(warehouse, layer) for layer in LAYERS}
    for quality in clean.values():
        assert outcomes(quality, "warn", "fail") == set(), quality.layer
        assert quality.errors == ()
    assert sum(len(q.results) for q in clean.values()) > 60
    # Soda gates gold on volume, one check per table; every model invariant is a dbt data test (one owner each).
    assert sorted((r.table_name, r.check_name) for r in clean["gold"].results) == [
        (table, "has rows") for table in GOLD_TABLES
    ]

    # Gold tables emptied behind the pipeline's back: silver is untouched and passes, gold's gate fails by name.
    run_sql(warehouse, "delete from core.dim_dates")
    run_sql(warehouse, "truncate analytics.campaign_performance_summary")
    silver, gold = scan(warehouse, "silver"), scan(warehouse, "gold")

    assert not has_failures(silver)
    assert outcomes(gold, "fail") == {
        ("core.dim_dates", "has rows"),
        ("analytics.campaign_performance_summary", "has rows"),
    }
    assert has_failures(*clean.values(), gold)
    assert result(gold, "core.dim_dates", "has rows").value == 0

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    bookkeeping.start_run(warehouse, run_id=run_id, version="0.1.0", arguments={"command": "quality"})
    bookkeeping.record_quality(warehouse, run_id, "gold", gold.results)
    bookkeeping.finish_run(warehouse, run_id, "failed")
    failed = run_sql(
        warehouse,
        "select q.table_name, q.check_name, q.value from ops.quality_results q join ops.pipeline_runs r"
        " using (run_id) where run_id = %s and q.outcome = 'fail' and r.status = 'failed' order by 1",
        (run_id,),
    )
    assert failed == [
        ("analytics.campaign_performance_summary", "has rows", 0.0),
        ("core.dim_dates", "has rows", 0.0),
    ]


GOLD_TABLES = (  # sorted
    "analytics.advertiser_performance",
    "analytics.budget_pacing",
    "analytics.campaign_performance_summary",
    "analytics.daily_channel_performance",
    "core.dim_advertisers",
    "core.dim_campaigns",
    "core.dim_dates",
    "core.fct_performance",
)


def test_silver_broken_with_sql_fails_the_named_rule_checks(warehouse: PostgresSettings) -> None:
    run_sql(warehouse, "update silver.performance set clicks = impressions + 1 where performance_id = 101000")
    run_sql(warehouse, "update silver.performance set campaign_id = 999 where performance_id in (101001, 101002)")
    run_sql(warehouse, "update silver.campaigns set status = 'Running' where campaign_id = 101")
    run_sql(warehouse, "alter table silver.advertisers alter column advertiser_id type bigint")

    quality = scan(warehouse, "silver")

    assert outcomes(quality, "fail") == {
        ("silver.performance", "clicks <= impressions"),
        ("silver.performance", "every campaign_id exists in silver.campaigns"),
        ("silver.campaigns", "status is an accepted value"),
        ("silver.advertisers", "columns and types match the contract"),
    }
    assert result(quality, "silver.performance", "every campaign_id exists in silver.campaigns").value == 2
    schema = result(quality, "silver.advertisers", "columns and types match the contract")
    assert "advertiser_id" in schema.diagnostics
    assert "bigint" in schema.diagnostics


def test_warn_conditions_are_reported_and_do_not_fail_the_layer(warehouse: PostgresSettings) -> None:
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    run_sql(warehouse, "update silver.advertisers set _silver_processed_at = %s", (two_days_ago,))
    batch_id, ingested_at = FIRST_BATCH
    lineage = {"_batch_id": batch_id, "_source_file": "a.csv", "_ingestion_timestamp": ingested_at}
    rejected = {"advertiser_id": "x", "_reasons": ["invalid_advertiser_id"], "_silver_processed_at": ingested_at}
    insert(warehouse, "quarantine", "advertisers", [rejected | lineage])  # 1 of 5 rows: 20 % > 5 %
    insert(warehouse, "bronze", "raw_performance", bronze_rows("performance", [{"_corrupt_record": "1,2,x"}]))

    silver, bronze = scan(warehouse, "silver"), scan(warehouse, "bronze")

    assert outcomes(silver, "warn") == {
        ("silver.advertisers", "processed within 1d"),
        ("silver.advertisers", "quarantined rows (% of the table's rows, warn > 5)"),
    }
    assert outcomes(bronze, "warn") == {
        ("bronze.raw_performance", CORRUPT),
    }
    assert not has_failures(silver, bronze)
    assert result(silver, "silver.advertisers", "processed within 1d").value == pytest.approx(2 * 86400, abs=600)


def test_too_many_corrupt_lines_or_an_empty_table_fail_bronze(warehouse: PostgresSettings) -> None:
    corrupt = [{"_corrupt_record": f"broken line {i}"} for i in range(3)]  # 3 of 7 lines
    insert(warehouse, "bronze", "raw_advertisers", bronze_rows("advertisers", corrupt))
    run_sql(warehouse, "truncate bronze.raw_campaigns")

    quality = scan(warehouse, "bronze")

    assert outcomes(quality, "fail") == {
        ("bronze.raw_advertisers", CORRUPT),
        ("bronze.raw_campaigns", "the latest batch has rows"),
    }
    corrupt_share = result(quality, "bronze.raw_advertisers", CORRUPT)
    assert corrupt_share.value == pytest.approx(100 * 3 / 7)


def test_a_check_soda_cannot_evaluate_counts_as_failed(warehouse: PostgresSettings) -> None:
    run_sql(warehouse, "drop table quarantine.performance")

    quality = scan(warehouse, "silver")

    [failed] = quality.failed
    assert (failed.table_name, failed.check_name) == (
        "silver.performance",
        "quarantined rows (% of the table's rows, warn > 5)",
    )
    assert failed.diagnostics.startswith("not evaluated:")
    assert "quarantine.performance" in failed.diagnostics
    assert quality.errors


def test_validate_configuration_reaches_every_data_source(warehouse: PostgresSettings) -> None:
    detail = validate_configuration(warehouse)

    assert "4 data sources reachable" in detail


def test_soda_unable_to_connect_names_the_endpoint_and_not_the_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pg = PostgresSettings("127.0.0.1", port, "postgres", "nowhere", password=Secret("s3cr3t-pw-123"))
    started = time.monotonic()

    for attempt in (lambda: scan(pg, "silver"), lambda: validate_configuration(pg)):
        with pytest.raises(ServiceUnavailableError) as raised:
            attempt()
        assert f"127.0.0.1:{port}" in str(raised.value)
        assert "s3cr3t-pw-123" not in str(raised.value)
    assert time.monotonic() - started < 60


def test_bookkeeping_rows_are_written_replaced_and_readable(pg_database: PostgresSettings) -> None:
    loads = [
        SummaryRow("bronze", "advertisers", rows_in=374, rows_out=374, csv_bytes=18_100, seconds=1.5),
        SummaryRow("silver", "advertisers", rows_in=374, rows_out=360, quarantined=12, duplicates=2),
    ]
    checks = [CheckResult("has rows", "silver.advertisers", "pass", 360.0, "value 360")]
    bookkeeping.start_run(pg_database, run_id="r1", version="0.1.0", arguments=["run", "--full-refresh"])
    bookkeeping.record_layer_loads(pg_database, "r1", loads)
    bookkeeping.record_layer_loads(pg_database, "r1", [SummaryRow("bronze", "advertisers", rows_in=375)])
    bookkeeping.record_quality(pg_database, "r1", "silver", checks)
    bookkeeping.record_quality(pg_database, "r1", "silver", checks)  # a re-scan replaces, never duplicates
    bookkeeping.finish_run(pg_database, "r1", "succeeded")

    assert run_sql(pg_database, "select status, arguments, ended_at >= started_at from ops.pipeline_runs") == [
        ("succeeded", ["run", "--full-refresh"], True)
    ]
    assert run_sql(pg_database, "select layer, rows_in, rows_out, quarantined from ops.layer_loads order by 1") == [
        ("bronze", 375, None, None),
        ("silver", 374, 360, 12),
    ]
    assert run_sql(pg_database, "select check_name, outcome, value from ops.quality_results") == [
        ("has rows", "pass", 360.0)
    ]
    with pytest.raises(bookkeeping.BookkeepingError, match=r"already in ops\.pipeline_runs"):
        bookkeeping.start_run(pg_database, run_id="r1", version="0.1.0", arguments={})
    with pytest.raises(bookkeeping.BookkeepingError, match="call start_run first"):
        bookkeeping.record_quality(pg_database, "r2", "silver", checks)


def test_a_run_whose_process_died_is_recorded_as_failed_when_the_next_run_starts(pg_database: PostgresSettings) -> None:
    """A run is alive while a session named after it is (:func:`bookkeeping.alive`); one that died (its session
    gone, as with ``kill -9``) stays ``running`` only until the next run starts, which records it as failed. A run
    still going on is left alone."""

    def start(run_id: str) -> list[str]:
        return bookkeeping.start_run(pg_database, run_id=run_id, version="test", arguments=["run"])

    with bookkeeping.alive(pg_database, "going-on"):
        assert start("going-on") == []
        with bookkeeping.alive(pg_database, "died"):
            assert start("died") == []
        deadline = time.monotonic() + 10  # the server ends a session a moment after its client leaves
        while run_sql(pg_database, "select 1 from pg_stat_activity where application_name = 'lakehouse run died'"):
            assert time.monotonic() < deadline, "the session of run 'died' outlived its connection"
            time.sleep(0.05)
        with bookkeeping.alive(pg_database, "next"), bookkeeping.alive(pg_database, "after"):
            assert start("next") == ["died"]
            assert start("after") == []  # recorded once
            assert run_sql(
                pg_database,
                "select run_id, status, ended_at is not null from ops.pipeline_runs order by started_at, run_id",
            ) == [("going-on", "running", False), ("died", "failed", True), ("next", "running", False),
                  ("after", "running", False)]  # fmt: skip


def test_a_recorded_run_ends_with_the_status_its_block_set_and_failed_when_the_block_raised(
    pg_database: PostgresSettings,
) -> None:
    """:func:`bookkeeping.recorded_run` records a run for as long as its block lasts: running (with a session
    named after it) inside, then ended with the status the block set, ``failed`` when it set none or raised."""
    running = "select status, ended_at is null from ops.pipeline_runs where run_id = %s"
    with bookkeeping.recorded_run(pg_database, "ok", version="test", arguments=["run"]) as run:
        assert run.dead == []
        assert run_sql(pg_database, running, ("ok",)) == [("running", True)]
        assert run_sql(pg_database, "select 1 from pg_stat_activity where application_name = 'lakehouse run ok'")
        run.status = "succeeded"
    with bookkeeping.recorded_run(pg_database, "unset", version="test", arguments=[]):
        pass

    def raising() -> None:
        with bookkeeping.recorded_run(pg_database, "raised", version="test", arguments=[]) as run:
            run.status = "succeeded"  # set before what raised: an exception still records the run as failed
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        raising()
    assert run_sql(
        pg_database, "select run_id, status, ended_at is not null from ops.pipeline_runs order by started_at"
    ) == [("ok", "succeeded", True), ("unset", "failed", True), ("raised", "failed", True)]


def test_a_reported_run_is_recorded_then_reported_and_alerted_with_the_error_that_ended_it(
    pg_database: PostgresSettings, tmp_path: Path
) -> None:
    """:func:`steps.reported_run` (``run_layers`` and ``runner.py quality``): the run's end is recorded first, then
    its report is written and, for a failed run, the alert carries the exception that ended the block. A run that
    could not be recorded (PostgreSQL out of reach) has neither."""
    alert = tmp_path / "alert.json"
    settings = load_settings(
        {
            "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
            "LAKEHOUSE_ALERT_COMMAND": f'{sys.executable} -c "import sys, pathlib; '
            f"pathlib.Path(r'{alert}').write_bytes(sys.stdin.buffer.read())\"",
        },
        dotenv_path=None,
    )
    roles = WarehouseRoles.single(pg_database)
    outcome = RunOutcome("reported")
    with pytest.raises(RuntimeError, match="boom"), steps.reported_run(settings, roles, outcome, arguments=["quality"]):
        raise RuntimeError("boom\n  on two lines")
    assert run_sql(pg_database, "select status from ops.pipeline_runs where run_id = 'reported'") == [("failed",)]
    assert outcome.report == settings.reports_dir / "reported.html"
    assert outcome.report.is_file()
    payload = json.loads(alert.read_text())
    assert (payload["run_id"], payload["status"]) == ("reported", "failed")
    assert payload["error"] == "RuntimeError: boom on two lines"

    alert.unlink()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    away = dataclasses.replace(pg_database, host="127.0.0.1", port=port)
    unrecorded = RunOutcome("unrecorded")
    with (
        pytest.raises(ServiceUnavailableError),
        steps.reported_run(settings, WarehouseRoles.single(away), unrecorded, arguments=[]),
    ):
        pytest.fail("the block of a run that could not be recorded ran")
    assert unrecorded.report is None
    assert not alert.exists()
