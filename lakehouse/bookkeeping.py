"""The ``ops`` schema in PostgreSQL: the one owner of every ``ops.*`` table, its DDL and its writes.

- ``ops.pipeline_runs``: a run's id, start, end, status, version and arguments;
- ``ops.layer_loads``: rows and bytes per layer and table of a run;
- ``ops.quality_results``: one row per quality check of a run (``source`` ``soda``, or ``dbt`` for gold's tests);
- ``ops.reconciliation``: silver's per-table count balance of a run;
- ``ops.audits``: whether a layer's candidate passed its audit in a run (and which checks failed) and the bronze
  batches it was built from; the latest row of a layer is its gate state (gold refuses to build on a silver whose
  last audit failed) and tells silver whether anything new arrived since;
- ``ops.loaded_batches``: the loader's idempotency ledger (which batch reached which table), written inside the
  loader's publish transaction through :func:`ledger_claim`.

Tables are created when missing. The run-level functions open their own connection and commit before returning,
so a run that fails later still leaves its rows behind; re-recording a run's loads or a layer's quality results
replaces them. Identifiers go through :mod:`psycopg2.sql`; values are parameters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import cursor

from lakehouse.adapters.warehouse import connect, create_if_absent, create_schema_sql, run_session_name
from lakehouse.contracts import OPS_SCHEMA
from lakehouse.errors import LakehouseError, ServiceUnavailableError
from lakehouse.report import SummaryRow, layer_loads
from lakehouse.settings import PostgresSettings

log = logging.getLogger(__name__)

SCHEMA = OPS_SCHEMA
RUNS, LOADS, QUALITY = "pipeline_runs", "layer_loads", "quality_results"
RECONCILIATION, LEDGER, AUDITS = "reconciliation", "loaded_batches", "audits"
RUN_BALANCE = ("bronze_rows", "silver_rows", "quarantined", "duplicates", "superseded")
# The columns of a summary row that ops.layer_loads keeps (files and corrupt lines are for the summary only).
LOAD_COLUMNS = (
    "layer", "table_name", "rows_in", "rows_out", "quarantined", "duplicates", "superseded", "csv_bytes",
    "parquet_bytes", "seconds",
)  # fmt: skip
RunStatus = Literal["running", "succeeded", "failed"]
CheckSource = Literal["soda", "dbt"]
_DDL = {
    RUNS: """
        run_id text primary key,
        started_at timestamptz not null default now(),
        ended_at timestamptz,
        status text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
        version text not null,
        arguments jsonb not null default '{{}}'::jsonb""",  # braces doubled for sql.SQL.format
    LOADS: """
        run_id text not null references {runs} (run_id) on delete cascade,
        layer text not null,
        table_name text not null,
        rows_in bigint, rows_out bigint, quarantined bigint, duplicates bigint, superseded bigint,
        csv_bytes bigint, parquet_bytes bigint, seconds double precision,
        recorded_at timestamptz not null default now(),
        primary key (run_id, layer, table_name)""",
    QUALITY: """
        run_id text not null references {runs} (run_id) on delete cascade,
        layer text not null,
        check_name text not null,
        table_name text not null,
        outcome text not null check (outcome in ('pass', 'warn', 'fail')),
        value double precision,
        diagnostics text not null default '',
        source text not null default 'soda',
        recorded_at timestamptz not null default now(),
        primary key (run_id, layer, table_name, check_name)""",
    # No foreign key to the runs: silver can be built and reconciled outside a recorded run (tests, notebooks).
    RECONCILIATION: """
        run_id text not null, table_name text not null,
        bronze_rows bigint not null, silver_rows bigint not null, quarantined bigint not null,
        duplicates bigint not null, superseded bigint not null, reconciled boolean not null,
        checked_at timestamptz not null default now(),
        run_bronze_rows bigint, run_silver_rows bigint, run_quarantined bigint, run_duplicates bigint,
        run_superseded bigint,
        primary key (run_id, table_name)""",
    LEDGER: """
        target text not null, batch_id text not null, rows bigint not null,
        loaded_at timestamptz not null default now(),
        primary key (target, batch_id)""",
    AUDITS: """
        run_id text not null, layer text not null, passed boolean not null,
        failed_checks text[] not null default '{{}}',
        batches text[] not null default '{{}}',
        audited_at timestamptz not null default clock_timestamp(),
        primary key (run_id, layer)""",
}


class CheckOutcome(Protocol):
    """What ``ops.quality_results`` records of a check (:class:`lakehouse.quality.CheckResult` is one)."""

    @property
    def check_name(self) -> str: ...
    @property
    def table_name(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def diagnostics(self) -> str: ...


class BookkeepingError(LakehouseError):
    """A bookkeeping row could not be written (unknown run id, a duplicate run id, a failed statement)."""


@dataclass(frozen=True)
class Reconciliation:
    """Silver's balance for one table: ``bronze_rows = silver_rows + quarantined + duplicates + superseded``, of all
    bronze history (cumulative); ``run`` is the same balance of the rows the run classified (an incremental run
    re-classifies the new batches and what they can change; a full rebuild all of them)."""

    table_name: str
    bronze_rows: int
    silver_rows: int
    quarantined: int
    duplicates: int
    superseded: int
    run: Reconciliation | None = None

    @property
    def reconciled(self) -> bool:
        return self.bronze_rows == self.silver_rows + self.quarantined + self.duplicates + self.superseded


@contextlib.contextmanager
def alive(pg: PostgresSettings, run_id: str) -> Iterator[None]:
    """Show, for as long as the block lasts, that run ``run_id`` is going on: a session of its own, named after it.
    The session ends with the process however that dies (``kill -9`` included), so :func:`start_run` can tell a run
    that died from one still going on. Every recorded run starts inside one."""
    conn = _connect(pg, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("set application_name = %s", (run_session_name(run_id),))
        yield
    finally:
        conn.close()


def start_run(
    pg: PostgresSettings, *, run_id: str, version: str, arguments: Mapping[str, object] | Sequence[str]
) -> list[str]:
    """Record that run ``run_id`` started now (status ``running``), and record as ``failed`` (ended now) every
    other run still ``running`` whose process is gone: no session named after it is left (:func:`alive`).

    Args:
        arguments: the run's command and options (stored as JSON; values that are not JSON become strings).

    Returns:
        The runs found dead, oldest first.

    Raises:
        BookkeepingError: ``run_id`` was already recorded.
        ServiceUnavailableError: PostgreSQL cannot be reached.
    """
    with _transaction(pg, f"starting run {run_id}") as cur:
        _create_tables(cur)
        cur.execute(
            sql.SQL("insert into {} (run_id, version, arguments) values (%s, %s, %s) on conflict do nothing").format(
                sql.Identifier(SCHEMA, RUNS)
            ),
            (run_id, version, json.dumps(arguments, default=str)),
        )
        if cur.rowcount == 0:
            raise BookkeepingError(f"run {run_id} is already in {SCHEMA}.{RUNS}; run ids must be unique")
        cur.execute(
            sql.SQL(
                "update {} r set status = 'failed', ended_at = now() where status = 'running' and run_id <> %s"
                " and not exists (select 1 from pg_stat_activity a where a.application_name = left(%s || r.run_id, 63))"
                " returning run_id, started_at"
            ).format(sql.Identifier(SCHEMA, RUNS)),
            (run_id, run_session_name("")),
        )
        dead = [row[0] for row in sorted(cur.fetchall(), key=lambda row: row[1])]
    for other in dead:
        log.warning("run %s was still recorded as running, but its process is gone: recorded as failed", other)
    return dead


@dataclass
class RecordedRun:
    """A run :func:`recorded_run` records: the runs found dead as it started (:func:`start_run`), and the status
    its end records (``failed`` unless the run sets another)."""

    run_id: str
    dead: list[str]
    status: RunStatus = "failed"


@contextlib.contextmanager
def recorded_run(
    pg: PostgresSettings, run_id: str, *, version: str, arguments: Mapping[str, object] | Sequence[str]
) -> Iterator[RecordedRun]:
    """Record run ``run_id`` for as long as the block lasts: it holds a session named after it (:func:`alive`),
    starts (:func:`start_run`, which records runs that died as failed) and, however the block ends, ends with the
    status the block set (:func:`finish_run`); an exception out of the block records it as ``failed``.

    Raises:
        BookkeepingError, ServiceUnavailableError: as :func:`start_run` (then nothing is recorded).
    """
    with alive(pg, run_id):
        run = RecordedRun(run_id, start_run(pg, run_id=run_id, version=version, arguments=arguments))
        try:
            yield run
        except BaseException:
            run.status = "failed"
            raise
        finally:
            finish_run(pg, run_id, run.status)


def finish_run(pg: PostgresSettings, run_id: str, status: RunStatus) -> None:
    """Set the run's end time to now and its final ``status``.

    Raises:
        BookkeepingError: the run was never started.
    """
    with _transaction(pg, f"finishing run {run_id}") as cur:
        _create_tables(cur)
        cur.execute(
            sql.SQL("update {} set ended_at = now(), status = %s where run_id = %s").format(
                sql.Identifier(SCHEMA, RUNS)
            ),
            (status, run_id),
        )
        if cur.rowcount == 0:
            raise BookkeepingError(f"run {run_id} is not in {SCHEMA}.{RUNS}; call start_run first")


def record_layer_loads(pg: PostgresSettings, run_id: str, rows: Sequence[SummaryRow]) -> int:
    """Record (or replace) one row per layer and table of run ``run_id`` (step timings such as ``-> PostgreSQL``
    are left out); return how many were written."""
    names = list(LOAD_COLUMNS)
    loads = [(run_id, *(getattr(row, name) for name in names)) for row in layer_loads(rows)]
    insert = "insert into {} (run_id, {}) values (%s, {}) on conflict (run_id, layer, table_name) do update set {}"
    statement = sql.SQL(insert).format(
        sql.Identifier(SCHEMA, LOADS),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() for _ in names),
        sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in names[2:]),
    )
    with _transaction(pg, f"recording the loads of run {run_id}") as cur:
        _create_tables(cur)
        cur.executemany(statement, loads)
    return len(loads)


def record_quality(
    pg: PostgresSettings, run_id: str, layer: str, results: Iterable[CheckOutcome], *, source: CheckSource = "soda"
) -> int:
    """Replace the quality results ``source`` gave for ``layer`` in run ``run_id`` with ``results``; return how
    many were written. ``source`` is ``soda`` (the gates) or ``dbt`` (gold's data and unit tests)."""
    rows = [(run_id, layer, r.check_name, r.table_name, r.outcome, r.value, r.diagnostics, source) for r in results]
    target = sql.Identifier(SCHEMA, QUALITY)
    with _transaction(pg, f"recording the {layer} {source} results of run {run_id}") as cur:
        _create_tables(cur)
        cur.execute(
            sql.SQL("delete from {} where run_id = %s and layer = %s and source = %s").format(target),
            (run_id, layer, source),
        )
        cur.executemany(
            sql.SQL(
                "insert into {} (run_id, layer, check_name, table_name, outcome, value, diagnostics, source)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(target),
            rows,
        )
    return len(rows)


def record_reconciliation(pg: PostgresSettings, run_id: str, rows: Iterable[Reconciliation]) -> int:
    """One row per table in ``ops.reconciliation`` (kept if the run already recorded that table)."""
    values = [
        (run_id, r.table_name, *_balance(r), r.reconciled and (r.run is None or r.run.reconciled), *_balance(r.run))
        for r in rows
    ]
    statement = sql.SQL(
        "insert into {} (run_id, table_name, bronze_rows, silver_rows, quarantined, duplicates, superseded, reconciled,"
        " run_bronze_rows, run_silver_rows, run_quarantined, run_duplicates, run_superseded)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing"
    )
    with _transaction(pg, f"recording the reconciliation of run {run_id}") as cur:
        _create_tables(cur)
        cur.executemany(statement.format(sql.Identifier(SCHEMA, RECONCILIATION)), values)
    return len(values)


@dataclass(frozen=True)
class Audit:
    """One audit of a layer's candidate: its run, whether it passed, the failed checks, and when."""

    run_id: str
    layer: str
    passed: bool
    failed_checks: tuple[str, ...]
    audited_at: dt.datetime
    batches: tuple[str, ...] = ()


def record_audit(
    pg: PostgresSettings, run_id: str, layer: str, failed_checks: Sequence[str], *, batches: Sequence[str] = ()
) -> None:
    """Record (or replace) that ``layer``'s candidate in run ``run_id``, built from bronze ``batches``, passed (no
    failed checks: record it once the candidate is published) or failed."""
    statement = sql.SQL(
        "insert into {} (run_id, layer, passed, failed_checks, batches) values (%s, %s, %s, %s, %s)"
        " on conflict (run_id, layer) do update set passed = excluded.passed, failed_checks = excluded.failed_checks,"
        " batches = excluded.batches, audited_at = clock_timestamp()"
    ).format(sql.Identifier(SCHEMA, AUDITS))
    with _transaction(pg, f"recording the {layer} audit of run {run_id}") as cur:
        _create_tables(cur)
        cur.execute(statement, (run_id, layer, not failed_checks, list(failed_checks), sorted(batches)))


def last_audit(pg: PostgresSettings, layer: str, *, passed: bool = False) -> Audit | None:
    """The latest audit of ``layer`` (its gate state; with ``passed``, the latest that passed: what is published),
    or None when there is none."""
    query = sql.SQL(
        "select run_id, layer, passed, failed_checks, audited_at, batches from {} where layer = %s{}"
        " order by audited_at desc limit 1"
    ).format(sql.Identifier(SCHEMA, AUDITS), sql.SQL(" and passed") if passed else sql.SQL(""))
    with _transaction(pg, f"reading the last {layer} audit") as cur:
        _create_tables(cur)
        cur.execute(query, (layer,))
        row = cur.fetchone()
    return Audit(row[0], row[1], row[2], tuple(row[3]), row[4], tuple(row[5])) if row else None


def _balance(r: Reconciliation | None) -> tuple[int | None, ...]:
    """Its five counts (five nulls for no balance)."""
    return (r.bronze_rows, r.silver_rows, r.quarantined, r.duplicates, r.superseded) if r else (None,) * 5


def passed_runs(pg: PostgresSettings, layer: str) -> set[str]:
    """The runs whose ``layer`` candidate passed its audit (and was published)."""
    query = sql.SQL("select run_id from {} where layer = %s and passed").format(sql.Identifier(SCHEMA, AUDITS))
    with _transaction(pg, f"reading the passed {layer} audits") as cur:
        _create_tables(cur)
        cur.execute(query, (layer,))
        return {row[0] for row in cur.fetchall()}


def reconciliation_of(pg: PostgresSettings, run_id: str) -> dict[str, Reconciliation]:
    """The cumulative balance per table that run ``run_id`` recorded (empty when it recorded none)."""
    query = sql.SQL(
        "select table_name, bronze_rows, silver_rows, quarantined, duplicates, superseded from {} where run_id = %s"
    ).format(sql.Identifier(SCHEMA, RECONCILIATION))
    with _transaction(pg, f"reading the reconciliation of run {run_id}") as cur:
        _create_tables(cur)
        cur.execute(query, (run_id,))
        rows = cur.fetchall()
    return {name: Reconciliation(name, int(b), int(s), int(q), int(d), int(u)) for name, b, s, q, d, u in rows}


def ensure_ledger(cur: cursor) -> None:
    """Create the ``ops`` tables (the ledger among them) unless they exist, in the caller's transaction."""
    _create_tables(cur)


def ledger_has(cur: cursor, target: str, batch_id: str) -> bool:
    """True when ``batch_id`` was already published to ``target`` (schema-qualified)."""
    cur.execute(
        sql.SQL("select 1 from {} where target = %s and batch_id = %s").format(sql.Identifier(SCHEMA, LEDGER)),
        (target, batch_id),
    )
    return cur.fetchone() is not None


def ledger_claim(cur: cursor, target: str, batch_id: str, rows: int) -> bool:
    """Record in the caller's (publish) transaction that ``batch_id`` reached ``target`` with ``rows`` rows.

    The caller claims before it inserts (a concurrent publish of the batch then waits for it, and skips) and
    aborts its transaction unless the insert wrote exactly ``rows`` rows, so a recorded count is an inserted one.
    Returns False when the batch was already recorded: the caller must not publish it again.
    """
    cur.execute(
        sql.SQL("insert into {} (target, batch_id, rows) values (%s, %s, %s) on conflict do nothing").format(
            sql.Identifier(SCHEMA, LEDGER)
        ),
        (target, batch_id, rows),
    )
    return bool(cur.rowcount)


def _create_tables(cur: cursor) -> None:
    runs = sql.Identifier(SCHEMA, RUNS)
    # The DDL text is a constant of this module, never user input. One savepoint for all of it (this runs in
    # every bookkeeping transaction).
    create_if_absent(
        cur,
        create_schema_sql(SCHEMA),
        *(
            sql.SQL("create table if not exists {} ({})").format(
                sql.Identifier(SCHEMA, table), sql.SQL(columns).format(runs=runs)
            )
            for table, columns in _DDL.items()
        ),
    )
    # Tables created before dbt's tests were recorded lack the column that tells them from Soda's checks, and
    # reconciliations recorded before incremental silver the run's own balance. Look first: `alter table` takes an
    # exclusive lock even when the column exists.
    added = {
        (QUALITY, "source"): "text not null default 'soda'",
        **{(RECONCILIATION, f"run_{name}"): "bigint" for name in RUN_BALANCE},
    }
    cur.execute(
        "select table_name, column_name from information_schema.columns where table_schema = %s"
        " and table_name = any(%s)",
        (SCHEMA, [QUALITY, RECONCILIATION]),
    )
    present = set(cur.fetchall())
    for (table, column), definition in added.items():
        if (table, column) not in present:
            cur.execute(
                sql.SQL("alter table {} add column if not exists {} {}").format(
                    sql.Identifier(SCHEMA, table), sql.Identifier(column), sql.SQL(definition)
                )
            )


def _connect(pg: PostgresSettings, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """A new connection; PostgreSQL out of reach is a :class:`ServiceUnavailableError` naming it."""
    try:
        return connect(pg, autocommit=autocommit)
    except psycopg2.OperationalError as exc:
        detail, hint = " ".join(str(exc).split()), "start PostgreSQL and check the PG* variables"
        raise ServiceUnavailableError("PostgreSQL", f"{pg.host}:{pg.port}", detail, hint=hint) from None


@contextlib.contextmanager
def _transaction(pg: PostgresSettings, action: str) -> Iterator[cursor]:
    """A cursor in one transaction, committed on success; PostgreSQL errors become named errors."""
    conn = _connect(pg)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    except psycopg2.Error as exc:
        message = exc.diag.message_primary or " ".join(str(exc).split())
        if isinstance(exc, errors.ForeignKeyViolation):
            message = f"the run is not in {SCHEMA}.{RUNS}; call start_run first"
        raise BookkeepingError(f"{action} in {pg.endpoint} failed: {message}") from None
    finally:
        conn.close()
