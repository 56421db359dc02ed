"""Loading Spark DataFrames into PostgreSQL: parallel COPY from the executors, a verified atomic publish, exact values.

How a load works (:func:`load_many`):

1. The load opens its session (:mod:`lakehouse.adapters.staging`): dead loads' staging tables are swept, and the
   load holds a lock, on a connection of its own, that keeps its staging tables from any sweep while it lives.
2. Every Spark partition COPYs its rows (binary COPY, encoded from Spark's Arrow batches by
   :mod:`lakehouse.adapters.pgbinary`, streamed by :mod:`lakehouse.adapters.pgcopy`) into its own
   UNLOGGED table in the private staging schema, replacing it in one transaction, so a retried task overwrites
   its earlier attempt. Each partition reports how many rows it sent.
3. The driver publishes on the session's connection, in one transaction for all tables: ``append`` records the
   batch id in ``ops.loaded_batches`` (a batch already there is skipped, so a re-run never duplicates) and inserts
   the staged rows; ``replace`` truncates the target and inserts them. READ COMMITTED readers see the old or the
   new content, never a mix, and views on the target keep working because the table is kept; but ``truncate``
   waits for every reader and shows an older REPEATABLE READ snapshot an empty table, so ``replace`` is for tables
   nobody reads while they load (silver's candidates: :mod:`lakehouse.adapters.publish` publishes those).
4. The publish is verified before it commits: for every table, the rows Spark produced, the rows the staging
   tables hold and the rows the insert wrote must be equal. They differ when PostgreSQL restarted in between (crash
   recovery empties UNLOGGED tables): the transaction aborts, nothing is published, the ledger does not record
   the batch, and :class:`LoadError` names the table and the three numbers.
5. The load's staging tables are dropped whatever happened (or by the next load's sweep, if this one died).

The publish copies the staged rows once more (``insert ... select``, in its transaction). The zero-copy ways to
publish each break a guarantee above: renaming a staging table in replaces the table views and grants point at,
attaching staging tables as partitions or inheritance children leaves the primary key unenforced across them (and
published rows in UNLOGGED tables, which a crash empties). Staging encoded COPY chunks instead of rows and
streaming them back through the driver into one ``COPY`` of the target was measured no faster (the chunks cross
the network twice).

Every identifier is quoted with :mod:`psycopg2.sql`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from lakehouse.adapters.pgcopy import PARTITION_PLACEHOLDER, STAGE_RESULT_SCHEMA, stage_partition, with_copy_columns
from lakehouse.adapters.spark import call_site, in_parallel, parallelism
from lakehouse.adapters.staging import load_session
from lakehouse.adapters.warehouse import drop_primary_key, ensure_table
from lakehouse.bookkeeping import ensure_ledger, ledger_claim, ledger_has
from lakehouse.contracts import STAGING_SCHEMA, Table
from lakehouse.errors import LakehouseError
from lakehouse.settings import PostgresSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class LoadError(LakehouseError):
    """A load into PostgreSQL failed; the target table is unchanged."""


@dataclass(frozen=True)
class LoadResult:
    table: str
    mode: str
    rows: int
    skipped: bool = False
    partitions: int = 0


@dataclass(frozen=True)
class TableLoad:
    """One table of a :func:`load_many`: the rows and the contract describing the target.

    ``expected_rows``, when the caller knows it (an upper bound will do), sizes the load: one COPY stream per
    :data:`ROWS_PER_STREAM` rows, at most the session's parallelism. Each stream costs a task, a connection and a
    staging table whatever it carries, so a table of a few hundred rows goes in one. None: the parallelism.
    Fewer streams are fewer tasks for everything since the frame's last shuffle or cache, so pass it for cached
    frames (or cheap ones).
    """

    df: DataFrame
    table: Table
    schema: str
    expected_rows: int | None = None

    @property
    def target(self) -> str:
        return f"{self.schema}.{self.table.name}"


def load(
    df: DataFrame,
    pg: PostgresSettings,
    table: Table,
    *,
    schema: str,
    mode: Literal["append", "replace"],
    batch_id: str | None = None,
    after_partition_commit: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Load ``df`` into ``schema.table`` with COPY on the executors, then publish atomically.

    Args:
        df: rows to load; it must have every contract column (extra columns are ignored).
        mode: ``append`` (requires ``batch_id``; a batch already loaded is skipped) or ``replace``.
        after_partition_commit: called on the executor as ``(partition id, attempt)`` after a partition's
            staging commit; a hook for fault-injection tests.

    Raises:
        LoadError: the load failed; the target table is unchanged.
    """
    [result] = load_many(
        [TableLoad(df, table, schema)],
        pg,
        mode=mode,
        batch_id=batch_id,
        after_partition_commit=after_partition_commit,
    )
    return result


