"""Table contracts: each table's columns, types, key and partitioning, declared once.

A contract is consumed by the Spark transforms (schema), the PostgreSQL DDL (:mod:`lakehouse.warehouse`), the
COPY encoder (:mod:`lakehouse.pgcopy`), the dbt sources and the Soda checks. Types are written once, in a small
logical vocabulary, and mapped to Spark and PostgreSQL here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_SIMPLE_TYPES = {
    # logical: (Spark SQL type, PostgreSQL type)
    "string": ("string", "text"),
    "int": ("int", "integer"),
    "bigint": ("bigint", "bigint"),
    "double": ("double", "double precision"),
    "boolean": ("boolean", "boolean"),
    "date": ("date", "date"),
    "timestamp": ("timestamp", "timestamptz"),
    "array<string>": ("array<string>", "text[]"),
}


def _check_type(logical: str) -> None:
    if logical not in _SIMPLE_TYPES and not _DECIMAL.match(logical):
        raise ValueError(f"unknown column type {logical!r}; expected one of {', '.join(_SIMPLE_TYPES)} or decimal(p,s)")


@dataclass(frozen=True)
class Column:
    """One column. ``type`` is logical (``string``, ``int``, ``bigint``, ``decimal(12,2)``, ``date``, …)."""

    name: str
    type: str = "string"
    required: bool = False
    accepted_values: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        _check_type(self.type)

    @property
    def spark_type(self) -> str:
        match = _DECIMAL.match(self.type)
        return f"decimal({match[1]},{match[2]})" if match else _SIMPLE_TYPES[self.type][0]

    @property
    def postgres_type(self) -> str:
        match = _DECIMAL.match(self.type)
        return f"numeric({match[1]},{match[2]})" if match else _SIMPLE_TYPES[self.type][1]


@dataclass(frozen=True)
class Table:
    """A table contract: ordered columns, primary key and lake partition columns."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name!r} declares a column twice")
        unknown = [n for n in (*self.key, *self.partition_by) if n not in by_name]
        if unknown:
            raise ValueError(f"table {self.name!r}: key/partition columns {unknown} are not declared")
        object.__setattr__(self, "_by_name", by_name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def spark_schema(self) -> str:
        """A DDL schema string for ``spark.createDataFrame`` / ``spark.read.schema``."""
        return ", ".join(f"`{c.name}` {c.spark_type}" for c in self.columns)


# --------------------------------------------------------------------------------------------------------------
# The project's tables. Landing CSV columns, in the order the contracts list them (header order may differ).
# --------------------------------------------------------------------------------------------------------------

INDUSTRIES = (
    "Automotive",
    "Consumer Goods",
    "Education",
    "Entertainment",
    "Financial Services",
    "Food & Beverage",
    "Healthcare",
    "Retail",
    "Technology",
    "Travel",
)
CAMPAIGN_TYPES = ("Search", "Display", "Video", "Social", "Shopping")
STATUSES = ("Active", "Paused", "Completed", "Draft")
OBJECTIVES = ("Awareness", "Consideration", "Conversion", "Retention", "Traffic", "Leads", "Sales")

SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "advertisers": ("advertiser_id", "advertiser_name", "industry", "country", "account_manager"),
    "campaigns": (
        "campaign_id",
        "advertiser_id",
        "campaign_name",
        "campaign_type",
        "status",
        "objective",
        "start_date",
        "end_date",
        "budget_daily",
        "budget_total",
    ),
    "performance": (
        "performance_id",
        "campaign_id",
        "date",
        "impressions",
        "clicks",
        "conversions",
        "cost",
        "revenue",
    ),
}
TABLES = tuple(SOURCE_COLUMNS)  # parents first: advertisers -> campaigns -> performance

BRONZE_METADATA = (
    Column("_corrupt_record", "string", description="raw text of a line that did not parse into the header"),
    Column("_ingestion_timestamp", "timestamp", required=True, description="UTC, one value per run"),
    Column("_batch_id", "string", required=True, description="one id per run, shared by all tables"),
    Column("_source_file", "string", required=True, description="landing file name"),
    Column("ingest_date", "date", required=True, description="partition column (UTC date of the run)"),
)
LINEAGE = (
    Column("_batch_id", "string", required=True),
    Column("_source_file", "string", required=True),
    Column("_ingestion_timestamp", "timestamp", required=True),
    Column("_silver_processed_at", "timestamp", required=True),
)


def bronze_table(table: str) -> Table:
    """``bronze/<table>`` and ``bronze.raw_<table>``: every source column as text, verbatim, plus metadata."""
    return Table(
        name=table,
        columns=(*(Column(c) for c in SOURCE_COLUMNS[table]), *BRONZE_METADATA),
        partition_by=("ingest_date",),
        description=f"raw {table} lines, all strings",
    )


SILVER: dict[str, Table] = {
    "advertisers": Table(
        name="advertisers",
        columns=(
            Column("advertiser_id", "int", required=True),
            Column("advertiser_name", required=True),
            Column("industry", required=True, description="trimmed, title case"),
            Column("country", required=True, description="ISO 3166-1 alpha-2, upper case"),
            Column("account_manager"),
            *LINEAGE,
        ),
        key=("advertiser_id",),
        partition_by=("industry",),
    ),
    "campaigns": Table(
        name="campaigns",
        columns=(
            Column("campaign_id", "int", required=True),
            Column("advertiser_id", "int", required=True),
            Column("campaign_name", required=True),
            Column("campaign_type", required=True, accepted_values=CAMPAIGN_TYPES),
            Column("status", required=True, accepted_values=STATUSES),
            Column("objective", accepted_values=OBJECTIVES),
            Column("start_date", "date", required=True),
            Column("end_date", "date"),
            Column("budget_daily", "decimal(12,2)"),
            Column("budget_total", "decimal(14,2)"),
            *LINEAGE,
        ),
        key=("campaign_id",),
        partition_by=("status",),
    ),
    "performance": Table(
        name="performance",
        columns=(
            Column("performance_id", "bigint", required=True),
            Column("campaign_id", "int", required=True),
            Column("date", "date", required=True),
            Column("impressions", "bigint", required=True),
            Column("clicks", "bigint", required=True),
            Column("conversions", "bigint", required=True),
            Column("cost", "decimal(12,2)", required=True),
            Column("revenue", "decimal(12,2)", required=True),
            *LINEAGE,
        ),
        key=("performance_id",),
        partition_by=("date",),
    ),
}


def quarantine_table(table: str) -> Table:
    """``quarantine/<table>`` and ``quarantine.<table>``: the raw bronze text, every rule broken, lineage."""
    return Table(
        name=table,
        columns=(
            *(Column(c) for c in SOURCE_COLUMNS[table]),
            BRONZE_METADATA[0],  # _corrupt_record
            Column("_reasons", "array<string>", required=True, description="every rule the row breaks"),
            *LINEAGE,
        ),
        description=f"rejected {table} rows with the rules they break",
    )
