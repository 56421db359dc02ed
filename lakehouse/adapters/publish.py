"""Write-audit-publish in PostgreSQL: candidates are written to private schemas, audited there, then published.

A candidate of ``<schema>.<table>`` is the table of the same name in ``_lakehouse_candidate_<schema>``, a schema
nobody but the loader's role can see (PUBLIC gets no privilege on a new schema). The loader fills candidates
(:func:`lakehouse.adapters.loader.load_many` into :func:`candidate_schema`); the audit reads them; only then does
:func:`publish_candidates` replace every published table with its candidate in ONE transaction:

- ``delete`` + ``insert ... select``, never ``truncate`` or a rename: both are MVCC-safe, so a reader at any
  isolation level sees the previous content or the new one, never an empty or partial table -- a REPEATABLE READ
  reader whose snapshot predates the publish included (``truncate`` gives it an empty table, a renamed-in table
  too). Views on the published tables (dbt's staging models) keep working because the tables are kept.
- A plain reader never blocks it (``delete`` does not conflict with ``select``); a session holding a stronger lock
  (``lock table``, ``select ... for share``) does. The publish then waits at most ``lock_timeout`` per attempt,
  rolls back, retries with exponential backoff and, when the lock is never released, raises
  :class:`PublishTimeoutError` naming the table; nothing is published.
- Verified: inside the transaction, rows inserted = rows the candidate holds, for every table.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import connection, cursor

from lakehouse.adapters.warehouse import connect, ensure_schema, ensure_table
from lakehouse.contracts import NO_TEXT, Table
from lakehouse.errors import LakehouseError
from lakehouse.settings import PostgresSettings, Settings

log = logging.getLogger(__name__)
CANDIDATE_PREFIX = "_lakehouse_candidate_"


class PublishError(LakehouseError):
    """Publishing candidates failed; every published table is unchanged."""


class PublishTimeoutError(PublishError):
    """Another session kept a lock on a published table through every attempt; nothing was published."""


@dataclass(frozen=True)
class PublishPolicy:
    """How long a publish waits for a lock (per attempt), how often it tries, and the first backoff."""

    lock_timeout_ms: int = 10_000
    attempts: int = 4
    backoff_s: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> PublishPolicy:
        """The policy ``LAKEHOUSE_LOCK_TIMEOUT_MS`` and ``LAKEHOUSE_PUBLISH_ATTEMPTS`` configure."""
        return cls(lock_timeout_ms=settings.lock_timeout_ms, attempts=settings.publish_attempts)


def candidate_schema(schema: str) -> str:
    """The private schema holding the unpublished candidates of ``schema``'s tables."""
    return CANDIDATE_PREFIX + schema


def publish_candidates(
    pg: PostgresSettings,
    tables: Sequence[tuple[str, Table]],
    *,
    policy: PublishPolicy = PublishPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Replace every ``schema.table`` of ``tables`` with its candidate, all in one transaction.

    Returns:
        Rows published per ``schema.table``.

    Raises:
        PublishTimeoutError: a lock was not granted within ``policy.lock_timeout_ms`` in any of the attempts.
        PublishError: a candidate is missing, or a table's inserted rows differ from its candidate's.
    """
    moves = [((candidate_schema(schema), table.name), (schema, table.name)) for schema, table in tables]
    return _with_retries(pg, _names(moves), _moves(moves, [table for _, table in tables]), policy, sleep)


def publish_schemas(
    pg: PostgresSettings,
    schemas: Mapping[str, str],
    *,
    policy: PublishPolicy = PublishPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Replace every table of each target schema that its source schema also holds (``{source: target}``, e.g. a
    shadow build's ``{"_lakehouse_shadow_core": "core"}``), all in one transaction, as :func:`publish_candidates`
    does. A target table missing, or whose columns differ from its source's, is (re)created like the source.

    Returns:
        Rows published per ``target.table``.
    """
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "select schemaname, tablename from pg_tables where schemaname = any(%s) order by 1, 2", (list(schemas),)
        )
        moves = [((source, name), (schemas[source], name)) for source, name in cur.fetchall()]
    return _with_retries(pg, _names(moves), _moves(moves, None), policy, sleep)


def _names(moves: Sequence[tuple[tuple[str, str], tuple[str, str]]]) -> str:
    return ", ".join(f"{schema}.{table}" for _, (schema, table) in moves)


