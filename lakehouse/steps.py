"""A run's steps on services the caller provides: the layers in order, a Soda gate after each, the run's
bookkeeping in ``ops``, and at the end its HTML report and, for a failed run or one with warnings, an alert.

A layer whose scan has a failing (``fail``-severity) check stops the run before any downstream layer; warnings are
reported. The last layer's gate, which no layer waits on, runs while Spark maintains and measures the lake (the run
waits for both). A gate judges what the run touched: bronze tables that exist, silver tables that had bronze rows.
Silver's gate is its audit: the reconciliation and the Soda checks run on the unpublished candidate, and a failed audit
publishes nothing; the outcome is kept in ``ops.audits``, and gold refuses to build on a silver whose last audit
failed unless forced.
:mod:`lakehouse.pipeline` composes these with the services, the locks and the SparkSession.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse._version import __version__
from lakehouse.adapters import lake, lake_upkeep
from lakehouse.adapters.alerts import deliver
from lakehouse.adapters.lake_upkeep import TableStorage, tag_commits
from lakehouse.adapters.loader import TableLoad, load_many
from lakehouse.adapters.publish import PublishPolicy, candidate_schema, drop_candidates
from lakehouse.adapters.roles import WarehouseRoles
from lakehouse.adapters.spark import in_parallel, tagged
from lakehouse.adapters.warehouse import existing_tables
from lakehouse.bookkeeping import (
    RecordedRun,
    RunStatus,
    last_audit,
    record_audit,
    record_layer_loads,
    record_quality,
    recorded_run,
)
from lakehouse.bronze import layer as bronze
from lakehouse.bronze.ingest_log import completed_batches, ingested_csv_bytes
from lakehouse.bronze.landing import LandingFile, Refusal
from lakehouse.contracts import LAYERS, SILVER, TABLES, Table, quarantine_table, raw_table
from lakehouse.errors import ConfigurationError
from lakehouse.gold import DBT_PROJECT_DIR, run_gold
from lakehouse.maintenance import MaintenanceReport, lake_storage, maintain_lake, table_storages
from lakehouse.quality import CheckResult, LayerQuality, scan_layer
from lakehouse.report import Storage, SummaryRow
from lakehouse.runreport import gather, publish_report
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver.layer import (
    AuditFailedError,
    Published,
    SilverReport,
    build_silver,
    published_base,
    update_silver,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
DOCS_SITE = DBT_PROJECT_DIR / "target" / "static_index.html"  # where `runner.py docs` writes the dbt docs
LogLine = Callable[[str], None]


@dataclass
class RunOutcome:
    """What a run did: summary rows, scans, notes, refused landing files, and why it failed if it did."""

    run_id: str
    summary: list[SummaryRow] = field(default_factory=list)
    quality: list[LayerQuality] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_tests: tuple[str, ...] = ()
    storage: Storage | None = None
    refused: tuple[Refusal, ...] = ()
    report: Path | None = None
    maintenance: MaintenanceReport | None = None
    unpublished: tuple[str, ...] = ()
    blocked: str = ""

    @property
    def gate_failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for q in self.quality for r in q.failed)

    @property
    def ok(self) -> bool:
        """No dbt test and no gate failed, no layer refused to build (refused landing files are reported apart)."""
        return not self.failed_tests and not self.gate_failures and not self.blocked

    @property
    def status(self) -> RunStatus:
        return "succeeded" if self.ok and not self.refused else "failed"


def new_run_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_layers(
    settings: Settings,
    roles: WarehouseRoles | PostgresSettings,
    *,
    layers: Sequence[str],
    spark: SparkSession | None,
    files: Sequence[LandingFile] = (),
    arguments: Sequence[str] = (),
    now: dt.datetime | None = None,
    run_id: str | None = None,
    full_refresh: bool = False,
    scan: bool = True,
    maintain: bool = True,
    force: bool = False,
    log_line: LogLine = log.info,
) -> RunOutcome:
    """Run ``layers`` (a subset of bronze, silver, gold, in that order) on given services, gating each with Soda,
    then (with a SparkSession, and ``maintain``) compact and VACUUM the lake tables where it is due.

    The caller holds the run locks (:func:`run` does). Each job connects as its own role: the loads and the
    bookkeeping as the loader, dbt as the transformer, the gold scan as the reader. Every Delta commit of the run
    carries its run id. Gold refuses to build on a silver whose last audit failed (``outcome.blocked`` names that
    run) unless ``force``. The run is recorded in ``ops`` while it goes on (:func:`bookkeeping.recorded_run`);
    runs recorded as running whose process is gone are recorded as failed, and named in ``outcome.notes``."""
    roles = WarehouseRoles.single(roles)  # one connection given: it does every job
    now = now or dt.datetime.now(dt.UTC)
    outcome = RunOutcome(run_id or new_run_id(now))
    with reported_run(settings, roles, outcome, arguments=arguments) as run:
        outcome.notes += [
            f"run {dead} was still recorded as running, but its process is gone (no session of it is left):"
            " recorded as failed"
            for dead in run.dead
        ]
        if spark is not None:
            tag_commits(spark, outcome.run_id)
        last_gate = _layers(
            settings, roles, spark, layers, list(files), now, outcome,
            full_refresh=full_refresh, scan=scan, force=force, log_line=log_line,
        )  # fmt: skip
        if spark is not None:
            # The last gate scans PostgreSQL while Spark maintains and measures the lake: neither reads what the
            # other writes, and both mostly wait (on queries, on log reads).
            upkeep: Callable[[], object] = functools.partial(_lake_upkeep, spark, settings, outcome, maintain=maintain)
            in_parallel(spark, [upkeep] if last_gate is None else [last_gate, upkeep])
        run.status = "succeeded" if outcome.ok else "failed"
    return outcome


@contextlib.contextmanager
def reported_run(
    settings: Settings, roles: WarehouseRoles, outcome: RunOutcome, *, arguments: Sequence[str]
) -> Iterator[RecordedRun]:
    """Record ``outcome``'s run in ``ops`` while the block goes on (:func:`bookkeeping.recorded_run`: the block sets
    ``run.status``), then, once its end is recorded, write its report and alert (:func:`report_and_alert`, with the
    exception that ended the block, if one did). A run that could not be recorded has no report."""
    run: RecordedRun | None = None
    error: str | None = None
    try:
        with recorded_run(roles.loader, outcome.run_id, version=__version__, arguments=list(arguments)) as run:
            yield run
    except Exception as exc:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        raise
    finally:
        if run is not None:
            report_and_alert(settings, roles, outcome, run.status, error=error)


def _layers(
    settings: Settings,
    roles: WarehouseRoles,
    spark: SparkSession | None,
    layers: Sequence[str],
    files: list[LandingFile],
    now: dt.datetime,
    outcome: RunOutcome,
    *,
    full_refresh: bool,
    scan: bool,
    force: bool,
    log_line: LogLine,
) -> Callable[[], bool] | None:
    """Run ``layers`` in order, each gated (unless not ``scan``); stop at a failed gate, audit or dbt test, or a
    gold that must not build. Return the last layer's gate when no layer waits on it and it is left to the caller to
    run alongside the lake's upkeep (with a SparkSession), else None."""
    pg = roles.loader
    order = [name for name in LAYERS if name in layers]
    for layer in order:
        touched: Collection[str] | None = None  # gold: every model
        with tagged(spark, layer):  # its Spark jobs carry the layer's name (event log, UI)
            if layer == "bronze":
                touched = _bronze(_needs(spark, layer), settings, pg, files, now, outcome)
            elif layer == "silver":
                published = _silver(_needs(spark, layer), settings, pg, now, outcome, scan, full_refresh, log_line)
                if published is None:  # the candidate failed its audit: nothing was published
                    return None
                touched = published  # verified again as published: nothing may change it on its way in
            else:
                outcome.blocked = "" if force else _silver_gate_closed(pg)
                if outcome.blocked:
                    log_line(outcome.blocked)
                    return None
                _gold(roles, full_refresh, outcome, log_line, PublishPolicy.of(settings))
                if outcome.failed_tests:
                    return None
            if not scan:
                continue
            judge = functools.partial(gate, roles, layer, outcome, log_line, tables=touched)
            if layer == order[-1] and spark is not None:
                return judge  # no layer waits on it: it runs alongside the lake's upkeep
            if not judge():
                return None
    return None


