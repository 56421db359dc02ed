"""kill -9 anywhere: a runner's whole process group (JVM and embedded PostgreSQL included) is SIGKILLed at random
moments spread over bronze, silver and gold; the next run converges to exactly what a clean run builds.

While the killed runs go on, a reader polls every published table: it only ever sees a table absent or complete
(the row count of the clean run). The embedded server is shared with the test, so it outlives the killed runners;
a PostgreSQL crash between staging and publish is tested on its own (tests/integration/test_loader_faults.py).
After the final run, every table's order-independent checksum over its
non-volatile columns equals the clean run's, and no staging table is left anywhere.

Random moments rarely fall in the narrow window of an incremental silver run between its PostgreSQL publish and
its lake commits (the two stores then disagree), so a second test kills a run there on purpose.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from lakehouse.bronze.landing import discover
from lakehouse.contracts import TABLES
from lakehouse.sample import generate
from lakehouse.services import free_port, provide
from lakehouse.settings import PostgresSettings, Settings, load_settings
from lakehouse.steps import run_layers
from tests.databases import table_checksums
from tests.stores import lake_rows, reconciliation

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ("bronze", "silver", "quarantine", "core", "analytics")
KILLS = 3


def _env(data_dir: Path, port: int) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    return base | {
        "LAKEHOUSE_DATA_DIR": str(data_dir),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(port),
    }


def _run(env: dict[str, str], landing: Path, *, kill_after: float | None = None) -> tuple[int, float, str]:
    """One ``runner.py run`` in its own process group; SIGKILL the whole group after ``kill_after`` seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), "run", "--input", str(landing)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else 900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return proc.returncode, time.monotonic() - started, err


def _connect(pg: PostgresSettings) -> Any:
    return psycopg2.connect(**(pg.connect_kwargs() | {"connect_timeout": 2}))


def _tables(cur: Any) -> list[tuple[str, str]]:
    cur.execute(
        "select table_schema, table_name from information_schema.tables where table_schema = any(%s)"
        " and table_type = 'BASE TABLE' order by 1, 2",
        (list(SCHEMAS),),
    )
    return [(r[0], r[1]) for r in cur.fetchall()]


def _checksums(pg: PostgresSettings) -> dict[str, tuple[int, str]]:
    return table_checksums(pg, SCHEMAS)


class Reader(threading.Thread):
    """Polls the row count of every published table (READ COMMITTED, a statement at a time); records what it saw."""

    def __init__(self, pg: PostgresSettings) -> None:
        super().__init__(daemon=True)
        self.pg, self.seen, self.stop = pg, dict[str, set[int]](), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with _connect(self.pg) as conn, conn.cursor() as cur:
                    for schema, table in _tables(cur):
                        if table.startswith("_"):
                            continue
                        cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table)))
                        self.seen.setdefault(f"{schema}.{table}", set()).add(int(cur.fetchone()[0]))
                conn.close()
            except psycopg2.Error:
                pass  # the server was killed with the runner, or is starting: nothing to read
            self.stop.wait(0.3)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    generate(tmp_path / "landing", scale=0.05, seed=7, dirty_rate=0.02)
    return tmp_path / "landing"


def test_kill_9_at_random_moments_then_a_rerun_converges_to_a_clean_run(tmp_path: Path, landing: Path) -> None:
    clean_env = _env(tmp_path / "clean", free_port())
    code, clean_seconds, err = _run(clean_env, landing)
    assert code == 0, err[-3000:]
    with provide.postgres(load_settings(clean_env, dotenv_path=None)) as pg:
        expected = _checksums(pg)

    env = _env(tmp_path / "killed", free_port())
    rng = random.Random(os.environ.get("LAKEHOUSE_KILL_SEED", str(time.time_ns())))
    moments = sorted(rng.uniform(0.15, 0.95) * clean_seconds for _ in range(KILLS))
    # The test shares the embedded server with the runners, so it survives their deaths and a reader can watch.
    with provide.postgres(load_settings(env, dotenv_path=None)) as pg:
        reader = Reader(pg)
        reader.start()
        for moment in moments:
            _run(env, landing, kill_after=moment)
        code, _, err = _run(env, landing)
        reader.stop.set()
        reader.join()
        assert code == 0, f"kill moments {moments}: {err[-3000:]}"
        got = _checksums(pg)
        with _connect(pg) as conn, conn.cursor() as cur:
            cur.execute(
                "select schemaname || '.' || tablename from pg_tables"  # a loader's staging tables, anywhere
                " where tablename like '%%lh\\_stage%%' or schemaname = '_lakehouse_staging'"
            )
            leftovers = [r[0] for r in cur.fetchall()]
        conn.close()

    assert got == expected, f"kill moments {moments} (clean run {clean_seconds:.0f}s)"
    assert leftovers == [], leftovers
    partial = {t: sorted(counts - {expected[t][0]}) for t, counts in reader.seen.items() if t in expected}
    assert {t: c for t, c in partial.items() if c} == {}, f"a reader saw a partial table (kill moments {moments})"
    assert len(reader.seen) >= len(expected) - 2, "the reader watched the tables"


def _runner(env: dict[str, str], *arguments: str, output: Path) -> subprocess.Popen[bytes]:
    """``runner.py ARGUMENTS`` in its own process group, its standard output and error in files named after
    ``output`` (files, not pipes: nobody reads a pipe while the test waits, and a full one would stall the run)."""
    with output.with_suffix(".out").open("wb") as out, output.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), *arguments],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )


