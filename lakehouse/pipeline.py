"""One pipeline run: the layers in order, a Soda gate after each, and the run's bookkeeping in ``ops``.

:func:`run` is the whole run as a caller sees it (an orchestrator task, ``runner.py``): it picks the services,
finds the landing files (generating the default sample into an empty default landing directory), starts the
run's one SparkSession and calls :func:`run_layers`. A layer whose scan has a failing (``fail``-severity) check
stops the run before any downstream layer; warnings are reported. Every run is recorded in ``ops.pipeline_runs``
(failed ones included), with ``ops.layer_loads`` and ``ops.quality_results``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse._version import __version__
from lakehouse.adapters import lake, locks
from lakehouse.adapters.warehouse import existing_tables
from lakehouse.bookkeeping import RunStatus, finish_run, record_layer_loads, record_quality, start_run
from lakehouse.bronze import layer as bronze
from lakehouse.bronze.ingest_log import ingested_csv_bytes
from lakehouse.bronze.landing import LandingFile, Refusal, discover
from lakehouse.contracts import LAYERS, TABLES
from lakehouse.errors import ConfigurationError, ServiceUnavailableError
from lakehouse.gold import run_gold
from lakehouse.health import lost_service
from lakehouse.quality import CheckResult, LayerQuality, scan_layer
from lakehouse.report import Storage, SummaryRow
from lakehouse.sample import generate
from lakehouse.services import provide
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver.layer import build_silver

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
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

    @property
    def gate_failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for q in self.quality for r in q.failed)

    @property
    def ok(self) -> bool:
        """No dbt test and no gate failed (refused landing files are reported apart, see ``refused``)."""
        return not self.failed_tests and not self.gate_failures

    @property
    def status(self) -> RunStatus:
        return "succeeded" if self.ok and not self.refused else "failed"


def new_run_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run(
    settings: Settings,
    *,
    layers: Sequence[str] = LAYERS,
    input_dir: Path | None = None,
    full_refresh: bool = False,
    scan: bool = True,
    arguments: Sequence[str] = (),
    wait_s: float | None = 0,
    log_line: LogLine = log.info,
) -> RunOutcome:
    """Run ``layers`` end to end with the configured (or embedded) services and one SparkSession.

    One run at a time: the run holds the lake's and the warehouse's run locks from start to end
    (:mod:`lakehouse.adapters.locks`); when another run holds one, it waits up to ``wait_s`` seconds
    (``None``: forever) and then raises :class:`~lakehouse.errors.RunInProgressError`.

    Args:
        settings: from :func:`lakehouse.settings.load_settings`.
        layers: a subset of ``bronze``, ``silver``, ``gold`` (run in that order).
        input_dir: the landing directory for bronze; default ``settings.landing_dir``, where the default sample
            is generated first when it holds no CSV.
        full_refresh: rebuild incremental gold models from scratch.
        scan: run the Soda gate after each layer.
        arguments: recorded in ``ops.pipeline_runs``.
        wait_s: how long to wait for another run's locks.

    Raises:
        RunInProgressError: another run held the lake or the warehouse for longer than ``wait_s``.
        ConfigurationError: ``input_dir`` does not exist.
        ServiceUnavailableError: Java, PostgreSQL or the lake cannot be reached.
    """
    now = dt.datetime.now(dt.UTC)
    run_id = new_run_id(now)
    with contextlib.ExitStack() as stack:
        if set(layers) - {"gold"}:
            lake.ensure_layers(settings)
            stack.enter_context(locks.lake_lock(settings, run=run_id, wait_s=wait_s))
        pg = stack.enter_context(provide.postgres(settings))
        stack.enter_context(locks.warehouse_lock(pg, run=run_id, wait_s=wait_s))
        files, refused = landing_files(settings, input_dir) if "bronze" in layers else ([], [])
        spark = stack.enter_context(spark_session(settings)) if set(layers) - {"gold"} else None
        try:
            outcome = run_layers(
                settings,
                pg,
                layers=layers,
                spark=spark,
                files=files,
                arguments=arguments,
                now=now,
                run_id=run_id,
                full_refresh=full_refresh,
                scan=scan,
                log_line=log_line,
            )
        except ServiceUnavailableError:
            raise
        except Exception as exc:  # a lost service surfaces as anything (py4j, psycopg2, dbt): name it if one is
            lost = lost_service(settings, pg)
            if lost is None:
                raise
            raise lost from exc
    outcome.refused = tuple(refused)
    return outcome


def abandon(settings: Settings, batch_id: str, *, wait_s: float | None = 0, arguments: Sequence[str] = ()) -> str:
    """``runner.py bronze --abandon BATCH_ID``: give up an interrupted batch so its files are planned again.

    Recorded in the ingest log (status ``abandoned``) and as a run in ``ops.pipeline_runs`` (its arguments name
    the batch). Holds the run locks like any run. Returns a one-line description of what was abandoned.

    Raises:
        BatchStateError: the batch is unknown or completed.
    """
    from lakehouse.bronze.ingest_log import abandon_batch

    run_id = new_run_id(dt.datetime.now(dt.UTC))
    lake.ensure_layers(settings)
    with (
        locks.lake_lock(settings, run=run_id, wait_s=wait_s),
        provide.postgres(settings) as pg,
        locks.warehouse_lock(pg, run=run_id, wait_s=wait_s),
        spark_session(settings) as spark,
    ):
        start_run(pg, run_id=run_id, version=__version__, arguments=list(arguments))
        status: RunStatus = "failed"
        try:
            batch = abandon_batch(spark, settings, batch_id)
            status = "succeeded"
        finally:
            finish_run(pg, run_id, status)
    files = ", ".join(name for name, _ in batch.files) or "no files"
    verb = "was already abandoned" if batch.already_abandoned else "abandoned"
    return f"batch {batch.batch_id} {verb} ({files}); its files are planned again by the next bronze run (run {run_id})"


def landing_files(settings: Settings, input_dir: Path | None) -> tuple[list[LandingFile], list[Refusal]]:
    """The landing directory's files and refusals; the default sample is generated into an empty default one."""
    landing = input_dir.resolve() if input_dir is not None else settings.landing_dir
    if input_dir is None and not any(landing.glob("**/*.csv")):
        log.info("no input given and %s is empty: generating the default sample there first", landing)
        generate(landing, scale=1.0, seed=42, dirty_rate=0.02)
    elif not landing.is_dir():
        raise ConfigurationError(f"input directory {landing} does not exist")
    files, refused = discover(landing)
    log.info("bronze: %d landing files in %s", len(files), landing)
    for refusal in refused:
        log.error("refused %s", refusal.reason)
    return files, refused


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """The run's one SparkSession, stopped at the end."""
    from lakehouse.adapters.spark import build_spark

    log.info("starting Spark (%s)", settings.spark_master)
    spark = build_spark(settings)
    try:
        yield spark
    finally:
        spark.stop()


