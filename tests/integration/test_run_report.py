"""The HTML run report as a person sees it: a real run (bronze -> silver -> gold on a small sample, with Soda and
dbt), its report opened in headless Chromium with the network refused, the figures on the page checked against
``ops``; then a failed gold run, its one-sentence headline and its alert delivered to a local HTTP server; then the
dbt docs served by ``runner.py docs``.

The module is a story on one database, in file order. Screenshots are kept in the test's temporary folder (their
paths are printed) for a person to look at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from lakehouse.adapters.warehouse import connect
from lakehouse.bronze.landing import discover
from lakehouse.contracts import LAYERS
from lakehouse.sample import generate
from lakehouse.settings import PostgresSettings, Settings, load_settings
from lakehouse.steps import RunOutcome, run_layers
from tests.browser import look

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def query(pg: PostgresSettings, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:  # committed on leaving
        cur.execute(text, params)
        return cur.fetchall() if cur.description else []


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - the test server's one inbox

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def warehouse(pg_service: PostgresSettings) -> Iterator[PostgresSettings]:
    name = f"report_{uuid.uuid4().hex[:12]}"
    admin = dataclasses.replace(pg_service, database="postgres")
    query_autocommit(admin, sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield dataclasses.replace(pg_service, database=name)
    finally:
        query_autocommit(admin, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def query_autocommit(pg: PostgresSettings, statement: sql.Composable) -> None:
    with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(statement)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, webhook: str) -> Settings:
    data = tmp_path_factory.mktemp("report_data")
    return load_settings(
        {
            "LAKEHOUSE_DATA_DIR": str(data),
            "LAKEHOUSE_ALERT_WEBHOOK": webhook,
            "LAKEHOUSE_ALERT_COMMAND": f'{sys.executable} -c "import sys, pathlib; '
            f"pathlib.Path(r'{data / 'alert.json'}').write_bytes(sys.stdin.buffer.read())\"",
        },
        dotenv_path=None,
    )


@pytest.fixture(scope="module")
def clean_run(spark: Any, settings: Settings, warehouse: PostgresSettings) -> RunOutcome:
    landing = settings.data_dir / "landing"
    generate(landing, scale=0.01, seed=11, dirty_rate=0.02)
    files, _ = discover(landing)
    return run_layers(settings, warehouse, layers=LAYERS, spark=spark, files=files)


def test_a_clean_run_report_shows_what_ops_recorded(
    clean_run: RunOutcome, settings: Settings, warehouse: PostgresSettings, tmp_path: Path
) -> None:
    assert clean_run.status == "succeeded", clean_run.gate_failures
    assert clean_run.report == settings.reports_dir / f"{clean_run.run_id}.html"
    assert (settings.reports_dir / "latest.html").read_text() == clean_run.report.read_text()
    screenshot = tmp_path / "clean-run.png"

    seen = look(
        clean_run.report.as_uri(),
        screenshot,
        texts=("#checks-failed", "#kpi-spend", "#kpi-revenue", "#kpi-roas", "header"),
        tables=("#funnel-table", "#checks-table"),
    )
    print(f"\nscreenshot of a clean run's report: {screenshot}")

    assert seen.refused == []  # offline: nothing but the file itself was requested
    assert seen.console_errors == []
    assert len(seen.drawings) >= 8  # funnel, quarantine, timings, storage, four trends
    assert all(width > 100 and height > 100 for _, width, height in seen.drawings), seen.drawings
    assert "What failed first" not in seen.text["header"]
    silver = query(
        warehouse,
        "select table_name, rows_in, rows_out, quarantined, duplicates, superseded from ops.layer_loads"
        " where run_id = %s and layer = 'silver' order by recorded_at, layer",
        clean_run.run_id,
    )
    assert [[r[0], *(f"{v:,}" for v in r[1:])] for r in silver] == seen.rows["#funnel-table"]
    checks = query(
        warehouse, "select source, outcome, count(*) from ops.quality_results where run_id = %s group by 1, 2",
        clean_run.run_id,
    )  # fmt: skip
    shown = [(row[2], row[0]) for row in seen.rows["#checks-table"] if len(row) == 7]  # not the "passed" fold
    assert sorted((s, o, n) for s, o, n in checks) == sorted((s, o, shown.count((s, o))) for s, o in set(shown))
    assert dict(((s, o), n) for s, o, n in checks)[("dbt", "pass")] >= 160  # every dbt test, beside Soda's
    assert seen.text["#checks-failed"] == "0"
    ((spend, revenue),) = query(warehouse, "select sum(cost), sum(revenue) from analytics.campaign_performance_summary")
    assert seen.text["#kpi-spend"] == f"{spend:,.2f}"
    assert seen.text["#kpi-revenue"] == f"{revenue:,.2f}"
    assert seen.text["#kpi-roas"] == f"{revenue / spend:.2f}"
    warned = sum(n for s, o, n in checks if o == "warn")
    assert (len(Hook.received) > 0) == (warned > 0)  # a clean run alerts only when something warned


def test_a_failed_run_says_what_failed_first_and_alerts(
    clean_run: RunOutcome, settings: Settings, warehouse: PostgresSettings, tmp_path: Path
) -> None:
    Hook.received.clear()
    # Changed in place without a new ingestion time: fct_performance goes stale and its reconciliation test fails.
    query(warehouse, "update silver.performance set cost = cost + 1 where performance_id = "
                     "(select min(performance_id) from silver.performance)")  # fmt: skip

    failed = run_layers(settings, warehouse, layers=("gold",), spark=None)

    assert failed.status == "failed"
    assert failed.failed_tests == ("assert_fct_performance_rows_match_silver",)
    assert failed.report is not None
    screenshot = tmp_path / "failed-run.png"
    seen = look(failed.report.as_uri(), screenshot, texts=("#first-failure", "#checks-failed"))
    print(f"\nscreenshot of a failed run's report: {screenshot}")
    assert seen.refused == []
    assert seen.console_errors == []
    assert seen.text["#first-failure"] == (
        "What failed first: The dbt test “assert_fct_performance_rows_match_silver” on fct_performance "
        "failed with 1 failing row."
    )
    assert seen.text["#checks-failed"] == "1"
    # The alert: POSTed to the webhook and given to the command, with the run, its failure and the report.
    (payload,) = Hook.received
    assert payload["run_id"] == failed.run_id
    assert payload["status"] == "failed"
    assert payload["failing_checks"] == [
        {"layer": "gold", "source": "dbt", "check": "assert_fct_performance_rows_match_silver"}
    ]
    assert payload["report"] == str(failed.report)
    assert json.loads((settings.data_dir / "alert.json").read_text()) == payload
    # the trends now hold both runs
    assert query(warehouse, "select count(*) from ops.pipeline_runs")[0][0] == 2
    value = query(
        warehouse,
        "select value from ops.quality_results where run_id = %s and outcome = 'fail' and source = 'dbt'",
        failed.run_id,
    )
    assert value == [(1.0,)]
    assert Decimal(1) == Decimal(int(value[0][0]))


def runner_env(warehouse: PostgresSettings, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEHOUSE_"))}
    env |= {"PGHOST": warehouse.host, "PGPORT": str(warehouse.port), "PGUSER": warehouse.user}
    env |= {"PGDATABASE": warehouse.database, "LAKEHOUSE_DATA_DIR": str(data_dir)}
    if warehouse.password is not None:
        env["PGPASSWORD"] = warehouse.password.reveal()
    return env


def test_runner_report_rewrites_a_recorded_runs_report(
    clean_run: RunOutcome, warehouse: PostgresSettings, tmp_path: Path
) -> None:
    env = runner_env(warehouse, tmp_path / "data")
    args = [sys.executable, str(ROOT / "runner.py"), "report", "--run", clean_run.run_id]

    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=300)

    assert proc.returncode == 0, proc.stderr[-2000:]
    path = tmp_path / "data" / "reports" / f"{clean_run.run_id}.html"
    assert proc.stdout.strip() == f"report: {path}"
    assert f"Run {clean_run.run_id}: succeeded" in path.read_text()
    assert not (tmp_path / "data" / "reports" / "latest.html").exists()  # an older run is not the latest


def test_runner_docs_serves_the_dbt_docs_on_loopback(
    clean_run: RunOutcome, warehouse: PostgresSettings, tmp_path: Path
) -> None:
    env = runner_env(warehouse, tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), "docs", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # "dbt docs: <file>", then "serving the dbt docs on http://127.0.0.1:N/ ..."
            if line.startswith("serving"):
                url = line.split(" on ", 1)[1].split()[0]
                break
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        screenshot = tmp_path / "dbt-docs.png"
        model = f"{url}#!/model/model.lakehouse.fct_performance"
        seen = look(model, screenshot, texts=("body",), allow=url.rstrip("/"))
        print(f"\nscreenshot of the dbt docs: {screenshot}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert seen.refused == []
    assert seen.console_errors == []
    assert any(width > 0 and height > 0 for _, width, height in seen.drawings)  # dbt's logo and icons drew
    body = seen.text["body"]
    assert f"{warehouse.database}.core.fct_performance" in body  # the catalog of this warehouse, read offline
    assert "performance_id" in body
    assert "dim_campaigns" in body  # the project tree
