"""Building the Silver layer, write-audit-publish: classify bronze rows, write the six silver and quarantine tables
(or, incrementally, their changes) as an unpublished candidate, audit it (reconciliation, then the caller's checks),
and only then publish it to PostgreSQL (one transaction) and to the lake (one Delta commit per table).

:func:`build_silver` rebuilds from every completed bronze batch (``--full-refresh``, or when nothing publishable
is known); :func:`update_silver` re-classifies only what the new batches can change."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.adapters import lake
from lakehouse.adapters.lake_upkeep import last_writer
from lakehouse.adapters.loader import TableLoad, load_many
from lakehouse.adapters.publish import (
    Change,
    PublishPolicy,
    candidate_rows,
    candidate_schema,
    drop_candidates,
    publish_candidates,
    publish_changes,
    stage_changes,
)
from lakehouse.adapters.spark import empty_frame, in_parallel, in_parallel_timed
from lakehouse.adapters.warehouse import existing_tables
from lakehouse.bookkeeping import Reconciliation, last_audit, passed_runs, reconciliation_of, record_reconciliation
from lakehouse.bronze.ingest_log import completed_batches, tables_in
from lakehouse.bronze.layer import read_bronze
from lakehouse.contracts import NO_TEXT, SILVER, TABLES, Column, Table, quarantine_table
from lakehouse.errors import LakehouseError
from lakehouse.quality.scan import CheckResult
from lakehouse.report import SummaryRow
from lakehouse.rules import FOREIGN_KEYS, foreign_key
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver.transforms import (
    DUPLICATE,
    OUTCOMES,
    QUARANTINED,
    SILVER_ROW,
    SUPERSEDED,
    changed_keys,
    classify,
    keys_touched,
    match_texts,
    quarantine_rows,
    rows_of_keys,
    rows_of_parents,
    silver_rows,
    tally,
    typed_key,
    value_range,
)

log = logging.getLogger(__name__)


RECONCILED = "bronze rows = silver + quarantined + duplicates + superseded"
CANDIDATE_LAYERS = ("silver", "quarantine")
Audit = Callable[[Mapping[str, str], Sequence[str]], Sequence[CheckResult]]


class AuditFailedError(LakehouseError):
    """Silver's candidate failed its audit; nothing was published (``report.audit`` holds every check)."""

    def __init__(self, report: SilverReport, message: str = "") -> None:
        self.report = report
        failed = "; ".join(f"{r.table_name}: {r.check_name} ({r.diagnostics})" for r in report.failed_checks)
        super().__init__(
            message or f"silver's candidate of run {report.run_id} failed its audit; nothing was published: {failed}"
        )


class ReconciliationError(AuditFailedError):
    """Rows were lost or invented between bronze and silver; nothing was published and the run must fail."""


@dataclass
class SilverTableReport:
    table: str
    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined: int = 0
    duplicates: int = 0
    superseded: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    parquet_bytes: int = 0
    seconds: float = 0.0
    run: Reconciliation | None = None  # an incremental run: the balance of the rows it re-classified

    @property
    def reconciled(self) -> bool:
        return self.reconciliation().reconciled and (self.run is None or self.run.reconciled)

    def reconciliation(self) -> Reconciliation:
        return Reconciliation(
            self.table, self.bronze_rows, self.silver_rows, self.quarantined, self.duplicates, self.superseded,
            self.run,
        )  # fmt: skip


