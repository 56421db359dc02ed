"""PostgreSQL, the warehouse: connections (and, as the layers arrive, DDL from contracts and COPY loads)."""

from __future__ import annotations

import psycopg2
from psycopg2.extensions import connection

from lakehouse.settings import PostgresSettings


def connect(pg: PostgresSettings, *, autocommit: bool = False) -> connection:
    """A new connection to ``pg``; the caller owns it and closes it."""
    conn: connection = psycopg2.connect(**pg.connect_kwargs())
    conn.autocommit = autocommit
    return conn