def load_many(
    loads: list[TableLoad],
    pg: PostgresSettings,
    *,
    mode: Literal["append", "replace"],
    batch_id: str | None = None,
    after_partition_commit: Callable[[int, int], None] | None = None,
) -> list[LoadResult]:
    """Like :func:`load` for several tables, published together in ONE transaction: readers see all of
    them change at once (e.g. every silver and quarantine table of a run), or none when anything fails.
    """
    if mode == "append" and not batch_id:
        raise ValueError("append needs a batch_id: it is what makes a re-run idempotent")
    with load_session(pg) as session:
        pending = _pending(session.conn, loads, mode, batch_id)
        # Every table's staging at once: a small table's job then overlaps another's tasks instead of waiting for
        # them (Spark still runs at most one task per core). The statements are composed here, on this thread,
        # which alone uses the session's connection.
        bases = [session.stage_base(index, item.target) for index, item in enumerate(pending)]
        stages = [
            functools.partial(_stage, item, pg, _stage_sql(item, session.conn, base), base, after_partition_commit)
            for item, base in zip(pending, bases, strict=True)
        ]
        results = in_parallel(pending[0].df.sparkSession, stages) if pending else []
        staged = {item.target: result for item, result in zip(pending, results, strict=True)}
        published = _publish(session.conn, pending, mode, batch_id, staged)
    return [published.get(i.target) or LoadResult(i.target, mode, 0, skipped=True) for i in loads]


@dataclass(frozen=True)
class _Staged:
    """One target's staging: table ``<base><partition>`` holds the ``rows[partition]`` rows Spark sent."""

    base: str
    rows: dict[int, int]

    def tables(self) -> list[sql.Identifier]:
        return [sql.Identifier(STAGING_SCHEMA, f"{self.base}{p}") for p in sorted(self.rows)]


def _pending(conn: connection, loads: list[TableLoad], mode: str, batch_id: str | None) -> list[TableLoad]:
    """Create the ledger if missing; return the loads still to do (batches not yet loaded). Target tables are
    created by the publish, in its transaction, so readers never see a table before its first rows."""
    with conn, conn.cursor() as cur:
        ensure_ledger(cur)
        return [i for i in loads if not (mode == "append" and batch_id and ledger_has(cur, i.target, batch_id))]


def _stage_sql(item: TableLoad, conn: connection, base: str) -> tuple[str, str]:
    """The statements of ``item``'s staging tables (``{partition}`` left to fill): create one, COPY into it."""
    stage = sql.Identifier(STAGING_SCHEMA, base + PARTITION_PLACEHOLDER)
    # Typed from the contract, not ``like`` the target: a first load creates its target only when it publishes.
    types = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.postgres_type)) for c in item.table.columns
    )
    create = sql.SQL("drop table if exists {stage}; create unlogged table {stage} ({types})").format(
        stage=stage, types=types
    )
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in item.table.column_names)
    copy = sql.SQL("copy {} ({}) from stdin with (format binary)").format(stage, columns)
    return create.as_string(conn), copy.as_string(conn)


def _stage(
    item: TableLoad,
    pg: PostgresSettings,
    statements: tuple[str, str],
    base: str,
    hook: Callable[[int, int], None] | None,
) -> _Staged:
    create_sql, copy_sql = statements
    # coalesce never adds partitions, so fewer stay as they are (and it asks Spark nothing, unlike counting them).
    rows = with_copy_columns(item.df.coalesce(_streams(item, parallelism(item.df.sparkSession))), item.table)
    copy = rows.mapInArrow(
        stage_partition(pg.connect_kwargs(), create_sql, copy_sql, item.table.columns, hook), STAGE_RESULT_SCHEMA
    )
    try:
        with call_site(item.df.sparkSession, f"collect at {__file__}"):  # run at once from several threads
            staged = copy.collect()
    except Exception as exc:  # py4j wraps the executor's error; keep its first meaningful line
        raise LoadError(f"loading {item.target} failed; the table is unchanged: {_first_line(exc)}") from exc
    return _Staged(base, {int(r.partition): int(r.rows) for r in staged})


