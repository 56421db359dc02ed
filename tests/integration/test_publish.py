"""Publishing audited candidates to real PostgreSQL: readers never see an empty or partial table, a REPEATABLE READ
snapshot included, and a publish blocked by a lock gives up after ``lock_timeout``, retries, and fails clearly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ, connection

from lakehouse.adapters.publish import (
    PublishPolicy,
    PublishTimeoutError,
    candidate_schema,
    drop_candidates,
    publish_candidates,
)
from lakehouse.adapters.warehouse import connect, create_table_sql
from lakehouse.contracts import Column, Table
from lakehouse.settings import PostgresSettings

pytestmark = pytest.mark.integration
FIRST = Table("first", (Column("id", "bigint"), Column("name", "string", required=True)), key=("id",))
SECOND = Table("second", (Column("id", "bigint"), Column("name", "string", required=True)), key=("id",))
TABLES = [("silver", FIRST), ("silver", SECOND)]
FAST = PublishPolicy(lock_timeout_ms=200, attempts=3, backoff_s=0.05)


def _candidates(pg: PostgresSettings, rows: int, name: str) -> None:
    """Candidates of both tables holding ``rows`` rows named ``name``."""
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        for schema, table in TABLES:
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(candidate_schema(schema))))
            cur.execute(create_table_sql(candidate_schema(schema), table))
            cur.execute(sql.SQL("delete from {}").format(sql.Identifier(candidate_schema(schema), table.name)))
            cur.execute(
                sql.SQL("insert into {} select i, %s from generate_series(1, %s) i").format(
                    sql.Identifier(candidate_schema(schema), table.name)
                ),
                (name, rows),
            )


def _contents(cur: psycopg2.extensions.cursor, table: Table) -> tuple[int, set[str]]:
    cur.execute(
        sql.SQL("select count(*), array_agg(distinct name) from {}").format(sql.Identifier("silver", table.name))
    )
    count, names = cur.fetchone() or (0, None)
    return int(count), set(names or ())


@pytest.fixture
def published(pg_database: PostgresSettings) -> Iterator[PostgresSettings]:
    """Both tables published with 5 rows named ``old``; candidates of 7 rows named ``new`` waiting."""
    _candidates(pg_database, 5, "old")
    publish_candidates(pg_database, TABLES, policy=FAST)
    _candidates(pg_database, 7, "new")
    yield pg_database
    drop_candidates(pg_database, ["silver"])


@contextlib.contextmanager
def _reader(pg: PostgresSettings, isolation: int | None = None) -> Iterator[connection]:
    conn = connect(pg)
    if isolation is not None:
        conn.set_isolation_level(isolation)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_a_repeatable_read_snapshot_taken_before_a_publish_sees_every_old_row(published: PostgresSettings) -> None:
    rr = ISOLATION_LEVEL_REPEATABLE_READ
    with _reader(published, rr) as early, early.cursor() as before, _reader(published, rr) as reading:
        before.execute("select 1")  # the snapshot is taken before the publish; no published table touched yet
        with reading.cursor() as cur:
            assert _contents(cur, SECOND) == (5, {"old"})  # a reader inside a published table does not block

        counts = publish_candidates(published, TABLES, policy=FAST)

        assert counts == {"silver.first": 7, "silver.second": 7}
        # A truncate (or a table renamed into place) shows the early snapshot empty tables.
        assert _contents(before, FIRST) == _contents(before, SECOND) == (5, {"old"})
        with reading.cursor() as cur:
            assert _contents(cur, FIRST) == _contents(cur, SECOND) == (5, {"old"})
    with _reader(published) as fresh, fresh.cursor() as cur:
        assert _contents(cur, FIRST) == _contents(cur, SECOND) == (7, {"new"})


def test_a_publish_blocked_by_a_lock_gives_up_after_its_attempts_and_changes_nothing(
    published: PostgresSettings,
) -> None:
    slept: list[float] = []
    with _reader(published) as holder, holder.cursor() as cur:
        cur.execute("lock table silver.second in share mode")  # e.g. a reader that wants a stable table

        with pytest.raises(PublishTimeoutError) as error:
            publish_candidates(published, TABLES, policy=FAST, sleep=slept.append)

        message = str(error.value)
        assert "gave up after 3 attempts" in message
        assert "each waited 200 ms (LAKEHOUSE_LOCK_TIMEOUT_MS) for a lock on silver.second" in message
        assert "nothing was published" in message
        assert slept == [0.05, 0.1]  # exponential backoff between the attempts
    with _reader(published) as fresh, fresh.cursor() as cur:
        assert _contents(cur, FIRST) == _contents(cur, SECOND) == (5, {"old"})  # FIRST's delete was rolled back


def test_a_publish_retries_until_the_blocking_reader_leaves(published: PostgresSettings) -> None:
    with _reader(published) as holder:
        with holder.cursor() as cur:
            cur.execute("select * from silver.first for share")  # row locks: the delete must wait for them

        counts = publish_candidates(published, TABLES, policy=FAST, sleep=lambda _: holder.rollback())

    assert counts == {"silver.first": 7, "silver.second": 7}
    with _reader(published) as fresh, fresh.cursor() as cur:
        assert _contents(cur, FIRST) == _contents(cur, SECOND) == (7, {"new"})
