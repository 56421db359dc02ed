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
