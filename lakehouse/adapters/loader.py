"""Loading Spark DataFrames into PostgreSQL: parallel COPY from the executors, a verified atomic publish, exact values.

How a load works (:func:`load_many`):

1. The load opens its session (:mod:`lakehouse.adapters.staging`): dead loads' staging tables are swept, and the
   load holds a lock, on a connection of its own, that keeps its staging tables from any sweep while it lives.
2. The driver creates each target's staging tables in the private staging schema: one for its rows (UNLOGGED,
   unless it is to be renamed in, step 4) and one for the claims of the Spark partitions that staged theirs.
3. Every Spark partition COPYs its rows (binary COPY, encoded from Spark's Arrow batches by
   :mod:`lakehouse.adapters.pgbinary`, streamed by :mod:`lakehouse.adapters.pgcopy`) into the rows table, in one
   transaction with its claim: a retried or speculative attempt finds the claim of an attempt that committed and
   copies nothing, so rows are staged exactly once. Each partition reports how many rows it staged.
4. The driver publishes on the session's connection, in one transaction for all tables:

   - ``append`` records the batch id in ``ops.loaded_batches`` (a batch already there is skipped, so a re-run
     never duplicates) and inserts the staged rows (``insert ... select``);
   - ``replace`` of a table that does not exist yet (every candidate table of a run) moves the staged table into
     the target's schema under the target's name and adds the contract's NOT NULLs and primary key: the rows are
     published where the executors wrote them, with no second copy. That needs nothing pointing at the target
     (it does not exist) and no default privileges for the loader's new tables (set for all schemas, the
     target's or the staging schema: a table created in one schema and moved to another does not get the
     target's); otherwise the staged table is UNLOGGED from the start and copied, as below;
   - ``replace`` of an existing table truncates it and inserts the staged rows. The table is kept, so views and
     grants on it keep working; but ``truncate`` waits for every reader and shows an older REPEATABLE READ
     snapshot an empty table, so ``replace`` is for tables nobody reads while they load (silver's candidates:
     :mod:`lakehouse.adapters.publish` publishes those).

   READ COMMITTED readers see the old or the new content, never a mix. Publishes to one target queue (a
   transaction-scoped advisory lock per target, taken in name order): two loads that both found no target and
   staged to rename theirs in cannot both take its name; the second sees the table the first created and
   replaces its rows.
5. The publish is verified before it commits: for every table, the rows Spark produced, the rows the staging
   table holds and the rows the publish wrote (the insert's, or the moved table's) must be equal. They differ when
   PostgreSQL restarted in between (crash recovery empties UNLOGGED tables): the transaction aborts, nothing is
   published, the ledger does not record the batch, and :class:`LoadError` names the table and the three numbers.
6. The load's staging tables are dropped whatever happened (or by the next load's sweep, if this one died).

An append, and a replace of an existing table, copy the staged rows once more. The zero-copy ways to publish those
each break a guarantee above: renaming a staging table in replaces the table views and grants point at (and a
REPEATABLE READ reader of an appended table would see it empty), attaching staging tables as partitions or
inheritance children leaves the primary key unenforced across them. Streaming the executors' encoded rows through
the driver into one ``COPY`` of the target in the publish's transaction measured 0.85-0.89 of a raw COPY, but it
sends every row through the driver, and the executors no longer write to PostgreSQL.

Every identifier is quoted with :mod:`psycopg2.sql`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from lakehouse.adapters.pgcopy import STAGE_RESULT_SCHEMA, StageStatements, stage_partition, with_copy_columns
from lakehouse.adapters.spark import call_site, in_parallel, parallelism
from lakehouse.adapters.staging import LoadSession, load_session
from lakehouse.adapters.warehouse import (
    add_constraints_sql,
    column_list_sql,
    create_bare_table_sql,
    drop_primary_key,
    ensure_schema,
    ensure_table,
)
from lakehouse.bookkeeping import ensure_ledger, ledger_claim, ledger_has
from lakehouse.contracts import STAGING_SCHEMA, Column, Table
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
    claim whatever it carries, so a table of a few hundred rows goes in one. None: the parallelism.
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
        # them (Spark still runs at most one task per core). The staging tables are made here, on this thread,
        # which alone uses the session's connection.
        stagings = _create_stages(session, pending, mode)
        stages = [
            functools.partial(_stage, item, pg, staging, after_partition_commit)
            for item, staging in zip(pending, stagings, strict=True)
        ]
        results = in_parallel(pending[0].df.sparkSession, stages) if pending else []
        staged = {item.target: result for item, result in zip(pending, results, strict=True)}
        published = _publish(session.conn, pending, mode, batch_id, staged)
    return [published.get(i.target) or LoadResult(i.target, mode, 0, skipped=True) for i in loads]


# Which Spark partitions have staged their rows, and how many (the key is what makes a partition stage once).
_CLAIMS = Table("claims", (Column("partition", "int"), Column("rows", "bigint")), key=("partition",))


@dataclass(frozen=True)
class _Staging:
    """Where one target's rows are staged: the ``rows`` table, the ``claims`` of the partitions that committed
    theirs, and whether the rows table is to be renamed in as the target (:func:`_renamable`; then it is a
    logged table, else an UNLOGGED one the publish copies from)."""

    rows: str
    claims: str
    rename_in: bool
    statements: StageStatements


@dataclass(frozen=True)
class _Staged:
    """One target's staging, filled: Spark partition -> the rows it sent."""

    staging: _Staging
    rows: dict[int, int]


