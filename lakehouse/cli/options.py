"""The command line's options: one builder per subcommand, composed from a few shared ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from lakehouse.contracts import LAYERS


def input_dir(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--input",
        metavar="DIR",
        type=existing_dir,
        help="landing directory or s3a://bucket/prefix (default: LAKEHOUSE_LANDING_URI or <data dir>/landing; "
        "generated when that is empty)",
    )


def full_refresh(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild from all history: silver even when no bronze batch arrived since its last build, incremental "
        "gold models from scratch",
    )


def summary(cmd: argparse.ArgumentParser, *, gated: bool = True) -> None:
    cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    if gated:
        cmd.add_argument("--no-quality", action="store_true", help="skip the Soda scans after each layer")


def wait(cmd: argparse.ArgumentParser) -> None:
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


def no_maintain(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--no-maintain",
        action="store_true",
        help="do not compact and VACUUM the lake when the run ends (`maintain` does it alone)",
    )


def silver_options(cmd: argparse.ArgumentParser) -> None:
    summary(cmd)
    wait(cmd)
    no_maintain(cmd)


def silver_command_options(cmd: argparse.ArgumentParser) -> None:
    full_refresh(cmd)
    silver_options(cmd)


def run_options(cmd: argparse.ArgumentParser) -> None:
    input_dir(cmd)
    full_refresh(cmd)
    silver_options(cmd)


def bronze_options(cmd: argparse.ArgumentParser) -> None:
    input_dir(cmd)
    silver_options(cmd)
    cmd.add_argument(
        "--abandon",
        metavar="BATCH_ID",
        help="give up an interrupted batch that cannot be resumed (e.g. a file of it changed or was removed): "
        "recorded in the ingest log and ops; its files are planned again by the next bronze run",
    )


def gold_options(cmd: argparse.ArgumentParser) -> None:
    full_refresh(cmd)
    silver_options(cmd)
    cmd.add_argument(
        "--force",
        action="store_true",
        help="build gold even though silver's last audit failed (gold refuses, naming that run, without it)",
    )


def quality_options(cmd: argparse.ArgumentParser) -> None:
    summary(cmd, gated=False)
    cmd.add_argument("--layer", choices=LAYERS, help="scan one layer only (default: all)")
    wait(cmd)
    cmd.add_argument(
        "--as-of",
        metavar="VERSION|TIMESTAMP",
        help="scan a lake layer (--layer bronze or silver) as it was: a version number, or a UTC timestamp "
        "(each table's latest version then); for audits, nothing published changes",
    )


def generate_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--out", metavar="DIR", help="output directory (default: the landing directory)")
    cmd.add_argument("--scale", type=float, default=1.0, help="size multiplier; 1 is about 15 MB (default 1)")
    cmd.add_argument("--seed", type=int, default=42, help="random seed; same seed, same files (default 42)")
    cmd.add_argument("--dirty-rate", type=float, default=0.02, help="share of defective rows (default 0.02)")
    cmd.add_argument(
        "--single-file",
        action="store_true",
        help="one file per table (advertisers.csv, campaigns.csv, performance.csv), e.g. to try large files",
    )


def maintain_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--retention-hours",
        type=float,
        metavar="HOURS",
        help="keep files of versions superseded less than HOURS ago (default: LAKEHOUSE_RETENTION_HOURS, 168; "
        "at least 1)",
    )
    summary(cmd, gated=False)
    wait(cmd)


def table_argument(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("table", metavar="TABLE", help="a lake table as LAYER/TABLE, e.g. silver/performance")


def history_options(cmd: argparse.ArgumentParser) -> None:
    table_argument(cmd)
    summary(cmd, gated=False)


def export_options(cmd: argparse.ArgumentParser) -> None:
    table_argument(cmd)
    cmd.add_argument(
        "--as-of",
        metavar="VERSION|TIMESTAMP",
        help="the table as it was: a version number (see `history`) or a UTC time such as '2024-02-09 10:15:00' "
        "(the latest version committed by then); default: the current version",
    )
    cmd.add_argument("--out", metavar="FILE", required=True, type=Path, help="the CSV file to write")


def db_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "action",
        choices=("init", "start", "stop", "status"),
        help="init: create or update the pipeline's roles, schemas and grants (an admin connection: the embedded "
        "server's superuser, or PGUSER/PGPASSWORD of a role with CREATEROLE); start/stop/status: the embedded server",
    )


DOCS_PORT = 8580


def docs_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--port", type=int, default=DOCS_PORT, help=f"serve on 127.0.0.1:PORT (default {DOCS_PORT}; 0: any free port)"
    )
    cmd.add_argument("--no-serve", action="store_true", help="only generate the docs and print where they are")


def report_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--run", metavar="ID", help="the run to report (default: the latest in ops.pipeline_runs)")
    cmd.add_argument("--open", action="store_true", help="open the report in the default browser")


def no_options(cmd: argparse.ArgumentParser) -> None:
    """The command takes no options."""


def existing_dir(value: str) -> Path | str:
    """A local folder that exists, or an ``s3a://bucket[/prefix]`` landing (checked when it is listed)."""
    if value.startswith("s3a://"):
        return value
    path = Path(value).resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"input directory {path} does not exist")
    return path