def _lake_upkeep(spark: SparkSession, settings: Settings, outcome: RunOutcome, *, maintain: bool) -> None:
    """The end of a run with a SparkSession: maintain the lake where it is due (unless not ``maintain``), then
    measure its storage."""
    if maintain:
        with tagged(spark, "maintenance"):
            outcome.maintenance = maintain_lake(spark, settings, when_due=True)
        outcome.notes += outcome.maintenance.lines()
    with tagged(spark, "storage"):
        outcome.storage = storage(spark, settings)


def report_and_alert(
    settings: Settings, roles: WarehouseRoles, outcome: RunOutcome, status: RunStatus, *, error: str | None = None
) -> None:
    """Write the run's HTML report, then alert on a failed run or one with warnings. Neither can fail the run:
    a report that cannot be written and an alert that cannot be delivered are logged."""
    try:
        facts = gather(roles.loader, outcome.run_id, marts=roles.reader)
        outcome.report = publish_report(facts, settings.reports_dir, latest=True, docs_href=DOCS_SITE.as_uri())
    except Exception as exc:  # the report is a view of the run: whatever breaks it, the run's outcome stands
        log.warning("the run report was not written: %s: %s", type(exc).__name__, " ".join(str(exc).split())[:300])
    warned = [r for q in outcome.quality for r in q.warned]
    if status != "failed" and not warned:
        return
    if settings.alert_webhook is None and not settings.alert_command:
        return
    failing = [_check(q.layer, "soda", r) for q in outcome.quality for r in q.failed]
    failing += [{"layer": "gold", "source": "dbt", "check": name} for name in outcome.failed_tests]
    payload = {
        "run_id": outcome.run_id,
        "status": status,
        "error": error,
        "failing_checks": failing,
        "warnings": [_check(q.layer, "soda", r) for q in outcome.quality for r in q.warned],
        "refused_files": [r.reason for r in outcome.refused],
        "report": str(outcome.report) if outcome.report else None,
    }
    deliver(payload, webhook=settings.alert_webhook, command=settings.alert_command)