@dataclass
class SilverReport:
    run_id: str
    tables: dict[str, SilverTableReport]
    warehouse_seconds: float = 0.0
    audit: tuple[CheckResult, ...] = ()
    batches: tuple[str, ...] = ()

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.audit if r.outcome == "fail")

    def reconciliation_checks(self) -> list[CheckResult]:
        """The reconciliation of every table as a check of the audit (value: bronze rows not accounted for)."""
        return [
            CheckResult(
                RECONCILED,
                f"silver.{t.table}",
                "pass" if t.reconciled else "fail",
                float(t.bronze_rows - t.silver_rows - t.quarantined - t.duplicates - t.superseded),
                f"bronze {t.bronze_rows}, silver {t.silver_rows}, quarantined {t.quarantined}, "
                f"duplicates {t.duplicates}, superseded {t.superseded}" + (_run_balance(t.run) if t.run else ""),
            )
            for t in self.tables.values()
        ]

    def summary_rows(self) -> list[SummaryRow]:
        """One summary row per table, then the PostgreSQL publish."""
        rows = [
            SummaryRow(
                "silver",
                t.table,
                rows_in=t.bronze_rows,
                rows_out=t.silver_rows,
                quarantined=t.quarantined,
                duplicates=t.duplicates,
                superseded=t.superseded,
                parquet_bytes=t.parquet_bytes,
                seconds=t.seconds,
            )
            for t in self.tables.values()
        ]
        return [*rows, SummaryRow("silver", "-> PostgreSQL", seconds=self.warehouse_seconds)]

    def check_reconciled(self) -> None:
        """Raise :class:`ReconciliationError` naming every table whose counts do not balance."""
        broken = [t for t in self.tables.values() if not t.reconciled]
        if broken:
            details = "; ".join(
                f"{t.table}: bronze {t.bronze_rows} != silver {t.silver_rows} + quarantined {t.quarantined} + "
                f"duplicates {t.duplicates} + superseded {t.superseded}" + (_run_balance(t.run) if t.run else "")
                for t in broken
            )
            raise ReconciliationError(self, f"silver does not reconcile with bronze ({details}); nothing was published")


def _run_balance(run: Reconciliation) -> str:
    return (
        f" (this run re-classified {run.bronze_rows}: silver {run.silver_rows}, quarantined {run.quarantined}, "
        f"duplicates {run.duplicates}, superseded {run.superseded})"
    )


def build_silver(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    *,
    run_id: str,
    processed_at: dt.datetime,
    audit: Audit | None = None,
    batches: Sequence[str] | None = None,
) -> SilverReport:
    """Rebuild silver and quarantine from every completed bronze batch: write, audit, publish.

    The candidate (six tables) is written to PostgreSQL's private candidate schemas and audited there: the
    reconciliation (recorded in ``ops.reconciliation`` whatever its outcome), then ``audit`` (e.g. the Soda checks
    of the tables that had bronze rows). Only an audited candidate is published: to PostgreSQL in one transaction
    (:func:`~lakehouse.adapters.publish.publish_candidates`), then to the lake, one Delta commit per table. A failed
    audit publishes nothing: both stores keep what they had.

    Args:
        audit: called with the candidate schemas (``{"silver": ..., "quarantine": ...}``) and the tables with
            bronze rows; returns the checks' outcomes. None audits the reconciliation alone.
        batches: the completed bronze batches, when the caller has read them; else they are read.

    Raises:
        AuditFailedError: the candidate failed its audit (:class:`ReconciliationError` when the counts do not
            balance); nothing was published.
        PublishTimeoutError: a lock on a published table was never granted; nothing was published.
    """
    batches = completed_batches(spark, settings) if batches is None else list(batches)
    report = SilverReport(run_id, {t: SilverTableReport(t) for t in TABLES}, batches=tuple(batches))
    loads: list[TableLoad] = []
    cached: list[DataFrame] = []
    parent: DataFrame | None = None
    for index, table in enumerate(TABLES, start=1):  # parents first: foreign keys are checked against the parent
        log.info("silver: table %d/%d, %s", index, len(TABLES), table, extra={"progress": True})
        started = time.monotonic()
        source = read_bronze(spark, settings, table, batches)
        classified = classify(source, table, parent).cache()
        cached.append(classified)
        entry = report.tables[table]
        entry.bronze_rows = source.count()
        [(counts, entry.by_rule)] = _counts(classified)
        entry.duplicates, entry.superseded = counts[DUPLICATE], counts[SUPERSEDED]
        good = silver_rows(classified, table, processed_at=processed_at)
        bad = quarantine_rows(classified, table, processed_at=processed_at)
        loads += [
            TableLoad(good, SILVER[table], "silver", expected_rows=counts[SILVER_ROW]),
            TableLoad(bad, quarantine_table(table), "quarantine", expected_rows=counts[QUARANTINED]),
        ]
        parent = good
        entry.seconds = time.monotonic() - started
        log.info("silver/%s: %d bronze rows -> %s", table, entry.bronze_rows, counts)
    try:
        _write_and_audit(report, loads, pg, audit)
        started = time.monotonic()
        publish_candidates(pg, [(item.schema, item.table) for item in loads], policy=PublishPolicy.of(settings))
        report.warehouse_seconds += time.monotonic() - started
        # The lake follows the warehouse: a publish that gave up leaves both stores as they were.
        _publish_lake(
            spark,
            report,
            [
                (item.table.name, item.schema, functools.partial(
                    lake.write_table, item.df, lake.table_uri(settings, item.schema, item.table.name),
                    mode="replace", partition_by=item.table.partition_by, cluster_by=item.table.cluster_by,
                ))
                for item in loads
            ],
        )  # fmt: skip
    finally:
        drop_candidates(pg, CANDIDATE_LAYERS)
        for frame in cached:
            frame.unpersist()
    return report


