"""The command line: ``python runner.py``, ``python -m lakehouse`` and the ``lakehouse`` console script.

Only parsing and dispatch live here: ``options`` builds each subcommand's options, ``commands`` holds the
handlers (each calls the package and returns an :class:`ExitCode`), ``exit_codes`` documents how a command ends.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lakehouse._version import __version__
from lakehouse.cli import options
from lakehouse.cli.commands import cmd_check, cmd_db, cmd_docs, cmd_generate, cmd_layers, cmd_quality
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
    "generate": (cmd_generate, options.generate_options, "write a deterministic sample landing directory"),
    "check": (cmd_check, options.no_options, "show resolved settings (secrets masked) and check every service"),
    "docs": (cmd_docs, options.no_options, "generate the dbt documentation (offline) and print its path"),
    "db": (cmd_db, options.db_options, "start, stop or show the embedded PostgreSQL"),
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
