"""Building the Silver layer: classify every completed bronze row, write silver and quarantine to the lake
and to PostgreSQL (all six tables published in one transaction), and reconcile the counts."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from lakehouse.adapters import lake
from lakehouse.adapters.loader import TableLoad, load_many
from lakehouse.bookkeeping import Reconciliation, record_reconciliation
from lakehouse.bronze.ingest_log import completed_batches
from lakehouse.bronze.layer import read_bronze
from lakehouse.contracts import SILVER, TABLES, quarantine_table
from lakehouse.errors import LakehouseError
from lakehouse.report import SummaryRow
from lakehouse.settings import PostgresSettings, Settings
from lakehouse.silver.transforms import DUPLICATE, OUTCOMES, SUPERSEDED, classify, quarantine_rows, silver_rows, tally

log = logging.getLogger(__name__)


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

    def reconciliation(self) -> Reconciliation:
        return Reconciliation(
            self.table, self.bronze_rows, self.silver_rows, self.quarantined, self.duplicates, self.superseded
        )


@dataclass
class SilverReport:
    run_id: str
    tables: dict[str, SilverTableReport]
    warehouse_seconds: float = 0.0

    def summary_rows(self) -> list[SummaryRow]:
        """One summary row per table, then the PostgreSQL publish."""
        rows = [
            SummaryRow(
                "silver",
                t.table,
                rows_in=t.bronze_rows,
                rows_out=t.silver_rows,
                quarantined=t.quarantined,
                duplicates=t.duplicates,
                superseded=t.superseded,
                parquet_bytes=t.parquet_bytes,
                seconds=t.seconds,
            )
            for t in self.tables.values()
        ]
        return [*rows, SummaryRow("silver", "-> PostgreSQL", seconds=self.warehouse_seconds)]

    def check_reconciled(self) -> None:
        """Raise :class:`ReconciliationError` naming every table whose counts do not balance."""
        broken = [t for t in self.tables.values() if not t.reconciled]
        if broken:
            details = "; ".join(
                f"{t.table}: bronze {t.bronze_rows} != silver {t.silver_rows} + quarantined {t.quarantined} + "
                f"duplicates {t.duplicates} + superseded {t.superseded}"
                for t in broken
            )
            raise ReconciliationError(f"silver does not reconcile with bronze ({details})")


def build_silver(
    spark: SparkSession, settings: Settings, pg: PostgresSettings, *, run_id: str, processed_at: dt.datetime
) -> SilverReport:
    """Rebuild silver and quarantine from every completed bronze batch, and record the reconciliation.

    Raises:
        ReconciliationError: a table's counts do not balance (recorded in ``ops.reconciliation`` first).
    """
    batches = completed_batches(spark, settings)
    report = SilverReport(run_id, {t: SilverTableReport(t) for t in TABLES})
    loads: list[TableLoad] = []
    cached: list[DataFrame] = []
    parent: DataFrame | None = None
    for index, table in enumerate(TABLES, start=1):  # parents first: foreign keys are checked against the parent
        log.info("silver: table %d/%d, %s", index, len(TABLES), table, extra={"progress": True})
        started = time.monotonic()
        source = read_bronze(spark, settings, table, batches)
        classified = classify(source, table, parent).cache()
        cached.append(classified)
        entry = report.tables[table]
        entry.bronze_rows = source.count()
        counts, entry.by_rule = _counts(classified)
        entry.duplicates, entry.superseded = counts[DUPLICATE], counts[SUPERSEDED]
        good = silver_rows(classified, table, processed_at=processed_at)
        bad = quarantine_rows(classified, table, processed_at=processed_at)
        contract = SILVER[table]
        written = lake.write_table(
            good,
            lake.table_uri(settings, "silver", table),
            mode="replace",
            partition_by=contract.partition_by,
            cluster_by=contract.cluster_by,
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
    record_reconciliation(pg, report.run_id, [t.reconciliation() for t in report.tables.values()])
    report.check_reconciled()
    return report


def _counts(classified: DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per outcome and quarantined rows per rule, from one Spark job."""
    outcomes, by_rule = dict.fromkeys(OUTCOMES, 0), dict[str, int]()
    for row in tally(classified).collect():
        outcomes[row["_outcome"]] += int(row["rows"])
        if row["_rule"] is not None:
            by_rule[row["_rule"]] = by_rule.get(row["_rule"], 0) + int(row["broken"])
    return outcomes, by_rule
