"""Silver's normalization and row rules as Spark column expressions, built from the declarations in
:mod:`lakehouse.contracts` and :mod:`lakehouse.rules`. Pure: expressions only, no DataFrame, no action.

Normalization before validation: trim; empty becomes null; an accepted-values column matches its canonical
spelling case-insensitively, after its aliases (``UK`` -> ``GB``); a ``title_case`` column is title-cased;
integers are ``-?[0-9]+``, decimals ``-?[0-9]+(.[0-9]{1,scale})?`` within precision, dates ISO ``yyyy-MM-dd`` and
real. An unparseable value is a rejection (``invalid_<column>``), never a silent null.
"""

from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import functions as F

from lakehouse.contracts import Column, source_columns
from lakehouse.rules import Rule, rules_for

_INTEGER = r"^-?[0-9]+$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def cleaned(name: str) -> SparkColumn:
    """Trimmed text, with empty strings as null."""
    trimmed = F.trim(F.col(f"`{name}`"))
    return F.when(trimmed != "", trimmed)


def typed(column: Column) -> SparkColumn:
    """The normalized, typed value of a raw text column; null when missing *or* unparseable."""
    text = cleaned(column.name)
    if column.accepted_values:
        spellings = {value.lower(): value for value in column.accepted_values}
        spellings |= {alias.lower(): value for alias, value in column.aliases}
        lookup = F.create_map(*(F.lit(v) for pair in sorted(spellings.items()) for v in pair))
        return lookup[F.lower(text)]
    if column.title_case:
        return F.initcap(text)
    if column.type in ("int", "bigint"):
        return F.when(text.rlike(_INTEGER), text.try_cast(column.spark_type))
    if column.decimal:
        pattern = rf"^-?[0-9]+(\.[0-9]{{1,{column.decimal[1]}}})?$"
        return F.when(text.rlike(pattern), text.try_cast(column.spark_type))
    if column.type == "date":
        return F.when(text.rlike(_DATE), F.try_to_timestamp(text, F.lit("yyyy-MM-dd")).cast("date"))
    return text


def typed_struct(table: str) -> SparkColumn:
    """All business columns of ``table``, normalized and typed, as one struct column ``_typed`` is built from."""
    return F.struct(*(typed(c).cast(c.spark_type).alias(c.name) for c in source_columns(table)))


def _broken(rule: Rule) -> SparkColumn:
    """True where a row breaks a row-level ``rule`` (requires the raw columns and ``_typed``)."""
    value = F.col(f"_typed.`{rule.columns[0]}`") if rule.columns else F.lit(None)
    if rule.kind == "missing":
        return cleaned(rule.columns[0]).isNull()
    if rule.kind == "invalid":
        return cleaned(rule.columns[0]).isNotNull() & value.isNull()
    if rule.kind == "negative":
        return value < 0
    if rule.kind == "comparison":
        return value > F.col(f"_typed.`{rule.columns[1]}`")
    raise ValueError(f"rule {rule.name} ({rule.kind}) is not judged row by row")


def reasons(table: str) -> SparkColumn:
    """Every row-level rule the raw row breaks (an array, empty for a valid row). A malformed line gets
    ``malformed_line`` alone; foreign keys and duplicates are judged later, against other rows.

    Requires the raw source columns, ``_corrupt_record`` and ``_typed`` (from :func:`typed_struct`).
    """
    row_rules = rules_for(table, "missing", "invalid", "negative", "comparison")
    checks = F.array_compact(F.array(*(F.when(_broken(rule), F.lit(rule.name)) for rule in row_rules)))
    return F.when(F.col("_corrupt_record").isNotNull(), F.array(F.lit("malformed_line"))).otherwise(checks)
