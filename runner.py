"""Run the campaign-analytics lakehouse: ``python runner.py [command] [options]``.

The runner only composes: settings, services, one SparkSession, then the layers from the ``lakehouse``
package. With nothing configured it uses a local Delta lake folder and an embedded PostgreSQL.

Exit codes:
  0  success
  1  a step failed (see the message above the summary)
  2  usage error (bad command or option)
  3  configuration error (a setting is missing or malformed)
  4  a service is unavailable (Java, MinIO/S3, PostgreSQL, the Maven repository for first-run jars)
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
from lakehouse.health import (  # noqa: E402
    CheckResult,
    existing_schemas,
    java_check,
    lake_check,
    postgres_check,
)
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries, wait_for_postgres  # noqa: E402
from lakehouse.settings import LAYERS, PostgresSettings, Settings, describe, load_settings  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_SERVICE = 0, 1, 2, 3, 4
GOLD_SCHEMAS = ("core", "analytics")
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
    """Settings (secrets masked), then Java, Spark, lake and PostgreSQL, one line each."""
    for name, value in describe(settings):
        print(f"{name:<22} {value}")
    print()
    if not print_checks([java_check()]):
        return EXIT_SERVICE
    with warehouse(settings) as pg, spark_session(settings) as spark:
        ok = print_checks([lake_check(spark, settings), postgres_check(pg)])
    return EXIT_OK if ok else EXIT_SERVICE


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """All layers built so far. At this stage: verify the environment and report which layers exist."""
    started = time.monotonic()
    with warehouse(settings) as pg, spark_session(settings) as spark:
        if not print_checks([lake_check(spark, settings), postgres_check(pg)]):
            return EXIT_SERVICE
        print()
        print(f"{'layer':<12} {'where':<60} tables")
        for layer in LAYERS:
            tables = lake.list_tables(spark, settings.layer_uri(layer))
            print(f"{layer:<12} {settings.layer_uri(layer):<60} {', '.join(tables) or '(none yet)'}")
        schemas = existing_schemas(pg, GOLD_SCHEMAS)
        gold = ", ".join(f"{s}.*" for s in GOLD_SCHEMAS if s in schemas) or "(none yet)"
        print(f"{'gold':<12} {pg.endpoint:<60} {gold}")
    print(f"\nenvironment ready in {time.monotonic() - started:.1f}s")
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
    from lakehouse.spark import build_spark

    log.info("starting Spark (%s)", settings.spark_master)
    spark = build_spark(settings)
    try:
        yield spark
    finally:
        spark.stop()


COMMANDS: dict[str, tuple[Callable[[Settings, argparse.Namespace], int], str]] = {
    "run": (cmd_run, "run every layer built so far (the default command)"),
    "check": (
        cmd_check,
        "show resolved settings (secrets masked) and check Java, Spark, lake and PostgreSQL",
    ),
    "db": (cmd_db, "start, stop or show the embedded PostgreSQL"),
}


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
        if name == "db":
            cmd.add_argument("action", choices=("start", "stop", "status"))
    parser.set_defaults(handler=cmd_run, command="run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
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
