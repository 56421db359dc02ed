"""Building the Silver layer, write-audit-publish: classify every completed bronze row, write the six silver and
quarantine tables as an unpublished candidate, audit it (reconciliation, then the caller's checks), and only then
publish it to PostgreSQL (one transaction) and to the lake (one Delta commit per table)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from lakehouse.adapters import lake
from lakehouse.adapters.loader import TableLoad, load_many
from lakehouse.adapters.publish import PublishPolicy, candidate_schema, drop_candidates, publish_candidates
from lakehouse.bookkeeping import Reconciliation, record_reconciliation
from lakehouse.bronze.ingest_log import completed_batches
from lakehouse.bronze.layer import read_bronze
from lakehouse.contracts import SILVER, TABLES, quarantine_table
from lakehouse.errors import LakehouseError
from lakehouse.quality.scan import CheckResult
from lakehouse.report import SummaryRow
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver.transforms import DUPLICATE, OUTCOMES, SUPERSEDED, classify, quarantine_rows, silver_rows, tally

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

    @property
    def reconciled(self) -> bool:
        return self.bronze_rows == self.silver_rows + self.quarantined + self.duplicates + self.superseded

    def reconciliation(self) -> Reconciliation:
        return Reconciliation(
            self.table, self.bronze_rows, self.silver_rows, self.quarantined, self.duplicates, self.superseded
        )


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
                f"duplicates {t.duplicates}, superseded {t.superseded}",
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
                f"duplicates {t.duplicates} + superseded {t.superseded}"
                for t in broken
            )
            raise ReconciliationError(self, f"silver does not reconcile with bronze ({details}); nothing was published")


def build_silver(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    *,
    run_id: str,
    processed_at: dt.datetime,
    audit: Audit | None = None,
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

    Raises:
        AuditFailedError: the candidate failed its audit (:class:`ReconciliationError` when the counts do not
            balance); nothing was published.
        PublishTimeoutError: a lock on a published table was never granted; nothing was published.
    """
    batches = completed_batches(spark, settings)
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
        counts, entry.by_rule = _counts(classified)
        entry.duplicates, entry.superseded = counts[DUPLICATE], counts[SUPERSEDED]
        good = silver_rows(classified, table, processed_at=processed_at)
        bad = quarantine_rows(classified, table, processed_at=processed_at)
        loads += [TableLoad(good, SILVER[table], "silver"), TableLoad(bad, quarantine_table(table), "quarantine")]
        parent = good
        entry.seconds = time.monotonic() - started
        log.info("silver/%s: %d bronze rows -> %s", table, entry.bronze_rows, counts)
    try:
        _write_and_audit(report, loads, pg, audit)
        started = time.monotonic()
        publish_candidates(pg, [(item.schema, item.table) for item in loads], policy=PublishPolicy.of(settings))
        report.warehouse_seconds += time.monotonic() - started
        for item in loads:  # the lake follows the warehouse: a publish that gave up leaves both stores as they were
            started = time.monotonic()
            table = item.table.name
            uri = lake.table_uri(settings, item.schema, table)
            written = lake.write_table(
                item.df, uri, mode="replace", partition_by=item.table.partition_by, cluster_by=item.table.cluster_by
            )
            entry = report.tables[table]
            entry.parquet_bytes += written.bytes if item.schema == "silver" else 0
            entry.seconds += time.monotonic() - started
    finally:
        drop_candidates(pg, CANDIDATE_LAYERS)
        for frame in cached:
            frame.unpersist()
    return report


def _write_and_audit(report: SilverReport, loads: list[TableLoad], pg: PostgresSettings, audit: Audit | None) -> None:
    """Load the candidate into the candidate schemas, reconcile it, audit it; raise when the audit fails."""
    started = time.monotonic()
    candidates = [TableLoad(i.df, i.table, candidate_schema(i.schema)) for i in loads]
    for item, result in zip(loads, load_many(candidates, pg, mode="replace"), strict=True):
        entry = report.tables[item.table.name]
        if item.schema == "silver":
            entry.silver_rows = result.rows
        else:
            entry.quarantined = result.rows
    report.warehouse_seconds = time.monotonic() - started
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


def _counts(classified: DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per outcome and quarantined rows per rule, from one Spark job."""
    outcomes, by_rule = dict.fromkeys(OUTCOMES, 0), dict[str, int]()
    for row in tally(classified).collect():
        outcomes[row["_outcome"]] += int(row["rows"])
        if row["_rule"] is not None:
            by_rule[row["_rule"]] = by_rule.get(row["_rule"], 0) + int(row["broken"])
    return outcomes, by_rule
