"""Quality gates: Soda Core 3 (SodaCL) scans of one layer's PostgreSQL tables, with per-check outcomes.

Check files live in ``soda/checks/<layer>/`` (gold: ``soda/checks/gold/<schema>/``); each is scanned against the
data source ``lakehouse_<its folder>`` of ``soda/configuration.yml``, which reads the connection from libpq's
``PG*`` variables only. :func:`scan_layer` sets them from a :class:`~lakehouse.settings.PostgresSettings` for the
scan and restores the previous environment afterwards, as the gold layer does for dbt.

Severity is SodaCL's own (``soda/README.md``): a check with only a ``warn:`` threshold can at worst warn; any other
check can fail. A check Soda could not evaluate (its query failed) counts as failed: an unverified gate is not a
passed one.

The bronze and silver check files are generated from :mod:`lakehouse.contracts` and :mod:`lakehouse.rules`
(``python -m lakehouse.quality --write-checks``) and committed; a unit test keeps them equal to the generator's
output, so accepted values and rules cannot drift. Gold's files are written by hand against the dbt models.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lakehouse.contracts import SILVER, TABLES, Column, bronze_table
from lakehouse.errors import LakehouseError, ServiceUnavailableError
from lakehouse.rules import COMPARISONS, FOREIGN_KEYS, ISO_COUNTRIES, NON_NEGATIVE, can_be_invalid, source_columns
from lakehouse.settings import MASK, PG_VARIABLES, PostgresSettings

SODA_DIR = Path(__file__).resolve().parents[1] / "soda"
CONFIGURATION = SODA_DIR / "configuration.yml"
CHECKS_DIR = SODA_DIR / "checks"
TELEMETRY_SETTINGS = SODA_DIR / "telemetry.yml"
LAYERS = ("bronze", "silver", "gold")
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
    log: Callable[[str], None] = print,
) -> LayerQuality:
    """Run every check of ``layer`` (``bronze``, ``silver`` or ``gold``) against ``pg``.

    Args:
        pg: the warehouse holding the layer's tables.
        checks_dir: the root of the check files, ``<checks_dir>/<layer>/...``.
        configuration: Soda's data sources (``soda/configuration.yml``).
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
    with _soda_session(pg):
        scan = _prepared_scan(configuration, files)
        scan.execute()
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
        _prepared_scan(configuration, files)  # parses every file; only the probes run
        scan = _prepared_scan(configuration, {})
        for source in files:
            scan.set_data_source_name(source)
            scan.add_sodacl_yaml_str(probe, file_name=f"probe_{source}")
        scan.execute()
        errors = _error_lines(scan, pg)
    if errors:
        raise QualityError(f"Soda could not query {pg.endpoint}: {errors[0]}")
    count = sum(len(paths) for paths in files.values())
    return f"{configuration.name} valid, {count} check files, {len(files)} data sources reachable at {pg.endpoint}"


@contextlib.contextmanager
def _soda_session(pg: PostgresSettings) -> Iterator[None]:
    """``PG*`` exported from ``pg`` (unset when not given) and Soda's own console logging muted; both restored."""
    saved = {name: os.environ.pop(name, None) for name in PG_VARIABLES}
    soda_logger = logging.getLogger("soda")
    level = soda_logger.level
    try:
        os.environ.update(pg.libpq_env())
        soda_logger.setLevel(logging.CRITICAL)  # scan_layer re-logs what matters, shorter
        yield
    finally:
        soda_logger.setLevel(level)
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def _prepared_scan(configuration: Path, files: dict[str, tuple[Path, ...]]) -> Any:
    """A Scan with the configuration and check files added; raise if Soda could not read any of them."""
    if not configuration.is_file() or not TELEMETRY_SETTINGS.is_file():
        raise QualityError(f"{configuration} or {TELEMETRY_SETTINGS} is missing")
    # Soda 3 decides on usage telemetry when it is imported, from ~/.soda/config.yml (which it creates, telemetry
    # on, when missing). Pointed at soda/telemetry.yml first, it sends nothing and writes nothing to home.
    from soda.common.config_helper import ConfigHelper  # type: ignore[import-untyped]

    ConfigHelper.get_instance(str(TELEMETRY_SETTINGS)).config["send_anonymous_usage_stats"] = False
    from soda.scan import Scan  # type: ignore[import-untyped]

    scan = Scan()
    scan.add_configuration_yaml_file(str(configuration))
    for source, paths in files.items():
        scan.set_data_source_name(source)
        for path in paths:
            scan.add_sodacl_yaml_file(str(path))
    problems = [str(log.message).splitlines()[0] for log in scan.get_error_logs()]
    known = scan._configuration.data_source_properties_by_name
    problems += [f"data source {source} is not configured" for source in files if source not in known]
    if problems:
        raise QualityError(f"Soda cannot use {configuration} and the check files: {'; '.join(problems)}")
    return scan


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


