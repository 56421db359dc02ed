"""Gold layer: build the dbt project (``dbt_project/``) in-process with dbt's programmatic runner.

:func:`run_gold` runs ``dbt build`` (models, snapshots, data tests and unit tests, in dependency order; ``core``
and ``analytics`` into shadow schemas, published only when every test passed) and
:func:`docs_generate` runs ``dbt docs generate``. The project's ``profiles.yml`` reads the connection from libpq's
``PG*`` variables only; both functions set them from a :class:`~lakehouse.settings.PostgresSettings` for the
duration of the call and restore the previous environment afterwards. Test failures are results, not
exceptions: they come back in :attr:`GoldResult.failed_tests`. dbt failing to run at all raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg2
from dbt.adapters.exceptions.connection import FailedToConnectError
from dbt.artifacts.schemas.run import RunExecutionResult, RunResult
from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt_common.events.base_types import EventMsg
from psycopg2 import sql
from psycopg2.extensions import connection

from lakehouse.adapters.publish import PublishPolicy, publish_schemas
from lakehouse.adapters.warehouse import connect
from lakehouse.errors import LakehouseError, ServiceUnavailableError
from lakehouse.report import SummaryRow
from lakehouse.settings import MASK, PostgresSettings, libpq_environment

_log = logging.getLogger(__name__)
DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
PUBLISHED_SCHEMAS = ("core", "analytics")  # what readers query; built in shadow schemas, then published
SHADOW_PREFIX = "_lakehouse_shadow_"  # dbt's var `shadow_prefix` (macros/generate_schema_name.sql)
_TEST_TYPES = frozenset({"test", "unit_test"})
_FAILED = frozenset({"fail", "error"})
# dbt's test statuses as quality outcomes; a skipped test (its model failed) was not evaluated and is not recorded.
_CHECK_OUTCOMES: dict[str, Literal["pass", "warn", "fail"]] = {
    "pass": "pass",
    "warn": "warn",
    "fail": "fail",
    "error": "fail",
}


class GoldError(LakehouseError):
    """dbt could not run the gold project at all (bad project, crash); test failures are not errors."""


@dataclass(frozen=True)
class NodeOutcome:
    """One finished dbt node: a model, snapshot, data test or unit test.

    ``rows_affected`` is what PostgreSQL reported for a model or snapshot (``MERGE 0`` for an incremental run
    without new input gives 0); None for views, tests and skipped nodes.
    """

    name: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None
    message: str | None
    failures: int | None = None
    tested: str = ""

    def check(self) -> DbtCheck | None:
        """This test's outcome as a quality check (None for models, snapshots and skipped tests)."""
        outcome = _CHECK_OUTCOMES.get(self.status)
        if self.resource_type not in _TEST_TYPES or outcome is None:
            return None
        why = "" if outcome == "pass" else ": " + " ".join((self.message or "").split())[:500]
        return DbtCheck(self.name, self.tested or "dbt", outcome, self.failures, f"{self.resource_type}{why}")


@dataclass(frozen=True)
class DbtCheck:
    """A dbt data test or unit test as ``ops.quality_results`` records it beside the Soda checks.

    ``table_name`` is the model the test is attached to (a singular test on no model: ``dbt``); ``value`` is the
    number of failing rows dbt counted (0 for a pass); ``diagnostics`` names the test type and, unless it passed,
    dbt's message.
    """

    check_name: str
    table_name: str
    outcome: Literal["pass", "warn", "fail"]
    value: float | None
    diagnostics: str


@dataclass(frozen=True)
class GoldResult:
    """The outcome of one ``dbt build``: ``ok`` is False when any test failed or any node errored."""

    ok: bool
    nodes: tuple[NodeOutcome, ...]
    failed_tests: tuple[str, ...]
    seconds: float

    def node(self, name: str) -> NodeOutcome:
        """The outcome of the node called ``name``; KeyError when the build did not include it."""
        for outcome in self.nodes:
            if outcome.name == name:
                return outcome
        raise KeyError(f"no dbt node named {name!r} in this build")

    def summary_rows(self) -> list[SummaryRow]:
        """Models and snapshots built, and dbt tests passed, as rows of the run summary."""
        models = [n for n in self.nodes if n.resource_type in ("model", "snapshot")]
        tests = [n for n in self.nodes if n.resource_type in _TEST_TYPES]
        return [
            SummaryRow("gold", f"{len(models)} models/snapshots", rows_out=len(models), seconds=self.seconds),
            SummaryRow("gold", f"{len(tests)} dbt tests", rows_out=len(tests) - len(self.failed_tests)),
        ]

    @property
    def checks(self) -> tuple[DbtCheck, ...]:
        """Every data test and unit test dbt evaluated, as quality checks (skipped ones are left out)."""
        return tuple(check for node in self.nodes if (check := node.check()) is not None)

    @property
    def errors(self) -> tuple[NodeOutcome, ...]:
        """Models and snapshots that failed (their downstream nodes are skipped)."""
        return tuple(n for n in self.nodes if n.status in _FAILED and n.resource_type not in _TEST_TYPES)