def _write_and_audit(report: SilverReport, loads: list[TableLoad], pg: PostgresSettings, audit: Audit | None) -> None:
    """Load the candidate into the candidate schemas, reconcile it, audit it; raise when the audit fails."""
    started = time.monotonic()
    candidates = [replace(i, schema=candidate_schema(i.schema)) for i in loads]
    for item, result in zip(loads, load_many(candidates, pg, mode="replace"), strict=True):
        entry = report.tables[item.table.name]
        if item.schema == "silver":
            entry.silver_rows = result.rows
        else:
            entry.quarantined = result.rows
    report.warehouse_seconds = time.monotonic() - started
    _audit(report, pg, audit)


def _audit(report: SilverReport, pg: PostgresSettings, audit: Audit | None) -> None:
    """Record the reconciliation, run ``audit`` on the candidate schemas; raise when anything failed."""
    record_reconciliation(pg, report.run_id, [t.reconciliation() for t in report.tables.values()])
    results = [*report.reconciliation_checks()]
    touched = [t.table for t in report.tables.values() if t.bronze_rows > 0]
    scanned = audit({s: candidate_schema(s) for s in CANDIDATE_LAYERS}, touched) if audit is not None else ()
    report.audit = (*results, *scanned)
    failed = [r for r in report.audit if r.outcome == "fail"]
    if failed and all(r.check_name == RECONCILED for r in failed):
        report.check_reconciled()
    if failed:
        raise AuditFailedError(report)


def _counts(*classified: DataFrame) -> list[tuple[dict[str, int], dict[str, int]]]:
    """Per classification: rows per outcome and quarantined rows per rule; all from one Spark job."""
    tallies = [tally(frame).withColumn("_of", F.lit(index)) for index, frame in enumerate(classified)]
    results = [(dict.fromkeys(OUTCOMES, 0), dict[str, int]()) for _ in classified]
    for row in functools.reduce(lambda a, b: a.unionByName(b), tallies).collect():
        outcomes, by_rule = results[row["_of"]]
        outcomes[row["_outcome"]] += int(row["rows"])
        if row["_rule"] is not None:
            by_rule[row["_rule"]] = by_rule.get(row["_rule"], 0) + int(row["broken"])
    return results


# Incremental silver.
#
# A row's outcome depends on nothing but the bronze rows of its key (validity, versions in its batch, the latest valid
# batch) and, for a child, on whether its foreign key is a key of the final parent silver. So a run re-classifies, per
# table: every row of the new batches; every earlier row of a key those rows touch; and every earlier row whose parent
# key came into or went out of the parent's silver (its orphan rule may flip), with the other earlier rows of its key.
# Every other row keeps its outcome, so the published rows of the other keys stay as they are. Scans of the earlier
# batches find those rows: one for the keys of the new rows, which needs no parent, so the three tables make it at once;
# then, when parent keys came or went, one for the rows they name, and one for the other rows of those rows' keys when
# there are any. A child need not wait for its parent to know whether a parent key came or went: a parent's keys after
# the run are its keys before it unless one did, so a child classifies against the published keys at once and again only
# when its parent reports a change. The touched keys among the earlier rows are exactly the touched keys published
# before (every earlier row left a silver or quarantine row of its key: a superseded or duplicate row shares its key
# with one), so they name the published rows the run replaces. A table with no row in the new batches whose parent's
# silver keys did not change has nothing to re-classify: the run leaves it as it was, without reading its history.


