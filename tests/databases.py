"""Fresh PostgreSQL databases on the test server, for fixtures and for tests that need one per example."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterable, Iterator

import psycopg2
from psycopg2 import sql

from lakehouse.settings import PostgresSettings


@contextlib.contextmanager
def fresh_database(server: PostgresSettings) -> Iterator[PostgresSettings]:
    """A new, uniquely named database on ``server`` (dropped afterwards, sessions and all)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = dataclasses.replace(server, database="postgres")
    conn = psycopg2.connect(**admin.connect_kwargs())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        yield dataclasses.replace(server, database=name)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    finally:
        conn.close()


VOLATILE_TYPES = ("timestamp with time zone", "timestamp without time zone")  # run times differ between runs


def table_checksums(pg: PostgresSettings, schemas: Iterable[str]) -> dict[str, tuple[int, str]]:
    """``{schema.table: (rows, md5 of the sorted md5s of every row's stable columns)}`` for every base table in
    ``schemas``: order-independent, and blind to what differs between two runs of the same input (timestamps,
    batch ids, ``ingest_date``, dbt's snapshot columns)."""
    result: dict[str, tuple[int, str]] = {}
    conn = psycopg2.connect(**(pg.connect_kwargs() | {"connect_timeout": 2}))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select table_schema, table_name from information_schema.tables where table_schema = any(%s)"
                " and table_type = 'BASE TABLE' order by 1, 2",
                (list(schemas),),
            )
            for schema, table in cur.fetchall():
                cur.execute(
                    "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
                    " and data_type <> all(%s) and column_name not like '%%batch_id' and column_name not like 'dbt_%%'"
                    " and column_name <> 'ingest_date'"
                    " order by ordinal_position",
                    (schema, table, list(VOLATILE_TYPES)),
                )
                columns = [sql.Identifier(r[0]) for r in cur.fetchall()]
                row = sql.SQL("md5(row({})::text)").format(sql.SQL(", ").join(columns))
                cur.execute(
                    sql.SQL(
                        "select count(*), md5(coalesce(string_agg(h, '' order by h), ''))"
                        " from (select {} as h from {}) t"
                    ).format(row, sql.Identifier(schema, table))
                )
                count, digest = cur.fetchone() or (0, "")
                result[f"{schema}.{table}"] = (int(count), str(digest))
    finally:
        conn.close()
    return result
