"""The runner against broken situations: a quality gate failing between layers, and services that are down."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse.adapters.warehouse import connect
from lakehouse.sample import generate
from lakehouse.services import free_port
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-never-printed"


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: int = 900
) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args],
        capture_output=True,
        text=True,
        env=base | {"LAKEHOUSE_SPARK_MASTER": "local[2]"} | env,
        cwd=cwd,
        check=False,
        timeout=timeout,
    )
    return proc, time.monotonic() - started


def test_a_silver_table_altered_behind_the_pipeline_fails_its_gate_and_stops_gold(tmp_path: Path) -> None:
    """A trigger changes rows as silver is published (something silver's own rules cannot see): the silver
    scan fails, gold is not built, the exit code is 6 and ops.quality_results records the failed check."""
    port = free_port()
    env = {"LAKEHOUSE_DATA_DIR": str(tmp_path / "data"), "LAKEHOUSE_EMBEDDED_PG_PORT": str(port)}
    generate(tmp_path / "landing", scale=0.03, seed=3, dirty_rate=0.02)
    started, _ = _run(["db", "start"], env, tmp_path)
    assert started.returncode == 0, started.stderr
    server = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "data" / "postgres")
    pg = PostgresSettings("127.0.0.1", port, "postgres", "campaign_analytics", server.superuser_password())
    try:
        first, _ = _run(["run", "--input", str(tmp_path / "landing")], env, tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(
                "create function tamper() returns trigger language plpgsql as $$"
                " begin if new.performance_id % 50 = 0 then new.cost := -1; end if; return new; end $$;"
                " create trigger tamper before insert on silver.performance for each row execute function tamper()"
            )

        # --full-refresh: with no new bronze batch silver would not be re-published at all (nothing to alter)
        second, _ = _run(["run", "--full-refresh", "--input", str(tmp_path / "landing")], env, tmp_path)

        assert second.returncode == 6, second.stderr[-3000:]
        assert "quality gate failed" in second.stderr
        assert "silver.performance" in second.stderr
        assert "cost" in second.stderr
        assert not any(line.startswith("gold") for line in second.stdout.splitlines())
        with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
            cur.execute(
                "select r.layer, r.outcome, p.status from ops.quality_results r join ops.pipeline_runs p using (run_id)"
                " where p.started_at = (select max(started_at) from ops.pipeline_runs) and r.outcome = 'fail'"
            )
            failures = cur.fetchall()
        assert failures
        assert {(layer, outcome, status) for layer, outcome, status in failures} == {("silver", "fail", "failed")}
    finally:
        _run(["db", "stop"], env, tmp_path)


def test_postgres_down_fails_fast_naming_the_endpoint_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": "dbt_user",
        "PGPASSWORD": SECRET,
    }
    for command in (["check"], ["run"]):
        proc, seconds = _run(command, env, tmp_path, timeout=120)

        assert proc.returncode == 4, (command, proc.stderr[-2000:])
        assert seconds < 60
        assert f"PostgreSQL is not available at postgresql://dbt_user@127.0.0.1:{port}/dbt_user" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert SECRET not in proc.stdout + proc.stderr


def test_minio_down_fails_fast_naming_the_endpoint_without_the_secret(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port()),
        "LAKEHOUSE_LAKE_URI": "s3a://",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "minioadmin",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "advertisers.csv").write_text(
        "advertiser_id,advertiser_name,industry,country,account_manager\n"
    )
    for command in (["check"], ["run", "--input", str(tmp_path / "landing")]):
        proc, seconds = _run(command, env, tmp_path, timeout=180)

        output = proc.stdout + proc.stderr
        assert proc.returncode == 4, (command, output[-2000:])
        assert seconds < 60, command
        assert f"http://127.0.0.1:{port}" in output
        assert "Traceback" not in proc.stderr
        assert SECRET not in output