def _completes(env: dict[str, str], *arguments: str, output: Path) -> str:
    """Run ``runner.py ARGUMENTS`` to its end; its summary (standard output)."""
    code = _runner(env, *arguments, output=output).wait(timeout=900)
    err = output.with_suffix(".err").read_text(encoding="utf-8", errors="replace")
    assert code == 0, f"runner.py {' '.join(arguments)}: {err[-3000:]}"
    return output.with_suffix(".out").read_text(encoding="utf-8", errors="replace")


def test_kill_9_between_the_postgres_publish_and_the_lake_commits_of_an_incremental_silver_run(
    tmp_path: Path, spark: Any
) -> None:
    """An incremental silver run publishes to PostgreSQL, then commits the lake. SIGKILLed in between (PostgreSQL
    holds the new silver, the lake the old), the next run still converges: both stores equal a full rebuild of the
    same bronze, and so does the reconciliation."""
    from lakehouse.adapters import lake
    from lakehouse.adapters.lake_upkeep import last_writer

    generate(tmp_path / "first", scale=0.02, seed=11, dirty_rate=0.02)
    generate(tmp_path / "second", scale=0.005, seed=12, dirty_rate=0.05)  # the same keys again, other values
    env = _env(tmp_path / "data", free_port())
    settings = load_settings(env, dotenv_path=None)
    with provide.warehouse(settings) as roles:
        pg = roles.loader

        def steps(layers: tuple[str, ...], landing: Path | None = None, *, full_refresh: bool = False) -> None:
            """Steps run in this process, on the test's SparkSession."""
            files = discover(landing)[0] if landing else []
            outcome = run_layers(settings, roles, layers=layers, spark=spark, files=files, maintain=False,
                                 full_refresh=full_refresh, log_line=lambda _: None)  # fmt: skip
            assert outcome.status == "succeeded", outcome.notes

        steps(("bronze", "silver"), tmp_path / "first")
        steps(("bronze",), tmp_path / "second")
        with _connect(pg) as conn, conn.cursor() as cur:
            cur.execute("select array_agg(distinct _batch_id) from silver.performance")
            published_batches = list(cur.fetchone()[0])
        conn.close()

        proc = _runner(env, "silver", output=tmp_path / "killed")
        watcher = _connect(pg)
        watcher.autocommit = True
        deadline = time.monotonic() + 600
        try:
            with watcher.cursor() as cur:
                while proc.poll() is None and time.monotonic() < deadline:
                    # The new batch's rows in PostgreSQL's silver: the run's one publish transaction committed.
                    cur.execute(
                        "select exists (select 1 from silver.performance where _batch_id <> all(%s))",
                        (published_batches,),
                    )
                    if cur.fetchone()[0]:
                        os.killpg(proc.pid, signal.SIGKILL)
                        break
                    time.sleep(0.02)
        finally:
            watcher.close()
        code = proc.wait(timeout=60)
        err = (tmp_path / "killed.err").read_text(encoding="utf-8", errors="replace")
        assert code == -signal.SIGKILL, f"the run was not killed after its publish: {err[-3000:]}"
        with _connect(pg) as conn, conn.cursor() as cur:
            cur.execute("select run_id from ops.pipeline_runs order by started_at desc limit 1")
            killed = cur.fetchone()[0]
        conn.close()
        writers = {
            f"{layer}/{table}": last_writer(spark, lake.table_uri(settings, layer, table))
            for layer in ("silver", "quarantine")
            for table in TABLES
        }
        assert killed not in writers.values(), f"the kill came after a lake commit of run {killed}: {writers}"

        # The operator's next run: the killed run's locks are free again, and it builds on the lake's last publish.
        summary = _completes(env, "silver", output=tmp_path / "rerun")
        assert "silver: incremental on run" in summary, f"the next run was not incremental: {summary}"
        assert f"run {killed} was still recorded as running" in summary, summary
        with _connect(pg) as conn, conn.cursor() as cur:
            cur.execute("select status, ended_at is not null from ops.pipeline_runs where run_id = %s", (killed,))
            assert cur.fetchone() == ("failed", True), "the killed run is not recorded as failed"
        conn.close()
        after_rerun = (_checksums_of(pg), _lake_rows(spark, settings), reconciliation(pg))
        steps(("silver",), full_refresh=True)
        rebuilt = (_checksums_of(pg), _lake_rows(spark, settings), reconciliation(pg))

    assert after_rerun[0] == rebuilt[0], "PostgreSQL's silver and quarantine differ from a full rebuild"
    assert after_rerun[1] == rebuilt[1], "the lake's silver and quarantine differ from a full rebuild"
    assert after_rerun[2] == rebuilt[2], "the reconciliation differs from a full rebuild's"


def _lake_rows(spark: Any, settings: Settings) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every silver and quarantine Delta table's rows, but the time of the run that wrote each."""
    layers = ("silver", "quarantine")
    return {f"{layer}/{table}": lake_rows(spark, settings, layer, table) for layer in layers for table in TABLES}


def _checksums_of(pg: PostgresSettings) -> dict[str, tuple[int, str]]:
    return table_checksums(pg, ("silver", "quarantine"))
