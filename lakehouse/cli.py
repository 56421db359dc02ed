"""The command line: ``python runner.py``, ``python -m lakehouse`` and the ``lakehouse`` console script.

Only parsing and dispatch live here: each subcommand has an option builder and a handler that calls the package
(:mod:`lakehouse.pipeline`, :mod:`lakehouse.health`, …) and turns the outcome into an :class:`ExitCode`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path

from lakehouse import health, pipeline
from lakehouse._version import __version__
from lakehouse.contracts import LAYERS
from lakehouse.errors import (
    ConfigurationError,
    JarResolutionError,
    JavaNotFoundError,
    LakehouseError,
    RunInProgressError,
    ServiceUnavailableError,
)
from lakehouse.report import as_json, quality_lines, render_table
from lakehouse.settings import Settings, describe, load_settings

log = logging.getLogger("lakehouse.runner")


class ExitCode(IntEnum):
    """How a command ended (documented in ``--help``)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    SERVICE = 4
    REFUSED = 5
    QUALITY = 6
    BUSY = 7


EXIT_CODES_HELP = "Exit codes:\n" + "\n".join(
    f"  {code.value}  {text}"
    for code, text in (
        (ExitCode.OK, "success"),
        (ExitCode.FAILED, "a step failed (see the message above the summary)"),
        (ExitCode.USAGE, "usage error (bad command or option)"),
        (ExitCode.CONFIG, "configuration error (a setting is missing or malformed)"),
        (ExitCode.SERVICE, "a service is unavailable (Java, MinIO/S3, PostgreSQL, the Maven repository for jars)"),
        (ExitCode.REFUSED, "some landing files were refused (named on stderr); the others were loaded"),
        (ExitCode.QUALITY, "a quality gate failed (Soda checks named on stderr); downstream layers did not run"),
        (ExitCode.BUSY, "another run is in progress on this lake or warehouse (see --wait)"),
    )
)
Handler = Callable[[Settings, argparse.Namespace], ExitCode]


# ---- handlers -------------------------------------------------------------------------------------------------


