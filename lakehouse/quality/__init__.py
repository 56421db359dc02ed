"""Quality gates: Soda scans of one layer's PostgreSQL tables (``scan``) and the check files generated from the
contracts and rules (``checks``)."""

from lakehouse.quality.scan import (
    CHECKS_DIR,
    SODA_DIR,
    CheckResult,
    LayerQuality,
    QualityError,
    check_files,
    has_failures,
    scan_layer,
    validate_configuration,
)

__all__ = [
    "CHECKS_DIR",
    "SODA_DIR",
    "CheckResult",
    "LayerQuality",
    "QualityError",
    "check_files",
    "has_failures",
    "scan_layer",
    "validate_configuration",
]