def _with_retries(
    pg: PostgresSettings,
    names: str,
    apply: Callable[[connection, cursor, list[str]], dict[str, int]],
    policy: PublishPolicy,
    sleep: Callable[[float], None],
) -> dict[str, int]:
    """Run ``apply`` in one transaction with ``lock_timeout``; retry with backoff while a lock is not granted."""
    for attempt in range(1, policy.attempts + 1):
        waiting_on: list[str] = []
        try:
            with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
                cur.execute("select set_config('lock_timeout', %s, true)", (f"{policy.lock_timeout_ms}ms",))
                return apply(conn, cur, waiting_on)
        except errors.LockNotAvailable:
            blocked = waiting_on[-1] if waiting_on else names
            if attempt == policy.attempts:
                raise PublishTimeoutError(
                    f"publishing {names} gave up after {attempt} attempts: each waited {policy.lock_timeout_ms} ms "
                    f"(LAKEHOUSE_LOCK_TIMEOUT_MS) for a lock on {blocked} that another session holds; nothing was "
                    "published. Find the session in pg_locks / pg_stat_activity, end it, and run again"
                ) from None
            delay = policy.backoff_s * 2 ** (attempt - 1)
            log.warning("publish waited on a lock on %s; attempt %d of %d in %.1fs", blocked, attempt + 1,
                        policy.attempts, delay)  # fmt: skip
            sleep(delay)
        except psycopg2.Error as exc:
            detail = exc.diag.message_primary or " ".join(str(exc).split())
            raise PublishError(f"publishing {names} failed; the tables are unchanged: {detail}") from exc
    raise ValueError("policy.attempts must be at least 1")


def _moves(
    moves: Sequence[tuple[tuple[str, str], tuple[str, str]]], contracts: Sequence[Table] | None
) -> Callable[[connection, cursor, list[str]], dict[str, int]]:
    def apply(conn: connection, cur: cursor, waiting_on: list[str]) -> dict[str, int]:
        published: dict[str, int] = {}
        for index, (source, (schema, name)) in enumerate(moves):
            waiting_on.append(f"{schema}.{name}")
            if contracts is not None:
                ensure_table(conn, schema, contracts[index])
            published[f"{schema}.{name}"] = _replace(cur, source, (schema, name))
        return published

    return apply


def _columns(cur: cursor, schema: str, table: str) -> list[str]:
    cur.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
        " order by ordinal_position",
        (schema, table),
    )
    return [row[0] for row in cur.fetchall()]


def _replace(cur: cursor, source_name: tuple[str, str], target_name: tuple[str, str]) -> int:
    source, target = sql.Identifier(*source_name), sql.Identifier(*target_name)
    cur.execute(sql.SQL("select count(*) from {}").format(source))  # also fails when there is no source
    held = int((cur.fetchone() or (0,))[0])
    names = _columns(cur, *source_name)
    if _columns(cur, *target_name) != names:  # new, or its model changed shape: take the source's definition
        ensure_schema(cur, target_name[0])
        cur.execute(sql.SQL("drop table if exists {}").format(target))
        cur.execute(sql.SQL("create table {} (like {} including all)").format(target, source))
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    cur.execute(sql.SQL("delete from {}").format(target))
    cur.execute(sql.SQL("insert into {} ({}) select {} from {}").format(target, columns, columns, source))
    if cur.rowcount != held:
        raise PublishError(
            f"publishing {'.'.join(target_name)} refused, nothing was published: its source holds {held} rows, "
            f"the insert wrote {cur.rowcount}"
        )
    return held


def drop_candidates(pg: PostgresSettings, schemas: Sequence[str]) -> None:
    """Drop the candidate schemas of ``schemas`` with everything in them (after a publish or a failed audit)."""
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        for schema in schemas:
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(candidate_schema(schema))))


# Incremental publish: a published table changes by the rows a run re-derived, not by a copy of all of it.