@dataclass(frozen=True)
class Published:
    """What silver was last published from: the run, its bronze batches and its cumulative balance per table."""

    run_id: str
    batches: tuple[str, ...]
    balance: Mapping[str, Reconciliation]


def published_base(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, completed: Sequence[str]
) -> Published | str:
    """The published silver an incremental run can build on, or why it cannot (then a full rebuild is due).

    It can when the last passed audit recorded its batches and balance, those batches are still among the
    ``completed`` bronze batches, every silver and quarantine table exists in both stores, and each Delta table's
    latest write is by a run whose audit passed (a run that died between its publish and its audit leaves a write
    by another run: rebuild)."""
    last = last_audit(pg, "silver", passed=True)
    if last is None or not last.batches:
        return "silver was never published with its batches recorded"
    balance = reconciliation_of(pg, last.run_id)
    if set(balance) != set(TABLES):
        return f"run {last.run_id} recorded no reconciliation for every table"
    if not set(last.batches) <= set(completed):
        return f"bronze no longer holds every batch silver was built from in run {last.run_id}"
    for schema in CANDIDATE_LAYERS:
        if existing_tables(pg, schema, list(TABLES)) != list(TABLES):
            return f"a {schema} table is missing in PostgreSQL"
    passed = passed_runs(pg, "silver")
    tables = [(schema, table) for schema in CANDIDATE_LAYERS for table in TABLES]

    def writer(uri: str) -> tuple[bool, str | None]:
        """Whether the table exists, and the run of its latest write."""
        return (True, last_writer(spark, uri)) if lake.is_table(spark, uri) else (False, None)

    writers = in_parallel(spark, [functools.partial(writer, lake.table_uri(settings, *name)) for name in tables])
    for (schema, table), (exists, run) in zip(tables, writers, strict=True):
        if not exists:
            return f"the lake has no {schema}/{table}"
        if run not in passed:
            return f"{schema}/{table} was last written by run {run}, whose silver audit did not pass"
    return Published(last.run_id, tuple(last.batches), balance)


@dataclass
class _Increment:
    """One table's re-classification: what a run deletes from and inserts into its silver and quarantine."""

    table: str
    keys: DataFrame  # every key re-classified (``_key``)
    seen: DataFrame  # those with rows in earlier batches (``_key``)
    silver: DataFrame  # silver rows of the re-classified keys
    quarantine: DataFrame  # quarantine rows of the re-classified rows
    matches: DataFrame  # quarantine match texts of the earlier rows (``_match_key``, ``_match_fk``)
    earlier_rows: int  # none: the run only adds rows
    rows: int = 0  # rows re-classified: a bound on each of the frames above
    within: SparkColumn | None = None  # a clustered silver table: what every silver row it deletes meets


