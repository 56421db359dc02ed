"""The loader under real faults: PostgreSQL crashing between staging and publish, a loader killed by SIGKILL.

The crash tests run their own embedded server (stopped with ``pg_ctl -m immediate``, as a power cut or an OOM kill
would, and started again), so the session's shared server is never disturbed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from lakehouse.adapters import loader
from lakehouse.adapters.loader import LoadError, TableLoad, load, load_many
from lakehouse.adapters.staging import STAGING_SCHEMA, sweep_stale_stages
from lakehouse.adapters.warehouse import connect
from lakehouse.contracts import Table
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings
from tests.integration.test_warehouse_loader import SMALL, fetch, small_df, table_rows

pytestmark = pytest.mark.integration

SCHEMA = "crash"
OTHER = Table("other", SMALL.columns, key=SMALL.key)


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[tuple[LocalPostgres, PostgresSettings]]:
    """A PostgreSQL server of this test alone, in ``tmp_path``."""
    server = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pg")
    with server as pg:
        yield server, pg


def _before_publish(monkeypatch: pytest.MonkeyPatch, fault: Callable[[], None]) -> None:
    """Run ``fault`` after every partition is staged, right before the loader publishes."""
    publish = loader._publish

    def fault_then_publish(*args: Any, **kwargs: Any) -> Any:
        fault()
        return publish(*args, **kwargs)

    monkeypatch.setattr(loader, "_publish", fault_then_publish)


def _crash_and_restart(server: LocalPostgres) -> None:
    """An immediate stop skips the shutdown checkpoint: the restart runs crash recovery, which empties every
    UNLOGGED table."""
    server._pg_ctl("stop", "-m", "immediate", "-w")
    server.start()


def _ledger(pg: PostgresSettings, schema: str, batch_id: str) -> list[tuple[Any, ...]]:
    """What the ledger says ``batch_id`` brought to the tables of ``schema``."""
    query = "select target, rows from ops.loaded_batches where starts_with(target, %s) and batch_id = %s order by 1"
    return fetch(pg, sql.SQL(query), f"{schema}.", batch_id)


def _staging_tables(pg: PostgresSettings) -> list[str]:
    query = sql.SQL("select tablename from pg_tables where schemaname = %s order by 1")
    return [r[0] for r in fetch(pg, query, STAGING_SCHEMA)]


def _visible_tables(pg: PostgresSettings, schema: str) -> list[str]:
    """What a reader of ``schema`` sees."""
    query = sql.SQL("select table_name from information_schema.tables where table_schema = %s order by 1")
    return [r[0] for r in fetch(pg, query, schema)]


def test_a_crash_between_staging_and_publish_loses_no_appended_batch(
    spark: Any, crashable: tuple[LocalPostgres, PostgresSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, pg = crashable
    _before_publish(monkeypatch, lambda: _crash_and_restart(server))

    with pytest.raises(LoadError, match=f"publishing {SCHEMA}.small"):
        load(small_df(spark, range(1000)), pg, SMALL, schema=SCHEMA, mode="append", batch_id="b1")

    assert _visible_tables(pg, SCHEMA) == []  # a first load that failed shows readers no table at all
    assert _ledger(pg, SCHEMA, "b1") == []  # so the caller's re-run loads the batch again instead of skipping it
    monkeypatch.undo()
    result = load(small_df(spark, range(1000)), pg, SMALL, schema=SCHEMA, mode="append", batch_id="b1")
    assert result.rows == 1000
    assert fetch(pg, sql.SQL("select count(*), count(distinct id) from crash.small")) == [(1000, 1000)]
    assert _ledger(pg, SCHEMA, "b1") == [("crash.small", 1000)]
    assert _staging_tables(pg) == []  # the crashed load's leftovers were swept


def test_a_crash_between_staging_and_publish_keeps_the_replaced_content(
    spark: Any, crashable: tuple[LocalPostgres, PostgresSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, pg = crashable
    load(small_df(spark, range(10), "old"), pg, SMALL, schema=SCHEMA, mode="replace")
    before = table_rows(pg, SCHEMA, "small")
    _before_publish(monkeypatch, lambda: _crash_and_restart(server))

    with pytest.raises(LoadError, match=f"publishing {SCHEMA}.small"):
        load(small_df(spark, range(1000), "new"), pg, SMALL, schema=SCHEMA, mode="replace")

    assert table_rows(pg, SCHEMA, "small") == before
    monkeypatch.undo()
    load(small_df(spark, range(1000), "new"), pg, SMALL, schema=SCHEMA, mode="replace")
    assert table_rows(pg, SCHEMA, "small") == [(i, f"new-{i}") for i in range(1000)]


def test_a_publish_missing_staged_rows_is_refused_for_every_table(
    spark: Any, pg_service: PostgresSettings, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What crash recovery does to an UNLOGGED staging table, done by hand: the second table's staged rows are emptied
    between staging and publish. No table of the load changes, and the ledger does not record the batch."""
    first = [TableLoad(small_df(spark, range(10)), table, pg_schema) for table in (SMALL, OTHER)]
    load_many(first, pg_service, mode="append", batch_id="b0")
    before = [table_rows(pg_service, pg_schema, t) for t in ("small", "other")]

    def empty_one_stage() -> None:
        with contextlib.closing(connect(pg_service, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute("select tablename from pg_tables where schemaname = %s", (STAGING_SCHEMA,))
            [stage] = [name for (name,) in cur.fetchall() if pg_schema in name and name.endswith("other_rows")]
            cur.execute(sql.SQL("truncate {}").format(sql.Identifier(STAGING_SCHEMA, stage)))

    _before_publish(monkeypatch, empty_one_stage)
    second = [TableLoad(small_df(spark, range(100, 1100)), table, pg_schema) for table in (SMALL, OTHER)]
    with pytest.raises(LoadError) as failure:
        load_many(second, pg_service, mode="append", batch_id="b1")

    message = str(failure.value)
    assert message.startswith(f"publishing {pg_schema}.other refused")
    numbers = re.search(r"Spark produced (\d+) rows, the staging table holds (\d+), the publish wrote (\d+)", message)
    assert numbers is not None, message
    produced, held, inserted = map(int, numbers.groups())
    assert (produced, held, inserted) == (1000, 0, 0)
    assert [table_rows(pg_service, pg_schema, t) for t in ("small", "other")] == before
    assert _ledger(pg_service, pg_schema, "b1") == []


_KILLED_LOADER = """
import pathlib, sys, time

from lakehouse.adapters.loader import load
from lakehouse.adapters.spark import build_spark
from lakehouse.contracts import Column, Table
from lakehouse.settings import load_settings

markers, schema = pathlib.Path(sys.argv[1]), sys.argv[2]
settings = load_settings(dotenv_path=None)
spark = build_spark(settings, app_name="killed-loader")


def hang_after_staging(partition: int, attempt: int) -> None:
    (markers / f"staged-{partition}").touch()
    time.sleep(600)


table = Table("small", (Column("id", "bigint"), Column("name", "string", required=True)), key=("id",))
df = spark.createDataFrame([(i, f"v-{i}") for i in range(1000)], table.spark_schema()).repartition(2)
load(df, settings.postgres, table, schema=schema, mode="replace", after_partition_commit=hang_after_staging)
"""


def _wait_for(condition: Callable[[], bool], what: str, *, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _other_sessions(pg: PostgresSettings) -> int:
    query = sql.SQL(
        "select count(*) from pg_stat_activity"
        " where datname = %s and backend_type = 'client backend' and pid <> pg_backend_pid()"
    )
    return int(fetch(pg, query, pg.database)[0][0])


def test_a_killed_load_leaves_no_staging_table_for_readers_or_for_good(
    spark: Any, pg_database: PostgresSettings, tmp_path: Path
) -> None:
    script, markers, log = tmp_path / "killed_loader.py", tmp_path / "markers", tmp_path / "killed_loader.log"
    script.write_text(_KILLED_LOADER)
    markers.mkdir()
    env = os.environ | pg_database.libpq_env() | {"LAKEHOUSE_DATA_DIR": str(tmp_path / "data")}
    env |= {"LAKEHOUSE_SPARK_MASTER": "local[2]", "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g"}
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(script), str(markers), "published"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Spark's JVM and workers are cleaned up with it
        )
    try:
        _wait_for(lambda: child.poll() is not None or len(list(markers.iterdir())) == 2, "both partitions to be staged")
        assert child.poll() is None, f"the loader exited early:\n{log.read_text()[-3000:]}"
        assert _visible_tables(pg_database, "published") == []  # no target before its first publish, no stage
        staged = _staging_tables(pg_database)
        assert sorted(name.rsplit("_", 1)[1] for name in staged) == ["claims", "rows"]  # one table's stage
        assert sweep_stale_stages(pg_database) == []  # the load is alive: its staging tables are kept
        assert _staging_tables(pg_database) == staged

        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        _wait_for(lambda: _other_sessions(pg_database) == 0, "PostgreSQL to close the killed loader's session")
        assert _visible_tables(pg_database, "published") == []
        assert _staging_tables(pg_database) == staged  # nothing removed them yet

        load(small_df(spark, range(5)), pg_database, SMALL, schema="published", mode="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    assert _staging_tables(pg_database) == []
    assert len(table_rows(pg_database, "published", "small")) == 5


def test_staging_tables_left_in_a_published_schema_by_earlier_versions_are_swept(pg_service: PostgresSettings) -> None:
    conn = connect(pg_service, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("create schema if not exists legacy_published")
            cur.execute("create table legacy_published._lh_stage_advertisers_0a1b2c3d4e_p0 (x int)")
            cur.execute("create table legacy_published.keep_me (x int)")
    finally:
        conn.close()

    sweep_stale_stages(pg_service)

    assert _visible_tables(pg_service, "legacy_published") == ["keep_me"]


def test_a_first_load_shows_readers_no_table_until_it_is_published_whole(
    spark: Any, pg_service: PostgresSettings, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_before_publish: list[list[str]] = []
    _before_publish(monkeypatch, lambda: seen_before_publish.append(_visible_tables(pg_service, pg_schema)))

    load(small_df(spark, range(50)), pg_service, SMALL, schema=pg_schema, mode="append", batch_id="b1")

    assert seen_before_publish == [[]], "an empty target table was visible before the first publish"
    assert len(table_rows(pg_service, pg_schema, SMALL.name)) == 50
