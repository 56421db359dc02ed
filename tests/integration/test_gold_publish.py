"""Gold's write-audit-publish on real PostgreSQL and dbt: a build whose tests fail leaves ``core.*`` and
``analytics.*`` at their last good version, and readers never see a model before its tests passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.gold import SHADOW_PREFIX
from lakehouse.settings import PostgresSettings
from tests.gold_fixtures import create_silver
from tests.integration.test_gold import CORE, MARTS, build, contents, run_sql

pytestmark = pytest.mark.integration


@pytest.fixture
def warehouse(pg_database: PostgresSettings) -> PostgresSettings:
    """A fresh database (conftest's ``pg_database``) holding the hand-made ``silver.*`` dataset."""
    create_silver(pg_database)
    return pg_database


def _schemas(pg: PostgresSettings) -> set[str]:
    return {row["nspname"] for row in run_sql(pg, "select nspname from pg_namespace")}


def test_a_failing_dbt_test_leaves_core_and_analytics_at_their_last_good_version(
    warehouse: PostgresSettings, tmp_path: Path
) -> None:
    good = build(warehouse, tmp_path / "target")
    assert good.ok, good.failed_tests
    before = contents(warehouse, MARTS | CORE)
    assert all(before.values())

    # A silver row changed in place (no new ingestion time) and a new one: the marts would change, but the fact's
    # reconciliation test fails, so none of it may reach readers.
    run_sql(warehouse, "update silver.performance set cost = cost + 1 where performance_id = 102005")
    run_sql(warehouse, "update silver.campaigns set campaign_name = 'Renamed' where campaign_id = 101")
    broken = build(warehouse, tmp_path / "target")

    assert not broken.ok
    assert set(broken.failed_tests) == {"assert_fct_performance_rows_match_silver"}
    assert contents(warehouse, MARTS | CORE) == before  # every published table at its last good version
    assert not {s for s in _schemas(warehouse) if s.startswith(SHADOW_PREFIX)}  # shadows are gone

    repaired = build(warehouse, tmp_path / "target", full_refresh=True)

    assert repaired.ok, repaired.failed_tests
    renamed = run_sql(warehouse, "select campaign_name from core.dim_campaigns where campaign_id = 101")
    assert renamed == [{"campaign_name": "Renamed"}]
    assert contents(warehouse, MARTS | CORE) != before
