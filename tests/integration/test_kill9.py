"""kill -9 anywhere: a runner's whole process group (JVM and embedded PostgreSQL included) is SIGKILLed at random
moments spread over bronze, silver and gold; the next run converges to exactly what a clean run builds.

While the killed runs go on, a reader polls every published table: it only ever sees a table absent or complete
(the row count of the clean run). The embedded server is shared with the test, so it outlives the killed runners;
a PostgreSQL crash between staging and publish is tested on its own (tests/integration/test_loader_faults.py).
After the final run, every table's order-independent checksum over its
non-volatile columns equals the clean run's, and no staging table is left anywhere.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from lakehouse.sample import generate
from lakehouse.services import free_port, provide
from lakehouse.settings import PostgresSettings, load_settings
from tests.databases import table_checksums

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
