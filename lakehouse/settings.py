"""Resolved configuration: frozen objects built from the environment and an optional ``.env`` file.

Only :func:`load_settings` reads the environment, and only when it is called. Standard names are used where
they exist (libpq's ``PG*``, the AWS SDK's ``AWS_*``); everything else is ``LAKEHOUSE_*``. Values in the real
environment win over values in ``.env``. Secrets are wrapped in :class:`Secret`, which never shows its value
in ``repr``, ``str``, logs or error messages.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from dotenv import dotenv_values

from lakehouse.errors import ConfigurationError, UnsafeRetentionError

MASK = "**********"
LAKE_LAYERS = ("bronze", "silver", "quarantine")  # where the lake keeps tables (gold lives in PostgreSQL)
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "lakehouse"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
PG_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
_LIBPQ_EXPORTED = (*PG_VARIABLES, "PGPASSFILE")
# VACUUM keeps superseded files at least this long: longer than any run or export takes (a scale-10 run is
# minutes), so a reader still reading a superseded version keeps its files. Delta's own check (168 hours, the
# default retention) is off in the Spark configuration; this one applies instead.
MIN_RETENTION_HOURS = 1.0
DEFAULT_SPLIT_BYTES = 64 << 20  # LAKEHOUSE_BRONZE_SPLIT_BYTES: bronze parses a landing file in ranges of this size


@dataclass(frozen=True)
class Secret:
    """A credential. ``repr``/``str``/``format`` show a mask; :meth:`reveal` is the only way to the value."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK


@dataclass(frozen=True)
class PostgresSettings:
    """Where the warehouse lives. ``embedded`` marks a server this package started itself."""

    host: str
    port: int
    user: str
    database: str
    password: Secret | None = None
    embedded: bool = False
    passfile: Path | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg2.connect`` (the only place the password is revealed).

        With a ``passfile`` and no password, libpq reads the password from that file (``.pgpass`` format), so
        these arguments hold no secret and may be shipped to Spark tasks.
        """
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.database,
            "connect_timeout": 10,
        }
        if self.password is not None:
            kwargs["password"] = self.password.reveal()
        if self.passfile is not None:
            kwargs["passfile"] = str(self.passfile)
            # An empty password tells libpq to read the passfile, and not PGPASSWORD (an admin's, perhaps).
            kwargs.setdefault("password", "")
        return kwargs

    def libpq_env(self) -> dict[str, str]:
        """``PG*`` variables for child processes and tools that read them (dbt profiles, Soda)."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password.reveal()
        if self.passfile is not None:
            env["PGPASSFILE"] = str(self.passfile)
        return env

    def as_role(self, role: str, passfile: Path) -> PostgresSettings:
        """The same server and database as ``role``, its password read by libpq from ``passfile``."""
        return PostgresSettings(self.host, self.port, role, self.database, None, self.embedded, passfile)

    @property
    def endpoint(self) -> str:
        """A printable address without credentials, e.g. ``postgresql://dbt_user@localhost:5432/campaign_analytics``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class S3Settings:
    """An S3-compatible object store (MinIO in development). The access key id is not secret; the key is."""

    endpoint_url: str | None
    access_key_id: str
    secret_access_key: Secret
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or f"https://s3.{self.region}.amazonaws.com"

    @property
    def ssl_enabled(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"

    def aws_env(self) -> dict[str, str]:
        """``AWS_*`` variables for child processes, which :func:`load_settings` reads back as these settings."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key.reveal(),
            "AWS_REGION": self.region,
        }
        if self.endpoint_url is not None:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once. Build it with :func:`load_settings`."""

    data_dir: Path
    lake_uri: str
    spark_master: str
    cache_dir: Path
    shuffle_partitions: int
    postgres: PostgresSettings | None
    s3: S3Settings | None
    embedded_postgres_port: int
    minio_binary: Path | None = None
    spark_driver_memory: str = "2g"
    maven_repository: str = MAVEN_CENTRAL
    landing_override: Path | None = None
    # Landing on object storage, s3a://bucket[/prefix] (LAKEHOUSE_LANDING_URI); None: the local landing_dir.
    landing_uri: str | None = None
    pgpass_file: Path | None = None
    spark_event_log_dir: Path | None = None
    # A Spark Connect server, sc://host:port[/;token=…] (its parameters may carry a token); None: a local Spark.
    spark_remote: Secret | None = None
    alert_webhook: Secret | None = None  # a chat webhook URL often carries its token
    alert_command: str | None = None
    retention_hours: float = 168.0
    lock_timeout_ms: int = 10_000
    publish_attempts: int = 4
    # A landing file longer than this is parsed in ranges of about this many bytes, one task each.
    bronze_split_bytes: int = DEFAULT_SPLIT_BYTES

    @property
    def lake_kind(self) -> Literal["local", "s3"]:
        return "s3" if self.lake_uri.startswith("s3a://") else "local"

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.postgres is None

    @property
    def landing_dir(self) -> Path:
        """The local landing folder: where CSVs are read from unless ``--input`` or an ``s3a://`` landing says
        otherwise, and where ``runner.py generate`` writes by default."""
        return self.landing_override or self.data_dir / "landing"

    @property
    def landing(self) -> Path | str:
        """Where landing CSVs are read from unless ``--input`` says otherwise: an ``s3a://bucket[/prefix]`` URI,
        or the local :attr:`landing_dir`."""
        return self.landing_uri or self.landing_dir

    @property
    def reports_dir(self) -> Path:
        """Where each run's HTML report is written (``<run_id>.html`` and ``latest.html``)."""
        return self.data_dir / "reports"

    @property
    def postgres_data_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def role_passfile(self) -> Path:
        """The ``.pgpass``-format file holding the pipeline roles' passwords (``LAKEHOUSE_PGPASSFILE``), 0600."""
        return self.pgpass_file or self.data_dir / "pgpass"

    @property
    def jar_cache_dir(self) -> Path:
        return self.cache_dir / "jars"

    def layer_uri(self, layer: str) -> str:
        """The root of one lake layer.

        ``s3a://`` alone (or any URI containing ``{layer}``) gives the seed guide's bucket per layer,
        ``s3a://bronze/`` etc.; any other URI gets one folder per layer below it.
        """
        if layer not in LAKE_LAYERS:
            raise ConfigurationError(f"unknown lake layer {layer!r}; expected one of {', '.join(LAKE_LAYERS)}")
        uri = self.lake_uri
        if uri.rstrip("/") == "s3a:":
            uri = "s3a://{layer}"
        if "{layer}" in uri:
            return uri.replace("{layer}", layer).rstrip("/")
        return f"{uri.rstrip('/')}/{layer}"


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv_path: Path | str | None = ".env",
    base_dir: Path | None = None,
) -> Settings:
    """Resolve settings from ``environ`` (default: ``os.environ``) layered over an optional ``.env`` file.

    Relative paths are resolved against ``base_dir`` (default: the current directory) so that the runner
    behaves the same from any working directory when it passes its own location.
    """
    env = _merged_environment(environ, dotenv_path)
    base = (base_dir or Path.cwd()).resolve()
    data_dir = _path(env.get("LAKEHOUSE_DATA_DIR", "lakehouse_data"), base)
    lake_uri = _lake_uri(env.get("LAKEHOUSE_LAKE_URI"), data_dir, base)
    landing = _landing(env, base)
    needs_s3 = [n for n, v in (("LAKE", lake_uri), ("LANDING", landing)) if str(v).startswith("s3a://")]
    s3 = _s3_settings(env, required=" and ".join(f"LAKEHOUSE_{n}_URI" for n in needs_s3))
    minio_binary = env.get("LAKEHOUSE_MINIO_BINARY")
    return Settings(
        data_dir=data_dir,
        lake_uri=lake_uri,
        spark_master=env.get("LAKEHOUSE_SPARK_MASTER", "local[*]"),
        cache_dir=_path(env.get("LAKEHOUSE_CACHE_DIR", str(DEFAULT_CACHE_DIR)), base),
        shuffle_partitions=_int(env, "LAKEHOUSE_SHUFFLE_PARTITIONS", 8),
        postgres=_postgres_settings(env),
        s3=s3,
        embedded_postgres_port=_int(env, "LAKEHOUSE_EMBEDDED_PG_PORT", 54329),
        minio_binary=_path(minio_binary, base) if minio_binary else None,
        spark_driver_memory=env.get("LAKEHOUSE_SPARK_DRIVER_MEMORY", "2g"),
        maven_repository=env.get("LAKEHOUSE_MAVEN_REPOSITORY", MAVEN_CENTRAL),
        landing_override=landing if isinstance(landing, Path) else None,
        landing_uri=landing if isinstance(landing, str) else None,
        pgpass_file=_path(env["LAKEHOUSE_PGPASSFILE"], base) if "LAKEHOUSE_PGPASSFILE" in env else None,
        spark_event_log_dir=(
            _path(env["LAKEHOUSE_SPARK_EVENT_LOG_DIR"], base) if "LAKEHOUSE_SPARK_EVENT_LOG_DIR" in env else None
        ),
        spark_remote=_spark_remote(env.get("LAKEHOUSE_SPARK_REMOTE")),
        alert_webhook=Secret(env["LAKEHOUSE_ALERT_WEBHOOK"]) if "LAKEHOUSE_ALERT_WEBHOOK" in env else None,
        alert_command=env.get("LAKEHOUSE_ALERT_COMMAND"),
        retention_hours=_retention_hours(env, "LAKEHOUSE_RETENTION_HOURS", 168.0),
        lock_timeout_ms=_positive(env, "LAKEHOUSE_LOCK_TIMEOUT_MS", 10_000),
        publish_attempts=_positive(env, "LAKEHOUSE_PUBLISH_ATTEMPTS", 4),
        bronze_split_bytes=_positive(env, "LAKEHOUSE_BRONZE_SPLIT_BYTES", DEFAULT_SPLIT_BYTES),
    )