def update_silver(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    *,
    run_id: str,
    processed_at: dt.datetime,
    base: Published,
    batches: Sequence[str],
    audit: Audit | None = None,
) -> SilverReport:
    """Bring the published silver (``base``) up to every completed bronze batch (``batches``), write-audit-publish,
    re-classifying only what the new batches can change (see the comment above :class:`Published`).

    The three tables are classified at once, one thread each (:func:`~lakehouse.adapters.spark.in_parallel`): a
    child does the work its parent cannot change (its new rows, their keys, those keys' earlier rows) while the
    parent is classified, and classifies them against the parent's keys as published before the run; then it waits
    for the parent's keys after the run, and classifies again only when one came or went. The candidate is the
    change: per table, the rows to insert and what identifies the rows to delete, loaded into the candidate schemas,
    where a view shows each table as the change would leave it; the audit (reconciliation, cumulative and of the
    run, then ``audit``) reads the views. Then one PostgreSQL transaction applies the six changes and one Delta
    commit per table does (a MERGE; an append when no earlier row changed).

    Raises:
        AuditFailedError, PublishTimeoutError: as :func:`build_silver`; nothing was published.
    """
    new = [b for b in batches if b not in set(base.batches)]
    report = SilverReport(run_id, {t: SilverTableReport(t) for t in TABLES}, batches=tuple(batches))
    arrived = tables_in(spark, settings, new)  # the tables with a file in the new batches
    keys_of = {f.parent: _KeysOf() for f in FOREIGN_KEYS}

    def update(index: int, table: str) -> _Increment:
        log.info("silver: table %d/%d, %s (incremental)", index, len(TABLES), table, extra={"progress": True})
        fk = foreign_key(table)
        try:
            return _update_table(
                spark, settings, table, report.tables[table], base=base, new=new, arrived=table in arrived,
                processed_at=processed_at, parent=keys_of[fk.parent] if fk else None, keys=keys_of.get(table),
            )  # fmt: skip
        except BaseException:
            if table in keys_of:  # its children stop waiting, and say why
                keys_of[table].fail(LakehouseError(f"silver/{table} failed, so its children were not classified"))
            raise

    try:
        timed = in_parallel_timed(
            spark, [functools.partial(update, index, table) for index, table in enumerate(TABLES, start=1)]
        )
        increments = [increment for increment, _ in timed]
        for table, (_, seconds) in zip(TABLES, timed, strict=True):
            report.tables[table].seconds = seconds
        changes = _stage_increments(report, increments, pg, new)
        _audit(report, pg, audit)
        started = time.monotonic()
        publish_changes(pg, changes, policy=PublishPolicy.of(settings))
        report.warehouse_seconds += time.monotonic() - started
        # The lake follows the warehouse, as in build_silver.
        _publish_lake(spark, report, [w for item in increments for w in _lake_changes(settings, item, report)])
    finally:
        drop_candidates(pg, CANDIDATE_LAYERS)
    return report


@dataclass(frozen=True)
class _ParentKeys:
    """A parent's silver keys after the run, as its children's foreign keys are checked against them (in the
    parent's key column), and the keys that came or went (``_key``; None when none did). The keys before the run
    are :attr:`_KeysOf.published`."""

    after: DataFrame
    changed: DataFrame | None


@dataclass(frozen=True)
class _KeysOf:
    """How a parent hands its keys to its children: ``published``, its keys as published before the run (in its
    key column), as soon as it has read them, and ``final``, the :class:`_ParentKeys`, once its rows are classified."""

    published: Future[DataFrame] = field(default_factory=Future)
    final: Future[_ParentKeys] = field(default_factory=Future)

    def fail(self, error: BaseException) -> None:
        for future in (self.published, self.final):
            if not future.done():
                future.set_exception(error)


def _materialized(frame: DataFrame) -> DataFrame:
    """Materialize an intermediate result (on the executors, memory then disk): each later plan starts from it, so
    plans stay small. Most are small; the earlier rows of the touched keys are as big as those keys' history."""
    return frame.localCheckpoint(eager=True)


