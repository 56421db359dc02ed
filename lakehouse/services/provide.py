"""Picking the server behind PostgreSQL and S3, in one order for the runner and the tests:

1. the endpoint the settings name (``PG*``; ``AWS_ENDPOINT_URL`` with credentials), waited for briefly;
2. a container, when ``docker`` is allowed and a Docker engine answers (tests);
3. a local process: the embedded PostgreSQL in ``data_dir`` (kept running when it already was), or a
   ``minio`` server built from the pinned source.

Each function is a context manager yielding frozen client settings, and stops on exit only what it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from lakehouse.adapters.locks import file_lock
from lakehouse.adapters.roles import ROLE_NAMES, WarehouseRoles, bootstrap, can_login
from lakehouse.errors import ConfigurationError, ServiceUnavailableError
from lakehouse.services import Service
from lakehouse.services.containers import MinioContainerService, PostgresContainerService, docker_available
from lakehouse.services.minio import LocalMinio, find_minio_binary
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries, wait_for_postgres
from lakehouse.settings import PostgresSettings, S3Settings, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextlib.contextmanager
def _provide(
    configured: T | None, check: Callable[[T], None], docker: bool, container: Callable[[], Service[T]],
    local: Callable[[], Service[T]],
) -> Iterator[T]:  # fmt: skip
    """The one choice: configured endpoint, else a container (when allowed and Docker answers), else local."""
    if configured is not None:
        check(configured)
        yield configured
        return
    service = container() if docker and docker_available() else local()
    settings = service.start()
    try:
        yield settings
    finally:
        service.stop()


def embedded_postgres(settings: Settings) -> LocalPostgres:
    """The runner's embedded server: ``<data dir>/postgres`` on the configured port."""
    return LocalPostgres(PostgresBinaries.embedded(), settings.postgres_data_dir, port=settings.embedded_postgres_port)


def postgres(
    settings: Settings, *, data_dir: Path | None = None, docker: bool = False, wait_s: float = 15
) -> contextlib.AbstractContextManager[PostgresSettings]:
    """PostgreSQL: ``PG*`` if set, else a container (``docker``), else the embedded server in ``data_dir``
    (default ``<data dir>/postgres``), shared by every process using it (see :class:`SharedEmbedded`)."""

    def local() -> Service[PostgresSettings]:
        server = (
            embedded_postgres(settings) if data_dir is None else LocalPostgres(PostgresBinaries.embedded(), data_dir)
        )
        return SharedEmbedded(server)

    return _provide(
        settings.postgres, lambda pg: wait_for_postgres(pg, timeout_s=wait_s), docker, PostgresContainerService, local
    )


class SharedEmbedded:
    """An embedded server shared by the processes that use it at once: stopped by the last one to leave.

    Every user holds a shared ``flock`` on ``<data dir>.users`` while it uses the server; starting is serialised by
    an exclusive lock on ``<data dir>.start``. A server started by a user is marked (``<data dir>.owned``); on
    leaving, a user that can take the users lock exclusively is the last one, and stops a marked server. A server
    started by ``runner.py db start`` carries no mark and keeps running. A user killed by ``kill -9`` loses its
    locks with its process, so the next user to leave cleans up after it.
    """

    def __init__(self, server: LocalPostgres) -> None:
        self.server = server
        base = server.data_dir
        self._users = base.with_name(base.name + ".users")
        self._start = base.with_name(base.name + ".start")
        self.owned = base.with_name(base.name + ".owned")
        self._fd: int | None = None

    def start(self) -> PostgresSettings:
        self.server.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._users, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        with file_lock(self._start):
            if self.server.running_port() is None:
                # Marked before it starts: a user killed between the start and the mark would leave a server
                # nobody stops. The next user to leave stops a marked server, whoever started it.
                self.owned.touch(mode=0o600)
            return self.server.start()

    def stop(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("embedded PostgreSQL left running: another process still uses it")
        else:
            if self.owned.exists():
                with file_lock(self._start):
                    self.server.stop_server()
                    self.owned.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def warehouse(settings: Settings, *, docker: bool = False) -> Iterator[WarehouseRoles]:
    """PostgreSQL as the pipeline uses it: one login role per job (:mod:`lakehouse.adapters.roles`).

    With an admin connection (the embedded server's superuser, or ``PG*`` naming a user that is not one of the
    pipeline's roles) the roles, schemas and grants are bootstrapped first (idempotent); with ``PG*`` naming one
    of the roles, the roles must already work (``runner.py db init`` by an administrator).
    """
    with postgres(settings, docker=docker) as server:
        if server.user in ROLE_NAMES:
            roles = WarehouseRoles.of(server, settings.role_passfile)
            if not can_login(roles):
                raise ConfigurationError(
                    f"the pipeline's roles cannot log in to {server.endpoint} with the passwords in "
                    f"{settings.role_passfile}; an administrator runs `runner.py db init` (PGUSER/PGPASSWORD of a "
                    "role with CREATEROLE) to create them"
                )
        else:
            roles = bootstrap(server, settings.role_passfile)
        yield roles


def object_store(
    settings: Settings, *, data_dir: Path, docker: bool = False, build: Callable[[], Path | None] | None = None
) -> contextlib.AbstractContextManager[S3Settings]:
    """S3: ``AWS_ENDPOINT_URL`` if set, else a MinIO container (``docker``), else a local ``minio`` on a free port
    with ``data_dir`` (``build`` is called for a binary when none is found)."""

    def local() -> LocalMinio:
        binary = find_minio_binary(settings.cache_dir, settings.minio_binary) or (build() if build else None)
        if binary is None:
            raise ServiceUnavailableError(
                "MinIO",
                "local",
                "no minio binary",
                hint="set AWS_ENDPOINT_URL, start Docker, or run scripts/build-minio.sh",
            )
        return LocalMinio(binary, data_dir)

    configured = settings.s3 if settings.s3 is not None and settings.s3.endpoint_url else None
    return _provide(configured, lambda _: None, docker, MinioContainerService, local)
