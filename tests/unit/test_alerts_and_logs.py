"""Alerts reach a real local HTTP server and a real command; a delivery failure is a line, never an exception.
The runner's log formats: JSON lines for orchestrators, warnings only with --quiet."""

from __future__ import annotations

import http.server
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters.alerts import deliver
from lakehouse.cli import build_parser, logs
from lakehouse.settings import Secret

PAYLOAD = {"run_id": "r1", "status": "failed", "failing_checks": [{"check": "x"}], "report": "/tmp/r1.html"}


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(
                (self.headers["Content-Type"], json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            )
            self.send_response(500 if self.path == "/broken" else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_the_payload_is_posted_as_json_and_given_to_a_command(inbox: tuple[str, list[Any]], tmp_path: Path) -> None:
    url, received = inbox
    out = tmp_path / "alert.json"
    command = f"{sys.executable} -c \"import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())\" {out}"

    lines = deliver(PAYLOAD, webhook=Secret(f"{url}/hook?token=s3cr3t"), command=command)

    assert received == [("application/json", PAYLOAD)]
    assert json.loads(out.read_text()) == PAYLOAD
    assert [line.split(" ")[:2] for line in lines] == [["alert", "sent"], ["alert", "sent"]]
    assert "s3cr3t" not in " ".join(lines)


def test_a_failed_delivery_is_reported_and_never_raised(
    inbox: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = inbox
    refused = "http://127.0.0.1:9/hook?token=s3cr3t"  # the discard port: nobody listens

    lines = [
        *deliver(PAYLOAD, webhook=Secret(refused), command=None, timeout_s=5),
        *deliver(PAYLOAD, webhook=Secret(f"{url}/broken"), command=f'{sys.executable} -c "raise SystemExit(3)"'),
        *deliver(PAYLOAD, webhook=None, command="/no/such/alert-command"),
    ]

    assert [line.startswith("alert not delivered") for line in lines] == [True] * 4
    assert "HTTP 500" in lines[1]
    assert "exit 3" in lines[2]
    assert "s3cr3t" not in caplog.text
    assert [r.levelname for r in caplog.records if r.name == "lakehouse.adapters.alerts"] == ["WARNING"] * 4


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The runner reconfigures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_json_log_lines_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["run", "--log-format", "json"])
    logs.configure(verbose=False, quiet=args.quiet, log_format=args.log_format)
    logging.getLogger("lakehouse.test").info("bronze/%s: %d files", "performance", 3)
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line) | {"ts": None} == {
        "ts": None,
        "level": "info",
        "logger": "lakehouse.test",
        "message": "bronze/performance: 3 files",
    }

    args = build_parser().parse_args(["--quiet", "run"])
    logs.configure(verbose=False, quiet=args.quiet, log_format=args.log_format)
    logging.getLogger("lakehouse.test").info("not shown")
    logging.getLogger("lakehouse.test").warning("shown")
    assert capsys.readouterr().err.split(" ", 1)[1] == "WARNING lakehouse.test: shown\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()], ids=["terminal", "pipe"])
def test_progress_rewrites_one_line_on_a_terminal_and_is_left_out_elsewhere(stream: io.StringIO) -> None:
    handler = logs.ProgressStream(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("lakehouse.test.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("gold: %d nodes done, %s", 1, "dim_dates", extra={"progress": True})
        logger.info("gold: %d nodes done, %s", 2, "fct_performance", extra={"progress": True})
        logger.info("gold  SUCCESS model fct_performance")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    if isinstance(stream, Terminal):
        assert stream.getvalue() == (
            "gold: 1 nodes done, dim_dates\r\033[Kgold: 2 nodes done, fct_performance\r\033[K"
            "gold  SUCCESS model fct_performance\n"
        )
    else:
        assert stream.getvalue() == "gold  SUCCESS model fct_performance\n"