def _update_table(
    spark: SparkSession,
    settings: Settings,
    table: str,
    entry: SilverTableReport,
    *,
    base: Published,
    new: Sequence[str],
    arrived: bool,
    processed_at: dt.datetime,
    parent: _KeysOf | None,
    keys: _KeysOf | None,
) -> _Increment:
    """Re-classify what the new batches can change in one table (``entry`` gets its counts); ``parent`` gives the
    parent's keys, ``keys`` receives this table's for its children.

    A child does not wait for its parent's rows to be classified: it classifies its rows against the parent's keys
    as published before the run, which are the parent's keys after it unless one came or went (then they are
    classified again, against the keys after the run). A parent's published keys are read first, for its children;
    its keys after the run follow as soon as its silver rows are known (or, for a child, as soon as its own parent
    confirms them)."""
    started = time.monotonic()
    key = SILVER[table].key[0]
    history = read_bronze(spark, settings, table, list(base.batches))
    published = None
    if keys is not None:  # one read of the published keys (one Delta snapshot and file listing) serves every use
        uri = lake.table_uri(settings, "silver", table)
        published = _materialized(lake.read_table(spark, uri).select(F.col(key).alias("_key")))
        keys.published.set_result(published.withColumnRenamed("_key", key))
    if arrived:  # what no parent can change: the new rows, their keys, and those keys' earlier rows (one scan)
        fresh = _materialized(read_bronze(spark, settings, table, list(new)))
        touched = _materialized(keys_touched(fresh, table))
        earlier = _materialized(rows_of_keys(history, table, touched))
        first = _classified(
            fresh.unionByName(earlier), table, parent.published.result() if parent else None, processed_at
        )
        first_keys = _keys_after(published, touched, first[1], key) if published is not None else None
    above = parent.final.result() if parent is not None else None
    if not arrived and (above is None or above.changed is None):
        # No new row, and every foreign key checks against the same parent keys: no outcome can change.
        previous = base.balance[table]
        entry.bronze_rows, entry.duplicates, entry.superseded = (
            previous.bronze_rows,
            previous.duplicates,
            previous.superseded,
        )
        entry.run = Reconciliation(table, 0, 0, 0, 0, 0)
        if keys is not None and published is not None:  # its keys stay
            keys.final.set_result(_ParentKeys(published.withColumnRenamed("_key", key), None))
        log.info("silver/%s: no new rows and no parent key came or went: left as it was", table)
        return _unchanged(spark, table)
    if above is None or above.changed is None:  # no parent key came or went: the first classification stands
        (classified, good), parent_keys = first, first_keys
    else:
        if not arrived:  # only earlier rows can change
            fresh = earlier = read_bronze(spark, settings, table, [])
            touched = _no_keys(spark, table)
        # The earlier rows whose parent key came or went (their orphan rule may flip): one more scan. Their keys
        # not touched yet need those keys' other earlier rows too (a third scan, only when there are any).
        moved = _materialized(rows_of_parents(history, table, above.changed))
        extra = keys_touched(moved, table).join(F.broadcast(touched), "_key", "left_anti")
        earlier = earlier.unionByName(moved.where(typed_key(table).isNull()))
        if not extra.isEmpty():
            earlier = _materialized(earlier.unionByName(rows_of_keys(history, table, extra)))
        touched = touched.unionByName(extra)
        classified, good = _classified(fresh.unionByName(earlier), table, above.after, processed_at)
        parent_keys = _keys_after(published, touched, good, key) if published is not None else None
    if keys is not None and parent_keys is not None:  # its children wait on them
        keys.final.set_result(parent_keys)
    before = classify(earlier, table, parent.published.result() if parent else None)
    # Every row has one outcome, so the sums are row counts; the run's outcomes and the earlier rows' former ones
    # come from one job.
    (now_counts, entry.by_rule), (then_counts, _) = _counts(classified, before)
    earlier_rows = sum(then_counts.values())
    fresh_rows = sum(now_counts.values()) - earlier_rows
    previous = base.balance[table]
    entry.bronze_rows = previous.bronze_rows + fresh_rows
    entry.duplicates = previous.duplicates - then_counts[DUPLICATE] + now_counts[DUPLICATE]
    entry.superseded = previous.superseded - then_counts[SUPERSEDED] + now_counts[SUPERSEDED]
    entry.run = Reconciliation(
        table, fresh_rows + earlier_rows, 0, 0, now_counts[DUPLICATE], now_counts[SUPERSEDED]
    )  # silver and quarantined: the rows loaded, below
    log.info(
        "silver/%s: %d new bronze rows, %d earlier re-classified in %.1fs -> %s", table, fresh_rows, earlier_rows,
        time.monotonic() - started, now_counts,
    )  # fmt: skip
    return _Increment(
        table, touched, keys_touched(earlier, table), good,
        quarantine_rows(classified, table, processed_at=processed_at), match_texts(earlier, table),
        earlier_rows, fresh_rows + earlier_rows, _span(earlier, table) if earlier_rows else None,
    )  # fmt: skip


