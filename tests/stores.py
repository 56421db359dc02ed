"""What tests compare between two states of the stores: a silver or quarantine table's rows, in the lake or in
PostgreSQL, and a run's reconciliation."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from lakehouse.adapters import lake
from lakehouse.adapters.warehouse import connect
from lakehouse.contracts import SILVER, quarantine_table
from lakehouse.settings import PostgresSettings, Settings


def stable_columns(schema: str, table: str) -> list[str]:
    """A silver (``schema`` silver) or quarantine table's columns in contract order, but the time of the run that
    wrote each row."""
    contract = SILVER[table] if schema == "silver" else quarantine_table(table)
    return [name for name in contract.column_names if name != "_silver_processed_at"]


def lake_rows(spark: Any, settings: Settings, schema: str, table: str) -> Counter[tuple[Any, ...]]:
    """The rows of a silver or quarantine Delta table (none when it does not exist), as :func:`stable_columns`."""
    uri = lake.table_uri(settings, schema, table)
    if lake.table_version(spark, uri) is None:
        return Counter()
    rows = lake.read_table(spark, uri).select(*stable_columns(schema, table)).collect()
    return Counter(tuple(hashable(v) for v in row) for row in rows)


def warehouse_rows(pg: PostgresSettings, schema: str, table: str) -> Counter[tuple[Any, ...]]:
    """The rows of a silver or quarantine table in PostgreSQL, as :func:`stable_columns` (comparable with
    :func:`lake_rows`)."""
    columns = ", ".join(f'"{c}"' for c in stable_columns(schema, table))
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(f'select {columns} from "{schema}"."{table}"')
        return Counter(tuple(hashable(v) for v in row) for row in cur.fetchall())


def reconciliation(pg: PostgresSettings, run_id: str | None = None) -> list[tuple[Any, ...]]:
    """The cumulative reconciliation ``run_id`` recorded (default: the latest run that recorded one), per table."""
    latest = "(select run_id from ops.reconciliation order by checked_at desc limit 1)"
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "select table_name, bronze_rows, silver_rows, quarantined, duplicates, superseded, reconciled"
            f" from ops.reconciliation where run_id = {'%s' if run_id else latest} order by 1",
            (run_id,) if run_id else None,
        )
        return cur.fetchall()


def hashable(value: Any) -> Any:
    """A row's value as a Counter key (an array becomes a tuple)."""
    return tuple(value) if isinstance(value, list) else value
