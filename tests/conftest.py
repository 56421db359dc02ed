"""Shared fixtures: one small SparkSession, and real MinIO / PostgreSQL servers for integration tests.

Services are chosen in this order: endpoints given by environment variables (``AWS_ENDPOINT_URL`` +
credentials, ``PG*``); else testcontainers when a Docker engine answers; else local processes (the pinned
``minio`` build and an embedded PostgreSQL). With ``LAKEHOUSE_REQUIRE_SERVICES=1`` (CI) a missing service
fails the test run instead of skipping it.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
from hypothesis import settings as hypothesis_settings
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin
from psycopg2 import sql

from lakehouse.adapters.objectstore import s3_client
from lakehouse.errors import ServiceUnavailableError
from lakehouse.services import provide
from lakehouse.services.minio import find_minio_binary, pipeline_policy
from lakehouse.settings import PostgresSettings, S3Settings, Secret, Settings, load_settings
from tests.databases import fresh_database


def _load_hypothesis_profile() -> None:
    """Register the Hypothesis profiles and load the one for this run.

    ``ci`` is derandomized (every run draws the same examples, so a red build reproduces), keeps no example
    database and, like Hypothesis' own CI settings it extends, tolerates slow data generation; ``dev`` is random,
    so development keeps exploring. Both run the same number of examples, have no deadline (a Spark-backed example
    takes seconds) and print the blob that replays a failure. ``HYPOTHESIS_PROFILE`` names a profile; otherwise
    ``CI`` set (``CI=true``; not ``false`` or ``0``) chooses ``ci``, anything else ``dev``. A test may still set
    its own example count.
    """
    # Parents are explicit: Hypothesis itself loads its ``ci`` profile whenever ``CI`` is set, even to ``false``.
    common: dict[str, Any] = {"max_examples": 100, "deadline": None, "print_blob": True}
    ci_parent, dev_parent = hypothesis_settings.get_profile("ci"), hypothesis_settings.get_profile("default")
    hypothesis_settings.register_profile("ci", ci_parent, derandomize=True, database=None, **common)
    hypothesis_settings.register_profile("dev", dev_parent, **common)
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci else "dev"))


_load_hypothesis_profile()

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("LAKEHOUSE_REQUIRE_SERVICES") == "1"
TEST_BUCKETS = "lh-test-*"  # the buckets the tests' scoped key may use (the fixtures create them with the root key)


def unavailable(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (LAKEHOUSE_REQUIRE_SERVICES=1: a missing service is an error)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def env_settings() -> Settings:
    """Settings from the real environment only (a developer's .env is not read by tests)."""
    return load_settings(dotenv_path=None)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory, env_settings: Settings) -> Iterator[Any]:
    """One SparkSession for the whole test run: two threads, two shuffle partitions, UI off, S3A jars loaded.

    ``local[2,2]`` allows one task retry, as a cluster does, so retry behaviour is tested for real.
    """
    from lakehouse.adapters.spark import build_spark

    data_dir = tmp_path_factory.mktemp("spark")
    settings = load_settings(
        {
            "LAKEHOUSE_DATA_DIR": str(data_dir),
            "LAKEHOUSE_SPARK_MASTER": "local[2,2]",
            "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
            "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
            "LAKEHOUSE_CACHE_DIR": str(env_settings.cache_dir),
        },
        dotenv_path=None,
    )
    session = build_spark(settings, app_name="lakehouse-tests", s3_jars=True)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_root(tmp_path_factory: pytest.TempPathFactory, env_settings: Settings) -> Iterator[S3Settings]:
    """A real S3 endpoint with its root (admin) key, for bootstrap only: users, policies, buckets. Picked by
    :mod:`lakehouse.services.provide`: the environment, a MinIO container, or a local ``minio`` process (built with
    Go on first use). From the environment, ``MINIO_ROOT_USER``/``MINIO_ROOT_PASSWORD`` (docker compose's) are the
    root key when set, since ``AWS_*`` there is the pipeline's scoped key."""
    try:
        with provide.object_store(
            env_settings, data_dir=tmp_path_factory.mktemp("minio") / "data", docker=True, build=_build_minio
        ) as s3:
            root_user, root_password = os.environ.get("MINIO_ROOT_USER"), os.environ.get("MINIO_ROOT_PASSWORD")
            if env_settings.s3 is not None and env_settings.s3.endpoint_url and root_user and root_password:
                s3 = dataclasses.replace(s3, access_key_id=root_user, secret_access_key=Secret(root_password))
            yield s3
    except ServiceUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def s3_service(s3_root: S3Settings) -> Iterator[S3Settings]:
    """The pipeline's view of ``s3_root``: a scoped key whose policy (:func:`pipeline_policy`) allows reading and
    writing ``lh-test-*`` buckets only, as docker compose's ``minio-init`` gives the pipeline its four buckets. The
    key cannot create a bucket: :func:`make_bucket` does that with the root key. User and policy go at the end."""
    user = f"lh-pipeline-{uuid.uuid4().hex[:12]}"
    admin = _minio_admin(s3_root)
    try:
        admin.policy_add(user, policy=pipeline_policy([TEST_BUCKETS]))
        secret = Secret(secrets.token_urlsafe(24))
        admin.user_add(user, secret.reveal())
        admin.attach_policy([user], user=user)
    except Exception as exc:  # the admin API is MinIO's own: another S3 service or a non-admin key fails here
        unavailable(f"cannot create the pipeline's scoped MinIO user at {s3_root.endpoint}: {exc}")
    try:
        yield dataclasses.replace(s3_root, access_key_id=user, secret_access_key=secret)
    finally:
        admin.user_remove(user)
        admin.policy_remove(user)


