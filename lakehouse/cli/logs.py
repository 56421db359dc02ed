"""How the command line logs: text lines for a person, JSON lines for an orchestrator, or only what went wrong.

On a terminal, long steps also show a progress line that rewrites itself (a record logged with
``extra={"progress": True}``: per landing file checked, per silver table, per dbt node); it is cleared before any
other line. Anywhere else (a pipe, a log file, ``--log-format json``) progress records are dropped and the plain log
lines (one per bronze and silver table, per dbt model) tell the story.
``--log-format json`` writes one JSON object per line on stderr (``ts``, ``level``, ``logger``, ``message``, and
``exc`` for a traceback), so a scheduler can parse what happened; the run summary stays on stdout. ``--quiet``
keeps warnings and errors only; the summary and the report's path are still printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]


class JsonLines(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class ProgressStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Plain lines, plus a self-rewriting progress line when the stream is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.showing = False

    def emit(self, record: logging.LogRecord) -> None:
        progress = bool(getattr(record, "progress", False))
        if progress and not self.live:
            return
        try:
            text = self.format(record)
            if self.showing:
                self.stream.write("\r\033[K")  # clear the progress line first
            self.stream.write(f"{text[: self.width()]}" if progress else f"{text}\n")
            self.showing = progress
            self.flush()
        except Exception:  # a handler never raises into the code that logs
            self.handleError(record)

    @staticmethod
    def width() -> int:
        return max(20, shutil.get_terminal_size().columns - 1)


def add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-q/--quiet`` and ``--log-format``, accepted before or after the command (``top`` sets the defaults)."""
    quiet: object = False if top else argparse.SUPPRESS
    log_format: object = "text" if top else argparse.SUPPRESS
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=quiet,
        help="log warnings and errors only (the summary is still printed)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=log_format,
        help="text lines (default), or one JSON object per line on stderr for orchestrators",
    )


def configure(*, verbose: bool, quiet: bool, log_format: LogFormat) -> None:
    """Install the runner's one stderr handler (importing dbt installs its own root handlers; ours win)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("py4j", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
