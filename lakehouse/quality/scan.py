"""Quality gates: Soda Core 3 (SodaCL) scans of one layer's PostgreSQL tables, with per-check outcomes.

Check files live in ``soda/checks/<layer>/`` (gold: ``soda/checks/gold/<schema>/``); each is scanned against the
data source ``lakehouse_<its folder>`` of ``soda/configuration.yml``, which reads the connection from libpq's
``PG*`` variables only. :func:`scan_layer` sets them from a :class:`~lakehouse.settings.PostgresSettings` for the
scan and restores the previous environment afterwards, as the gold layer does for dbt.

Severity is SodaCL's own (``soda/README.md``): a check with only a ``warn:`` threshold can at worst warn; any other
check can fail. A check Soda could not evaluate (its query failed) counts as failed: an unverified gate is not a
passed one.

The bronze and silver check files are generated from :mod:`lakehouse.contracts` and :mod:`lakehouse.rules`
(``python -m lakehouse.quality.checks --write-checks``) and committed; a unit test keeps them equal to the generator's
output, so accepted values and rules cannot drift. Gold's files are written by hand against the dbt models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lakehouse.contracts import LAYERS
from lakehouse.errors import LakehouseError, ServiceUnavailableError
from lakehouse.settings import MASK, PostgresSettings, libpq_environment

SODA_DIR = Path(__file__).resolve().parents[2] / "soda"
CONFIGURATION = SODA_DIR / "configuration.yml"
CHECKS_DIR = SODA_DIR / "checks"
TELEMETRY_SETTINGS = SODA_DIR / "telemetry.yml"

DATA_SOURCE_PREFIX = "lakehouse_"
Outcome = Literal["pass", "warn", "fail"]


class QualityError(LakehouseError):
    """Soda could not run the scan at all (missing or invalid configuration or check files)."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``table_name`` is schema-qualified; ``value`` is the measured number (a count, a share
    in %, a gap, an age in seconds) when the check has one; ``diagnostics`` is the value against its thresholds."""

    check_name: str
    table_name: str
    outcome: Outcome
    value: float | None
    diagnostics: str = ""


@dataclass(frozen=True)
class LayerQuality:
    """Every check of one layer's scan, and Soda's error lines. ``ok`` is False when any check failed."""

    layer: str
    results: tuple[CheckResult, ...]
    seconds: float
    errors: tuple[str, ...] = ()

    def with_outcome(self, outcome: Outcome) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.outcome == outcome)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return self.with_outcome("fail")

    @property
    def warned(self) -> tuple[CheckResult, ...]:
        return self.with_outcome("warn")

    @property
    def ok(self) -> bool:
        return not self.failed


def has_failures(*layers: LayerQuality) -> bool:
    """True when a check of any of ``layers`` failed: downstream layers must not be built."""
    return any(not layer.ok for layer in layers)


def check_files(layer: str, checks_dir: Path = CHECKS_DIR) -> dict[str, tuple[Path, ...]]:
    """The SodaCL files of ``layer``, grouped by the data source each is scanned against (``lakehouse_<folder>``)."""
    if layer not in LAYERS:
        raise QualityError(f"unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")
    files: dict[str, tuple[Path, ...]] = {}
    for path in sorted((checks_dir / layer).rglob("*.yml")):
        source = DATA_SOURCE_PREFIX + path.parent.name
        files[source] = (*files.get(source, ()), path)
    if not files:
        raise QualityError(f"no SodaCL files for layer {layer!r} in {checks_dir / layer}")
    return files


def scan_layer(
    pg: PostgresSettings,
    layer: str,
    *,
    checks_dir: Path = CHECKS_DIR,
    configuration: Path = CONFIGURATION,
    tables: Collection[str] | None = None,
    schemas: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> LayerQuality:
    """Run every check of ``layer`` (``bronze``, ``silver`` or ``gold``) against ``pg``.

    Args:
        pg: the warehouse holding the layer's tables.
        checks_dir: the root of the check files, ``<checks_dir>/<layer>/...``.
        configuration: Soda's data sources (``soda/configuration.yml``).
        tables: scan only the check files of these tables (file name without ``.yml``, e.g. ``raw_campaigns``):
            a gate judges what the run touched. None scans every table of the layer.
        schemas: scan other schemas' tables with the same checks, e.g. ``{"silver": "_lakehouse_candidate_silver",
            "quarantine": "_lakehouse_candidate_quarantine"}`` to audit unpublished candidates; results keep the
            published names.
        log: receives one line per Soda error and per check that warned or failed, then a summary.

    Returns:
        Every check's outcome; :func:`has_failures` tells whether downstream layers may run.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached (the message names host and port).
        QualityError: Soda could not read its configuration or a check file.

    Scans must not overlap: Soda keeps its logs in a process-wide singleton, and ``PG*`` are process-wide too.
    """
    started = time.perf_counter()
    files = check_files(layer, checks_dir)
    if tables is not None:
        files = {
            source: kept for source, paths in files.items() if (kept := tuple(p for p in paths if p.stem in tables))
        }
        if not files:
            log(f"{layer:<6} soda: nothing to scan, the run touched no table of this layer")
            return LayerQuality(layer, (), time.perf_counter() - started)
    with _soda_session(pg):
        scan = _prepared_scan(configuration, files, pg, schemas or {})
        try:
            scan.execute()
        finally:
            _disconnect(scan)
        errors = _error_lines(scan, pg)
        results = tuple(_result(check, errors) for check in scan._checks)  # _checks: also those not evaluated
    quality = LayerQuality(layer, results, time.perf_counter() - started, errors)
    for line in errors:
        log(f"{layer:<6} ERROR {line}")
    for r in (*quality.failed, *quality.warned):
        log(f"{layer:<6} {r.outcome.upper():<5} {r.table_name}: {r.check_name} ({r.diagnostics})")
    passed = len(results) - len(quality.failed) - len(quality.warned)
    log(
        f"{layer:<6} soda: {passed} passed, {len(quality.warned)} warned, {len(quality.failed)} failed "
        f"of {len(results)} checks in {quality.seconds:.1f}s"
    )
    return quality


def validate_configuration(
    pg: PostgresSettings, *, checks_dir: Path = CHECKS_DIR, configuration: Path = CONFIGURATION
) -> str:
    """Parse the configuration and every check file, and query ``pg`` through each data source the files use.

    Returns:
        A one-line description for ``runner.py check``.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached through Soda.
        QualityError: the configuration or a check file is invalid.
    """
    files = {source: paths for layer in LAYERS for source, paths in check_files(layer, checks_dir).items()}
    probe = "checks:\n  - failed rows:\n      name: connection probe\n      fail query: select 1 where false\n"
    with _soda_session(pg):
        _prepared_scan(configuration, files, pg)  # parses every file; only the probes run
        scan = _prepared_scan(configuration, {}, pg)
        for source in files:
            scan.set_data_source_name(source)
            scan.add_sodacl_yaml_str(probe, file_name=f"probe_{source}")
        try:
            scan.execute()
        finally:
            _disconnect(scan)
        errors = _error_lines(scan, pg)
    if errors:
        raise QualityError(f"Soda could not query {pg.endpoint}: {errors[0]}")
    count = sum(len(paths) for paths in files.values())
    return f"{configuration.name} valid, {count} check files, {len(files)} data sources reachable at {pg.endpoint}"


@contextlib.contextmanager
def _soda_session(pg: PostgresSettings) -> Iterator[None]:
    """``PG*`` exported from ``pg`` (but the password: see :func:`_prepared_scan`) and Soda's own console logging
    muted; both restored afterwards."""
    soda_logger = logging.getLogger("soda")
    level = soda_logger.level
    try:
        with libpq_environment(dataclasses.replace(pg, password=None)):
            soda_logger.setLevel(logging.CRITICAL)  # scan_layer re-logs what matters, shorter
            yield
    finally:
        soda_logger.setLevel(level)


def _prepared_scan(
    configuration: Path,
    files: dict[str, tuple[Path, ...]],
    pg: PostgresSettings,
    schemas: Mapping[str, str] | None = None,
) -> Any:
    """A Scan with the configuration and check files added; raise if Soda could not read any of them.

    Soda substitutes ``${PGPASSWORD}`` into the configuration's text before parsing it as YAML (and as a Jinja
    template), which breaks or truncates a password holding ``#``, ``: ``, ``{%`` or a leading ``*``. So the
    configuration is parsed with no password in the environment and the password is set on the parsed data
    sources afterwards. Without one, libpq reads ``PGPASSFILE`` (the pipeline's roles).

    With ``schemas``, the data source of each mapped schema points at its replacement, and so do the check files'
    schema-qualified relations (``from quarantine.<table>`` in a query)."""
    if not configuration.is_file() or not TELEMETRY_SETTINGS.is_file():
        raise QualityError(f"{configuration} or {TELEMETRY_SETTINGS} is missing")
    # Soda 3 decides on usage telemetry when it is imported, from ~/.soda/config.yml (which it creates, telemetry
    # on, when missing). Pointed at soda/telemetry.yml first, it sends nothing and writes nothing to home.
    from soda.common.config_helper import ConfigHelper  # type: ignore[import-untyped]

    ConfigHelper.get_instance(str(TELEMETRY_SETTINGS)).config["send_anonymous_usage_stats"] = False
    from soda.scan import Scan  # type: ignore[import-untyped]

    scan = Scan()
    scan.add_configuration_yaml_file(str(configuration))
    sources = scan._configuration.data_source_properties_by_name
    for schema, replacement in (schemas or {}).items():
        if (properties := sources.get(DATA_SOURCE_PREFIX + schema)) is not None:
            sources[DATA_SOURCE_PREFIX + schema] = {**properties, "schema": replacement}
    relation = re.compile(r"\b(from|join)\s+(" + "|".join(map(re.escape, schemas or {})) + r")\.") if schemas else None
    for source, paths in files.items():
        scan.set_data_source_name(source)
        for path in paths:
            if relation is None or schemas is None:
                scan.add_sodacl_yaml_file(str(path))
            else:
                text = relation.sub(lambda m: f"{m[1]} {schemas[m[2]]}.", path.read_text(encoding="utf-8"))
                scan.add_sodacl_yaml_str(text, file_name=path.stem)
    problems = [str(log.message).splitlines()[0] for log in scan.get_error_logs()]
    known = scan._configuration.data_source_properties_by_name
    for properties in known.values():
        properties["password"] = pg.password.reveal() if pg.password is not None else ""
    problems += [f"data source {source} is not configured" for source in files if source not in known]
    if problems:
        raise QualityError(f"Soda cannot use {configuration} and the check files: {'; '.join(problems)}")
    return scan


def _disconnect(scan: Any) -> None:
    """Close every connection the scan opened. Soda 3 leaves them open inside a transaction (its own close only
    knows named connections), holding a read lock on every table it scanned for as long as the objects live (after
    dbt ran in the same process they were not collected): the next writer of those tables would wait forever."""
    for data_source in scan._data_source_manager.data_sources.values():
        data_source.disconnect()


def _error_lines(scan: Any, pg: PostgresSettings) -> tuple[str, ...]:
    """Soda's error logs, first line each, without the echoes on checks they left without a value; a failed
    connection raises instead, naming the endpoint."""
    password = pg.password.reveal() if pg.password is not None else ""
    lines = []
    for log in scan.get_error_logs():
        text = " ".join(f"{log.message}".strip().split("\n")[0].split())[:300]
        text = text.replace(password, MASK) if password else text
        if text.startswith("Could not connect to data source"):
            hint = "start PostgreSQL and check PGHOST, PGPORT, PGUSER and PGPASSWORD"
            raise ServiceUnavailableError("PostgreSQL (Soda)", f"{pg.host}:{pg.port}", text, hint=hint)
        if not re.fullmatch(r"Metrics .* were not computed for check .*", text):
            lines.append(text)
    return tuple(lines)


def _attribute(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
    return obj


def _result(check: Any, errors: tuple[str, ...]) -> CheckResult:
    """A Soda check as a :class:`CheckResult`; a check without an outcome was not evaluated and fails."""
    try:
        data = check.get_dict()
    except (TypeError, AttributeError, KeyError):  # Soda 3 cannot describe a schema check of a missing table
        data = {
            "table": _attribute(check, "partition.table.table_name"),
            "dataSource": _attribute(check, "data_source_scan.data_source.data_source_name"),
        }
        check_name = str(check.name or check.check_cfg.source_line)
        schema = str(data["dataSource"] or "").removeprefix(DATA_SOURCE_PREFIX)
        return CheckResult(check_name, f"{schema}.{data['table']}", "fail", None, "not evaluated: the table is missing")
    schema = str(data.get("dataSource") or "").removeprefix(DATA_SOURCE_PREFIX)
    table = f"{schema}.{data['table']}" if data.get("table") else schema
    name = str(check.name or check.check_cfg.source_line)
    if check.outcome is None:
        why = next((e for e in errors if data.get("table") and f".{data['table']}" in e), errors[0] if errors else "")
        return CheckResult(name, table, "fail", None, f"not evaluated: {why or 'no value'}")
    diagnostics: dict[str, Any] = data.get("diagnostics") or {}
    value = diagnostics.get("value")
    if isinstance(value, int | float) and diagnostics.get("measure") == "time":
        value /= 1000  # freshness: Soda measures milliseconds
    parts = [f"value {value}"] if isinstance(value, int | float) else []
    symbols = {"greaterThan": ">", "greaterThanOrEqual": ">=", "lessThan": "<", "lessThanOrEqual": "<="}
    for level in ("warn", "fail"):
        bounds = diagnostics.get(level) or {}
        if bounds:
            parts.append(f"{level} when " + " or ".join(f"{symbols.get(k, k)} {v}" for k, v in bounds.items()))
    for key in ("missing_column_names", "column_type_mismatches"):
        if diagnostics.get(key):
            parts.append(f"{key.replace('_', ' ')}: {diagnostics[key]}")
    number = float(value) if isinstance(value, int | float) else None
    return CheckResult(name, table, check.outcome.value, number, "; ".join(parts))
