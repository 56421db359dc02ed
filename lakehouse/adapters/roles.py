"""Least privilege in PostgreSQL: the pipeline's login roles, their passwords, and the idempotent bootstrap.

:func:`bootstrap` (``runner.py db init``; automatic on the embedded default) runs on an admin connection and makes
the database match :data:`lakehouse.contracts.ROLES`: each role exists as a plain login role (no superuser,
CREATEDB, CREATEROLE or replication), owns the schemas it writes (and every relation in them, so a database built
by an older version is taken over), may read the schemas it ``reads`` (tables created later included, through
default privileges), and nobody else may connect to the database or create objects in ``public``.

Passwords live in one owner-only file in libpq's ``.pgpass`` format (``host:port:*:role:password``, with ``:``
and ``\\`` escaped): libpq reads it itself (``passfile``), so no password travels in an argument, an environment
variable of a child, a Spark task or a dbt/Soda configuration. A missing entry is generated; an existing one is
kept, whatever printable characters it holds. The role's password is sent as a SCRAM verifier computed here, so
the server never sees (or logs) the password itself.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import cursor, encrypt_password

from lakehouse.adapters.locks import file_lock
from lakehouse.adapters.warehouse import connect
from lakehouse.contracts import LOADER, READER, ROLES, TRANSFORM, Role
from lakehouse.errors import ConfigurationError
from lakehouse.settings import PostgresSettings

ROLE_NAMES = frozenset(role.name for role in ROLES)
_ROLE_OPTIONS = "login nosuperuser nocreatedb nocreaterole noreplication nobypassrls noinherit"


@dataclass(frozen=True)
class WarehouseRoles:
    """One connection setting per job, all on the same database, passwords in the role passfile."""

    loader: PostgresSettings
    transform: PostgresSettings
    reader: PostgresSettings

    @classmethod
    def of(cls, server: PostgresSettings, passfile: Path) -> WarehouseRoles:
        return cls(*(server.as_role(role.name, passfile) for role in (LOADER, TRANSFORM, READER)))

    @classmethod
    def single(cls, pg: PostgresSettings | WarehouseRoles) -> WarehouseRoles:
        """One connection for every job (a caller with one account, e.g. a test's admin), or ``pg`` as it is."""
        return pg if isinstance(pg, WarehouseRoles) else cls(pg, pg, pg)


def owner_only(path: Path) -> None:
    """Raise unless ``path`` is readable by its owner alone (what libpq demands of a password file, too)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(f"{path} is readable by other users (mode {mode:o}); chmod 600 {path}")


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def _fields(line: str) -> list[str]:
    """Split one ``.pgpass`` line on unescaped colons, unescaping ``\\:`` and ``\\\\``."""
    out, current, chars = [], [], iter(line)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


def read_password(passfile: Path, host: str, port: int, role: str) -> str | None:
    """The password ``passfile`` holds for ``role`` on ``host:port`` (first matching line, as libpq reads it)."""
    if not passfile.is_file():
        return None
    for line in passfile.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = _fields(line)
        if len(fields) != 5:
            continue
        f_host, f_port, _db, f_user, password = fields
        if f_host in ("*", host) and f_port in ("*", str(port)) and f_user in ("*", role):
            return password
    return None


def write_password(passfile: Path, host: str, port: int, role: str, password: str) -> None:
    """Append an entry for ``role`` on ``host:port`` (the file is created owner-only)."""
    if any(ch in password for ch in "\r\n"):
        raise ConfigurationError(f"the password for {role} contains a line break, which .pgpass cannot hold")
    passfile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(passfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(":".join((_escape(host), str(port), "*", _escape(role), _escape(password))) + "\n")
    owner_only(passfile)


def role_passwords(server: PostgresSettings, passfile: Path) -> dict[str, str]:
    """Every pipeline role's password from ``passfile``, generating (and saving) the missing ones."""
    passfile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with file_lock(passfile.with_name(passfile.name + ".lock")):
        passwords = {}
        for role in ROLES:
            password = read_password(passfile, server.host, server.port, role.name)
            if password is None:
                password = secrets.token_urlsafe(24)
                write_password(passfile, server.host, server.port, role.name, password)
            passwords[role.name] = password
    owner_only(passfile)
    return passwords


def bootstrap(admin: PostgresSettings, passfile: Path) -> WarehouseRoles:
    """Create or update the roles, schemas and grants on ``admin``'s database; return the roles' settings.

    Idempotent, one transaction. Safe against a concurrent bootstrap of another database on the same server
    (roles are server-wide): a lost race to create a role is retried.
    """
    passwords = role_passwords(admin, passfile)
    for attempt in range(3):
        conn = connect(admin)
        try:
            with conn, conn.cursor() as cur:
                _apply(cur, admin.database, passwords)
            break
        except (errors.DuplicateObject, errors.UniqueViolation):
            if attempt == 2:
                raise
        finally:
            conn.close()
    return WarehouseRoles.of(admin, passfile)


def _apply(cur: cursor, database: str, passwords: dict[str, str]) -> None:
    db = sql.Identifier(database)
    for role in ROLES:
        verifier = encrypt_password(passwords[role.name], role.name, cur.connection, "scram-sha-256")
        cur.execute("select 1 from pg_roles where rolname = %s", (role.name,))
        verb = "alter" if cur.fetchone() else "create"
        cur.execute(
            sql.SQL(f"{verb} role {{}} with {_ROLE_OPTIONS} password %s").format(sql.Identifier(role.name)),
            (verifier,),
        )
    cur.execute(sql.SQL("revoke all on database {} from public").format(db))
    cur.execute(sql.SQL("revoke create on schema public from public"))
    names = sql.SQL(", ").join(sql.Identifier(role.name) for role in ROLES)
    cur.execute(sql.SQL("grant connect on database {} to {}").format(db, names))
    for role in ROLES:
        if role.owns:  # writers create their schemas (and dbt its shadow ones) as they need them
            cur.execute(sql.SQL("grant create, temporary on database {} to {}").format(db, sql.Identifier(role.name)))
        for schema in role.owns:
            _own_schema(cur, schema, role)
    owners = {schema: role for role in ROLES for schema in role.owns}
    for role in ROLES:
        for schema in role.reads:
            _grant_read(cur, schema, role, owners[schema])


def _own_schema(cur: cursor, schema: str, role: Role) -> None:
    name, owner = sql.Identifier(schema), sql.Identifier(role.name)
    cur.execute(sql.SQL("create schema if not exists {} authorization {}").format(name, owner))
    cur.execute(sql.SQL("alter schema {} owner to {}").format(name, owner))
    cur.execute(
        "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')"
        " and pg_get_userbyid(c.relowner) <> %s",
        (schema, role.name),
    )
    kinds = {"v": "view", "m": "materialized view", "S": "sequence", "f": "foreign table"}
    for relation, kind in cur.fetchall():
        cur.execute(
            sql.SQL(f"alter {kinds.get(kind, 'table')} {{}} owner to {{}}").format(
                sql.Identifier(schema, relation), owner
            )
        )


def _grant_read(cur: cursor, schema: str, role: Role, owner: Role) -> None:
    name, grantee = sql.Identifier(schema), sql.Identifier(role.name)
    cur.execute(sql.SQL("create schema if not exists {} authorization {}").format(name, sql.Identifier(owner.name)))
    cur.execute(sql.SQL("grant usage on schema {} to {}").format(name, grantee))
    cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(name, grantee))
    cur.execute(
        sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
            sql.Identifier(owner.name), name, grantee
        )
    )


def can_login(roles: WarehouseRoles) -> bool:
    """Whether every role can connect with the password its passfile holds."""
    for pg in (roles.loader, roles.transform, roles.reader):
        try:
            connect(pg).close()
        except psycopg2.OperationalError:
            return False
    return True
