"""Campaign-analytics medallion lakehouse: Bronze and Silver on Delta Lake, Gold in PostgreSQL via dbt.

The public API, for code that imports the package (an orchestrator task, a notebook, a test):

- run the pipeline or some layers: :func:`load_settings` then :func:`run` (returns a :class:`RunOutcome`);
- the contracts and rules: :data:`SILVER`, :data:`TABLES`, :func:`bronze_table`, :func:`quarantine_table`,
  :data:`RULES`, :func:`rules_for`;
- the pure silver transforms: :func:`classify` (bronze rows -> the same rows with ``_typed``, ``_reasons`` and
  ``_outcome``), :func:`silver_rows`, :func:`quarantine_rows`;
- the named errors.

Importing the package has no side effects and stays light: nothing reads the environment, starts Spark or touches
the network, and the names that need pyspark or dbt are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lakehouse._version import __version__
from lakehouse.contracts import SILVER, TABLES, Column, Table, bronze_table, quarantine_table
from lakehouse.errors import (
    ConfigurationError,
    JarResolutionError,
    JavaNotFoundError,
    LakehouseError,
    ServiceUnavailableError,
)
from lakehouse.rules import RULES, Rule, rules_for
from lakehouse.settings import Settings, load_settings

# Heavy names (pyspark, dbt, Soda behind them), loaded on first access.
_LAZY = {
    "run": "lakehouse.pipeline",
    "RunOutcome": "lakehouse.pipeline",
    "classify": "lakehouse.silver.transforms",
    "silver_rows": "lakehouse.silver.transforms",
    "quarantine_rows": "lakehouse.silver.transforms",
}

if TYPE_CHECKING:
    from lakehouse.pipeline import RunOutcome, run
    from lakehouse.silver.transforms import classify, quarantine_rows, silver_rows

__all__ = [
    "RULES",
    "SILVER",
    "TABLES",
    "Column",
    "ConfigurationError",
    "JarResolutionError",
    "JavaNotFoundError",
    "LakehouseError",
    "Rule",
    "RunOutcome",
    "ServiceUnavailableError",
    "Settings",
    "Table",
    "__version__",
    "bronze_table",
    "classify",
    "load_settings",
    "quarantine_rows",
    "quarantine_table",
    "rules_for",
    "run",
    "silver_rows",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lakehouse' has no attribute {name!r}")
