"""The command line: ``python runner.py``, ``python -m lakehouse`` and the ``lakehouse`` console script.

Only parsing and dispatch live here: ``options`` builds each subcommand's options, ``commands`` holds the
handlers (each calls the package and returns an :class:`ExitCode`), ``exit_codes`` documents how a command ends.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lakehouse._version import __version__
from lakehouse.cli import logs, options
from lakehouse.cli.commands import (
    cmd_check,
    cmd_db,
    cmd_docs,
    cmd_export,
    cmd_generate,
    cmd_history,
    cmd_layers,
    cmd_maintain,
    cmd_quality,
    cmd_report,
)
from lakehouse.cli.exit_codes import EXIT_CODES_HELP, ExitCode
from lakehouse.errors import (
    ConfigurationError,
    JarResolutionError,
    JavaNotFoundError,
    LakehouseError,
    RunInProgressError,
    ServiceUnavailableError,
)
from lakehouse.settings import Settings, load_settings

__all__ = ["ExitCode", "build_parser", "main"]
Handler = Callable[[Settings, argparse.Namespace], ExitCode]

COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {
    "run": (cmd_layers, options.run_options, "bronze -> silver -> gold in one SparkSession (the default command)"),
    "bronze": (cmd_layers, options.bronze_options, "ingest landing CSVs into bronze (Delta + PostgreSQL raw_*)"),
    "silver": (cmd_layers, options.silver_command_options, "rebuild silver + quarantine from bronze, audit, publish"),
    "gold": (cmd_layers, options.gold_options, "build gold with dbt: core.* star schema, analytics.* marts, tests"),
    "quality": (cmd_quality, options.quality_options, "run the Soda scans alone (all layers or --layer), record them"),
    "maintain": (cmd_maintain, options.maintain_options, "compact small files and VACUUM the lake, reporting bytes"),
    "history": (cmd_history, options.history_options, "a lake table's versions: operation, rows, writing run"),
    "export": (cmd_export, options.export_options, "write a lake table as CSV, as it is or --as-of a version or time"),
    "generate": (cmd_generate, options.generate_options, "write a deterministic sample landing directory"),
    "check": (cmd_check, options.no_options, "show resolved settings (secrets masked) and check every service"),
    "docs": (cmd_docs, options.docs_options, "generate the dbt documentation (offline) and serve it on 127.0.0.1"),
    "report": (cmd_report, options.report_options, "write a recorded run's HTML report (default: the latest)"),
    "db": (cmd_db, options.db_options, "init the warehouse roles; start, stop or show the embedded PostgreSQL"),
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
    logs.add_logging_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (handler, add_options, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        add_options(cmd)
        logs.add_logging_options(cmd, top=False)
    parser.set_defaults(
        handler=cmd_layers,
        command="run",
        input=None,
        full_refresh=False,
        json=False,
        no_quality=False,
        no_maintain=False,
        wait=0.0,
    )
    return parser


def main(argv: Sequence[str] | None = None, *, base_dir: Path | None = None, prog: str = "lakehouse") -> int:
    """Parse ``argv``, run the command, return its exit code.

    Args:
        base_dir: where ``.env`` is read and relative paths resolve (``runner.py`` passes the repository;
            ``python -m lakehouse`` and the console script use the working directory).
    """
    args = build_parser(prog).parse_args(argv)
    logs.configure(verbose=args.verbose, quiet=args.quiet, log_format=args.log_format)
    # What a run writes (the lake, the data dir, reports, the role passfile) is owner-only: raw rows hold
    # personal data (account managers' names), and the data dir holds passwords.
    os.umask(0o077)
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
