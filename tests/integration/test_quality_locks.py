"""A Soda scan leaves nothing behind in PostgreSQL: no open transaction, no lock on the tables it read.

Soda 3 keeps each data source's connection open, inside a transaction, after the scan; in one process (a run's
gate, then the next layer's publish or dbt) the next writer of a scanned table would wait on that lock forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.adapters.warehouse import connect
from lakehouse.gold import run_gold
from lakehouse.quality import scan_layer
from lakehouse.settings import PostgresSettings
from tests.gold_fixtures import create_silver

pytestmark = pytest.mark.integration


def test_after_a_scan_a_writer_of_the_scanned_tables_never_waits(pg_database: PostgresSettings, tmp_path: Path) -> None:
    create_silver(pg_database)
    assert run_gold(pg_database, target_dir=tmp_path / "dbt", log=lambda _: None).ok  # as in a run: gold, then its gate

    for layer in ("silver", "gold"):
        assert scan_layer(pg_database, layer, log=lambda _: None).results
    _assert_no_open_transaction_and_no_lock(pg_database)


def _assert_no_open_transaction_and_no_lock(pg_database: PostgresSettings) -> None:
    conn = connect(pg_database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid() and state like 'idle in transaction%%'"
            )
            row = cur.fetchone()
            assert row is not None
            assert row[0] == 0, "a scan left a transaction open"
            cur.execute("set local lock_timeout = '2s'")
            cur.execute("truncate silver.performance, analytics.campaign_performance_summary")  # raises on a lock
    finally:
        conn.close()