def _minio_admin(s3: S3Settings) -> MinioAdmin:
    parts = urlsplit(s3.endpoint)
    return MinioAdmin(
        endpoint=parts.netloc,
        credentials=StaticProvider(s3.access_key_id, s3.secret_access_key.reveal()),
        region=s3.region,
        secure=parts.scheme == "https",
    )


def _build_minio() -> Path | None:
    """Last resort on a machine with Go but no Docker: build the pinned MinIO once into the cache."""
    if shutil.which("go") is None:
        return None
    print("\nbuilding the pinned MinIO server with Go (first run only, a few minutes)...", flush=True)
    cache_dir = load_settings(dotenv_path=None).cache_dir
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-minio.sh")],
        env=os.environ | {"LAKEHOUSE_CACHE_DIR": str(cache_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        unavailable(f"building MinIO failed: {proc.stderr.strip()[-500:]}")
    return find_minio_binary(cache_dir)


@pytest.fixture(scope="session")
def pg_service(tmp_path_factory: pytest.TempPathFactory, env_settings: Settings) -> Iterator[PostgresSettings]:
    """A real PostgreSQL, picked by :mod:`lakehouse.services.provide`: the PG* variables, a container, or an
    embedded server in a temporary data dir."""
    try:
        with provide.postgres(env_settings, data_dir=tmp_path_factory.mktemp("pg") / "data", docker=True) as pg:
            yield pg
    except ServiceUnavailableError as exc:
        unavailable(f"PostgreSQL is not available: {exc}")


@pytest.fixture
def make_bucket(s3_root: S3Settings) -> Iterator[Callable[[str], str]]:
    """A function creating a uniquely named bucket ``<prefix>-<hex>`` with the root key (bucket creation is
    bootstrap; only ``lh-test-*`` ones are the scoped key's); every one is emptied and removed afterwards."""
    client = s3_client(s3_root)
    made: list[str] = []

    def make(prefix: str) -> str:
        bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        made.append(bucket)
        return bucket

    yield make
    for bucket in made:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_bucket(s3_service: S3Settings, make_bucket: Callable[[str], str], spark: Any) -> str:
    """A fresh ``lh-test-*`` bucket the scoped key of ``s3_service`` may use; Spark is pointed at the endpoint
    with that key."""
    from lakehouse.adapters.spark import configure_s3a

    configure_s3a(spark, s3_service)
    return make_bucket("lh-test")


@pytest.fixture
def pg_schema(pg_service: PostgresSettings) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped with everything in it afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    conn = psycopg2.connect(**pg_service.connect_kwargs())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    finally:
        conn.close()


@pytest.fixture
def pg_database(pg_service: PostgresSettings) -> Iterator[PostgresSettings]:
    """A fresh, uniquely named database (for code that uses fixed schema names: bronze, silver, core…)."""
    with fresh_database(pg_service) as database:
        yield database


@pytest.fixture
def local_lake(tmp_path: Path) -> str:
    return (tmp_path / "lake").as_uri()