def run_gold(
    pg: PostgresSettings,
    *,
    project_dir: Path = DBT_PROJECT_DIR,
    target_dir: Path | None = None,
    full_refresh: bool = False,
    policy: PublishPolicy | None = None,
    log: Callable[[str], None] = print,
) -> GoldResult:
    """Build the gold layer, write-audit-publish: ``dbt build`` of every model, snapshot, data test and unit test,
    with ``core`` and ``analytics`` built into shadow schemas; only when every test passed do the shadow tables
    replace the published ones, in one transaction. Snapshots (SCD2 history of the silver sources, which the audit
    of silver already gated) are built in place: they keep history, so they are never shadowed.

    Readers of ``core.*`` and ``analytics.*`` never see an untested model: a failing test leaves every published
    table at its last good version. Incremental models (``fct_performance``) start their shadow from a copy of the
    published table, so they still merge only what is new.

    Args:
        pg: the warehouse; ``silver.*`` must exist there. ``core``, ``analytics``, ``staging``,
            ``intermediate`` and ``snapshots`` are created or replaced.
        project_dir: the dbt project (its ``profiles.yml`` is used too).
        target_dir: dbt's artifacts folder (run results, manifest, compiled SQL, logs); default
            ``<project>/target`` with logs in ``<project>/logs``.
        full_refresh: rebuild incremental models from scratch instead of merging new rows.
        policy: how the publish waits for locks on the published tables (default: :class:`PublishPolicy`).
        log: receives one line per finished model or snapshot, per test that did not pass, and a summary.

    Returns:
        Every node's outcome; ``ok`` is False and ``failed_tests`` names the culprits when a test fails.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached (the message names host and port).
        GoldError: dbt could not run (missing or invalid project, internal error).
        PublishTimeoutError: a lock on a published table was never granted; nothing was published.
    """
    started = time.perf_counter()
    _require_project(project_dir)  # before any shadow schema is made
    shadows = {SHADOW_PREFIX + schema: schema for schema in PUBLISHED_SCHEMAS}
    _prepare_shadows(pg, shadows, copy_incremental=not full_refresh, project_dir=project_dir)
    try:
        vars_ = json.dumps({"shadow_prefix": SHADOW_PREFIX})
        threads = ("--threads", str(os.cpu_count() or 1))  # one model per core (profiles.yml says 2 for others)
        args = ["build", "--vars", vars_, *threads, *(["--full-refresh"] if full_refresh else [])]
        nodes = _nodes(_invoke(args, pg, project_dir, target_dir, progress=_progress(log)))
        if _ok(nodes):
            publish_schemas(pg, shadows, policy=policy or PublishPolicy())
    finally:
        _drop_schemas(pg, shadows)
    failed = tuple(n.name for n in nodes if n.resource_type in _TEST_TYPES and n.status in _FAILED)
    result = GoldResult(ok=_ok(nodes), nodes=nodes, failed_tests=failed, seconds=time.perf_counter() - started)
    log(_summary(result))
    return result


def _nodes(outcome: dbtRunnerResult) -> tuple[NodeOutcome, ...]:
    results = outcome.result.results if isinstance(outcome.result, RunExecutionResult) else []
    return tuple(_node_outcome(r) for r in results if isinstance(r, RunResult))


def _ok(nodes: Sequence[NodeOutcome]) -> bool:
    return not any(n.status in _FAILED for n in nodes)


def _incremental_models(project_dir: Path) -> list[tuple[str, str]]:
    """``(schema, model)`` of every incremental model readers query (declared in its SQL's ``config``)."""
    found = []
    for schema in PUBLISHED_SCHEMAS:
        for path in sorted((project_dir / "models" / schema).glob("*.sql")):
            if re.search(r"materialized\s*=\s*['\"]incremental['\"]", path.read_text(encoding="utf-8")):
                found.append((schema, path.stem))
    return found


