"""PostgreSQL, the warehouse: connections and DDL generated from the table contracts.

Every identifier is quoted with :mod:`psycopg2.sql`. Loading data is :mod:`lakehouse.adapters.loader`'s job; the
``ops`` tables are :mod:`lakehouse.bookkeeping`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import connection, cursor

from lakehouse.contracts import Column, Table
from lakehouse.settings import PostgresSettings


def run_session_name(run_id: str) -> str:
    """The ``application_name`` of a session that shows run ``run_id`` is going on (PostgreSQL keeps 63 bytes)."""
    return f"lakehouse run {run_id}"[:63]


def connect(pg: PostgresSettings, *, autocommit: bool = False) -> connection:
    """A new connection to ``pg``; the caller owns it and closes it."""
    conn: connection = psycopg2.connect(**pg.connect_kwargs())
    conn.autocommit = autocommit
    return conn


def create_table_sql(schema: str, table: Table) -> sql.Composed:
    """``create table if not exists`` with types, NOT NULL for required and key columns, and the primary key."""
    required = _required(table)
    definitions = [_column(c, not_null=c.name in required) for c in table.columns]
    if table.key:
        definitions.append(_primary_key(table))
    return sql.SQL("create table if not exists {} (\n  {}\n)").format(
        sql.Identifier(schema, table.name), sql.SQL(",\n  ").join(definitions)
    )


def create_bare_table_sql(schema: str, table: Table, *, unlogged: bool, key: bool = False) -> sql.Composed:
    """``create table`` with ``table``'s columns and types and none of its constraints but, with ``key``, its
    primary key (a staging table); :func:`add_constraints_sql` adds them later, making it the table
    :func:`create_table_sql` creates."""
    definitions = [_column(c, not_null=False) for c in table.columns] + ([_primary_key(table)] if key else [])
    columns = sql.SQL(", ").join(definitions)
    unlogged_sql = sql.SQL("unlogged " if unlogged else "")
    return sql.SQL("create {}table {} ({})").format(unlogged_sql, sql.Identifier(schema, table.name), columns)


def add_constraints_sql(schema: str, table: Table) -> sql.Composed | None:
    """The NOT NULLs and primary key of :func:`create_table_sql`, added to ``schema.<table>`` in one statement (one
    scan checks every NOT NULL, the primary key builds its index); None when the contract declares neither."""
    actions = [sql.SQL("alter column {} set not null").format(sql.Identifier(name)) for name in _required(table)]
    if table.key:
        actions.append(sql.SQL("add ") + _primary_key(table))
    if not actions:
        return None
    return sql.SQL("alter table {} ").format(sql.Identifier(schema, table.name)) + sql.SQL(", ").join(actions)


def _column(column: Column, *, not_null: bool) -> sql.Composed:
    # The type comes from the contract's closed type vocabulary, never from user text.
    return sql.SQL("{} {}{}").format(
        sql.Identifier(column.name), sql.SQL(column.postgres_type), sql.SQL(" not null" if not_null else "")
    )


def _required(table: Table) -> list[str]:
    return [c.name for c in table.columns if c.required or c.name in table.key]


def _primary_key(table: Table) -> sql.Composed:
    return sql.SQL("primary key ({})").format(sql.SQL(", ").join(sql.Identifier(k) for k in table.key))


def create_schema_sql(schema: str) -> sql.Composed:
    """``create schema if not exists``."""
    return sql.SQL("create schema if not exists {}").format(sql.Identifier(schema))


def create_if_absent(cur: cursor, *statements: sql.Composable) -> None:
    """Run ``create ... if not exists`` statements, safe against another session creating the same objects at once.

    PostgreSQL's ``if not exists`` looks before it writes the catalog: two sessions that both looked before either
    committed both write, and the second fails on the catalog's unique index once the first commits. The objects
    then exist, so the statements, run again, do nothing. In a transaction the first try runs under one savepoint,
    so that failure does not end the caller's transaction."""
    savepoint = not cur.connection.autocommit
    if savepoint:
        cur.execute("savepoint lakehouse_create_if_absent")
    try:
        for statement in statements:
            cur.execute(statement)
    except errors.UniqueViolation:
        if savepoint:
            cur.execute("rollback to savepoint lakehouse_create_if_absent")
        for statement in statements:  # the other session's objects are committed now
            cur.execute(statement)
    else:
        if savepoint:
            cur.execute("release savepoint lakehouse_create_if_absent")


def ensure_schema(cur: cursor, schema: str) -> None:
    """Create ``schema`` unless it exists (also when another session creates it at the same time)."""
    create_if_absent(cur, create_schema_sql(schema))


def ensure_table(conn: connection, schema: str, table: Table) -> None:
    """Create ``schema`` and ``table`` unless they exist (an existing table is left as it is)."""
    with conn.cursor() as cur:
        create_if_absent(cur, create_schema_sql(schema), create_table_sql(schema, table))


def column_list_sql(table: Table) -> sql.Composed:
    """The contract's columns, quoted and in order, for ``insert into t (...)``, ``select ...`` or ``copy``."""
    return sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)


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
