"""Real PostgreSQL servers: the test service, and both local-process providers (embedded wheel, system install)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from lakehouse.errors import ServiceUnavailableError
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings

pytestmark = pytest.mark.integration

ROWS = [
    (1, "Search – brand", Decimal("12.50"), dt.date(2024, 2, 9)),
    (2, 'quote " and, comma\nnewline 📈', Decimal("0.00"), None),
    (3, None, None, dt.date(1999, 12, 31)),
]


def _round_trip(pg: PostgresSettings, schema: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(**pg.connect_kwargs())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
            table = sql.Identifier(schema, "campaigns")
            cur.execute(
                sql.SQL(
                    "create table {} (campaign_id integer primary key, name text, budget numeric(12,2), day date)"
                ).format(table)
            )
            cur.executemany(sql.SQL("insert into {} values (%s, %s, %s, %s)").format(table), ROWS)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("select * from {} order by campaign_id").format(table))
            return cur.fetchall()
    finally:
        conn.close()


def test_round_trip_on_the_test_service(pg_service: PostgresSettings, pg_schema: str) -> None:
    assert _round_trip(pg_service, pg_schema) == ROWS


def _binaries(provider: str) -> PostgresBinaries:
    try:
        return PostgresBinaries.embedded() if provider == "embedded" else PostgresBinaries.system()
    except ServiceUnavailableError as exc:
        from tests.conftest import unavailable

        unavailable(str(exc))
        raise


@pytest.mark.parametrize("provider", ["embedded", "system"])
def test_local_process_providers_start_round_trip_and_stop(tmp_path: Path, provider: str) -> None:
    server = LocalPostgres(_binaries(provider), tmp_path / "pgdata")

    with server as pg:
        assert pg.embedded
        assert pg.host == "127.0.0.1"
        assert _round_trip(pg, "roundtrip") == ROWS

    assert not server.started_here
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**pg.connect_kwargs()).close()


def test_a_running_server_is_reused_and_left_running(tmp_path: Path) -> None:
    owner = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pgdata")
    first = owner.start()
    try:
        second_handle = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pgdata")
        with second_handle as again:
            assert again.port == first.port
        assert not second_handle.started_here
        psycopg2.connect(**first.connect_kwargs()).close()  # still up: the second handle did not own it
    finally:
        owner.stop()
