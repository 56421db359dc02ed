"""lakehouse.gold without a database: environment handling, errors, result helpers and progress lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse import gold
from lakehouse.gold import GoldError, GoldResult, NodeOutcome, run_gold
from lakehouse.settings import PostgresSettings, Secret, libpq_environment

PG = PostgresSettings("db.internal", 6543, "analyst", "warehouse", password=Secret("s3cr3t-pw"))


def node(name: str, resource_type: str = "model", status: str = "success", rows: int | None = 3) -> NodeOutcome:
    return NodeOutcome(name, resource_type, status, 0.25, rows, None)


def test_pg_variables_are_set_during_the_call_and_restored_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "callers-host")
    monkeypatch.delenv("PGDATABASE", raising=False)
    no_password = PostgresSettings("127.0.0.1", 5432, "postgres", "gold")
    monkeypatch.setenv("PGPASSWORD", "callers-password")

    with libpq_environment(no_password):
        assert os.environ["PGHOST"] == "127.0.0.1"
        assert os.environ["PGPORT"] == "5432"
        assert os.environ["PGDATABASE"] == "gold"
        assert "PGPASSWORD" not in os.environ  # none given: the profile's '' default, never the caller's

    assert os.environ["PGHOST"] == "callers-host"
    assert os.environ["PGPASSWORD"] == "callers-password"
    assert "PGDATABASE" not in os.environ


def test_pg_variables_are_restored_when_the_call_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    seen: list[str] = []

    def crash() -> None:
        with libpq_environment(PG):
            seen.append(os.environ["PGPASSWORD"])
            raise RuntimeError("dbt blew up")

    with pytest.raises(RuntimeError):
        crash()
    assert seen == ["s3cr3t-pw"]
    assert "PGPASSWORD" not in os.environ


def test_a_missing_project_is_a_gold_error(tmp_path: Path) -> None:
    with pytest.raises(GoldError, match="no dbt project"):
        run_gold(PG, project_dir=tmp_path, log=lambda line: None)


def test_error_text_never_carries_the_password() -> None:
    assert "s3cr3t-pw" not in gold._scrub("FATAL: password s3cr3t-pw rejected", PG)


def test_failed_tests_and_errors_are_told_apart() -> None:
    result = GoldResult(
        ok=False,
        nodes=(
            node("fct_performance", status="error", rows=None),
            node("not_null_x", "test", "fail", None),
            node("ctr_is_clicks_over_impressions", "unit_test", "pass", None),
        ),
        failed_tests=("not_null_x",),
        seconds=1.0,
    )
    assert [n.name for n in result.errors] == ["fct_performance"]
    assert result.node("not_null_x").status == "fail"
    with pytest.raises(KeyError, match="dim_dates"):
        result.node("dim_dates")


def test_progress_lines_are_short_and_count_rows_only_for_written_relations() -> None:
    assert gold._line(node("fct_performance", rows=0)) == "gold  SUCCESS model     fct_performance (0.25s, 0 rows)"
    failing = NodeOutcome("not_null_x", "test", "fail", 0.5, None, "Got 3 results,\n configured to fail if != 0")
    assert (
        gold._line(failing) == "gold  FAIL    test      not_null_x (0.50s): Got 3 results, configured to fail if != 0"
    )
    view = gold._outcome("stg_silver__campaigns", "model", "success", 0.1, -1, "CREATE VIEW")
    assert view.rows_affected is None
    test = gold._outcome("unique_x", "test", "pass", 0.1, 1.0, None)
    assert test.rows_affected is None
