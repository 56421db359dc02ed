"""Run the campaign-analytics lakehouse: ``python runner.py [command] [options]``.

The runner only composes: settings, services, one SparkSession, then the layers from the ``lakehouse``
package. With nothing configured it uses a local Delta lake folder and an embedded PostgreSQL.

Exit codes:
  0  success
  1  a step failed (see the message above the summary)
  2  usage error (bad command or option)
  3  configuration error (a setting is missing or malformed)
  4  a service is unavailable (Java, MinIO/S3, PostgreSQL, the Maven repository for first-run jars)
  5  some landing files were refused (named on stderr); the others were loaded
  6  a quality gate failed (a Soda check of severity fail; named on stderr); downstream layers did not run
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # runnable from any working directory without installing
    sys.path.insert(0, str(ROOT))

from lakehouse import __version__, lake  # noqa: E402
from lakehouse.errors import (  # noqa: E402
    ConfigurationError,
    JarResolutionError,
    JavaNotFoundError,
    LakehouseError,
    ServiceUnavailableError,
)
from lakehouse.generator import generate  # noqa: E402
from lakehouse.health import (  # noqa: E402
    CheckResult,
    dbt_check,
    java_check,
    lake_check,
    postgres_check,
    schemas_check,
    soda_check,
    spark_check,
)
from lakehouse.landing import LandingFile, Refusal, discover  # noqa: E402
from lakehouse.pipeline import LAYER_ORDER, RunOutcome, run_pipeline, scan_only  # noqa: E402
from lakehouse.report import as_json, quality_lines, render_table  # noqa: E402
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries, wait_for_postgres  # noqa: E402
from lakehouse.settings import PostgresSettings, Settings, describe, load_settings  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_SERVICE, EXIT_REFUSED, EXIT_QUALITY = 0, 1, 2, 3, 4, 5, 6
GOLD_SCHEMAS = ("core", "analytics")
WAREHOUSE_SCHEMAS = ("bronze", "silver", "quarantine", "ops", *GOLD_SCHEMAS)
log = logging.getLogger("lakehouse.runner")


@contextlib.contextmanager
def warehouse(settings: Settings) -> Iterator[PostgresSettings]:
    """The configured PostgreSQL, or the embedded one (started if needed, stopped if started here)."""
    if settings.postgres is not None:
        wait_for_postgres(settings.postgres, timeout_s=15)
        yield settings.postgres
        return
    server = embedded_server(settings)
    pg = server.start()
    if server.started_here:
        log.info("started embedded PostgreSQL on %s (data in %s)", pg.endpoint, server.data_dir)
    try:
        yield pg
    finally:
        if server.started_here:
            server.stop()
            log.info("stopped embedded PostgreSQL")


def embedded_server(settings: Settings) -> LocalPostgres:
    return LocalPostgres(PostgresBinaries.embedded(), settings.postgres_data_dir, port=settings.embedded_postgres_port)


def print_checks(results: Sequence[CheckResult]) -> bool:
    for result in results:
        print(result.line())
    return all(result.ok for result in results)


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Settings (secrets masked), then Java, Spark, lake, PostgreSQL, schemas, dbt and Soda: one line each."""
    for name, value in describe(settings):
        print(f"{name:<22} {value}")
    print()
    if not print_checks([java_check()]):
        return EXIT_SERVICE
    with warehouse(settings) as pg:
        results = [postgres_check(pg), schemas_check(pg, WAREHOUSE_SCHEMAS)]
        results += [dbt_check(pg), soda_check(pg)]
        with spark_session(settings) as spark:
            results[:0] = [spark_check(spark, settings), lake_check(spark, settings)]
        ok = print_checks(results)
    return EXIT_OK if ok else EXIT_SERVICE


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Every layer, in one SparkSession: bronze, silver, then gold (dbt build)."""
    return run_layers(settings, args, layers=("bronze", "silver", "gold"))


def cmd_bronze(settings: Settings, args: argparse.Namespace) -> int:
    """Ingest the landing CSVs into bronze (Delta and PostgreSQL bronze.raw_*)."""
    return run_layers(settings, args, layers=("bronze",))


def cmd_silver(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild silver and quarantine from every completed bronze batch."""
    return run_layers(settings, args, layers=("silver",))


