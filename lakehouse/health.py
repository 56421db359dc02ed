"""Environment probes behind ``runner.py check``: one line each, OK, WARN or FAIL with the fix to try."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import psycopg2

from lakehouse.adapters import lake
from lakehouse.adapters.spark import build_spark, check_java
from lakehouse.adapters.warehouse import connect
from lakehouse.errors import LakehouseError, ServiceUnavailableError
from lakehouse.maintenance import lake_storage
from lakehouse.services import provide
from lakehouse.services.postgres import wait_for_postgres
from lakehouse.settings import PostgresSettings, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


WAREHOUSE_SCHEMAS = ("bronze", "silver", "quarantine", "ops", "core", "analytics")


def lost_service(settings: Settings, pg: PostgresSettings) -> ServiceUnavailableError | None:
    """After a failure: the service that stopped answering (PostgreSQL, then the object store), or None."""
    try:
        wait_for_postgres(pg, timeout_s=3)
        if settings.lake_kind == "s3" and settings.s3 is not None:
            lake.ensure_layers(settings)
    except ServiceUnavailableError as exc:
        return ServiceUnavailableError(
            exc.service, exc.endpoint, f"it stopped answering during the run ({exc.detail})", hint=exc.hint
        )
    return None


def check_all(settings: Settings) -> list[Probe]:
    """Every probe, in order: Java, then (if Java works) Spark, lake, PostgreSQL, schemas, dbt and Soda."""
    java = java_check()
    if not java.ok:
        return [java]
    with provide.warehouse(settings) as roles:
        pg = roles.loader
        probes = [
            postgres_check(pg),
            schemas_check(pg, WAREHOUSE_SCHEMAS),
            dbt_check(roles.transform),
            soda_check(roles.loader),
        ]
        spark = build_spark(settings)
        try:
            probes[:0] = [spark_check(spark, settings), lake_check(spark, settings), *storage_checks(spark, settings)]
        finally:
            spark.stop()
    return [java, *probes]


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0
    warning: bool = False  # reported, but does not fail `runner.py check`

    def line(self) -> str:
        status = "FAIL" if not self.ok else "WARN" if self.warning else "OK  "
        text = f"{status} {self.name:<22} {self.detail}"
        return text if not self.fix or (self.ok and not self.warning) else f"{text}\n     fix: {self.fix}"


def run_check(name: str, probe: Callable[[], str], *, fix: str) -> Probe:
    """Run ``probe``; its return value is the OK detail, a :class:`LakehouseError` or OSError a failure."""
    started = time.monotonic()
    try:
        detail = probe()
    except (LakehouseError, OSError, psycopg2.Error) as exc:
        return Probe(name, False, str(exc).splitlines()[0], fix, time.monotonic() - started)
    return Probe(name, True, detail, "", time.monotonic() - started)


def java_check() -> Probe:
    return run_check("java", lambda: f"Java {check_java()}", fix="install a Java 17+ runtime")


def lake_check(spark: SparkSession, settings: Settings) -> Probe:
    """Write, read back and delete a one-row Delta table in the bronze layer."""

    def probe() -> str:
        lake.ensure_layers(settings)
        uri = lake.table_uri(settings, "bronze", f"_lakehouse_probe_{uuid.uuid4().hex[:8]}")
        try:
            lake.write_table(spark.range(1), uri, mode="replace")
            rows = lake.read_table(spark, uri).count()
        except Exception as exc:
            message = str(exc).strip().splitlines()[0][:300]
            raise LakehouseError(f"cannot write a Delta table at {uri}: {message}") from None
        finally:
            with contextlib.suppress(Exception):
                lake.delete_path(settings, uri)
        if rows != 1:
            raise LakehouseError(f"probe table at {uri} read back {rows} rows, expected 1")
        tables = lake.list_tables(spark, settings.layer_uri("bronze"))
        return f"{settings.lake_uri} writable (Delta); bronze tables: {', '.join(tables) or 'none yet'}"

    fix = (
        "start MinIO (docker compose up -d minio) and check AWS_ENDPOINT_URL / credentials"
        if settings.lake_kind == "s3"
        else f"make {settings.lake_uri} writable or set LAKEHOUSE_LAKE_URI"
    )
    return run_check("lake", probe, fix=fix)


def storage_checks(spark: SparkSession, settings: Settings) -> list[Probe]:
    """Per lake layer: current-version bytes, bytes on disk and bytes VACUUM reclaims past the retention window."""
    try:
        layers = lake_storage(spark, settings)
    except Exception as exc:  # an unreachable lake is lake_check's failure; this line only says it has no figures
        return [Probe("storage", False, f"cannot measure the lake: {str(exc).strip()[:200]}", "see the lake line")]
    return [Probe(f"storage {b.layer}", True, b.render().split(": ", 1)[1]) for b in layers]


def postgres_check(pg: PostgresSettings) -> Probe:
    def probe() -> str:
        conn = connect(pg)
        try:
            with conn.cursor() as cur:
                cur.execute("show server_version")
                row = cur.fetchone()
        finally:
            conn.close()
        version = row[0] if row else "?"
        return f"{pg.endpoint} (PostgreSQL {version}{', embedded' if pg.embedded else ''})"

    return run_check(
        "postgres", probe, fix="start PostgreSQL (docker compose up -d postgres) and check the PG* variables"
    )


def existing_schemas(pg: PostgresSettings, names: tuple[str, ...]) -> set[str]:
    conn = connect(pg)
    try:
        with conn.cursor() as cur:
            cur.execute("select nspname from pg_namespace where nspname = any(%s)", (list(names),))
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def spark_check(spark: SparkSession, settings: Settings) -> Probe:
    def probe() -> str:
        rows = spark.range(3).selectExpr("sum(id)").first()
        if rows is None or rows[0] != 3:
            raise LakehouseError("a three-row job returned the wrong answer")
        return f"Spark {spark.version} ({settings.spark_master}), Delta enabled"

    return run_check("spark", probe, fix="see the Spark error above; check JAVA_HOME and LAKEHOUSE_SPARK_MASTER")


def schemas_check(pg: PostgresSettings, names: tuple[str, ...]) -> Probe:
    """OK when every schema exists; a warning (not a failure) before the first run has created them."""
    result = run_check("warehouse schemas", lambda: ", ".join(sorted(existing_schemas(pg, names))), fix="")
    if not result.ok:
        return result
    present = set(result.detail.split(", ")) - {""}
    missing = [n for n in names if n not in present]
    if not missing:
        return replace(result, detail=f"schemas present: {', '.join(names)}")
    return replace(
        result,
        detail=f"not created yet: {', '.join(missing)} (present: {', '.join(sorted(present)) or 'none'})",
        fix="python runner.py run creates them",
        warning=True,
    )


def dbt_check(pg: PostgresSettings) -> Probe:
    from lakehouse.gold import dbt_debug

    return run_check("dbt debug", lambda: dbt_debug(pg), fix="see dbt_project/logs/dbt.log")


def soda_check(pg: PostgresSettings) -> Probe:
    from lakehouse.quality import validate_configuration

    return run_check("soda configuration", lambda: validate_configuration(pg), fix="see soda/README.md")