def cmd_layers(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """``run``, ``bronze``, ``silver``, ``gold``: the layers of the command, then the summary."""
    if getattr(args, "abandon", None):
        print(pipeline.abandon(settings, args.abandon, wait_s=args.wait, arguments=sys.argv[1:]))
        return ExitCode.OK
    layers = LAYERS if args.command == "run" else (args.command,)
    started = time.monotonic()
    outcome = pipeline.run(
        settings,
        layers=layers,
        input_dir=Path(args.input) if getattr(args, "input", None) else None,
        full_refresh=getattr(args, "full_refresh", False),
        scan=not args.no_quality,
        wait_s=args.wait,
        arguments=sys.argv[1:],
        log_line=lambda line: log.info("%s", line),
    )
    return finish(outcome, args, seconds=time.monotonic() - started)


def cmd_quality(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Run the Soda scans alone (every layer, or --layer), record them, and gate like a run."""
    started = time.monotonic()
    layers = (args.layer,) if args.layer else LAYERS
    outcome = pipeline.scan_only(settings, layers, arguments=sys.argv[1:], log_line=lambda line: log.info("%s", line))
    return finish(outcome, args, seconds=time.monotonic() - started)


def finish(outcome: pipeline.RunOutcome, args: argparse.Namespace, *, seconds: float) -> ExitCode:
    """Print the summary (table or --json) and turn the outcome into the exit code."""
    if args.json:
        scans, storage = outcome.quality, outcome.storage
        print(as_json(run_id=outcome.run_id, status=outcome.status, rows=outcome.summary, scans=scans,
                      storage=storage, seconds=seconds))  # fmt: skip
    else:
        print()
        if outcome.summary:
            print(render_table(outcome.summary))
        for line in [*outcome.notes, *quality_lines(outcome.quality)]:
            print(line)
        if outcome.storage is not None:
            print(outcome.storage.render())
        print(f"run {outcome.run_id}: {outcome.status} in {seconds:.1f}s (ops.pipeline_runs)")
    if outcome.failed_tests:
        _stderr(f"gold: {len(outcome.failed_tests)} dbt test(s) failed:", outcome.failed_tests)
        return ExitCode.FAILED
    if outcome.gate_failures:
        failures = [f"{r.table_name}: {r.check_name} ({r.diagnostics})" for r in outcome.gate_failures]
        _stderr(f"quality gate failed ({len(failures)} check(s)); downstream layers were not run:", failures)
        return ExitCode.QUALITY
    if outcome.refused:
        _stderr(f"{len(outcome.refused)} landing file(s) refused:", [r.reason for r in outcome.refused])
        return ExitCode.REFUSED
    return ExitCode.OK


def _stderr(title: str, items: Sequence[str]) -> None:
    print(title, file=sys.stderr)
    for item in items:
        print(f"  {item}", file=sys.stderr)


def cmd_check(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Settings (secrets masked), then Java, Spark, lake, PostgreSQL, schemas, dbt and Soda: one line each."""
    for name, value in describe(settings):
        print(f"{name:<22} {value}")
    print()
    ok = True
    for probe in health.check_all(settings):
        print(probe.line())
        ok = ok and probe.ok
    return ExitCode.OK if ok else ExitCode.SERVICE


def cmd_generate(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Write a deterministic sample landing directory and its manifest of injected defects."""
    from lakehouse.sample import generate

    out = Path(args.out).resolve() if args.out else settings.landing_dir
    manifest = generate(out, scale=args.scale, seed=args.seed, dirty_rate=args.dirty_rate)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} CSV files ({total / 1e6:.1f} MB) and manifest.json to {out}")
    return ExitCode.OK


def cmd_docs(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Generate the dbt documentation offline (catalog from PostgreSQL) and print where it is."""
    from lakehouse.gold import docs_generate
    from lakehouse.services import provide

    with provide.postgres(settings) as pg:
        site = docs_generate(pg, log=lambda line: log.info("%s", line))
    print(f"dbt docs: {site} (a single file; open it in a browser)")
    return ExitCode.OK


def cmd_db(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Manage the embedded PostgreSQL so it can outlive a run (e.g. for the seed guide's psql queries)."""
    from lakehouse.services.provide import SharedEmbedded, embedded_postgres

    if settings.postgres is not None:
        print(f"PG* variables point at {settings.postgres.endpoint}; the embedded server is not used")
        return ExitCode.USAGE
    server = embedded_postgres(settings)
    if args.action in ("start", "stop"):  # from now on the user decides when it stops, not the last run
        SharedEmbedded(server).owned.unlink(missing_ok=True)
    if args.action == "start":
        pg = server.start()
        print(
            f"embedded PostgreSQL running: {pg.endpoint}  (psql -h {pg.host} -p {pg.port} -U {pg.user} {pg.database})"
        )
    elif args.action == "stop":
        server.stop_server()
        print("embedded PostgreSQL stopped")
    else:
        port = server.running_port()
        print(f"embedded PostgreSQL {'running on port ' + str(port) if port else 'not running'}")
    return ExitCode.OK


# ---- options, one builder per subcommand -----------------------------------------------------------------------


def _input(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--input",
        metavar="DIR",
        type=_existing_dir,
        help="landing directory (default: LAKEHOUSE_LANDING_DIR or <data dir>/landing; generated when empty)",
    )


def _full_refresh(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--full-refresh", action="store_true", help="rebuild incremental gold models from scratch")


def _summary(cmd: argparse.ArgumentParser, *, gated: bool = True) -> None:
    cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    if gated:
        cmd.add_argument("--no-quality", action="store_true", help="skip the Soda scans after each layer")


def _wait(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=None,
        default=0.0,
        metavar="SECONDS",
        help="when another run holds the lake or the warehouse, wait for it (up to SECONDS; forever without a "
        "number) instead of exiting 7 at once",
    )


def _silver_options(cmd: argparse.ArgumentParser) -> None:
    _summary(cmd)
    _wait(cmd)


def _run_options(cmd: argparse.ArgumentParser) -> None:
    _input(cmd)
    _full_refresh(cmd)
    _silver_options(cmd)


def _bronze_options(cmd: argparse.ArgumentParser) -> None:
    _input(cmd)
    _silver_options(cmd)
    cmd.add_argument(
        "--abandon",
        metavar="BATCH_ID",
        help="give up an interrupted batch that cannot be resumed (e.g. a file of it changed or was removed): "
        "recorded in the ingest log and ops; its files are planned again by the next bronze run",
    )


def _gold_options(cmd: argparse.ArgumentParser) -> None:
    _full_refresh(cmd)
    _silver_options(cmd)


def _quality_options(cmd: argparse.ArgumentParser) -> None:
    _summary(cmd, gated=False)
    cmd.add_argument("--layer", choices=LAYERS, help="scan one layer only (default: all)")


def _generate_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--out", metavar="DIR", help="output directory (default: the landing directory)")
    cmd.add_argument("--scale", type=float, default=1.0, help="size multiplier; 1 is about 15 MB (default 1)")
    cmd.add_argument("--seed", type=int, default=42, help="random seed; same seed, same files (default 42)")
    cmd.add_argument("--dirty-rate", type=float, default=0.02, help="share of defective rows (default 0.02)")


def _db_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("action", choices=("start", "stop", "status"))


def _no_options(cmd: argparse.ArgumentParser) -> None:
    """The command takes no options."""


def _existing_dir(value: str) -> Path:
    path = Path(value).resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"input directory {path} does not exist")
    return path


COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {
    "run": (cmd_layers, _run_options, "bronze -> silver -> gold in one SparkSession (the default command)"),
    "bronze": (cmd_layers, _bronze_options, "ingest landing CSVs into bronze (Delta + PostgreSQL bronze.raw_*)"),
    "silver": (cmd_layers, _silver_options, "rebuild silver and quarantine from bronze, and reconcile the counts"),
    "gold": (cmd_layers, _gold_options, "build gold with dbt: core.* star schema, analytics.* marts, tests, snapshots"),
    "quality": (cmd_quality, _quality_options, "run the Soda scans alone (all layers or --layer) and record them"),
    "generate": (cmd_generate, _generate_options, "write a deterministic sample landing directory with a manifest"),
    "check": (cmd_check, _no_options, "show resolved settings (secrets masked) and check every service"),
    "docs": (cmd_docs, _no_options, "generate the dbt documentation (offline) and print its path"),
    "db": (cmd_db, _db_options, "start, stop or show the embedded PostgreSQL"),
}


def build_parser(prog: str = "lakehouse") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build the campaign-analytics lakehouse (Bronze and Silver on Delta Lake, Gold in PostgreSQL).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lakehouse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (handler, add_options, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        add_options(cmd)
    parser.set_defaults(
        handler=cmd_layers, command="run", input=None, full_refresh=False, json=False, no_quality=False, wait=0.0
    )
    return parser


def main(argv: Sequence[str] | None = None, *, base_dir: Path | None = None, prog: str = "lakehouse") -> int:
    """Parse ``argv``, run the command, return its exit code.

    Args:
        base_dir: where ``.env`` is read and relative paths resolve (``runner.py`` passes the repository;
            ``python -m lakehouse`` and the console script use the working directory).
    """
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,  # importing dbt installs its own root handlers; the runner's format wins
    )
    for noisy in ("py4j", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    base = base_dir or Path.cwd()
    try:
        settings = load_settings(dotenv_path=base / ".env", base_dir=base)
        return int(args.handler(settings, args))
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except RunInProgressError as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return ExitCode.BUSY
    except (ServiceUnavailableError, JavaNotFoundError, JarResolutionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.SERVICE
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
