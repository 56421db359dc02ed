"""Silver's write-audit-publish on a real lake, PostgreSQL and Soda: a candidate that fails its audit publishes
nothing (every silver and quarantine table, Delta and PostgreSQL, keeps its checksum), the failure is recorded in
``ops``, and gold refuses to build on it, naming the run."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from lakehouse import steps
from lakehouse.adapters import lake
from lakehouse.adapters.warehouse import connect
from lakehouse.bookkeeping import last_audit
from lakehouse.bronze.landing import discover
from lakehouse.quality import scan_layer
from lakehouse.settings import PostgresSettings, Settings, load_settings
from lakehouse.steps import RunOutcome, run_layers

pytestmark = pytest.mark.integration
UTC = dt.UTC
ADVERTISERS = (
    "advertiser_id,advertiser_name,industry,country,account_manager\n1,Acme,Retail,US,Jane\n2,Bolt,Travel,GB,\n"
    "3,Crux,Media,Narnia,\n"
)
CAMPAIGNS = (
    "campaign_id,advertiser_id,campaign_name,campaign_type,status,objective,start_date,end_date,budget_daily,"
    "budget_total\n10,1,Brand,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00\n"
    "11,9,Orphan,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00\n"
)
PERFORMANCE_HEADER = "performance_id,campaign_id,date,impressions,clicks,conversions,cost,revenue\n"
ALL_NEGATIVE = (
    PERFORMANCE_HEADER + "100,10,2024-01-02,-1000,20,2,11.50,80.00\n101,10,2024-01-03,-900,18,1,10.00,40.00\n"
)
VALID = PERFORMANCE_HEADER + "100,10,2024-01-02,1000,20,2,11.50,80.00\n101,10,2024-01-03,900,18,1,10.00,40.00\n"


def _query(pg: PostgresSettings, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        return cur.fetchall()


def _checksums(spark: Any, settings: Settings, pg: PostgresSettings) -> dict[str, tuple[Any, ...]]:
    """Every silver and quarantine table in both stores: rows and an order-independent checksum (and the Delta
    version, so even a commit of identical rows would show)."""
    sums: dict[str, tuple[Any, ...]] = {}
    tables = _query(
        pg,
        "select table_schema, table_name from information_schema.tables where table_schema in ('silver', 'quarantine')",
    )
    digest = "md5(coalesce(string_agg(md5(t::text), '' order by md5(t::text)), ''))"
    for schema, table in tables:
        [row] = _query(pg, f'select count(*), {digest} from "{schema}"."{table}" t')
        sums[f"postgres {schema}.{table}"] = row
    for layer in ("silver", "quarantine"):
        for table in lake.list_tables(spark, settings.layer_uri(layer)):
            uri = lake.table_uri(settings, layer, table)
            digests = sorted(
                hashlib.md5(repr(tuple(r)).encode()).hexdigest() for r in lake.read_table(spark, uri).collect()
            )
            sums[f"delta {layer}.{table}"] = (
                len(digests),
                hashlib.md5("".join(digests).encode()).hexdigest(),
                lake.table_version(spark, uri),
            )
    return sums


def _landing(root: Path, name: str, **files: str) -> tuple[Any, ...]:
    landing = root / name
    landing.mkdir()
    for file_name, text in files.items():
        (landing / file_name).write_text(text, encoding="utf-8")
    found, refused = discover(landing)
    assert refused == []
    return tuple(found)


def _run(
    settings: Settings, pg: PostgresSettings, spark: Any, layers: tuple[str, ...], files: tuple[Any, ...] = ()
) -> RunOutcome:
    # No lake maintenance: VACUUM records itself as two Delta commits, and "nothing published" is proven by versions.
    return run_layers(settings, pg, layers=layers, spark=spark, files=files, maintain=False, log_line=lambda _: None)


def test_a_failed_audit_publishes_nothing_is_recorded_and_closes_the_gate_to_gold(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "data")}, dotenv_path=None)
    scanning: list[float] = []  # seconds of each silver Soda scan (the audit's and the gate's)

    def timed_scan(pg: PostgresSettings, layer: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return scan_layer(pg, layer, **kwargs)
        finally:
            scanning.extend([time.perf_counter() - started] if layer == "silver" else [])

    monkeypatch.setattr(steps, "scan_layer", timed_scan)
    first = _run(settings, pg_database, spark, ("bronze", "silver"),
                 _landing(tmp_path, "one", **{"advertisers.csv": ADVERTISERS, "campaigns.csv": CAMPAIGNS}))  # fmt: skip
    assert first.status == "succeeded", first.gate_failures
    audit_quality = next(q for q in first.quality if q.layer == "silver")
    assert 0 < audit_quality.seconds <= sum(scanning)  # the audit's time, not the whole silver step's
    before = _checksums(spark, settings, pg_database)
    assert set(before) == {
        f"{store} {schema}.{table}"
        for store in ("postgres", "delta")
        for schema in ("silver", "quarantine")
        for table in ("advertisers", "campaigns", "performance")  # performance: created empty, nothing delivered
    }
    assert before["postgres quarantine.campaigns"][0] == 1  # the orphan: quarantined rows are part of the proof
    assert before["postgres quarantine.performance"][0] == before["delta quarantine.performance"][0] == 0

    # Every performance row is invalid: the candidate's silver.performance is empty and fails "has rows".
    failed = _run(settings, pg_database, spark, ("bronze", "silver"),
                  _landing(tmp_path, "two", **{"performance.csv": ALL_NEGATIVE}))  # fmt: skip

    assert failed.status == "failed"
    assert failed.unpublished == ("silver", "quarantine")
    # An empty table also has no freshness to measure: Soda cannot evaluate it, which counts as failed.
    failures = [("silver.performance", "has rows"), ("silver.performance", "processed within 1d")]
    assert sorted((r.table_name, r.check_name) for r in failed.gate_failures) == failures
    assert _checksums(spark, settings, pg_database) == before  # both stores exactly as they were
    assert (
        _query(pg_database, "select nspname from pg_namespace where nspname like '\\_lakehouse\\_candidate\\_%'") == []
    )
    audit = last_audit(pg_database, "silver")
    assert audit is not None
    assert (audit.run_id, audit.passed) == (failed.run_id, False)
    assert sorted(audit.failed_checks) == [f"{table}: {check}" for table, check in failures]
    assert _query(pg_database, "select status from ops.pipeline_runs where run_id = %s", failed.run_id) == [("failed",)]
    assert (
        _query(
            pg_database,
            "select table_name, check_name from ops.quality_results where run_id = %s and outcome = 'fail' order by 2",
            failed.run_id,
        )
        == failures
    )
    reconciled = _query(
        pg_database, "select table_name, bronze_rows, reconciled from ops.reconciliation where run_id = %s order by 1",
        failed.run_id,
    )  # fmt: skip
    assert reconciled == [("advertisers", 3, True), ("campaigns", 2, True), ("performance", 2, True)]

    # Gold refuses to build on it, naming the run; dbt never ran (no core schema).
    gold = _run(settings, pg_database, None, ("gold",))
    assert gold.status == "failed"
    assert f"silver's last audit failed in run {failed.run_id}" in gold.blocked
    assert "silver.performance: has rows" in gold.blocked
    assert "--force" in gold.blocked
    assert _query(pg_database, "select count(*) from pg_namespace where nspname = 'core'") == [(0,)]

    # Valid rows arrive: the audit passes, silver is published with them, and the gate is open again.
    fixed = _run(settings, pg_database, spark, ("bronze", "silver"),
                 _landing(tmp_path, "three", **{"performance_fixed.csv": VALID}))  # fmt: skip
    assert fixed.status == "succeeded", fixed.gate_failures
    audit = last_audit(pg_database, "silver")
    assert audit is not None
    assert (audit.run_id, audit.passed) == (fixed.run_id, True)
    assert _query(pg_database, "select count(*) from silver.performance") == [(2,)]
    assert _query(pg_database, "select count(*) from quarantine.performance") == [(2,)]
    after = _checksums(spark, settings, pg_database)
    assert after["delta silver.performance"][0] == 2
    assert after["delta quarantine.performance"][0] == 2


def test_a_rerun_without_new_bronze_publishes_nothing_and_full_refresh_rebuilds(
    spark: Any, tmp_path: Path, pg_database: PostgresSettings
) -> None:
    settings = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "data")}, dotenv_path=None)
    delivery = {"advertisers.csv": ADVERTISERS, "campaigns.csv": CAMPAIGNS}
    first = _run(settings, pg_database, spark, ("bronze", "silver"), _landing(tmp_path, "one", **delivery))
    assert first.status == "succeeded", first.gate_failures
    before = _checksums(spark, settings, pg_database)  # every column, _silver_processed_at included

    # The same files again: bronze skips them, so no batch is new and silver has nothing to do.
    again = _run(settings, pg_database, spark, ("bronze", "silver"), _landing(tmp_path, "again", **delivery))

    assert again.status == "succeeded", again.gate_failures
    assert any(f"silver: no new bronze batch since run {first.run_id}" in note for note in again.notes)
    assert _checksums(spark, settings, pg_database) == before  # nothing re-published: no Delta commit, no restamp
    audit = last_audit(pg_database, "silver")
    assert audit is not None
    assert audit.run_id == first.run_id

    refreshed = run_layers(
        settings,
        pg_database,
        layers=("silver",),
        spark=spark,
        full_refresh=True,
        maintain=False,
        log_line=lambda _: None,
    )

    assert refreshed.status == "succeeded", refreshed.gate_failures
    after = _checksums(spark, settings, pg_database)
    assert {name: sums[0] for name, sums in after.items()} == {name: sums[0] for name, sums in before.items()}
    # Every Delta table with rows was re-committed (Delta commits nothing when an empty table is replaced by one).
    versions = {name: (before[name][2], now[2]) for name, now in after.items() if name.startswith("delta") and now[0]}
    assert len(versions) == 4
    assert all(new > old for old, new in versions.values()), versions
    audit = last_audit(pg_database, "silver")
    assert audit is not None
    assert (audit.run_id, audit.passed) == (refreshed.run_id, True)


def test_the_summary_gives_each_table_its_share_of_the_parallel_lake_publish(spark: Any) -> None:
    """The publish's Delta commits overlap: each table's summary seconds hold its share of the publish's wall
    time, so the rows add up to the time it took, not to the sum of the commits' own times."""
    from lakehouse.contracts import TABLES
    from lakehouse.silver.layer import SilverReport, SilverTableReport, _publish_lake

    report = SilverReport("run", {t: SilverTableReport(t) for t in TABLES})

    def commit(seconds: float) -> lake.WriteResult:
        time.sleep(seconds)
        return lake.WriteResult(True, 1, 1, 100)

    started = time.monotonic()
    _publish_lake(spark, report, [("advertisers", "silver", lambda: commit(1.0)),
                                  ("advertisers", "quarantine", lambda: commit(1.0)),
                                  ("performance", "silver", lambda: commit(2.0))])  # fmt: skip
    wall = time.monotonic() - started
    seconds = {t: report.tables[t].seconds for t in TABLES}
    assert 2.0 <= sum(seconds.values()) <= wall + 0.01, seconds  # the commits' own times add up to 4 s
    assert seconds["advertisers"] == pytest.approx(seconds["performance"], rel=0.05)  # 1 + 1 against 2
    assert seconds["campaigns"] == 0
    assert [report.tables[t].parquet_bytes for t in TABLES] == [100, 0, 100]  # silver bytes only
