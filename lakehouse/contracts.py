"""Table contracts: each table's columns, types, key and partitioning, declared once.

A contract is consumed by the Spark transforms (schema), the PostgreSQL DDL (:mod:`lakehouse.adapters.warehouse`), the
COPY encoder (:mod:`lakehouse.adapters.pgcopy`), the dbt sources and the Soda checks. Types are written once, in a small
logical vocabulary, and mapped to Spark and PostgreSQL here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

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
    """One column. ``type`` is logical (``string``, ``int``, ``bigint``, ``decimal(12,2)``, ``date``, …).

    The value domain is declared here and enforced by silver (:mod:`lakehouse.rules` names the rules):
    ``required`` (``missing_<name>``), ``accepted_values`` matched case-insensitively to their canonical spelling,
    after ``aliases`` (other spellings of an accepted value, e.g. ``UK`` for ``GB``) (``invalid_<name>``),
    ``non_negative`` (``negative_<name>``), and ``title_case`` (a normalization, never a rejection).
    """

    name: str
    type: str = "string"
    required: bool = False
    accepted_values: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # (other spelling, accepted value)
    non_negative: bool = False
    title_case: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        _check_type(self.type)
        unknown = sorted({value for _, value in self.aliases} - set(self.accepted_values))
        if unknown:
            raise ValueError(f"column {self.name!r}: aliases point at values that are not accepted: {unknown}")
        if self.non_negative and not self.is_numeric:
            raise ValueError(f"column {self.name!r}: only numeric columns can be non_negative")

    @property
    def decimal(self) -> tuple[int, int] | None:
        """``(precision, scale)`` of a ``decimal(p,s)`` column, else None."""
        match = _DECIMAL.match(self.type)
        return (int(match[1]), int(match[2])) if match else None

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "bigint", "double") or self.decimal is not None

    @property
    def spark_type(self) -> str:
        decimal = self.decimal
        return f"decimal({decimal[0]},{decimal[1]})" if decimal else _SIMPLE_TYPES[self.type][0]

    @property
    def postgres_type(self) -> str:
        decimal = self.decimal
        return f"numeric({decimal[0]},{decimal[1]})" if decimal else _SIMPLE_TYPES[self.type][1]


@dataclass(frozen=True)
class Table:
    """A table contract: ordered columns, primary key, lake partition columns and cluster columns.

    ``cluster_by`` (a date column first) lays the lake table out in one file per month of that column, rows
    sorted by the cluster columns: date-range queries skip files by their statistics (no folder per value).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name!r} declares a column twice")
        unknown = [n for n in (*self.key, *self.partition_by, *self.cluster_by) if n not in by_name]
        if unknown:
            raise ValueError(f"table {self.name!r}: key/partition/cluster columns {unknown} are not declared")
        object.__setattr__(self, "_by_name", by_name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def spark_schema(self) -> str:
        """A DDL schema string for ``spark.createDataFrame`` / ``spark.read.schema``."""
        return ", ".join(f"`{c.name}` {c.spark_type}" for c in self.columns)


LAYERS = ("bronze", "silver", "gold")  # the medallion layers, in run order

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
# ISO 3166-1 alpha-2 (officially assigned codes).
COUNTRIES = tuple(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
    BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
    FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
    IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a block of codes reads better than a 249-line list
)
COUNTRY_ALIASES = (("UK", "GB"),)


BRONZE_METADATA = (
    Column("_corrupt_record", "string", description="raw text of a line that did not parse into the header"),
    Column("_ingestion_timestamp", "timestamp", required=True, description="UTC, one value per run"),
    Column("_batch_id", "string", required=True, description="one id per run, shared by all tables"),
    Column("_source_file", "string", required=True, description="landing file name"),
    Column("ingest_date", "date", required=True, description="partition column (UTC date of the run)"),
)
# A null raw text as incremental silver matches quarantine rows by their raw key texts (PostgreSQL text cannot
# hold NUL; a raw "\x01" types to null as a missing value does, so the two may share it).
NO_TEXT = "\x01"
LINEAGE = (
    Column("_batch_id", "string", required=True),
    Column("_source_file", "string", required=True),
    Column("_ingestion_timestamp", "timestamp", required=True),
    Column("_silver_processed_at", "timestamp", required=True),
)


def bronze_table(table: str) -> Table:
    """``bronze/<table>``: every source column as text, verbatim, plus metadata."""
    return Table(
        name=table,
        columns=(*(Column(c) for c in SOURCE_COLUMNS[table]), *BRONZE_METADATA),
        partition_by=("ingest_date",),
        description=f"raw {table} lines, all strings",
    )


def raw_table(table: str) -> Table:
    """``bronze.raw_<table>``, the PostgreSQL mirror of ``bronze/<table>``: the same columns."""
    return replace(bronze_table(table), name=f"raw_{table}")


SILVER: dict[str, Table] = {
    "advertisers": Table(
        name="advertisers",
        columns=(
            Column("advertiser_id", "int", required=True),
            Column("advertiser_name", required=True),
            Column("industry", required=True, title_case=True, description="trimmed, title case"),
            Column(
                "country",
                required=True,
                accepted_values=COUNTRIES,
                aliases=COUNTRY_ALIASES,
                description="ISO 3166-1 alpha-2, upper case",
            ),
            Column("account_manager"),
            *LINEAGE,
        ),
        key=("advertiser_id",),
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
            Column("budget_daily", "decimal(12,2)", non_negative=True),
            Column("budget_total", "decimal(14,2)", non_negative=True),
            *LINEAGE,
        ),
        key=("campaign_id",),
    ),
    "performance": Table(
        name="performance",
        columns=(
            Column("performance_id", "bigint", required=True),
            Column("campaign_id", "int", required=True),
            Column("date", "date", required=True),
            Column("impressions", "bigint", required=True, non_negative=True),
            Column("clicks", "bigint", required=True, non_negative=True),
            Column("conversions", "bigint", required=True, non_negative=True),
            Column("cost", "decimal(12,2)", required=True, non_negative=True),
            Column("revenue", "decimal(12,2)", required=True, non_negative=True),
            *LINEAGE,
        ),
        key=("performance_id",),
        cluster_by=("date", "campaign_id"),
    ),
}