def _check(layer: str, source: str, result: CheckResult) -> dict[str, object]:
    return {
        "layer": layer,
        "source": source,
        "table": result.table_name,
        "check": result.check_name,
        "value": result.value,
        "diagnostics": result.diagnostics,
    }


def _needs(spark: SparkSession | None, layer: str) -> SparkSession:
    if spark is None:
        raise ValueError(f"the {layer} layer needs a SparkSession")
    return spark


def _record(pg: PostgresSettings, outcome: RunOutcome, rows: list[SummaryRow]) -> None:
    """Add a layer's rows to the summary and its per-table rows to ``ops.layer_loads``."""
    outcome.summary += rows
    record_layer_loads(pg, outcome.run_id, rows)


def _bronze(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    files: list[LandingFile],
    now: dt.datetime,
    outcome: RunOutcome,
) -> list[str]:
    """Ingest; return the bronze tables the gate judges: those that exist (a table never delivered has none)."""
    report = bronze.ingest(spark, settings, pg, files, now=now)
    _record(pg, outcome, report.summary_rows())
    outcome.notes.append(
        f"bronze batches: {', '.join(report.batches) or 'none (nothing new)'}; "
        f"files skipped as already ingested: {len(report.skipped_files)}"
    )
    return existing_tables(pg, "bronze", [f"raw_{table}" for table in TABLES])


