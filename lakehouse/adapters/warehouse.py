"""PostgreSQL, the warehouse: connections and DDL generated from the table contracts.

Every identifier is quoted with :mod:`psycopg2.sql`. Loading data is :mod:`lakehouse.adapters.loader`'s job; the
``ops`` tables are :mod:`lakehouse.bookkeeping`'s.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

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