def _merged_environment(environ: Mapping[str, str] | None, dotenv_path: Path | str | None) -> dict[str, str]:
    """Empty values count as unset (as libpq and docker compose treat them), in either source."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v})
    merged.update({k: v for k, v in (os.environ if environ is None else environ).items() if v})
    return merged


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None


def _retention_hours(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of hours, got {raw!r}") from None
    check_retention(value)
    return value


def check_retention(retention_hours: float, *, min_retention_hours: float = MIN_RETENTION_HOURS) -> None:
    """Raise :class:`UnsafeRetentionError` when ``retention_hours`` is below the safe minimum."""
    if not retention_hours >= min_retention_hours:
        raise UnsafeRetentionError(
            f"refusing to VACUUM with a retention of {retention_hours:g} hours: the safe minimum is "
            f"{min_retention_hours:g} hours, or a reader still reading a superseded version (time travel, an "
            f"export, a long query) could lose its files. Set LAKEHOUSE_RETENTION_HOURS to "
            f"{min_retention_hours:g} or more (default 168); nothing was deleted."
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigurationError(f"{name} must be at least 1, got {value}")
    return value


def _spark_remote(raw: str | None) -> Secret | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme != "sc" or not parts.hostname:
        raise ConfigurationError(
            "LAKEHOUSE_SPARK_REMOTE is not a Spark Connect URL: expected sc://host:port (e.g. sc://127.0.0.1:15002; "
            "the value is not shown, it may carry a token)"
        )
    return Secret(raw)


def spark_remote_endpoint(settings: Settings) -> str | None:
    """The Spark Connect server's ``sc://host:port``, without the URL's parameters (they may carry a token)."""
    if settings.spark_remote is None:
        return None
    return f"sc://{urlsplit(settings.spark_remote.reveal()).netloc}"


def _lake_uri(raw: str | None, data_dir: Path, base: Path) -> str:
    if raw is None:
        return (data_dir / "lake").as_uri()
    scheme = urlsplit(raw).scheme
    if scheme == "s3a":
        return raw
    if scheme in ("s3", "s3n"):
        raise ConfigurationError(
            f"LAKEHOUSE_LAKE_URI={raw!r}: use the s3a:// scheme (Hadoop's S3A connector), e.g. s3a://"
        )
    if scheme == "file":
        return raw
    if scheme == "":
        return _path(raw, base).as_uri()
    raise ConfigurationError(f"LAKEHOUSE_LAKE_URI={raw!r}: expected a local path, file:// or s3a:// URI")


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _landing(env: Mapping[str, str], base: Path) -> Path | str | None:
    """``LAKEHOUSE_LANDING_URI`` (a local folder, ``file://`` or ``s3a://``), or its alias
    ``LAKEHOUSE_LANDING_DIR`` (the older name, from when landing was local only); both may be set only when they
    name the same place."""
    uri, folder = (
        parse_landing_uri(env[name], base, variable=name) if name in env else None
        for name in ("LAKEHOUSE_LANDING_URI", "LAKEHOUSE_LANDING_DIR")
    )
    if uri is not None and folder is not None and uri != folder:
        raise ConfigurationError(
            f"LAKEHOUSE_LANDING_URI and LAKEHOUSE_LANDING_DIR disagree ({uri} and {folder}): set only "
            "LAKEHOUSE_LANDING_URI (LAKEHOUSE_LANDING_DIR is its older name)"
        )
    return uri if uri is not None else folder


def parse_landing_uri(raw: str, base: Path, *, variable: str = "LAKEHOUSE_LANDING_URI") -> Path | str:
    """A landing location: ``s3a://bucket[/prefix]`` (returned without a trailing ``/``), or a local folder given
    as a path or a ``file://`` URI on this host (returned as an absolute :class:`Path`).

    Raises:
        ConfigurationError: another scheme, no or an invalid bucket, a query or fragment, a remote file URI.
    """
    name = f"{variable}={raw!r}"
    parts = urlsplit(raw)
    if parts.scheme in ("s3", "s3n"):
        raise ConfigurationError(f"{name}: use the s3a:// scheme (Hadoop's S3A connector), e.g. s3a://landing")
    if parts.scheme == "s3a":
        if parts.query or parts.fragment or "#" in raw:
            raise ConfigurationError(f"{name}: an s3a:// landing has no query or fragment (s3a://bucket/prefix)")
        if not parts.netloc:
            raise ConfigurationError(f"{name} names no bucket: expected s3a://bucket[/prefix]")
        if not _BUCKET.match(parts.netloc):
            raise ConfigurationError(f"{name}: {parts.netloc!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")
        prefix = "/".join(p for p in parts.path.split("/") if p)
        return f"s3a://{parts.netloc}/{prefix}".rstrip("/")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"{name}: expected a file:// URI on this host (file:///path)")
        return _path(url2pathname(parts.path), base)
    if parts.scheme == "":
        return _path(raw, base)
    raise ConfigurationError(f"{name}: expected a local folder, file:// or s3a:// URI")


def _s3_settings(env: Mapping[str, str], *, required: str) -> S3Settings | None:
    """S3 from ``AWS_*``; ``required`` names the settings that point at ``s3a://`` (empty: none do)."""
    key_id = env.get("AWS_ACCESS_KEY_ID")
    secret = env.get("AWS_SECRET_ACCESS_KEY")
    if key_id is None or secret is None:
        if required:
            raise ConfigurationError(
                f"{required} points at s3a:// but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
                "both set (see .env.example)"
            )
        return None
    return S3Settings(
        endpoint_url=env.get("AWS_ENDPOINT_URL_S3", env.get("AWS_ENDPOINT_URL")),
        access_key_id=key_id,
        secret_access_key=Secret(secret),
        region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
    )


def _postgres_settings(env: Mapping[str, str]) -> PostgresSettings | None:
    """libpq semantics: any ``PG*`` variable selects an external server; none selects the embedded one."""
    if not any(name in env for name in PG_VARIABLES):
        return None
    user = env.get("PGUSER", getpass.getuser())
    password = env.get("PGPASSWORD")
    return PostgresSettings(
        host=env.get("PGHOST", "localhost"),
        port=_int(env, "PGPORT", 5432),
        user=user,
        database=env.get("PGDATABASE", user),
        password=Secret(password) if password is not None else None,
    )


@contextlib.contextmanager
def libpq_environment(pg: PostgresSettings) -> Iterator[None]:
    """Export ``pg`` as ``PG*`` variables (unsetting any it does not give) for tools that read them (dbt, Soda),
    and restore the previous values afterwards. Process-wide: do not run two such tools in parallel."""
    saved = {name: os.environ.pop(name, None) for name in _LIBPQ_EXPORTED}
    try:
        os.environ.update(pg.libpq_env())
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def describe(settings: Settings) -> list[tuple[str, str]]:
    """Human-readable (name, value) pairs with every secret masked, for ``runner.py check``."""
    pg = settings.postgres
    s3 = settings.s3
    rows = [
        ("data dir", str(settings.data_dir)),
        ("landing", str(settings.landing)),
        ("lake", settings.lake_uri),
        (
            "spark",
            f"Spark Connect at {remote}" if (remote := spark_remote_endpoint(settings)) else settings.spark_master,
        ),
        ("jar cache", str(settings.jar_cache_dir)),
        (
            "postgres",
            pg.endpoint
            if pg
            else f"embedded (data in {settings.postgres_data_dir}, port {settings.embedded_postgres_port})",
        ),
        ("postgres password", MASK if pg and pg.password else "(none)"),
        ("role passwords", f"{settings.role_passfile} (owner-only, .pgpass format)"),
        ("alert webhook", MASK if settings.alert_webhook else "(none)"),
        ("alert command", settings.alert_command or "(none)"),
        ("retention", f"{settings.retention_hours:g} hours"),
    ]
    if s3 is not None:
        rows += [
            ("s3 endpoint", s3.endpoint),
            ("s3 access key id", s3.access_key_id),
            ("s3 secret access key", MASK),
        ]
    return rows