def _classified(
    rows: DataFrame, table: str, parent_keys: DataFrame | None, processed_at: dt.datetime
) -> tuple[DataFrame, DataFrame]:
    """Bronze ``rows`` classified against ``parent_keys``, and their silver rows (both materialized)."""
    classified = _materialized(classify(rows, table, parent_keys))
    return classified, _materialized(silver_rows(classified, table, processed_at=processed_at))


def _keys_after(published: DataFrame, touched: DataFrame, good: DataFrame, key: str) -> _ParentKeys:
    """A parent's keys (``published`` before the run, in ``_key``) after a run that re-classified the ``touched``
    keys into the silver rows ``good``, and the keys that came or went."""
    good_keys = good.select(F.col(key).alias("_key"))
    changed = _materialized(changed_keys(published.join(F.broadcast(touched), "_key", "left_semi"), good_keys))
    after = _materialized(
        published.join(F.broadcast(touched), "_key", "left_anti").unionByName(good_keys).withColumnRenamed("_key", key)
    )
    return _ParentKeys(after, None if changed.isEmpty() else changed)


def _span(earlier: DataFrame, table: str) -> SparkColumn | None:
    """For a clustered table, a condition every silver row of the ``earlier`` rows' keys meets: its first cluster
    column lies within the range of theirs (each such row is one of them, typed), or is null where it may be. The
    MERGE then reads only the files of the months the change touches. None for a table without clustering."""
    cluster_by = SILVER[table].cluster_by
    if not cluster_by:
        return None
    [(low, high)] = value_range(earlier, table, cluster_by[0]).collect()
    column = F.col(f"`{cluster_by[0]}`")
    within = column.between(low, high) if low is not None else F.lit(False)  # none parses: none is a silver row's
    return within if SILVER[table].column(cluster_by[0]).required else within | column.isNull()


def _unchanged(spark: SparkSession, table: str) -> _Increment:
    """The increment of a table the run leaves as it was: every frame empty, a local relation with the schema of
    what it stands for (Spark knows it without a job or a plan to analyse), so staging it loads nothing and no
    Delta commit is made."""
    keys = _no_keys(spark, table)
    return _Increment(
        table, keys, keys, empty_frame(spark, SILVER[table].spark_schema()),
        empty_frame(spark, quarantine_table(table).spark_schema()),
        empty_frame(spark, "_match_key string, _match_fk string"), 0,
    )  # fmt: skip


def _no_keys(spark: SparkSession, table: str) -> DataFrame:
    """No keys of ``table``: an empty ``_key`` frame of its key's type (a local relation, see :func:`_unchanged`)."""
    return empty_frame(spark, f"_key {SILVER[table].column(SILVER[table].key[0]).spark_type}")


def _stage_increments(
    report: SilverReport, increments: list[_Increment], pg: PostgresSettings, new: Sequence[str]
) -> list[Change]:
    """Load every change into the candidate schemas, stage its views, and complete the balances from them."""
    started = time.monotonic()
    loads: list[TableLoad] = []
    changes: list[Change] = []
    silver_schema, quarantine_schema = (candidate_schema(s) for s in CANDIDATE_LAYERS)
    for item in increments:
        contract, rejected = SILVER[item.table], quarantine_table(item.table)
        key = contract.column(contract.key[0])
        fk = foreign_key(item.table)
        silver_change = Change("silver", contract, (("_key", key.name),))
        quarantine_change = Change(
            "quarantine", rejected, (("_match_key", key.name), ("_match_fk", fk.column if fk else None)),
            null_as=NO_TEXT, batches=tuple(new),
        )  # fmt: skip
        loads += [
            TableLoad(item.silver, replace(contract, name=silver_change.inserts), silver_schema, item.rows),
            TableLoad(item.keys, Table(silver_change.deletes, (Column("_key", key.type),)), silver_schema, item.rows),
            TableLoad(item.quarantine, replace(rejected, name=quarantine_change.inserts), quarantine_schema, item.rows),
            TableLoad(
                item.matches,
                Table(quarantine_change.deletes, (Column("_match_key"), Column("_match_fk"))),
                quarantine_schema,
                item.rows,
            ),
        ]
        changes += [silver_change, quarantine_change]
    results = load_many(loads, pg, mode="replace")
    stage_changes(pg, changes)
    totals = candidate_rows(pg, changes)
    for index, item in enumerate(increments):
        entry = report.tables[item.table]
        inserted_silver, inserted_quarantine = results[4 * index].rows, results[4 * index + 2].rows
        assert entry.run is not None
        entry.run = replace(entry.run, silver_rows=inserted_silver, quarantined=inserted_quarantine)
        entry.silver_rows = totals[f"silver.{item.table}"]
        entry.quarantined = totals[f"quarantine.{item.table}"]
    report.warehouse_seconds = time.monotonic() - started
    return changes


