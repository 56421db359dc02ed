"""Silver's normalization and validation rules, as Spark column expressions built from the contracts.

Rule names are stable (quarantine, tests, Soda and docs use them):
``malformed_line``, ``missing_<column>``, ``invalid_<column>``, ``negative_<column>``,
``clicks_gt_impressions``, ``conversions_gt_clicks``, ``end_before_start``, ``daily_budget_gt_total``,
``orphan_advertiser_id``, ``orphan_campaign_id``, ``conflicting_duplicate``.

Normalization before validation: trim; empty becomes null; categorical values match their canonical spelling
case-insensitively; industry is title-cased; country is upper-cased ISO 3166-1 alpha-2 with ``UK`` -> ``GB``;
integers are ``-?[0-9]+``, decimals ``-?[0-9]+(.[0-9]{1,scale})?`` within precision, dates ISO ``yyyy-MM-dd``
and real. An unparseable value is a rejection (``invalid_<column>``), never a silent null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import Column as SparkColumn
from pyspark.sql import functions as F

from lakehouse.contracts import SILVER, Column

# ISO 3166-1 alpha-2 (officially assigned codes).
ISO_COUNTRIES = frozenset(
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
COUNTRY_ALIASES = {"UK": "GB"}

NON_NEGATIVE = ("impressions", "clicks", "conversions", "cost", "revenue", "budget_daily", "budget_total")
_INTEGER = r"^-?[0-9]+$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DECIMAL_TYPE = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class Comparison:
    """A rule between two typed columns of one row: broken when ``left > right`` (both present)."""

    name: str
    left: str
    right: str


COMPARISONS: dict[str, tuple[Comparison, ...]] = {
    "advertisers": (),
    "campaigns": (
        Comparison("end_before_start", "start_date", "end_date"),
        Comparison("daily_budget_gt_total", "budget_daily", "budget_total"),
    ),
    "performance": (
        Comparison("clicks_gt_impressions", "clicks", "impressions"),
        Comparison("conversions_gt_clicks", "conversions", "clicks"),
    ),
}
# Foreign keys: table -> (column, parent table, rule name). Parents are processed first.
FOREIGN_KEYS: dict[str, tuple[str, str, str] | None] = {
    "advertisers": None,
    "campaigns": ("advertiser_id", "advertisers", "orphan_advertiser_id"),
    "performance": ("campaign_id", "campaigns", "orphan_campaign_id"),
}


def can_be_invalid(column: Column) -> bool:
    """Free text can only be missing; typed, categorical and coded columns can also be unparseable."""
    return column.type != "string" or bool(column.accepted_values) or column.name == "country"


def source_columns(table: str) -> tuple[Column, ...]:
    """The silver contract's business columns (everything but lineage)."""
    return tuple(c for c in SILVER[table].columns if not c.name.startswith("_"))


def cleaned(name: str) -> SparkColumn:
    """Trimmed text, with empty strings as null."""
    trimmed = F.trim(F.col(f"`{name}`"))
    return F.when(trimmed != "", trimmed)


def typed(column: Column) -> SparkColumn:
    """The normalized, typed value of a raw text column; null when missing *or* unparseable."""
    text = cleaned(column.name)
    if column.accepted_values:
        lookup = F.create_map(*(F.lit(v) for value in column.accepted_values for v in (value.lower(), value)))
        return lookup[F.lower(text)]
    if column.name == "industry":
        return F.initcap(text)
    if column.name == "country":
        upper = F.upper(text)
        for alias, code in COUNTRY_ALIASES.items():
            upper = F.when(upper == alias, F.lit(code)).otherwise(upper)
        return F.when(upper.isin(*sorted(ISO_COUNTRIES)), upper)
    if column.type in ("int", "bigint"):
        return F.when(text.rlike(_INTEGER), text.try_cast(column.spark_type))
    decimal = _DECIMAL_TYPE.match(column.type)
    if decimal:
        pattern = rf"^-?[0-9]+(\.[0-9]{{1,{decimal[2]}}})?$"
        return F.when(text.rlike(pattern), text.try_cast(column.spark_type))
    if column.type == "date":
        return F.when(text.rlike(_DATE), F.try_to_timestamp(text, F.lit("yyyy-MM-dd")).cast("date"))
    return text


def reasons(table: str) -> SparkColumn:
    """Every row-level rule the raw row breaks (an array, empty for a valid row). Foreign keys and
    duplicates are judged later, against other rows.

    Requires the raw source columns, ``_corrupt_record`` and ``_typed`` (a struct from :func:`typed`).
    """
    checks: list[SparkColumn] = []
    for column in source_columns(table):
        raw, value = cleaned(column.name), F.col(f"_typed.`{column.name}`")
        if column.required:
            checks.append(F.when(raw.isNull(), F.lit(f"missing_{column.name}")))
        if can_be_invalid(column):
            checks.append(F.when(raw.isNotNull() & value.isNull(), F.lit(f"invalid_{column.name}")))
        if column.name in NON_NEGATIVE:
            checks.append(F.when(value < 0, F.lit(f"negative_{column.name}")))
    for rule in COMPARISONS[table]:
        checks.append(F.when(F.col(f"_typed.{rule.left}") > F.col(f"_typed.{rule.right}"), F.lit(rule.name)))
    row_rules = F.array_compact(F.array(*checks))
    return F.when(F.col("_corrupt_record").isNotNull(), F.array(F.lit("malformed_line"))).otherwise(row_rules)


def typed_struct(table: str) -> SparkColumn:
    """All business columns of ``table``, normalized and typed, as one struct column."""
    return F.struct(*(typed(c).cast(c.spark_type).alias(c.name) for c in source_columns(table)))


def all_rule_names(table: str) -> tuple[str, ...]:
    """Every rule that can quarantine a row of ``table``, for docs, Soda and tests."""
    names = ["malformed_line"]
    for column in source_columns(table):
        if column.required:
            names.append(f"missing_{column.name}")
        if can_be_invalid(column):
            names.append(f"invalid_{column.name}")
        if column.name in NON_NEGATIVE:
            names.append(f"negative_{column.name}")
    names += [rule.name for rule in COMPARISONS[table]]
    fk = FOREIGN_KEYS[table]
    if fk:
        names.append(fk[2])
    names.append("conflicting_duplicate")
    return tuple(names)