def _silver(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    now: dt.datetime,
    outcome: RunOutcome,
    scan: bool,
    full_refresh: bool,
    log_line: LogLine,
) -> list[str] | None:
    """Build silver, write-audit-publish; record the audit (its checks in ``ops.quality_results``, its outcome in
    ``ops.audits``). Soda audits the tables with bronze rows (no delivery yet, nothing to judge). False: the
    candidate failed its audit and nothing was published; else the published tables with bronze rows.

    When no bronze batch completed since the last published silver, nothing is re-classified or re-published
    (a rebuild would give the same rows): unless ``full_refresh``, the step ends at once."""
    last = last_audit(pg, "silver")
    batches = completed_batches(spark, settings)  # read once: the no-op check, the base and the build share it
    if not full_refresh and last is not None and last.passed and set(last.batches) == set(batches):
        outcome.notes.append(
            f"silver: no new bronze batch since run {last.run_id}; nothing re-classified or re-published"
            " (--full-refresh rebuilds it)"
        )
        return []

    audit_seconds = 0.0  # the audit's Soda scan, for the summary (the reconciliation is counted, not queried)

    def soda(schemas: Mapping[str, str], tables: Sequence[str]) -> tuple[CheckResult, ...]:
        nonlocal audit_seconds
        started = time.perf_counter()
        try:
            return scan_layer(pg, "silver", tables=tables, schemas=schemas, log=log_line).results
        finally:
            audit_seconds += time.perf_counter() - started

    base = "--full-refresh" if full_refresh else published_base(spark, settings, pg, batches)
    checks = soda if scan else None
    try:
        if isinstance(base, Published):
            report: SilverReport = update_silver(
                spark, settings, pg, run_id=outcome.run_id, processed_at=now, base=base, batches=batches, audit=checks
            )
            run = [t.run for t in report.tables.values() if t.run is not None]
            outcome.notes.append(
                f"silver: incremental on run {base.run_id}: re-classified "
                + ", ".join(f"{r.table_name} {r.bronze_rows}" for r in run)
                + " bronze rows (the new batches and the earlier rows they can change)"
            )
        else:
            outcome.notes.append(f"silver: rebuilt from all bronze history ({base})")
            report = build_silver(
                spark, settings, pg, run_id=outcome.run_id, processed_at=now, audit=checks, batches=batches
            )
    except AuditFailedError as exc:
        report = exc.report
        outcome.unpublished = ("silver", "quarantine")
    quality = LayerQuality("silver", report.audit, audit_seconds)
    outcome.quality.append(quality)
    record_quality(pg, outcome.run_id, "silver", quality.results)
    failed = [f"{r.table_name}: {r.check_name}" for r in quality.failed]
    record_audit(pg, outcome.run_id, "silver", failed, batches=report.batches)
    _log_checks(quality)
    if outcome.unpublished:
        outcome.notes.append(
            f"silver: the candidate failed its audit; nothing was published (ops.audits, run {outcome.run_id})"
        )
        return None
    _record(pg, outcome, report.summary_rows())
    outcome.notes.append(
        "silver: audited, then published; it reconciles with bronze for every table (ops.reconciliation)"
    )
    return [t.table for t in report.tables.values() if t.bronze_rows > 0]


def _silver_gate_closed(pg: PostgresSettings) -> str:
    """Why gold must not build (silver's last audit failed), or ``""``."""
    audit = last_audit(pg, "silver")
    if audit is None or audit.passed:
        return ""
    return (
        f"gold was not built: silver's last audit failed in run {audit.run_id} at {audit.audited_at:%Y-%m-%d %H:%M:%S}"
        f" ({'; '.join(audit.failed_checks)}); fix the input and run silver again, or build gold anyway with --force"
    )


def _gold(
    roles: WarehouseRoles, full_refresh: bool, outcome: RunOutcome, log_line: LogLine, policy: PublishPolicy
) -> None:
    """dbt builds as the transformer; its outcomes are recorded by the loader (who keeps ``ops``)."""
    result = run_gold(roles.transform, full_refresh=full_refresh, policy=policy, log=log_line)
    pg = roles.loader
    record_quality(pg, outcome.run_id, "gold", result.checks, source="dbt")
    models = sum(1 for node in result.nodes if node.resource_type in ("model", "snapshot"))
    record_layer_loads(pg, outcome.run_id, [SummaryRow("gold", "dbt build", rows_out=models, seconds=result.seconds)])
    outcome.summary += result.summary_rows()
    outcome.failed_tests = result.failed_tests
    outcome.notes.append(f"gold: dbt build {'passed' if result.ok else 'FAILED'} (core.*, analytics.*)")