# Rows one COPY stream should carry before another pays for its task, connection and staging table (measured on
# the default sample, 2 cores: 8 streams per table took its six silver loads 8.3 s, one each 3.4 s).
ROWS_PER_STREAM = 250_000


def _streams(item: TableLoad, parallelism: int) -> int:
    """How many COPY streams (and staging tables) load ``item``: at most ``parallelism``."""
    if item.expected_rows is None:
        return parallelism
    return max(1, min(parallelism, -(-item.expected_rows // ROWS_PER_STREAM)))


def _publish(
    conn: connection,
    loads: list[TableLoad],
    mode: str,
    batch_id: str | None,
    staged: dict[str, _Staged],
) -> dict[str, LoadResult]:
    results: dict[str, LoadResult] = {}
    names = ", ".join(item.target for item in loads)
    try:
        with conn, conn.cursor() as cur:
            for item in loads:
                results[item.target] = _publish_table(cur, item, mode, batch_id, staged[item.target])
            if any(r.skipped for r in results.values()):  # a concurrent run published this batch since we checked
                conn.rollback()
                return {t: LoadResult(t, mode, 0, skipped=True) for t in results}
    except psycopg2.Error as exc:
        # A lost session may have lost staged rows too (a restart empties UNLOGGED tables): never publish on another.
        reason = "the connection to PostgreSQL was lost (did the server restart?)" if conn.closed else _first_line(exc)
        raise LoadError(f"publishing {names} failed; the tables are unchanged: {reason}") from exc
    return results


def _publish_table(cur: cursor, item: TableLoad, mode: str, batch_id: str | None, staged: _Staged) -> LoadResult:
    ensure_table(cur.connection, item.schema, item.table)
    target = sql.Identifier(item.schema, item.table.name)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in item.table.column_names)
    stages = staged.tables()
    produced = sum(staged.rows.values())
    if mode == "append":
        # Claimed before the insert, so a concurrent publish of the batch waits here and then skips. The claimed
        # count commits only if the insert wrote exactly that many rows (verified below).
        if not ledger_claim(cur, item.target, batch_id or "", produced):
            return LoadResult(item.target, mode, 0, skipped=True, partitions=len(stages))
    else:
        cur.execute(sql.SQL("truncate {}").format(target))
    restore_key = drop_primary_key(cur, item.schema, item.table.name) if mode == "replace" else None
    held = inserted = 0
    if stages:
        # Counting takes a lock on every staging table until commit: no late task attempt can replace one now.
        counts = sql.SQL(" + ").join(sql.SQL("(select count(*) from {})").format(s) for s in stages)
        cur.execute(sql.SQL("select ") + counts)
        held = int((cur.fetchone() or (0,))[0])
        sources = sql.SQL(" union all ").join(sql.SQL("select {} from {}").format(columns, s) for s in stages)
        cur.execute(sql.SQL("insert into {} ({}) ").format(target, columns) + sources)
        inserted = cur.rowcount
    if not produced == held == inserted:
        raise LoadError(
            f"publishing {item.target} refused, nothing was published: Spark produced {produced} rows, the staging"
            f" tables hold {held}, the insert wrote {inserted} (staged rows were lost, e.g. PostgreSQL restarted"
            " during the load); run the load again"
        )
    if restore_key is not None:
        cur.execute(restore_key)
    return LoadResult(item.target, mode, inserted, partitions=len(stages))


def _first_line(exc: BaseException) -> str:
    """The useful part of an error: PostgreSQL's message and detail, or the first line naming an error."""
    if isinstance(exc, psycopg2.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        return exc.diag.message_primary + (f" ({detail})" if detail else "")
    text = str(exc).strip()
    for line in text.splitlines():
        if "Error" in line or "error" in line:
            return line.strip()[:500]
    return text.splitlines()[0][:500] if text else type(exc).__name__
