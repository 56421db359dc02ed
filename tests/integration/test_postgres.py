"""The local-process PostgreSQL providers (embedded wheel, system install): they start a server the loader can
use, stop what they started, and leave alone a server someone else started."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from lakehouse.adapters.loader import load
from lakehouse.adapters.warehouse import connect
from lakehouse.errors import ServiceUnavailableError
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings
from tests.hostile import HOSTILE, hostile_rows

pytestmark = pytest.mark.integration


def _load_and_read_back(spark: Any, pg: PostgresSettings, schema: str) -> list[tuple[Any, ...]]:
    """The hostile rows through the project's loader (DDL from the contract, COPY, publish) and back."""
    df = spark.createDataFrame(hostile_rows(), HOSTILE.spark_schema())
    assert load(df, pg, HOSTILE, schema=schema, mode="replace").rows == len(hostile_rows())
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("select * from {} order by id").format(sql.Identifier(schema, HOSTILE.name)))
        return cur.fetchall()


def _binaries(provider: str) -> PostgresBinaries:
    try:
        return PostgresBinaries.embedded() if provider == "embedded" else PostgresBinaries.system()
    except ServiceUnavailableError as exc:
        from tests.conftest import unavailable

        unavailable(str(exc))
        raise


@pytest.mark.parametrize("provider", ["embedded", "system"])
def test_local_process_providers_start_hold_every_value_the_loader_writes_and_stop(
    spark: Any, tmp_path: Path, provider: str
) -> None:
    """The server a provider starts is one the pipeline can use: UTF-8, UTC-exact timestamps, every type."""
    server = LocalPostgres(_binaries(provider), tmp_path / "pgdata")

    with server as pg:
        assert pg.embedded
        assert pg.host == "127.0.0.1"
        assert _load_and_read_back(spark, pg, "roundtrip") == hostile_rows()

    assert not server.started_here
    with pytest.raises(psycopg2.OperationalError):
        connect(pg).close()


def test_a_running_server_is_reused_and_left_running(tmp_path: Path) -> None:
    owner = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pgdata")
    first = owner.start()
    try:
        second_handle = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pgdata")
        with second_handle as again:
            assert again.port == first.port
        assert not second_handle.started_here
        connect(first).close()  # still up: the second handle did not own it
    finally:
        owner.stop()
