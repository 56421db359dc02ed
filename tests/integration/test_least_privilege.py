"""Least privilege and secrets, tried as another local user and a curious role would.

- The embedded server demands a password (scram-sha-256) from everyone, listens on 127.0.0.1 only, keeps its
  generated password owner-only inside its data dir, and changes no permission outside that dir (as root too).
- A cluster made by an older version with ``trust`` is secured when it is next started.
- A server left running by a runner killed with SIGKILL is stopped by the next user to leave.
- Each pipeline role can do its job and gets "permission denied" for everything else.
- A whole run on MinIO with canary secrets (passwords full of ``#``, ``:``, quotes, spaces and backslashes) works
  for the loader, dbt and Soda; another local user polling ``ps`` never sees a secret; no log, Spark event log or
  output holds one; every file the run writes is owner-only; every table belongs to the role whose job wrote it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import errors, sql
from psycopg2.extensions import encrypt_password

from lakehouse.adapters.objectstore import ensure_bucket
from lakehouse.adapters.roles import bootstrap, write_password
from lakehouse.adapters.spark import jobs_by_tag
from lakehouse.adapters.warehouse import connect
from lakehouse.contracts import LOADER, READER, ROLES, TRANSFORM
from lakehouse.sample import generate
from lakehouse.services import free_port
from lakehouse.services.minio import LocalMinio, find_minio_binary
from lakehouse.services.postgres import PASSWORD_FILE, LocalPostgres, PostgresBinaries
from lakehouse.services.provide import SharedEmbedded
from lakehouse.settings import PostgresSettings, Secret, load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode & 0o7777 for p in (path, *path.parents)}


def _execute(pg: PostgresSettings, statement: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else []


def test_the_embedded_server_demands_a_password_listens_on_loopback_and_changes_nothing_outside(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # like root's home: nobody else may traverse it
    before = _modes(home)
    server = LocalPostgres(PostgresBinaries.embedded(), home / "lakehouse_data" / "postgres", port=free_port())
    with server as admin:
        assert _modes(home) == before, "a permission outside the data dir changed"
        assert server.data_dir.stat().st_mode & 0o777 == 0o700
        assert (server.data_dir / PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
        assert "trust" not in (server.data_dir / "pg_hba.conf").read_text()
        for password in (None, "postgres", ""):
            with pytest.raises(psycopg2.OperationalError, match="password"):
                psycopg2.connect(
                    host="127.0.0.1", port=admin.port, user="postgres", dbname="postgres", password=password
                )
        settings = _execute(admin, "select current_setting('listen_addresses'), current_setting('password_encryption')")
        assert settings == [("127.0.0.1", "scram-sha-256")]
    assert server.running_port() is None


def test_a_cluster_made_with_trust_authentication_is_secured_when_next_started(tmp_path: Path) -> None:
    server = LocalPostgres(PostgresBinaries.embedded(), tmp_path / "postgres", port=free_port())
    server.data_dir.mkdir(mode=0o700)
    legacy = server.command("initdb", "-D", str(server.data_dir), "-U", "postgres", "--auth=trust", "--no-locale")
    subprocess.run(legacy, check=True, capture_output=True, cwd=tmp_path)

    with server as admin:
        assert admin.password is not None
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host="127.0.0.1", port=admin.port, user="postgres", dbname="postgres")
        assert _execute(admin, "select current_user") == [("postgres",)]


def test_a_server_left_by_a_killed_runner_is_stopped_by_the_next_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "postgres"
    port = free_port()
    child_code = (
        "import sys, time; from pathlib import Path\n"
        "from lakehouse.services.postgres import LocalPostgres, PostgresBinaries\n"
        "from lakehouse.services.provide import SharedEmbedded\n"
        f"SharedEmbedded(LocalPostgres(PostgresBinaries.embedded(), Path({str(data_dir)!r}), port={port})).start()\n"
        "print('up', flush=True); time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "up"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    server = LocalPostgres(PostgresBinaries.embedded(), data_dir, port=port)
    assert server.running_port() == port, "the killed runner's server is still up (nobody stopped it yet)"

    user = SharedEmbedded(server)
    pg = user.start()  # reused, not started twice
    assert _execute(pg, "select 1") == [(1,)]
    user.stop()

    assert server.running_port() is None, "the next user to leave stops a server whose runner died"


@pytest.fixture
def roles_database(pg_database: PostgresSettings, tmp_path: Path) -> Iterator[dict[str, PostgresSettings]]:
    """A database bootstrapped twice (idempotent) over a table an older version left owned by the admin."""
    _execute(
        pg_database, "create schema silver; create table silver.legacy (id int); insert into silver.legacy values (1)"
    )
    passfile = tmp_path / "pgpass"
    bootstrap(pg_database, passfile)
    roles = bootstrap(pg_database, passfile)
    return {"admin": pg_database, "loader": roles.loader, "transform": roles.transform, "reader": roles.reader}


def _denied(pg: PostgresSettings, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        _execute(pg, statement)


def test_each_role_can_do_its_job_and_gets_permission_denied_for_everything_else(
    roles_database: dict[str, PostgresSettings],
) -> None:
    loader, transform, reader = roles_database["loader"], roles_database["transform"], roles_database["reader"]
    attributes = _execute(
        roles_database["admin"],
        "select rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls from pg_roles"
        " where rolname like 'lakehouse_%' order by rolname",
    )
    assert attributes == [(role, False, False, False, False, False) for role in sorted(r.name for r in ROLES)]
    assert LOADER.owns
    assert TRANSFORM.reads == ("silver",)
    assert READER.reads == ("core", "analytics")

    # The loader: writes bronze, silver, quarantine and ops; took over the table an older version left.
    _execute(loader, "create table bronze.raw_t (line text); insert into bronze.raw_t values ('raw')")
    _execute(
        loader, "create table silver.t (id int); insert into silver.t values (1); insert into silver.legacy values (2)"
    )
    _execute(loader, "create table quarantine.q (raw text); insert into quarantine.q values ('Jane Doe, 555-0100')")
    _execute(loader, "create table ops.runs (id int); insert into ops.runs values (1)")
    _denied(loader, "create table core.sneaky (id int)")

    # The transformer: reads silver (tables created later included), builds core and analytics, writes no silver.
    assert _execute(transform, "select count(*) from silver.t") == [(1,)]
    _execute(transform, "create table core.dim (id int) ; insert into core.dim select id from silver.t")
    _execute(transform, "create view analytics.mart as select id from core.dim")
    _execute(transform, "create schema core__shadow")  # dbt's build-then-swap schemas
    _denied(transform, "insert into silver.t values (2)")
    _denied(transform, "create table silver.x (id int)")
    _denied(transform, "select * from quarantine.q")
    _denied(transform, "select * from bronze.raw_t")
    _denied(transform, "insert into ops.runs values (2)")

    # The reader: core and analytics only, and nothing written anywhere.
    assert _execute(reader, "select count(*) from core.dim") == [(1,)]
    assert _execute(reader, "select count(*) from analytics.mart") == [(1,)]
    for statement in (
        "select * from quarantine.q",
        "select * from silver.t",
        "select * from bronze.raw_t",
        "select * from ops.runs",
        "insert into core.dim values (3)",
        "delete from core.dim",
        "create table core.x (id int)",
        "create table public.x (id int)",
        "create schema mine",
    ):
        _denied(reader, statement)
    for pg in (loader, transform, reader):  # running programs on the server is for superusers only
        _denied(pg, "copy (select 1) to program 'id'")


def test_a_run_keeps_every_secret_from_other_local_users_and_works_with_any_printable_password(tmp_path: Path) -> None:
    binary = find_minio_binary(load_settings(dotenv_path=None).cache_dir)
    assert binary is not None, "the MinIO build is missing (scripts/build-minio.sh)"
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    canaries = {role.name: f"p#ss word: *x\"'\\ {role.name[-6:]} {{% ${{C}}" for role in ROLES}
    s3_canary = "s3#canary: *\"'\\secret-7f3a"
    generate(tmp_path / "landing", scale=0.02, seed=5, dirty_rate=0.02)
    with (
        LocalMinio(binary, tmp_path / "minio", secret_key=s3_canary) as s3,
        LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pg", port=free_port()) as admin,
    ):
        assert admin.password is not None
        for role, password in canaries.items():  # chosen passwords, put where db init finds them
            write_password(data_dir / "pgpass", admin.host, admin.port, role, password)
        secrets = [*canaries.values(), s3_canary, admin.password.reveal()]
        ensure_bucket(s3, "lake")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
        env |= (
            admin.libpq_env()
            | {
                "LAKEHOUSE_DATA_DIR": str(data_dir),
                "LAKEHOUSE_SPARK_MASTER": "local[2]",
                "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
                "LAKEHOUSE_SPARK_EVENT_LOG_DIR": str(data_dir / "spark-events"),
                "LAKEHOUSE_LAKE_URI": "s3a://lake/data",
            }
            | s3.aws_env()
        )
        command = [sys.executable, str(ROOT / "runner.py"), "run", "--input", str(tmp_path / "landing")]
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        seen_by_others: list[str] = []
        polling = threading.Thread(target=_poll_ps_as_another_user, args=(proc, seen_by_others), daemon=True)
        polling.start()
        out, err = proc.communicate(timeout=900)
        polling.join(timeout=30)

        assert proc.returncode == 0, err[:6000]
        assert len(seen_by_others) > 10
        assert any("runner.py" in s for s in seen_by_others)
        assert any("org.apache.spark.deploy.SparkSubmit" in s for s in seen_by_others), "ps never saw the JVM"
        owners = _execute(
            admin,
            "select n.nspname, pg_get_userbyid(c.relowner) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'v', 'm') and n.nspname in ('bronze', 'silver', 'quarantine', 'ops', 'core',"
            " 'analytics', 'snapshots') group by 1, 2",
        )
        logs = [p for p in (*data_dir.rglob("*"), *(tmp_path / "pg").glob("*.log")) if p.is_file()]
        logs += [p for p in (ROOT / "dbt_project" / "logs").glob("*.log")]
    assert dict(owners) == {
        "bronze": LOADER.name,
        "silver": LOADER.name,
        "quarantine": LOADER.name,
        "ops": LOADER.name,
        "core": TRANSFORM.name,
        "analytics": TRANSFORM.name,
        "snapshots": TRANSFORM.name,
    }, owners
    assert list((data_dir / "spark-events").iterdir()), "the Spark event log was written"
    jobs = jobs_by_tag(data_dir / "spark-events")  # and it attributes the jobs to the layers that started them
    assert min(jobs["bronze"], jobs["silver"], jobs["storage"]) > 0, jobs
    where_secrets_live = {data_dir / "pgpass"}
    for secret in secrets:
        assert secret not in out + err
        assert not [s for s in seen_by_others if secret in s], "a secret in another user's `ps`"
        leaked = [p for p in logs if p not in where_secrets_live and secret.encode() in p.read_bytes()]
        assert leaked == [], f"a secret written to {leaked}"
    loose = [p for p in data_dir.rglob("*") if p.stat().st_mode & 0o077]
    assert loose == [], f"readable by other users: {loose[:5]}"


def _poll_ps_as_another_user(proc: subprocess.Popen[str], seen: list[str]) -> None:
    """What ``nobody`` sees in ``ps -eo args`` every 0.2 s while ``proc`` runs (as root; else as ourselves)."""
    command = ["ps", "-e", "-ww", "-o", "args"]  # -ww: whole lines, however long
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *command]
    while proc.poll() is None:
        seen.append(subprocess.run(command, capture_output=True, text=True, check=False).stdout)
        time.sleep(0.2)


@pytest.mark.parametrize("password", ["p#ss word: *x\"'\\ {% ${PGHOST} end", "*leading: star", "# hash first"])
def test_soda_and_dbt_accept_a_password_given_in_pgpassword_whatever_it_holds(
    pg_database: PostgresSettings, password: str
) -> None:
    """An admin's ``PGPASSWORD`` (not a passfile) with YAML- and Jinja-hostile characters: Soda used to paste it
    into its configuration's text and broke on ``#`` or ``: ``."""
    from lakehouse.gold import dbt_debug
    from lakehouse.quality.scan import validate_configuration

    role = f"pw_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(connect(pg_database, autocommit=True)) as conn, conn.cursor() as cur:
        verifier = encrypt_password(password, role, conn, "scram-sha-256")
        cur.execute(sql.SQL("create role {} login password %s").format(sql.Identifier(role)), (verifier,))
        cur.execute(
            sql.SQL("grant connect on database {} to {}").format(*map(sql.Identifier, (pg_database.database, role)))
        )
    pg = dataclasses.replace(pg_database, user=role, password=Secret(password))

    assert "data sources reachable" in validate_configuration(pg)
    assert dbt_debug(pg)
