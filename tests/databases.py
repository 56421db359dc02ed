"""Fresh PostgreSQL databases on the test server, for fixtures and for tests that need one per example."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator

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