def cmd_gold(settings: Settings, args: argparse.Namespace) -> int:
    """Build the gold layer: dbt models, snapshots, data tests and unit tests on PostgreSQL."""
    return run_layers(settings, args, layers=("gold",))


def landing_files(settings: Settings, args: argparse.Namespace) -> tuple[list[LandingFile], list[Refusal]] | None:
    """The landing directory's files; generates the default sample when none was given and it is empty."""
    landing = Path(args.input).resolve() if getattr(args, "input", None) else settings.landing_dir
    if getattr(args, "input", None) is None and not any(landing.glob("**/*.csv")):
        log.info("no input given and %s is empty: generating the default sample there first", landing)
        generate(landing, scale=1.0, seed=42, dirty_rate=0.02)
    elif not landing.is_dir():
        print(f"error: input directory {landing} does not exist", file=sys.stderr)
        return None
    files, refused = discover(landing)
    log.info("bronze: %d landing files in %s", len(files), landing)
    for refusal in refused:
        log.error("refused %s", refusal.reason)
    return files, refused


def run_layers(settings: Settings, args: argparse.Namespace, *, layers: tuple[str, ...]) -> int:
    refused: list[Refusal] = []
    files: list[LandingFile] = []
    if "bronze" in layers:
        found = landing_files(settings, args)
        if found is None:
            return EXIT_USAGE
        files, refused = found
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(warehouse(settings))
        spark = stack.enter_context(spark_session(settings)) if layers != ("gold",) else None
        if spark is not None:
            lake.ensure_layers(settings)
        outcome = run_pipeline(
            settings,
            pg,
            layers=layers,
            spark=spark,
            files=files,
            arguments=sys.argv[1:],
            full_refresh=args.full_refresh,
            scan=not args.no_quality,
            log_line=lambda line: log.info("%s", line),
        )
    return finish(outcome, args, seconds=time.monotonic() - started, refused=refused)


def cmd_quality(settings: Settings, args: argparse.Namespace) -> int:
    """Run the Soda scans alone (every layer, or --layer), record them, and gate like a run."""
    started = time.monotonic()
    layers = (args.layer,) if args.layer else LAYER_ORDER
    with warehouse(settings) as pg:
        outcome = scan_only(pg, layers, arguments=sys.argv[1:], log_line=lambda line: log.info("%s", line))
    return finish(outcome, args, seconds=time.monotonic() - started)