def gate(
    roles: WarehouseRoles,
    layer: str,
    outcome: RunOutcome,
    log_line: LogLine,
    *,
    tables: Collection[str] | None = None,
    schemas: Mapping[str, str] | None = None,
) -> bool:
    """Scan ``layer`` (gold as the reader sees it: only the published schemas; ``schemas`` points a layer's checks at
    other schemas) and record the results."""
    scanner = roles.reader if layer == "gold" else roles.loader
    quality = scan_layer(scanner, layer, tables=tables, schemas=schemas, log=log_line)
    outcome.quality.append(quality)
    record_quality(roles.loader, outcome.run_id, layer, quality.results)
    _log_checks(quality)
    return quality.ok


def _log_checks(quality: LayerQuality) -> None:
    for result in quality.warned:
        log.warning("quality warning: %s: %s (%s)", result.table_name, result.check_name, result.diagnostics)
    for result in quality.failed:
        log.error("quality gate failed: %s: %s (%s)", result.table_name, result.check_name, result.diagnostics)


def storage(spark: SparkSession, settings: Settings) -> Storage:
    """Landing CSV bytes ingested so far against the bronze and silver Delta tables' current Parquet bytes, and
    per lake layer the current, on-disk and reclaimable bytes."""
    storages = table_storages(spark, settings)  # one look at each table serves both comparisons

    def current(layer: str) -> int:
        return sum(storages.get((layer, t), TableStorage()).current_bytes for t in TABLES)

    return Storage(
        csv_bytes=ingested_csv_bytes(spark, settings),
        bronze_parquet_bytes=current("bronze"),
        silver_parquet_bytes=current("silver"),
        layers=lake_storage(spark, settings, storages),
    )


# What an --as-of scan loads for each lake layer: (lake layer, warehouse schema, contract) per table.
_AS_OF_TABLES: dict[str, list[tuple[str, str, Table]]] = {
    "bronze": [("bronze", "bronze", raw_table(t)) for t in TABLES],
    "silver": [("silver", "silver", SILVER[t]) for t in TABLES]
    + [("quarantine", "quarantine", quarantine_table(t)) for t in TABLES],
}


def scan_as_of(
    spark: SparkSession, settings: Settings, roles: WarehouseRoles, layer: str, as_of: str, outcome: RunOutcome,
    log_line: LogLine = log.info,
) -> bool:  # fmt: skip
    """Re-run ``layer``'s quality scan on its lake tables as they were ``as_of`` (a version number, or a timestamp:
    each table's latest version then), for audits. The old versions are loaded into private schemas, scanned there
    and dropped; the published tables are not touched. The caller holds the warehouse lock (the private schemas are
    the ones silver's audit uses)."""
    if layer not in _AS_OF_TABLES:
        raise ConfigurationError(f"--as-of scans a lake layer (bronze or silver); {layer} lives in PostgreSQL only")
    loads, found = [], []
    for lake_layer, schema, contract in _AS_OF_TABLES[layer]:
        name = contract.name.removeprefix("raw_")
        uri = lake.table_uri(settings, lake_layer, name)
        try:
            version = lake_upkeep.version_at(spark, uri, as_of)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if version is None:
            log_line(f"{layer:<6} as of {as_of}: {lake_layer}/{name} had no version yet, not scanned")
            continue
        log_line(f"{layer:<6} as of {as_of}: {lake_layer}/{name} version {version}")
        loads.append(TableLoad(lake.read_table(spark, uri, as_of=version), contract, candidate_schema(schema)))
        found.append(contract.name)
    schemas = sorted({schema for _, schema, _ in _AS_OF_TABLES[layer]})
    outcome.notes.append(f"{layer} scanned as of {as_of} (the lake's versions then), not as published now")
    try:
        load_many(loads, roles.loader, mode="replace")
        return gate(roles, layer, outcome, log_line, tables=found, schemas={s: candidate_schema(s) for s in schemas})
    finally:
        drop_candidates(roles.loader, schemas)