TABLES = tuple(SILVER)  # parents first: advertisers -> campaigns -> performance
# Landing CSV columns per table, in contract order (a file's header may order them differently).
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in table.columns if not c.name.startswith("_")) for name, table in SILVER.items()
}


def source_columns(table: str) -> tuple[Column, ...]:
    """The silver contract's business columns (everything but lineage), in landing order."""
    return tuple(c for c in SILVER[table].columns if not c.name.startswith("_"))


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


# Warehouse roles: who may do what in PostgreSQL. The pipeline connects as one of these for each job and never as
# a superuser; `runner.py db init` (automatic on the embedded default) creates them. A role owns the schemas it
# writes (creating and replacing their tables) and may only read the schemas it `reads`.
OPS_SCHEMA = "ops"
STAGING_SCHEMA = "_lakehouse_staging"  # the loader's private staging tables
GOLD_SCHEMAS = ("staging", "intermediate", "core", "analytics", "snapshots")  # dbt_project.yml's folders
PUBLISHED_SCHEMAS = ("core", "analytics")  # what BI and psql users read


@dataclass(frozen=True)
class Role:
    """A PostgreSQL login role for one job: the schemas it owns (writes) and the ones it may read."""

    name: str
    job: str
    owns: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


LOADER = Role(
    "lakehouse_loader",
    "loads bronze, silver and quarantine; keeps the run bookkeeping",
    owns=("bronze", "silver", "quarantine", OPS_SCHEMA, STAGING_SCHEMA),
)
TRANSFORM = Role("lakehouse_transform", "dbt: reads silver, builds gold", owns=GOLD_SCHEMAS, reads=("silver",))
READER = Role("lakehouse_reader", "BI and psql users: reads the published gold schemas", reads=PUBLISHED_SCHEMAS)
ROLES = (LOADER, TRANSFORM, READER)
