"""One pipeline run: the layers in order, a Soda gate after each, and the run's bookkeeping in ``ops``.

A layer whose scan has a failing (``fail``-severity) check stops the run before any downstream layer; warnings
are reported. Every run is recorded in ``ops.pipeline_runs`` (failed ones included), with ``ops.layer_loads``
and ``ops.quality_results``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lakehouse import __version__, bronze, lake
from lakehouse.bookkeeping import RunStatus, finish_run, record_layer_loads, record_quality, start_run
from lakehouse.contracts import TABLES
from lakehouse.gold import run_gold
from lakehouse.ingest_log import ingested_csv_bytes
from lakehouse.landing import LandingFile
from lakehouse.quality import CheckResult, LayerQuality, scan_layer
from lakehouse.report import Storage, SummaryRow, bronze_summary, gold_summary, layer_loads, silver_summary
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver_layer import build_silver

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAYER_ORDER = ("bronze", "silver", "gold")
log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What a run did: summary rows, scans, notes, and why it failed if it did."""

    run_id: str
    summary: list[SummaryRow] = field(default_factory=list)
    quality: list[LayerQuality] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_tests: tuple[str, ...] = ()
    storage: Storage | None = None

    @property
    def gate_failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for q in self.quality for r in q.failed)

    @property
    def ok(self) -> bool:
        return not self.failed_tests and not self.gate_failures


def new_run_id(now: dt.datetime) -> str:
    return f"{now.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_pipeline(
    settings: Settings,
    pg: PostgresSettings,
    *,
    layers: Sequence[str],
    spark: SparkSession | None,
    files: Sequence[LandingFile] = (),
    arguments: Sequence[str] = (),
    now: dt.datetime | None = None,
    full_refresh: bool = False,
    scan: bool = True,
    log_line: Callable[[str], None] = log.info,
) -> RunOutcome:
    """Run ``layers`` (a subset of bronze, silver, gold, in that order), gating each with its Soda scan."""
    now = now or dt.datetime.now(dt.timezone.utc)
    outcome = RunOutcome(new_run_id(now))
    start_run(pg, run_id=outcome.run_id, version=__version__, arguments=list(arguments))
    status: RunStatus = "failed"
    try:
        for layer in (name for name in LAYER_ORDER if name in layers):
            if layer == "bronze":
                _bronze(_needs(spark, layer), settings, pg, list(files), now, outcome)
            elif layer == "silver":
                _silver(_needs(spark, layer), settings, pg, now, outcome)
            else:
                _gold(pg, full_refresh, outcome, log_line)
                if outcome.failed_tests:
                    break
            if scan and not _gate(pg, layer, outcome, log_line):
                break
        if spark is not None:
            outcome.storage = storage(spark, settings)
        status = "succeeded" if outcome.ok else "failed"
        return outcome
    finally:
        finish_run(pg, outcome.run_id, status)


def _needs(spark: SparkSession | None, layer: str) -> SparkSession:
    if spark is None:
        raise ValueError(f"the {layer} layer needs a SparkSession")
    return spark


def scan_only(
    pg: PostgresSettings,
    layers: Sequence[str],
    *,
    arguments: Sequence[str] = (),
    log_line: Callable[[str], None] = log.info,
) -> RunOutcome:
    """``runner.py quality``: the scans of ``layers`` alone, recorded as a run."""
    outcome = RunOutcome(new_run_id(dt.datetime.now(dt.timezone.utc)))
    start_run(pg, run_id=outcome.run_id, version=__version__, arguments=list(arguments))
    status: RunStatus = "failed"
    try:
        for layer in layers:
            _gate(pg, layer, outcome, log_line)
        status = "succeeded" if outcome.ok else "failed"
        return outcome
    finally:
        finish_run(pg, outcome.run_id, status)


def _bronze(
    spark: SparkSession,
    settings: Settings,
    pg: PostgresSettings,
    files: list[LandingFile],
    now: dt.datetime,
    outcome: RunOutcome,
) -> None:
    report = bronze.ingest(spark, settings, pg, files, now=now)
    rows = bronze_summary(report)
    outcome.summary += rows
    record_layer_loads(pg, outcome.run_id, layer_loads(rows))
    outcome.notes.append(
        f"bronze batches: {', '.join(report.batches) or 'none (nothing new)'}; "
        f"files skipped as already ingested: {len(report.skipped_files)}"
    )


def _silver(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, now: dt.datetime, outcome: RunOutcome
) -> None:
    report = build_silver(spark, settings, pg, run_id=outcome.run_id, processed_at=now)
    rows = silver_summary(report)
    outcome.summary += rows
    record_layer_loads(pg, outcome.run_id, layer_loads(rows))
    outcome.notes.append("silver reconciles with bronze for every table (ops.reconciliation)")


def _gold(pg: PostgresSettings, full_refresh: bool, outcome: RunOutcome, log_line: Callable[[str], None]) -> None:
    result = run_gold(pg, full_refresh=full_refresh, log=log_line)
    outcome.summary += gold_summary(result)
    outcome.failed_tests = result.failed_tests
    outcome.notes.append(f"gold: dbt build {'passed' if result.ok else 'FAILED'} (core.*, analytics.*)")


def _gate(pg: PostgresSettings, layer: str, outcome: RunOutcome, log_line: Callable[[str], None]) -> bool:
    quality = scan_layer(pg, layer, log=log_line)
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
