"""PostgreSQL, the warehouse: connections and DDL generated from the table contracts.

Every identifier is quoted with :mod:`psycopg2.sql`. Loading data is :mod:`lakehouse.adapters.loader`'s job; the
``ops`` tables are :mod:`lakehouse.bookkeeping`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from lakehouse.contracts import Table
from lakehouse.settings import PostgresSettings


def connect(pg: PostgresSettings, *, autocommit: bool = False) -> connection:
    """A new connection to ``pg``; the caller owns it and closes it."""
    conn: connection = psycopg2.connect(**pg.connect_kwargs())
    conn.autocommit = autocommit
    return conn


def create_table_sql(schema: str, table: Table) -> sql.Composed:
    """``create table if not exists`` with types, NOT NULL for required and key columns, and the primary key."""
    definitions = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.postgres_type),  # from the contract's closed type vocabulary, never user text
            sql.SQL(" not null") if c.required or c.name in table.key else sql.SQL(""),
        )
        for c in table.columns
    ]
    if table.key:
        definitions.append(sql.SQL("primary key ({})").format(sql.SQL(", ").join(sql.Identifier(k) for k in table.key)))
    return sql.SQL("create table if not exists {} (\n  {}\n)").format(
        sql.Identifier(schema, table.name), sql.SQL(",\n  ").join(definitions)
    )


def ensure_table(conn: connection, schema: str, table: Table) -> None:
    """Create ``schema`` and ``table`` unless they exist (an existing table is left as it is)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        cur.execute(create_table_sql(schema, table))


def existing_tables(pg: PostgresSettings, schema: str, names: Sequence[str]) -> list[str]:
    """Which of ``names`` exist as tables in ``schema``, in the order given."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "select table_name from information_schema.tables where table_schema = %s and table_name = any(%s)",
                (schema, list(names)),
            )
            found = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return [name for name in names if name in found]


def drop_primary_key(cur: cursor, schema: str, table: str) -> sql.Composed | None:
    """Drop the primary key of a just-truncated table; return the statement that restores it.

    Building the index once after the insert is ~30 % faster than maintaining it row by row (measured with
    ``benchmarks/loader.py``). Skipped when a foreign key references the table, since dropping the key would
    need dropping theirs. Duplicate keys still fail the publish, when the key is restored.
    """
    cur.execute(
        "select pk.conname, pg_get_constraintdef(pk.oid) from pg_constraint pk"
        " where pk.conrelid = %s::regclass and pk.contype = 'p'"
        " and not exists (select 1 from pg_constraint fk where fk.confrelid = pk.conrelid and fk.contype = 'f')",
        (sql.Identifier(schema, table).as_string(cur),),
    )
    found = cur.fetchone()
    if found is None:
        return None
    name, definition = found
    relation = sql.Identifier(schema, table)
    cur.execute(sql.SQL("alter table {} drop constraint {}").format(relation, sql.Identifier(name)))
    return sql.SQL("alter table {} add constraint {} {}").format(relation, sql.Identifier(name), sql.SQL(definition))