def _pending(conn: connection, loads: list[TableLoad], mode: str, batch_id: str | None) -> list[TableLoad]:
    """Create the ledger if missing; return the loads still to do (batches not yet loaded). Target tables are
    created by the publish, in its transaction, so readers never see a table before its first rows."""
    with conn, conn.cursor() as cur:
        ensure_ledger(cur)
        return [i for i in loads if not (mode == "append" and batch_id and ledger_has(cur, i.target, batch_id))]


def _create_stages(session: LoadSession, pending: list[TableLoad], mode: str) -> list[_Staging]:
    """Create each target's staging tables, typed from the contract (a first load creates its target only when it
    publishes), with no constraint: the publish checks them, whichever way it publishes."""
    stagings = []
    with session.conn, session.conn.cursor() as cur:
        for index, item in enumerate(pending):
            names = session.stage_names(index, item.target)
            rows, claims = (sql.Identifier(STAGING_SCHEMA, name) for name in names)
            rename_in = mode == "replace" and _renamable(cur, item)
            rows_table = dataclasses.replace(item.table, name=names[0])
            claims_table = dataclasses.replace(_CLAIMS, name=names[1])
            cur.execute(create_bare_table_sql(STAGING_SCHEMA, rows_table, unlogged=not rename_in))
            cur.execute(create_bare_table_sql(STAGING_SCHEMA, claims_table, unlogged=not rename_in, key=True))
            columns = column_list_sql(item.table)
            statements = StageStatements(
                claim=sql.SQL("insert into {} values (%s, null) on conflict do nothing").format(claims).as_string(cur),
                copy=sql.SQL("copy {} ({}) from stdin with (format binary)").format(rows, columns).as_string(cur),
                record=sql.SQL("update {} set rows = %s where partition = %s").format(claims).as_string(cur),
                claimed=sql.SQL("select rows from {} where partition = %s").format(claims).as_string(cur),
            )
            stagings.append(_Staging(*names, rename_in, statements))
    return stagings


