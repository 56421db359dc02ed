"""A whole run as a caller sees it (an orchestrator task, ``runner.py``): locks, services, landing, one SparkSession.

:func:`run` takes the run locks, picks the services, finds the landing files (generating the default sample into
an empty default landing directory), starts the run's one SparkSession and hands over to
:func:`lakehouse.steps.run_layers`. :func:`scan_only` and :func:`abandon` are the ``quality`` and
``bronze --abandon`` commands. Every run is recorded in ``ops.pipeline_runs`` (failed ones included).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse._version import __version__
from lakehouse.adapters import lake, lake_upkeep, locks
from lakehouse.bookkeeping import recorded_run
from lakehouse.bronze.landing import LandingFile, Refusal, discover
from lakehouse.bronze.landing_s3 import discover_objects
from lakehouse.contracts import LAYERS
from lakehouse.errors import ConfigurationError, ServiceUnavailableError
from lakehouse.health import lost_service
from lakehouse.maintenance import MaintenanceReport, export_csv, lake_storage, maintain_lake, table_uri
from lakehouse.report import LayerBytes
from lakehouse.sample import generate
from lakehouse.services import provide
from lakehouse.settings import Settings, check_retention
from lakehouse.steps import LogLine, RunOutcome, gate, new_run_id, reported_run, run_layers, scan_as_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "RunOutcome",
    "abandon",
    "export",
    "history",
    "landing_files",
    "maintain",
    "run",
    "scan_only",
    "spark_session",
]
log = logging.getLogger(__name__)


def run(
    settings: Settings,
    *,
    layers: Sequence[str] = LAYERS,
    input_dir: Path | str | None = None,
    full_refresh: bool = False,
    scan: bool = True,
    maintain: bool = True,
    force: bool = False,
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
        input_dir: the landing directory (or ``s3a://bucket/prefix``) for bronze; default ``settings.landing``,
            where the default sample is generated first when it is the local default folder and holds no CSV.
        full_refresh: rebuild silver even when no bronze batch arrived since its last build, and incremental gold
            models from scratch.
        scan: run the Soda gate after each layer (silver's: its audit before publishing).
        maintain: compact and VACUUM the lake at the end (bronze and silver runs; see :func:`maintain`).
        force: build gold even when silver's last audit failed.
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
        roles = stack.enter_context(provide.warehouse(settings))
        pg = roles.loader
        stack.enter_context(locks.warehouse_lock(pg, run=run_id, wait_s=wait_s))
        files, refused = landing_files(settings, input_dir) if "bronze" in layers else ([], [])
        spark = stack.enter_context(spark_session(settings)) if set(layers) - {"gold"} else None
        try:
            outcome = run_layers(
                settings,
                roles,
                layers=layers,
                spark=spark,
                files=files,
                arguments=arguments,
                now=now,
                run_id=run_id,
                full_refresh=full_refresh,
                scan=scan,
                maintain=maintain,
                force=force,
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
        provide.warehouse(settings) as roles,
        locks.warehouse_lock(roles.loader, run=run_id, wait_s=wait_s),
        spark_session(settings) as spark,
        recorded_run(roles.loader, run_id, version=__version__, arguments=list(arguments)) as run,
    ):
        lake_upkeep.tag_commits(spark, run_id)
        batch = abandon_batch(spark, settings, batch_id)
        run.status = "succeeded"
    files = ", ".join(name for name, _ in batch.files) or "no files"
    verb = "was already abandoned" if batch.already_abandoned else "abandoned"
    return f"batch {batch.batch_id} {verb} ({files}); its files are planned again by the next bronze run (run {run_id})"


def maintain(
    settings: Settings,
    *,
    retention_hours: float | None = None,
    wait_s: float | None = 0,
    arguments: Sequence[str] = (),
) -> tuple[str, MaintenanceReport, tuple[LayerBytes, ...]]:
    """``runner.py maintain``: compact and VACUUM every lake table, recorded as a run in ``ops.pipeline_runs``.

    Holds the lake's run lock (no run writes meanwhile). Returns the run id, what was done and the per-layer
    storage afterwards.

    Raises:
        UnsafeRetentionError: the retention is below the safe minimum (checked before anything starts).
    """
    retention = settings.retention_hours if retention_hours is None else retention_hours
    check_retention(retention)
    run_id = new_run_id(dt.datetime.now(dt.UTC))
    lake.ensure_layers(settings)
    with (
        locks.lake_lock(settings, run=run_id, wait_s=wait_s),
        provide.warehouse(settings) as roles,
        spark_session(settings) as spark,
        recorded_run(roles.loader, run_id, version=__version__, arguments=list(arguments)) as run,
    ):
        lake_upkeep.tag_commits(spark, run_id)
        report = maintain_lake(spark, settings, retention_hours=retention)
        layers = lake_storage(spark, settings)
        run.status = "succeeded"
    return run_id, report, layers


def history(settings: Settings, table: str) -> list[lake_upkeep.Version]:
    """``runner.py history TABLE``: every version of a lake table (``silver/performance``), oldest first."""
    uri = table_uri(settings, table)
    with spark_session(settings) as spark:
        return lake_upkeep.history(spark, uri)


def export(settings: Settings, table: str, out: Path, *, as_of: str | None = None) -> int:
    """``runner.py export TABLE --as-of VERSION|TIMESTAMP --out FILE``: the table as it was, as CSV; its rows."""
    uri = table_uri(settings, table)
    with spark_session(settings) as spark:
        return export_csv(spark, uri, out, as_of=as_of)


def landing_files(settings: Settings, input_dir: Path | str | None) -> tuple[list[LandingFile], list[Refusal]]:
    """The landing files and refusals of ``input_dir`` (a folder or an ``s3a://bucket/prefix``), default
    ``settings.landing``; the default sample is generated into an empty default local folder."""
    landing = settings.landing if input_dir is None else input_dir
    if isinstance(landing, str):
        files, refused = discover_objects(landing, settings.s3)
    else:
        landing = landing.resolve()
        if input_dir is None and not any(landing.glob("**/*.csv")):
            log.info("no input given and %s is empty: generating the default sample there first", landing)
            generate(landing, scale=1.0, seed=42, dirty_rate=0.02)
        elif not landing.is_dir():
            raise ConfigurationError(f"input directory {landing} does not exist")
        files, refused = discover(landing, split_bytes=settings.bronze_split_bytes)
    log.info("bronze: %d landing files in %s", len(files), landing)
    for refusal in refused:
        log.error("refused %s", refusal.reason)
    return files, refused


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """The run's one SparkSession, stopped at the end."""
    from lakehouse.adapters.spark import build_spark, stop_spark

    log.info("starting Spark (%s)", settings.spark_master)
    spark = build_spark(settings)
    try:
        yield spark
    finally:
        stop_spark(spark, settings)


def scan_only(
    settings: Settings,
    layers: Sequence[str] = LAYERS,
    *,
    as_of: str | None = None,
    arguments: Sequence[str] = (),
    wait_s: float | None = 0,
    log_line: LogLine = log.info,
) -> RunOutcome:
    """``runner.py quality``: the scans of ``layers`` alone, recorded as a run. With ``as_of`` (a version or a
    timestamp), each lake layer is scanned as it was then (:func:`lakehouse.steps.scan_as_of`), under the
    warehouse lock."""
    with contextlib.ExitStack() as stack:
        roles = stack.enter_context(provide.warehouse(settings))
        pg = roles.loader
        outcome = RunOutcome(new_run_id(dt.datetime.now(dt.UTC)))
        spark = None
        if as_of is not None:
            stack.enter_context(locks.warehouse_lock(pg, run=outcome.run_id, wait_s=wait_s))
            spark = stack.enter_context(spark_session(settings))
        with reported_run(settings, roles, outcome, arguments=arguments) as run:
            for layer in layers:
                if spark is not None and as_of is not None:
                    scan_as_of(spark, settings, roles, layer, as_of, outcome, log_line)
                else:
                    gate(roles, layer, outcome, log_line)
            run.status = "succeeded" if outcome.ok else "failed"
        return outcome