_LakeWrite = tuple[str, str, Callable[[], lake.WriteResult]]  # table, layer, its one Delta commit


def _lake_changes(settings: Settings, item: _Increment, report: SilverReport) -> list[_LakeWrite]:
    """The Delta commit of each of the table's two layers: when earlier rows were re-classified, a MERGE (a table
    without a layout: a rewrite, see :func:`~lakehouse.adapters.lake.replace_matching`), else an append of the new
    rows (none when there is nothing to add)."""
    run = report.tables[item.table].run
    assert run is not None
    writes: list[_LakeWrite] = []
    for schema, inserts, rows, deletes, match, within, contract in (
        ("silver", item.silver, run.silver_rows, item.seen,
         [("_key", F.col(f"`{SILVER[item.table].key[0]}`"))], item.within, SILVER[item.table]),
        ("quarantine", item.quarantine, run.quarantined, item.matches,
         _quarantine_match(item.table), None, quarantine_table(item.table)),
    ):  # fmt: skip
        uri = lake.table_uri(settings, schema, item.table)
        if item.earlier_rows > 0:
            # A table without a layout is one small file, which a MERGE rewrites as soon as a delete matches in it:
            # a rewrite costs fewer Spark jobs. Silver performance is clustered by month: a MERGE reads (``within``)
            # and rewrites only the months it touches.
            write = functools.partial(
                lake.replace_matching, inserts, uri, deletes=deletes, match=match,
                rewrite=not (contract.partition_by or contract.cluster_by), within=within,
            )  # fmt: skip
        elif rows:
            write = functools.partial(
                lake.write_table, inserts, uri, mode="append", partition_by=contract.partition_by,
                cluster_by=contract.cluster_by,
            )  # fmt: skip
        else:
            continue
        writes.append((item.table, schema, write))
    return writes


def _publish_lake(spark: SparkSession, report: SilverReport, writes: Sequence[_LakeWrite]) -> None:
    """Make every Delta commit of the publish, all at once (:func:`~lakehouse.adapters.spark.in_parallel`: each
    table's log reads and planning overlap the others' tasks). Each table's silver bytes go to ``report``, and its
    share of the publish's wall time, in proportion to its own commits' time (which overlap, so they add up to
    more than the wall time): the summary's seconds still add up to the run's."""

    results = in_parallel_timed(spark, [write for _, _, write in writes])
    for (table, schema, _), (written, seconds) in zip(writes, results, strict=True):
        entry = report.tables[table]
        entry.parquet_bytes += written.bytes if schema == "silver" else 0
        entry.seconds += seconds


def _quarantine_match(table: str) -> list[tuple[str, SparkColumn]]:
    fk = foreign_key(table)
    key = F.coalesce(F.col(f"`{SILVER[table].key[0]}`"), F.lit(NO_TEXT))
    parent = F.coalesce(F.col(f"`{fk.column}`"), F.lit(NO_TEXT)) if fk else F.lit(NO_TEXT)
    return [("_match_key", key), ("_match_fk", parent)]
