"""Building the Silver layer: classify every completed bronze row, write silver and quarantine to the lake
and to PostgreSQL (all six tables published in one transaction), and reconcile the counts."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from psycopg2 import sql
from pyspark.sql import DataFrame, SparkSession

from lakehouse import bronze, lake
from lakehouse.contracts import SILVER, TABLES, quarantine_table
from lakehouse.errors import LakehouseError
from lakehouse.ingest_log import completed_batches
from lakehouse.loader import TableLoad, load_many
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver import (
    DUPLICATE,
    SUPERSEDED,
    classify,
    outcome_counts,
    quarantine_rows,
    rule_counts,
    silver_rows,
)
from lakehouse.warehouse import connect

log = logging.getLogger(__name__)
RECONCILIATION = ("ops", "reconciliation")


class ReconciliationError(LakehouseError):
    """Rows were lost or invented between bronze and silver; the run must fail."""


@dataclass
class SilverTableReport:
    table: str
    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined: int = 0
    duplicates: int = 0
    superseded: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    parquet_bytes: int = 0
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        return self.bronze_rows == self.silver_rows + self.quarantined + self.duplicates + self.superseded


@dataclass
class SilverReport:
    run_id: str
    tables: dict[str, SilverTableReport]
    warehouse_seconds: float = 0.0


def build_silver(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, *, run_id: str, processed_at: dt.datetime
) -> SilverReport:
    """Rebuild silver and quarantine from every completed bronze batch; raise if counts do not reconcile."""
    batches = completed_batches(spark, settings)
    report = SilverReport(run_id, {t: SilverTableReport(t) for t in TABLES})
    loads: list[TableLoad] = []
    cached: list[DataFrame] = []
    parent: DataFrame | None = None
    for table in TABLES:  # parents first: foreign keys are checked against the final silver parent
        started = time.monotonic()
        source = bronze.read_bronze(spark, settings, table, batches)
        classified = classify(source, table, parent).cache()
        cached.append(classified)
        entry = report.tables[table]
        entry.bronze_rows = source.count()
        counts = outcome_counts(classified)
        entry.duplicates, entry.superseded = counts[DUPLICATE], counts[SUPERSEDED]
        entry.by_rule = rule_counts(classified)
        good = silver_rows(classified, table, processed_at=processed_at)
        bad = quarantine_rows(classified, table, processed_at=processed_at)
        written = lake.write_table(
            good, lake.table_uri(settings, "silver", table), mode="replace", partition_by=SILVER[table].partition_by
        )
        lake.write_table(bad, lake.table_uri(settings, "quarantine", table), mode="replace")
        entry.parquet_bytes = written.bytes
        loads += [TableLoad(good, SILVER[table], "silver"), TableLoad(bad, quarantine_table(table), "quarantine")]
        parent = good
        entry.seconds = time.monotonic() - started
        log.info("silver/%s: %d bronze rows -> %s", table, entry.bronze_rows, counts)
    started = time.monotonic()
    for result in load_many(loads, pg, mode="replace"):
        schema, table = result.table.split(".")
        if schema == "silver":
            report.tables[table].silver_rows = result.rows
        else:
            report.tables[table].quarantined = result.rows
    report.warehouse_seconds = time.monotonic() - started
    for frame in cached:
        frame.unpersist()
    record_reconciliation(pg, report)
    broken = [t for t in report.tables.values() if not t.reconciled]
    if broken:
        details = "; ".join(
            f"{t.table}: bronze {t.bronze_rows} != silver {t.silver_rows} + quarantined {t.quarantined} + "
            f"duplicates {t.duplicates} + superseded {t.superseded}"
            for t in broken
        )
        raise ReconciliationError(f"silver does not reconcile with bronze ({details})")
    return report


def record_reconciliation(pg: PostgresSettings, report: SilverReport) -> None:
    """One row per table in ``ops.reconciliation`` (run id, each count, whether it balanced)."""
    target = sql.Identifier(*RECONCILIATION)
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute("create schema if not exists ops")
        cur.execute(
            sql.SQL(
                "create table if not exists {} (run_id text not null, table_name text not null,"
                " bronze_rows bigint not null, silver_rows bigint not null, quarantined bigint not null,"
                " duplicates bigint not null, superseded bigint not null, reconciled boolean not null,"
                " checked_at timestamptz not null default now(), primary key (run_id, table_name))"
            ).format(target)
        )
        for t in report.tables.values():
            cur.execute(
                sql.SQL("insert into {} values (%s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing").format(target),
                (
                    report.run_id,
                    t.table,
                    t.bronze_rows,
                    t.silver_rows,
                    t.quarantined,
                    t.duplicates,
                    t.superseded,
                    t.reconciled,
                ),
            )