def _renamable(cur: cursor, item: TableLoad) -> bool:
    """Whether ``item``'s staged rows can become its target as they are, by a rename: the target does not exist
    (so nothing points at it: no view, grant, key or trigger would be lost) and no default privileges apply, in
    its schema or the staging schema (a table created in the staging schema and moved would not get those a table
    created in place gets). Then the renamed table has the columns, constraints (and their names), owner,
    privileges and persistence :func:`ensure_table` would have given it. (Its storage may also hold the dead rows
    of a task attempt that failed mid-COPY, which vacuum reclaims.)"""
    cur.execute(
        "select to_regclass(%s) is null and not exists (select 1 from pg_default_acl d"
        " where d.defaclrole = (select oid from pg_roles where rolname = current_user) and d.defaclobjtype = 'r'"
        " and (d.defaclnamespace = 0 or d.defaclnamespace in (select oid from pg_namespace where nspname = any(%s))))",
        (sql.Identifier(item.schema, item.table.name).as_string(cur), [item.schema, STAGING_SCHEMA]),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _stage(
    item: TableLoad,
    pg: PostgresSettings,
    staging: _Staging,
    hook: Callable[[int, int], None] | None,
) -> _Staged:
    # coalesce never adds partitions, so fewer stay as they are (and it asks Spark nothing, unlike counting them).
    rows = with_copy_columns(item.df.coalesce(_streams(item, parallelism(item.df.sparkSession))), item.table)
    copy = rows.mapInArrow(
        stage_partition(pg.connect_kwargs(), staging.statements, item.table.columns, hook), STAGE_RESULT_SCHEMA
    )
    try:
        with call_site(item.df.sparkSession, f"collect at {__file__}"):  # run at once from several threads
            staged = copy.collect()
    except Exception as exc:  # py4j wraps the executor's error; keep its first meaningful line
        raise LoadError(f"loading {item.target} failed; the table is unchanged: {_first_line(exc)}") from exc
    return _Staged(staging, {int(r.partition): int(r.rows) for r in staged})


# Rows one COPY stream should carry before another pays for its task and connection (measured on the default
# sample, 2 cores, when each stream also had a staging table of its own: 8 streams per table took its six silver
# loads 8.3 s, one each 3.4 s).
ROWS_PER_STREAM = 250_000


def _streams(item: TableLoad, parallelism: int) -> int:
    """How many COPY streams (Spark tasks) load ``item``: at most ``parallelism``."""
    if item.expected_rows is None:
        return parallelism
    return max(1, min(parallelism, -(-item.expected_rows // ROWS_PER_STREAM)))


# The two-key advisory lock space of publishes, one lock per target (a hash: two targets may share one, which only
# queues their publishes).
_TARGET_LOCKS = 0x6C687462  # "lhtb"


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
            # Publishes of a target queue, so the second sees the table the first created (a rename or a create
            # racing for one name would fail); in one order, so two loads of the same targets cannot deadlock.
            for target in sorted({item.target for item in loads}):
                cur.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", (_TARGET_LOCKS, target))
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
    target = sql.Identifier(item.schema, item.table.name)
    stage = sql.Identifier(STAGING_SCHEMA, staged.staging.rows)
    produced = sum(staged.rows.values())
    # Verifies the stage: a restart empties an UNLOGGED table. (No late task attempt can add rows: every
    # partition's claim committed before Spark reported it, and a later attempt finds it.)
    cur.execute(sql.SQL("select count(*) from {}").format(stage))
    held = int((cur.fetchone() or (0,))[0])
    constraints = None  # what to add or restore once the rows are in
    if staged.staging.rename_in and _renamable(cur, item):  # still nobody else created the target
        ensure_schema(cur, item.schema)
        cur.execute(sql.SQL("alter table {} set schema {}").format(stage, sql.Identifier(item.schema)))
        moved = sql.Identifier(item.schema, staged.staging.rows)
        cur.execute(sql.SQL("alter table {} rename to {}").format(moved, sql.Identifier(item.table.name)))
        constraints = add_constraints_sql(item.schema, item.table)
        inserted = held
    else:
        ensure_table(cur.connection, item.schema, item.table)
        if mode == "append":
            # Claimed before the insert, so a concurrent publish of the batch waits here and then skips. The
            # claimed count commits only if the insert wrote exactly that many rows (verified below).
            if not ledger_claim(cur, item.target, batch_id or "", produced):
                return LoadResult(item.target, mode, 0, skipped=True, partitions=len(staged.rows))
        else:
            cur.execute(sql.SQL("truncate {}").format(target))
            constraints = drop_primary_key(cur, item.schema, item.table.name)
        columns = column_list_sql(item.table)
        cur.execute(sql.SQL("insert into {} ({}) select {} from {}").format(target, columns, columns, stage))
        inserted = cur.rowcount
    if not produced == held == inserted:
        raise LoadError(
            f"publishing {item.target} refused, nothing was published: Spark produced {produced} rows, the staging"
            f" table holds {held}, the publish wrote {inserted} (staged rows were lost, e.g. PostgreSQL restarted"
            " during the load); run the load again"
        )
    if constraints is not None:
        cur.execute(constraints)
    return LoadResult(item.target, mode, inserted, partitions=len(staged.rows))


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