def run_layers(
    settings: Settings,
    pg: PostgresSettings,
    *,
    layers: Sequence[str],
    spark: SparkSession | None,
    files: Sequence[LandingFile] = (),
    arguments: Sequence[str] = (),
    now: dt.datetime | None = None,
    run_id: str | None = None,
    full_refresh: bool = False,
    scan: bool = True,
    log_line: LogLine = log.info,
) -> RunOutcome:
    """Run ``layers`` (a subset of bronze, silver, gold, in that order) on given services, gating each with Soda.

    The caller holds the run locks (:func:`run` does)."""
    now = now or dt.datetime.now(dt.UTC)
    outcome = RunOutcome(run_id or new_run_id(now))
    start_run(pg, run_id=outcome.run_id, version=__version__, arguments=list(arguments))
    status: RunStatus = "failed"
    try:
        for layer in (name for name in LAYERS if name in layers):
            touched: Collection[str] | None = None  # gold: every model
            if layer == "bronze":
                touched = _bronze(_needs(spark, layer), settings, pg, list(files), now, outcome)
            elif layer == "silver":
                touched = _silver(_needs(spark, layer), settings, pg, now, outcome)
            else:
                _gold(pg, full_refresh, outcome, log_line)
                if outcome.failed_tests:
                    break
            if scan and not _gate(pg, layer, outcome, log_line, tables=touched):
                break
        if spark is not None:
            outcome.storage = storage(spark, settings)
        status = "succeeded" if outcome.ok else "failed"
        return outcome
    finally:
        finish_run(pg, outcome.run_id, status)


def scan_only(
    settings: Settings, layers: Sequence[str] = LAYERS, *, arguments: Sequence[str] = (), log_line: LogLine = log.info
) -> RunOutcome:
    """``runner.py quality``: the scans of ``layers`` alone, recorded as a run."""
    with provide.postgres(settings) as pg:
        outcome = RunOutcome(new_run_id(dt.datetime.now(dt.UTC)))
        start_run(pg, run_id=outcome.run_id, version=__version__, arguments=list(arguments))
        status: RunStatus = "failed"
        try:
            for layer in layers:
                _gate(pg, layer, outcome, log_line)
            status = "succeeded" if outcome.ok else "failed"
            return outcome
        finally:
            finish_run(pg, outcome.run_id, status)


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
    spark: SparkSession, settings: Settings, pg: PostgresSettings, now: dt.datetime, outcome: RunOutcome
) -> list[str]:
    """Build silver; return the tables the gate judges: those with bronze rows (no delivery yet, nothing to judge)."""
    report = build_silver(spark, settings, pg, run_id=outcome.run_id, processed_at=now)
    _record(pg, outcome, report.summary_rows())
    outcome.notes.append("silver reconciles with bronze for every table (ops.reconciliation)")
    return [t.table for t in report.tables.values() if t.bronze_rows > 0]


def _gold(pg: PostgresSettings, full_refresh: bool, outcome: RunOutcome, log_line: LogLine) -> None:
    result = run_gold(pg, full_refresh=full_refresh, log=log_line)
    outcome.summary += result.summary_rows()
    outcome.failed_tests = result.failed_tests
    outcome.notes.append(f"gold: dbt build {'passed' if result.ok else 'FAILED'} (core.*, analytics.*)")


def _gate(
    pg: PostgresSettings, layer: str, outcome: RunOutcome, log_line: LogLine, *, tables: Collection[str] | None = None
) -> bool:
    quality = scan_layer(pg, layer, tables=tables, log=log_line)
    outcome.quality.append(quality)
    record_quality(pg, outcome.run_id, layer, quality.results)
    for result in quality.warned:
        log.warning("quality warning: %s: %s (%s)", result.table_name, result.check_name, result.diagnostics)
    for result in quality.failed:
        log.error("quality gate failed: %s: %s (%s)", result.table_name, result.check_name, result.diagnostics)
    return quality.ok


def storage(spark: SparkSession, settings: Settings) -> Storage:
    """Landing CSV bytes ingested so far against the bronze and silver Delta tables' current Parquet bytes."""
    return Storage(
        csv_bytes=ingested_csv_bytes(spark, settings),
        bronze_parquet_bytes=sum(lake.table_size(spark, lake.table_uri(settings, "bronze", t))[1] for t in TABLES),
        silver_parquet_bytes=sum(lake.table_size(spark, lake.table_uri(settings, "silver", t))[1] for t in TABLES),
    )