def finish(outcome: RunOutcome, args: argparse.Namespace, *, seconds: float, refused: Sequence[Refusal] = ()) -> int:
    """Print the summary (table or --json) and turn the outcome into the exit code."""
    status = "succeeded" if outcome.ok and not refused else "failed"
    if args.json:
        print(
            as_json(
                run_id=outcome.run_id,
                status=status,
                rows=outcome.summary,
                scans=outcome.quality,
                storage=outcome.storage,
                seconds=seconds,
            )
        )
    else:
        print()
        if outcome.summary:
            print(render_table(outcome.summary))
        for line in [*outcome.notes, *quality_lines(outcome.quality)]:
            print(line)
        if outcome.storage is not None:
            print(outcome.storage.render())
        print(f"run {outcome.run_id}: {status} in {seconds:.1f}s (ops.pipeline_runs)")
    if outcome.failed_tests:
        print(f"gold: {len(outcome.failed_tests)} dbt test(s) failed:", file=sys.stderr)
        for name in outcome.failed_tests:
            print(f"  {name}", file=sys.stderr)
        return EXIT_FAILED
    if outcome.gate_failures:
        print(
            f"quality gate failed ({len(outcome.gate_failures)} check(s)); downstream layers were not run:",
            file=sys.stderr,
        )
        for result in outcome.gate_failures:
            print(f"  {result.table_name}: {result.check_name} ({result.diagnostics})", file=sys.stderr)
        return EXIT_QUALITY
    if refused:
        print(f"{len(refused)} landing file(s) refused:", file=sys.stderr)
        for refusal in refused:
            print(f"  {refusal.reason}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    """Write a deterministic sample landing directory and its manifest of injected defects."""
    out = Path(args.out).resolve() if args.out else settings.landing_dir
    manifest = generate(out, scale=args.scale, seed=args.seed, dirty_rate=args.dirty_rate)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} CSV files ({total / 1e6:.1f} MB) and manifest.json to {out}")
    return EXIT_OK


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    """Manage the embedded PostgreSQL so it can outlive a run (e.g. for the seed guide's psql queries)."""
    if settings.postgres is not None:
        print(f"PG* variables point at {settings.postgres.endpoint}; the embedded server is not used")
        return EXIT_USAGE
    server = embedded_server(settings)
    if args.action == "start":
        pg = server.start()
        print(
            f"embedded PostgreSQL running: {pg.endpoint}  (psql -h {pg.host} -p {pg.port} -U {pg.user} {pg.database})"
        )
    elif args.action == "stop":
        server.stop()
        print("embedded PostgreSQL stopped")
    else:
        port = server._running_port()
        print(f"embedded PostgreSQL {'running on port ' + str(port) if port else 'not running'}")
    return EXIT_OK


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """The run's one SparkSession, stopped at the end."""
    from lakehouse.spark import build_spark

    log.info("starting Spark (%s)", settings.spark_master)
    spark = build_spark(settings)
    try:
        yield spark
    finally:
        spark.stop()


COMMANDS: dict[str, tuple[Callable[[Settings, argparse.Namespace], int], str]] = {
    "run": (cmd_run, "run every layer built so far (the default command)"),
    "bronze": (cmd_bronze, "ingest landing CSVs into bronze (Delta + PostgreSQL bronze.raw_*)"),
    "silver": (cmd_silver, "rebuild silver and quarantine from bronze, and reconcile the counts"),
    "quality": (cmd_quality, "run the Soda scans alone (all layers or --layer) and record the results"),
    "gold": (cmd_gold, "build the gold layer with dbt: core.* star schema, analytics.* marts, tests, snapshots"),
    "generate": (cmd_generate, "write a deterministic sample landing directory with a defect manifest"),
    "check": (cmd_check, "show resolved settings (secrets masked) and check Java, Spark, lake and PostgreSQL"),
    "db": (cmd_db, "start, stop or show the embedded PostgreSQL"),
}


def _add_options(name: str, cmd: argparse.ArgumentParser) -> None:
    if name in ("run", "bronze"):
        cmd.add_argument(
            "--input",
            metavar="DIR",
            help="landing directory (default: LAKEHOUSE_LANDING_DIR or "
            "<data dir>/landing; generated when empty and not given)",
        )
    if name in ("run", "gold"):
        cmd.add_argument("--full-refresh", action="store_true", help="rebuild incremental gold models from scratch")
    if name in ("run", "bronze", "silver", "gold", "quality"):
        cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    if name in ("run", "bronze", "silver", "gold"):
        cmd.add_argument("--no-quality", action="store_true", help="skip the Soda scans after each layer")
    if name == "quality":
        cmd.add_argument("--layer", choices=LAYER_ORDER, help="scan one layer only (default: all)")
    if name == "generate":
        cmd.add_argument("--out", metavar="DIR", help="output directory (default: the landing directory)")
        cmd.add_argument("--scale", type=float, default=1.0, help="size multiplier; 1 is about 15 MB (default 1)")
        cmd.add_argument("--seed", type=int, default=42, help="random seed; same seed, same files (default 42)")
        cmd.add_argument("--dirty-rate", type=float, default=0.02, help="share of defective rows (default 0.02)")
    elif name == "db":
        cmd.add_argument("action", choices=("start", "stop", "status"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner.py",
        description="Build the campaign-analytics lakehouse (Bronze and Silver on Delta Lake, Gold in PostgreSQL).",
        epilog=__doc__.split("Exit codes:", 1)[1].join(["Exit codes:", ""]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lakehouse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (handler, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        _add_options(name, cmd)
    parser.set_defaults(handler=cmd_run, command="run", input=None, full_refresh=False, json=False, no_quality=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,  # importing dbt installs its own root handlers; the runner's format wins
    )
    for noisy in ("py4j", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings(dotenv_path=ROOT / ".env", base_dir=ROOT)
        return int(args.handler(settings, args))
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ServiceUnavailableError, JavaNotFoundError, JarResolutionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
