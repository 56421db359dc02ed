"""Locks that keep runs apart: one on the lake and one on the warehouse, each held for a whole run.

- **Lake, local folder**: an exclusive ``flock`` on ``<bronze layer>/_lakehouse_run.lock``. The kernel releases it
  when the holder dies, even by ``kill -9``.
- **Lake, S3**: a lease object ``_lakehouse/run.lock`` in the bronze bucket, created only if absent (a conditional
  ``PutObject``), holding its owner (host, pid, run) and an expiry that a heartbeat thread renews. A lease whose
  expiry passed, or whose owner is a dead process on this host, is stale and taken over.
- **Warehouse**: a session-level PostgreSQL advisory lock on a connection of its own; it ends with the connection.

Each lock is tried, and with ``wait_s`` retried until that many seconds passed (``None``: forever); a lock that is
still held then raises :class:`RunInProgressError`, which names the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lakehouse.adapters.objectstore import s3_client
from lakehouse.adapters.warehouse import connect, run_session_name
from lakehouse.errors import RunInProgressError
from lakehouse.settings import PostgresSettings, S3Settings, Settings

LOCK_FILE = "_lakehouse_run.lock"
LEASE_KEY = "_lakehouse/run.lock"
LEASE_TTL_S = 60.0
_ADVISORY_KEY = 0x6C616B65686F7573  # "lakehous": one lock per database for every lakehouse run
_POLL_S = 0.5


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created owner-only if missing), waited for, released on exit or death."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _owner(run: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run": run, "since": time.time()}


def _describe(owner: dict[str, Any]) -> str:
    return f"run {owner.get('run', '?')} (pid {owner.get('pid', '?')} on {owner.get('host', '?')})"


def _retry(attempt: Callable[[], bool], wait_s: float | None, busy: Callable[[], str]) -> None:
    """Call ``attempt`` until it returns True; past ``wait_s`` seconds raise with ``busy()`` as the holder."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while not attempt():
        if deadline is not None and time.monotonic() >= deadline:
            raise RunInProgressError(busy())
        time.sleep(_POLL_S)


@contextlib.contextmanager
def lake_lock(settings: Settings, *, run: str, wait_s: float | None = 0) -> Iterator[None]:
    """Hold the lake's run lock for the duration of the block."""
    root = settings.layer_uri("bronze")
    if settings.lake_kind == "s3":
        if settings.s3 is None:
            raise RunInProgressError("an s3a:// lake needs S3 settings to be locked")
        with _lease(settings.s3, root, run=run, wait_s=wait_s):
            yield
    else:
        with _flock(Path(unquote(urlsplit(root).path)) / LOCK_FILE, run=run, wait_s=wait_s):
            yield


@contextlib.contextmanager
def _flock(path: Path, *, run: str, wait_s: float | None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:

        def attempt() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        def holder() -> str:
            try:
                owner = json.loads(Path(path).read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            return f"another run holds the lake lock {path}: {_describe(owner)}"

        _retry(attempt, wait_s, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_owner(run)).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def _lease(s3: S3Settings, root: str, *, run: str, wait_s: float | None) -> Iterator[None]:
    parts = urlsplit(root)
    bucket, key = parts.netloc, f"{parts.path.strip('/')}/{LEASE_KEY}".lstrip("/")
    client = s3_client(s3)
    owner = _owner(run)

    def body() -> bytes:
        return json.dumps(owner | {"expires": time.time() + LEASE_TTL_S}).encode()

    def current() -> dict[str, Any] | None:
        try:
            found = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None
        return found if isinstance(found, dict) else {}

    def attempt() -> bool:
        held = current()
        if held is not None and not _stale(held):
            return False
        if held is not None:
            client.delete_object(Bucket=bucket, Key=key)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body(), IfNoneMatch="*")
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    _retry(
        attempt, wait_s, lambda: f"another run holds the lake lease s3://{bucket}/{key}: {_describe(current() or {})}"
    )
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(LEASE_TTL_S / 4):
            with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                client.put_object(Bucket=bucket, Key=key, Body=body())

    beat = threading.Thread(target=heartbeat, name="lakehouse-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key=key)


def _stale(owner: dict[str, Any]) -> bool:
    """Expired, or held by a process of this host that is gone."""
    if float(owner.get("expires", 0)) < time.time():
        return True
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


@contextlib.contextmanager
def warehouse_lock(pg: PostgresSettings, *, run: str, wait_s: float | None = 0) -> Iterator[None]:
    """Hold the warehouse's advisory run lock (per database) for the duration of the block."""
    conn = connect(pg, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("set application_name = %s", (run_session_name(run),))

            def attempt() -> bool:
                cur.execute("select pg_try_advisory_lock(%s)", (_ADVISORY_KEY,))
                row = cur.fetchone()
                return bool(row and row[0])

            def holder() -> str:
                cur.execute(
                    "select a.application_name, a.pid from pg_locks l join pg_stat_activity a using (pid)"
                    " where l.locktype = 'advisory' and l.objid = %s and l.granted limit 1",
                    (_ADVISORY_KEY & 0xFFFFFFFF,),
                )
                row = cur.fetchone()
                who = f"{row[0] or 'a session'} (backend pid {row[1]})" if row else "another session"
                return f"another run holds the warehouse lock in {pg.endpoint}: {who}"

            _retry(attempt, wait_s, holder)
            yield
    finally:
        conn.close()  # ends the session, which releases the advisory lock
