"""Campaign-analytics medallion lakehouse: Bronze and Silver on Delta Lake, Gold in PostgreSQL via dbt.

The package is importable without side effects: nothing here reads the environment, starts Spark or
touches the network. Use :func:`lakehouse.settings.load_settings` to resolve configuration and
:func:`lakehouse.spark.build_spark` to get the one SparkSession a run uses.
"""

from __future__ import annotations

from lakehouse.errors import (
    ConfigurationError,
    JarResolutionError,
    JavaNotFoundError,
    LakehouseError,
    ServiceUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "JarResolutionError",
    "JavaNotFoundError",
    "LakehouseError",
    "ServiceUnavailableError",
    "__version__",
]
