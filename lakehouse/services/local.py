"""What every server this package runs as a local process shares (MinIO, a Spark Connect server, a Spark
standalone cluster): a context manager around ``start``/``stop``, children in sessions of their own, a stop with a
grace period, a wait for readiness that notices a child that died, and ``python -m`` serving until Ctrl-C.

A child runs in a session (and process group) of its own: a terminal's Ctrl-C reaches only this process, which
then stops the child, and stopping a group stops what the child started (a worker's executors).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

from lakehouse.errors import ServiceUnavailableError

T = TypeVar("T")


class LocalServer(Generic[T]):
    """A server this process starts and stops; ``with server as settings:`` starts it and always stops it.
    Subclasses define :meth:`start` (returning what a client needs) and :meth:`stop` (idempotent)."""

    def start(self) -> T:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> T:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve(self, announce: Callable[[T], str]) -> None:
        """Start, print ``announce(settings)``, and run until interrupted (Ctrl-C); then stop."""
        with self as settings:
            print(f"{announce(settings)}  (Ctrl-C stops it)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


def spawn(command: Sequence[str], *, log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, no stdin, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command), env=dict(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def terminate(process: subprocess.Popen[bytes], *, grace_s: float, group: bool = False) -> None:
    """SIGTERM ``process`` (its whole process group with ``group``), SIGKILL it after ``grace_s``; with ``group``,
    SIGKILL whatever of its group is left (children must not outlive it)."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(
    ready: Callable[[], bool],
    processes: Sequence[tuple[str, subprocess.Popen[bytes], Path]],
    *,
    service: str,
    endpoint: str,
    timeout_s: float,
    hint: str,
    not_ready: str = "not ready",
    interval_s: float = 0.2,
) -> None:
    """Poll ``ready`` (its connection errors count as not yet) until it is true.

    Raises:
        ServiceUnavailableError: one of the ``processes`` (name, process, log) exited: the error names it, its exit
            code and its log; or ``not_ready`` after ``timeout_s``, with ``hint`` saying where to look.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, process, log in processes:
            if process.poll() is not None:
                raise ServiceUnavailableError(
                    service, endpoint, f"the {name} exited with code {process.returncode}", hint=f"see {log}"
                )
        with contextlib.suppress(OSError, ValueError):  # URLError, ConnectionError, TimeoutError are OSErrors
            if ready():
                return
        time.sleep(interval_s)
    raise ServiceUnavailableError(service, endpoint, f"{not_ready} after {timeout_s:g}s", hint=hint)