@dataclass(frozen=True)
class Change:
    """How a run changes the published ``schema.<table>``: delete every row that matches a row of the candidate
    table ``_delete_<table>`` (each ``(delete column, target column)`` of ``match`` equal; a target column None is
    :data:`NO_TEXT`; with ``null_as`` a null target value is that text) or belongs to one of ``batches``, then
    insert the candidate table ``_insert_<table>``. The loader fills both candidate tables."""

    schema: str
    table: Table
    match: tuple[tuple[str, str | None], ...]
    null_as: str | None = None
    batches: tuple[str, ...] = ()

    @property
    def inserts(self) -> str:
        return f"_insert_{self.table.name}"

    @property
    def deletes(self) -> str:
        return f"_delete_{self.table.name}"

    def removed(self, alias: str) -> sql.Composable:
        """True for a row (``alias``) of the published table that the change removes."""
        candidate = candidate_schema(self.schema)
        equal = []
        for column, target in self.match:
            value: sql.Composable = sql.Identifier(alias, target) if target else sql.Literal(NO_TEXT)
            if target and self.null_as is not None:
                value = sql.SQL("coalesce({}, {})").format(value, sql.Literal(self.null_as))
            equal.append(sql.SQL("d.{} = {}").format(sql.Identifier(column), value))
        matched = sql.SQL("exists (select 1 from {} d where {})").format(
            sql.Identifier(candidate, self.deletes), sql.SQL(" and ").join(equal)
        )
        if not self.batches:
            return matched
        in_batches = sql.SQL("{} = any({})").format(sql.Identifier(alias, "_batch_id"), sql.Literal(list(self.batches)))
        return sql.SQL("({} or {})").format(matched, in_batches)


def stage_changes(pg: PostgresSettings, changes: Sequence[Change]) -> None:
    """Create, for every change, the candidate ``<candidate schema>.<table>`` as a view of the published table as
    the change would leave it, for the audit to read like a candidate table."""
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        for change in changes:
            candidate = candidate_schema(change.schema)
            columns = sql.SQL(", ").join(map(sql.Identifier, change.table.column_names))
            cur.execute(
                sql.SQL(
                    "create or replace view {view} as select {columns} from {published} t where not {removed}"
                    " union all select {columns} from {inserts}"
                ).format(
                    view=sql.Identifier(candidate, change.table.name),
                    columns=columns,
                    published=sql.Identifier(change.schema, change.table.name),
                    removed=change.removed("t"),
                    inserts=sql.Identifier(candidate, change.inserts),
                )
            )


def publish_changes(
    pg: PostgresSettings,
    changes: Sequence[Change],
    *,
    policy: PublishPolicy = PublishPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Apply every change (after :func:`stage_changes`) in one transaction, as :func:`publish_candidates` does:
    MVCC-safe ``delete`` + ``insert``, ``lock_timeout`` and retries. Verified inside the transaction: each table
    then holds exactly the rows its candidate view held.

    Returns:
        Rows of each ``schema.table`` after the publish.
    """

    def apply(conn: connection, cur: cursor, waiting_on: list[str]) -> dict[str, int]:
        published: dict[str, int] = {}
        for change in changes:
            name = f"{change.schema}.{change.table.name}"
            waiting_on.append(name)
            candidate = sql.Identifier(candidate_schema(change.schema), change.table.name)
            target = sql.Identifier(change.schema, change.table.name)
            cur.execute(sql.SQL("select count(*) from {}").format(candidate))
            expected = int((cur.fetchone() or (0,))[0])
            cur.execute(sql.SQL("delete from {} t where {}").format(target, change.removed("t")))
            columns = sql.SQL(", ").join(map(sql.Identifier, change.table.column_names))
            inserts = sql.Identifier(candidate_schema(change.schema), change.inserts)
            cur.execute(sql.SQL("insert into {} ({}) select {} from {}").format(target, columns, columns, inserts))
            cur.execute(sql.SQL("select count(*) from {}").format(target))
            held = int((cur.fetchone() or (0,))[0])
            if held != expected:
                raise PublishError(
                    f"publishing {name} refused, nothing was published: its candidate holds {expected} rows, the "
                    f"table would hold {held}"
                )
            published[name] = held
        return published

    names = ", ".join(f"{c.schema}.{c.table.name}" for c in changes)
    return _with_retries(pg, names, apply, policy, sleep)


def candidate_rows(pg: PostgresSettings, changes: Sequence[Change]) -> dict[str, int]:
    """Rows each staged change would leave in its table (``schema.table``: the count of its candidate view)."""
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        counts = {}
        for change in changes:
            view = sql.Identifier(candidate_schema(change.schema), change.table.name)
            cur.execute(sql.SQL("select count(*) from {}").format(view))
            counts[f"{change.schema}.{change.table.name}"] = int((cur.fetchone() or (0,))[0])
    return counts