def _result(check: Any, errors: tuple[str, ...]) -> CheckResult:
    """A Soda check as a :class:`CheckResult`; a check without an outcome was not evaluated and fails."""
    data = check.get_dict()
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


# ---------------------------------------------------------------------------------------------------------------
# Generated check files: bronze and silver, from the contracts and rules.
# ---------------------------------------------------------------------------------------------------------------

CORRUPT_WARN_PCT, CORRUPT_FAIL_PCT = 1, 20  # malformed lines, % of a bronze batch
QUARANTINE_WARN_PCT = 5  # rows quarantined by silver, % of a table's rows
FRESHNESS_WARN = "1d"  # scans may run long after a load (`runner.py quality`), so stale silver only warns
GENERATED = (
    "# Generated by `python -m lakehouse.quality --write-checks` from lakehouse/contracts.py and\n"
    "# lakehouse/rules.py. Do not edit: change the contracts or rules and regenerate.\n"
)
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_INFO_SCHEMA_TYPES = {"timestamptz": "timestamp with time zone", "text[]": "ARRAY"}
SodaCheck = tuple[str, dict[str, Any]]  # (SodaCL check line, its configuration)


def generated_checks() -> dict[str, str]:
    """Every generated check file: path relative to ``soda/checks`` -> YAML text."""
    files = {f"bronze/raw_{t}.yml": _render(f"raw_{t}", _bronze_checks(t)) for t in TABLES}
    return files | {f"silver/{t}.yml": _render(t, _silver_checks(t)) for t in TABLES}


def write_checks(checks_dir: Path = CHECKS_DIR) -> list[Path]:
    """Write the generated files and delete other ``*.yml`` in their folders; return the paths written."""
    files = {checks_dir / name: text for name, text in generated_checks().items()}
    for folder in {path.parent for path in files}:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(folder.glob("*.yml")) - set(files):
            stale.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def _check(line: str, name: str, *rules: str, **config: Any) -> SodaCheck:
    """One SodaCL check; ``rules`` are the quarantine rules it enforces (a free-form ``attributes`` entry)."""
    options = {key.replace("_", " "): value for key, value in config.items()}
    return line, {"name": name, **options, **({"attributes": {"rules": list(rules)}} if rules else {})}


def _bronze_checks(table: str) -> list[SodaCheck]:
    relation = f"bronze.raw_{table}"
    latest = f"where _batch_id = (select _batch_id from {relation} order by _ingestion_timestamp desc limit 1)"
    corrupt = "100.0 * count(*) filter (where _corrupt_record is not null) / nullif(count(*), 0)"
    return [
        ("latest_batch_rows > 0", {"name": "the latest batch has rows",
                                   "latest_batch_rows query": f"select count(*) from {relation}\n{latest}\n"}),
        _check("schema", "source and metadata columns are present",
               fail={"when required column missing": list(bronze_table(table).column_names)}),
        ("corrupt_pct", {"name": f"corrupt lines in the latest batch (%, warn > {CORRUPT_WARN_PCT}, "
                                 f"fail > {CORRUPT_FAIL_PCT})",
                         "corrupt_pct query": f"select coalesce({corrupt}, 0)\nfrom {relation}\n{latest}\n",
                         "warn": f"when > {CORRUPT_WARN_PCT}", "fail": f"when > {CORRUPT_FAIL_PCT}"}),
    ]  # fmt: skip


