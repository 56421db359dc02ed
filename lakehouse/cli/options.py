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
        help="landing directory (default: LAKEHOUSE_LANDING_DIR or <data dir>/landing; generated when empty)",
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


def silver_options(cmd: argparse.ArgumentParser) -> None:
    summary(cmd)
    wait(cmd)


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


def generate_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--out", metavar="DIR", help="output directory (default: the landing directory)")
    cmd.add_argument("--scale", type=float, default=1.0, help="size multiplier; 1 is about 15 MB (default 1)")
    cmd.add_argument("--seed", type=int, default=42, help="random seed; same seed, same files (default 42)")
    cmd.add_argument("--dirty-rate", type=float, default=0.02, help="share of defective rows (default 0.02)")


def db_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("action", choices=("start", "stop", "status"))


def no_options(cmd: argparse.ArgumentParser) -> None:
    """The command takes no options."""


def existing_dir(value: str) -> Path:
    path = Path(value).resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"input directory {path} does not exist")
    return path
