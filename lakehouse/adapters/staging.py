"""Where the loader stages rows: a private schema, names unique per load and target, and a sweep of dead loads.

Staging tables live in ``_lakehouse_staging``, a schema the loader creates and grants nobody (PUBLIC gets no
privilege on a new schema, so no reader's role can look inside); a published schema only holds published tables.
A load stages each target's rows in one table, ``<load id>_<n>_<schema>_<table>_rows``, and records in
``<load id>_<n>_<schema>_<table>_claims`` which Spark partitions have committed theirs (and how many rows): the load
id (8 hex digits) makes the names unique per load, ``n`` (the target's position in the load) per target.

A staging table is dropped by its load when the load ends, or, when the load died (``kill -9``, a lost driver, a
PostgreSQL restart), by the sweep at the start of any later load. Whether a load is alive is PostgreSQL's word,
not a clock's: a load holds the session-level advisory lock ``(namespace, load id)`` on its own connection from
before its first staging table exists until its publish has ended, and a session's locks end with the session.
The sweep tries each load id's lock for its own transaction (``pg_try_advisory_xact_lock``): it gets only the
lock of a load whose session is gone, and drops that load's tables while holding it. So a live load is never
swept however long it runs, and a load whose session died cannot publish what a sweep may have removed, because
it publishes on that same session.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import connection, cursor

from lakehouse.adapters.warehouse import connect, ensure_schema
from lakehouse.contracts import STAGING_SCHEMA
from lakehouse.settings import PostgresSettings

# The two-key advisory lock space (classid, objid) is disjoint from the one-bigint space other locks use.
_LOCK_NAMESPACE = 0x6C687374  # "lhst"
_NAME = re.compile(r"([0-9a-f]{8})_\d+_")
_MAX_NAME = 63  # PostgreSQL truncates longer identifiers
_SUFFIXES = ("_rows", "_claims")


@dataclass(frozen=True)
class LoadSession:
    """A live load: the connection holding its lock (the loader publishes on it) and its id."""

    conn: connection
    load_id: int

    def stage_names(self, index: int, target: str) -> tuple[str, str]:
        """The staging tables of the load's target number ``index``: its rows, and its partitions' claims."""
        prefix = f"{self.load_id:08x}_{index}_"
        room = _MAX_NAME - len(prefix) - max(map(len, _SUFFIXES))  # in bytes, as PostgreSQL counts
        base = prefix + target.replace(".", "_").encode()[:room].decode(errors="ignore")
        rows, claims = (base + suffix for suffix in _SUFFIXES)
        return rows, claims


@contextlib.contextmanager
def load_session(pg: PostgresSettings) -> Iterator[LoadSession]:
    """Sweep dead loads' staging tables, then hold a fresh load id until the block ends, and drop its tables."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            ensure_schema(cur, STAGING_SCHEMA)
        _sweep(conn)
        session = LoadSession(conn, _lock_new_id(conn))
        try:
            yield session
        finally:
            _drop_own_stages(session)
    finally:
        conn.close()  # ends the session, which releases the load's lock


def sweep_stale_stages(pg: PostgresSettings) -> list[str]:
    """Drop the staging tables of loads that are no longer alive; return their names.

    Safe at any time and from any process: the tables of a load that still holds its lock are kept. A table in
    use (a late task of a dead load still writing it) postpones the sweep to the next load.
    """
    with contextlib.closing(connect(pg)) as conn:
        return _sweep(conn)


def _sweep(conn: connection) -> list[str]:
    dropped: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select set_config('lock_timeout', '5s', true)")  # a sweep must never stall a load
            cur.execute("select tablename from pg_tables where schemaname = %s", (STAGING_SCHEMA,))
            by_load: dict[int, list[str]] = defaultdict(list)
            for (name,) in cur.fetchall():
                if match := _NAME.match(name):  # tables not named by a load are not ours to drop
                    by_load[int(match[1], 16)].append(name)
            for load_id, names in by_load.items():
                if _locked(cur, "pg_try_advisory_xact_lock", load_id):  # its load's session is gone
                    for name in names:
                        cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(STAGING_SCHEMA, name)))
                    dropped += names
            # Versions before the private schema staged next to the published tables, as _lh_stage_*: none of
            # those can belong to a live load any more, and every reader of the schema sees them.
            cur.execute(
                "select schemaname, tablename from pg_tables where schemaname <> %s and tablename like %s",
                (STAGING_SCHEMA, r"\_lh\_stage\_%"),
            )
            for schema, name in cur.fetchall():
                cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, name)))
                dropped.append(f"{schema}.{name}")
    except errors.LockNotAvailable:
        return []
    return dropped


def _lock_new_id(conn: connection) -> int:
    with conn, conn.cursor() as cur:  # a session-level lock outlives the transaction that took it
        while not _locked(cur, "pg_try_advisory_lock", load_id := secrets.randbits(31)):
            pass  # a live load has that id
    return load_id


def _locked(cur: cursor, function: str, load_id: int) -> bool:
    cur.execute(sql.SQL("select {}(%s, %s)").format(sql.Identifier(function)), (_LOCK_NAMESPACE, load_id))
    row = cur.fetchone()
    return bool(row and row[0])


def _drop_own_stages(session: LoadSession) -> None:
    try:
        with session.conn, session.conn.cursor() as cur:
            cur.execute(
                "select tablename from pg_tables where schemaname = %s and starts_with(tablename, %s)",
                (STAGING_SCHEMA, f"{session.load_id:08x}_"),
            )
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(STAGING_SCHEMA, name)))
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        pass  # the session is gone and its lock with it: the next load's sweep drops these tables