def _prepare_shadows(
    pg: PostgresSettings, shadows: dict[str, str], *, copy_incremental: bool, project_dir: Path
) -> None:
    """Empty shadow schemas; each incremental model's shadow starts as a copy of its published table."""
    _drop_schemas(pg, shadows)
    with contextlib.closing(_connect(pg)) as conn, conn, conn.cursor() as cur:
        for shadow in shadows:
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(shadow)))
        for schema, model in _incremental_models(project_dir) if copy_incremental else []:
            cur.execute("select to_regclass(%s)", (sql.Identifier(schema, model).as_string(cur),))
            if (cur.fetchone() or (None,))[0] is None:
                continue  # never published: the shadow build creates it
            copy, published = sql.Identifier(SHADOW_PREFIX + schema, model), sql.Identifier(schema, model)
            cur.execute(sql.SQL("create table {} (like {} including all)").format(copy, published))
            cur.execute(sql.SQL("insert into {} select * from {}").format(copy, published))


def _drop_schemas(pg: PostgresSettings, shadows: dict[str, str]) -> None:
    with contextlib.closing(_connect(pg)) as conn, conn, conn.cursor() as cur:
        for shadow in shadows:
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(shadow)))


def docs_generate(
    pg: PostgresSettings,
    *,
    project_dir: Path = DBT_PROJECT_DIR,
    target_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run ``dbt docs generate`` (catalog from ``pg``; no internet needed) and return the static site's path.

    ``static_index.html`` holds the manifest and catalog inline, so it opens straight from disk.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached.
        GoldError: dbt could not generate the documentation.
    """
    outcome = _invoke(["docs", "generate", "--static"], pg, project_dir, target_dir, progress=None)
    if not outcome.success:
        raise GoldError(f"dbt docs generate failed for {project_dir}; see {_log_dir(project_dir, target_dir)}")
    site = (target_dir or project_dir / "target") / "static_index.html"
    log(f"gold docs: {site}")
    return site


def dbt_debug(pg: PostgresSettings, *, project_dir: Path = DBT_PROJECT_DIR) -> str:
    """``dbt debug``: the project parses and the profile connects. Returns a one-line OK detail.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached.
        GoldError: the project or profile is broken.
    """
    outcome = _invoke(["debug"], pg, project_dir, None, progress=None)
    if not outcome.success:
        raise GoldError(f"dbt debug failed for {project_dir}; see {_log_dir(project_dir, None)}")
    return f"dbt project and profile OK, connected to {pg.endpoint}"


def _invoke(
    args: Sequence[str],
    pg: PostgresSettings,
    project_dir: Path,
    target_dir: Path | None,
    *,
    progress: Callable[[EventMsg], None] | None,
) -> dbtRunnerResult:
    """Run one dbt command in-process with the connection in ``PG*``; raise for anything but test failures."""
    _require_project(project_dir)
    target = target_dir or project_dir / "target"
    command = [
        *args,
        *("--project-dir", str(project_dir), "--profiles-dir", str(project_dir)),
        *(() if args[0] == "debug" else ("--target-path", str(target))),  # `dbt debug` has no target
        *("--log-path", str(_log_dir(project_dir, target_dir))),
        # dbt's console output gives way to the progress callback's lines; its log file stays.
        *("--log-level", "none", "--log-level-file", "info", "--no-use-colors"),
        *("--no-send-anonymous-usage-stats", "--no-version-check"),
    ]
    with libpq_environment(pg):
        outcome = dbtRunner(callbacks=[progress] if progress else []).invoke(command)
    if outcome.exception is not None:
        detail = _scrub(" ".join(str(outcome.exception).split()), pg)
        if isinstance(outcome.exception, FailedToConnectError):
            raise ServiceUnavailableError(
                "PostgreSQL", f"{pg.host}:{pg.port}", detail, hint="check PGHOST, PGPORT, PGUSER and PGPASSWORD"
            ) from None
        raise GoldError(f"dbt {' '.join(args)} could not run against {pg.endpoint}: {detail}") from None
    return outcome


def _connect(pg: PostgresSettings) -> connection:
    try:
        return connect(pg)
    except psycopg2.OperationalError as exc:
        detail = _scrub(" ".join(str(exc).split()), pg)
        hint = "check PGHOST, PGPORT, PGUSER and PGPASSWORD"
        raise ServiceUnavailableError("PostgreSQL", f"{pg.host}:{pg.port}", detail, hint=hint) from None


def _require_project(project_dir: Path) -> None:
    if not (project_dir / "dbt_project.yml").is_file():
        raise GoldError(f"no dbt project at {project_dir} (dbt_project.yml is missing)")


def _log_dir(project_dir: Path, target_dir: Path | None) -> Path:
    """``<project>/logs`` (gitignored), or inside a caller's own target folder, so its runs leave no trace here."""
    return target_dir / "logs" if target_dir else project_dir / "logs"


def _scrub(text: str, pg: PostgresSettings) -> str:
    """Belt and braces: no error text leaves this module with the password in it."""
    password = pg.password.reveal() if pg.password is not None else ""
    return text.replace(password, MASK) if password else text


def _progress(log: Callable[[str], None]) -> Callable[[EventMsg], None]:
    """A dbtRunner callback: one line per finished model or snapshot, and per test that failed or warned."""
    lock = threading.Lock()  # dbt calls back from its worker threads; keep lines whole
    finished = 0

    def on_event(event: EventMsg) -> None:
        nonlocal finished
        if event.info.name != "NodeFinished":
            return
        data: Any = event.data  # a protobuf message, untyped
        info, result = data.node_info, data.run_result
        rows = result.adapter_response.fields.get("rows_affected")
        outcome = _outcome(
            info.node_name,
            info.resource_type,
            result.status,
            result.execution_time,
            rows.number_value if rows is not None else None,
            result.message,
        )
        with lock:
            finished += 1
            _log.info("gold: %d nodes done, %s", finished, outcome.name, extra={"progress": True})
            if outcome.resource_type not in _TEST_TYPES or outcome.status not in ("pass", "skipped"):
                log(_line(outcome))

    return on_event


def _outcome(name: str, resource_type: str, status: str, seconds: float, rows: Any, message: str | None) -> NodeOutcome:
    """Row counts only where they mean rows written: not for tests, nor the -1 of a view."""
    counts_rows = isinstance(rows, int | float) and rows >= 0 and resource_type not in _TEST_TYPES
    return NodeOutcome(name, resource_type, status, seconds, int(rows) if counts_rows else None, message or None)


def _node_outcome(result: RunResult) -> NodeOutcome:
    node = _outcome(
        result.node.name,
        str(result.node.resource_type),
        str(result.status),
        result.execution_time,
        result.adapter_response.get("rows_affected"),
        result.message,
    )
    if node.resource_type not in _TEST_TYPES:
        return node
    # A data test names the model it is attached to, a unit test the model it tests (both as unique ids);
    # A singular test names neither: the model among those it reads that its name mentions (``assert_<model>_...``).
    reads = [n.rsplit(".", 1)[-1] for n in getattr(result.node.depends_on, "nodes", []) if n.startswith("model.")]
    named = sorted((m for m in reads if m in node.name), key=len)
    tested = (
        getattr(result.node, "attached_node", None)
        or getattr(result.node, "tested_node_unique_id", None)
        or (named[-1] if named else reads[0] if len(reads) == 1 else None)
    )
    failures = result.failures if result.failures is not None else (0 if node.status == "pass" else None)
    return dataclasses.replace(node, failures=failures, tested=str(tested or "").rsplit(".", 1)[-1])


def _line(node: NodeOutcome) -> str:
    rows = f", {node.rows_affected} rows" if node.rows_affected is not None else ""
    why = f": {' '.join((node.message or '').split())[:200]}" if node.status in _FAILED else ""
    return f"gold  {node.status.upper():<7} {node.resource_type:<9} {node.name} ({node.seconds:.2f}s{rows}){why}"


def _summary(result: GoldResult) -> str:
    tests = [n for n in result.nodes if n.resource_type in _TEST_TYPES]
    passed = sum(1 for n in tests if n.status == "pass")
    verdict = "ok" if result.ok else f"FAILED ({len(result.failed_tests)} failing tests, {len(result.errors)} errors)"
    return (
        f"gold  dbt build {verdict}: {len(result.nodes) - len(tests)} models/snapshots, "
        f"{passed}/{len(tests)} tests passed in {result.seconds:.1f}s"
    )