def _silver_checks(table: str) -> list[SodaCheck]:
    contract = SILVER[table]
    typed = [f"invalid_{c.name}" for c in source_columns(table) if can_be_invalid(c) and not _valid_values(c)]
    types = {c.name: _INFO_SCHEMA_TYPES.get(c.postgres_type, c.postgres_type.split("(")[0]) for c in contract.columns}
    checks = [
        _check("row_count > 0", "has rows"),
        _check("schema", "columns and types match the contract", "malformed_line", *typed,
               fail={"when required column missing": list(types), "when wrong column type": types}),
    ]  # fmt: skip
    for column in source_columns(table):
        name = column.name
        if column.required:
            checks.append(_check(f"missing_count({name}) = 0", f"{name} is never missing", f"missing_{name}"))
        if _valid_values(column):
            checks.append(
                _check(f"invalid_count({name}) = 0", f"{name} is an accepted value", f"invalid_{name}",
                       valid_values=list(_valid_values(column)))
            )  # fmt: skip
        if name in NON_NEGATIVE:
            checks.append(_check("failed rows", f"{name} >= 0", f"negative_{name}", fail_condition=f"{name} < 0"))
    for rule in COMPARISONS[table]:
        where = f"{rule.left} > {rule.right}"
        checks.append(_check("failed rows", f"{rule.left} <= {rule.right}", rule.name, fail_condition=where))
    if fk := FOREIGN_KEYS[table]:
        column_name, parent, rule_name = fk
        line = f"values in ({column_name}) must exist in {parent} ({column_name})"
        checks.append(_check(line, f"every {column_name} exists in silver.{parent}", rule_name))
    for key in contract.key:
        checks.append(_check(f"duplicate_count({key}) = 0", f"{key} is unique", "conflicting_duplicate"))
    share = (
        "select coalesce(100.0 * q.n / nullif(q.n + s.n, 0), 0)\n"
        f"from (select count(*) as n from quarantine.{table}) as q,\n"
        f"     (select count(*) as n from silver.{table}) as s\n"
    )
    return [
        *checks,
        _check("freshness(_silver_processed_at)", f"processed within {FRESHNESS_WARN}",
               warn=f"when > {FRESHNESS_WARN}"),
        ("quarantined_pct", {"name": f"quarantined rows (% of the table's rows, warn > {QUARANTINE_WARN_PCT})",
                             "quarantined_pct query": share, "warn": f"when > {QUARANTINE_WARN_PCT}"}),
    ]  # fmt: skip


def _valid_values(column: Column) -> tuple[str, ...]:
    return tuple(sorted(ISO_COUNTRIES)) if column.name == "country" else column.accepted_values


def _render(table: str, checks: list[SodaCheck]) -> str:
    lines = [f"checks for {table}:"]
    for line, config in checks:
        lines += [f"  - {line}:", *_yaml(config, "      ")]
    return GENERATED + "\n".join(lines) + "\n"


def _yaml(mapping: dict[str, Any], indent: str) -> list[str]:
    """A small deterministic YAML emitter: nested mappings, wrapped flow lists, SQL as literal blocks."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", *_yaml(value, indent + "  ")]
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: [")
            for item in (_scalar(v, flow=True) for v in value):
                if len(lines[-1]) + len(item) > 115:
                    lines[-1] = lines[-1].rstrip()
                    lines.append(indent + "  ")
                lines[-1] += item + ", "
            lines[-1] = lines[-1].removesuffix(", ") + "]"
        elif "\n" in value:
            lines += [f"{indent}{key}: |", *(f"{indent}  {line}" for line in value.splitlines())]
        else:
            lines.append(f"{indent}{key}: {_scalar(value)}")
    return lines


def _scalar(text: str, *, flow: bool = False) -> str:
    """Plain when unambiguous (to YAML 1.1 readers too, for whom ``NO`` is false), else double-quoted."""
    plain = re.fullmatch(r"[A-Za-z_][\w .,()%<>=&'-]*", text) and text.lower() not in _YAML11_WORDS
    return text if plain and not (flow and "," in text) else json.dumps(text, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.quality --write-checks``: regenerate the bronze and silver check files."""
    parser = argparse.ArgumentParser(prog="python -m lakehouse.quality", description=main.__doc__)
    parser.add_argument("--write-checks", action="store_true", help="write soda/checks/{bronze,silver}/*.yml")
    if not parser.parse_args(argv).write_checks:
        parser.print_help()
        return 2
    for path in write_checks():
        print(f"wrote {path.relative_to(SODA_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
