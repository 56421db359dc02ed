"""What a run report shows, read from PostgreSQL: the run's rows in ``ops``, the last 30 runs, the quarantine and
the marts' KPIs.

Everything on the page comes from here, so a report of an old run (``runner.py report --run ID``) shows what
``ops`` recorded for it. Two parts are the warehouse's current state rather than the run's: the quarantine's
sample rows (``quarantine.*`` is rebuilt by every silver run) and the KPI headline (``analytics.*``); the page says
so. Reading only: the ``ops`` tables belong to :mod:`lakehouse.bookkeeping`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extras import RealDictCursor

from lakehouse.adapters.warehouse import connect
from lakehouse.contracts import LAYERS, TABLES
from lakehouse.errors import LakehouseError
from lakehouse.settings import PostgresSettings

TREND_RUNS = 30
SAMPLES_PER_RULE = 3
TOP_CAMPAIGNS = 5
Row = dict[str, Any]


class ReportError(LakehouseError):
    """A run report could not be built (no such run, no ``ops`` schema yet)."""


@dataclass(frozen=True)
class RunFacts:
    """One run as the report shows it; every list is in the order the page shows it."""

    run: Row
    loads: list[Row]
    checks: list[Row]
    reconciliation: list[Row]
    trends: list[Row]
    quarantine_rules: list[Row] = field(default_factory=list)
    samples: dict[tuple[str, str], list[Row]] = field(default_factory=dict)
    kpis: Row | None = None
    top_campaigns: list[Row] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[Row]:
        return [c for c in self.checks if c["outcome"] == "fail"]

    @property
    def warned_checks(self) -> list[Row]:
        return [c for c in self.checks if c["outcome"] == "warn"]

    def first_failure(self) -> str | None:
        """What failed first, in one sentence; None for a run that did not fail."""
        if self.run["status"] != "failed":
            return None
        unbalanced = [r for r in self.reconciliation if not r["reconciled"]]
        if unbalanced:
            r = unbalanced[0]
            return (
                f"Silver did not reconcile for {r['table_name']}: {r['bronze_rows']:,} bronze rows against "
                f"{r['silver_rows'] + r['quarantined'] + r['duplicates'] + r['superseded']:,} accounted for."
            )
        if self.failed_checks:
            c = self.failed_checks[0]  # checks are in layer order, failures first
            if c["source"] == "dbt":
                rows = "" if c["value"] is None else f" with {c['value']:g} failing row{'s' * (c['value'] != 1)}"
                return f"The dbt test “{c['check_name']}” on {c['table_name']} failed{rows}."
            value = "" if c["value"] is None else f" (value {c['value']:g}; {c['diagnostics']})"
            after = _downstream(c["layer"])
            stopped = f"; {' and '.join(after)} did not run" if after else ""
            check = f"Soda check “{c['check_name']}” on {c['table_name']}"
            return f"The {c['layer']} gate's {check} failed{value}{stopped}."
        built = [layer for layer in LAYERS if any(load["layer"] == layer for load in self.loads)]
        where = f"after {built[-1]}" if built else "before any layer was recorded"
        return f"The run failed {where} without a failing check: see the runner's output (its exit code names why)."


def _downstream(layer: str) -> list[str]:
    return list(LAYERS[LAYERS.index(layer) + 1 :]) if layer in LAYERS else []


def gather(pg: PostgresSettings, run_id: str | None = None, *, marts: PostgresSettings | None = None) -> RunFacts:
    """Read run ``run_id`` (default: the latest) and its context: ``ops`` and the quarantine through ``pg``, the
    KPI headline through ``marts`` (default ``pg``; the pipeline's loader may not read the marts, its reader may).

    Raises:
        ReportError: no run is recorded (or not this one).
    """
    with _cursor(pg) as cur:
        try:
            run = _run(cur, run_id)
        except psycopg2.errors.UndefinedTable:
            raise ReportError(f"no runs are recorded in {pg.endpoint} yet (ops.pipeline_runs is missing)") from None
        if run is None:
            raise ReportError(f"run {run_id or '(latest)'} is not in ops.pipeline_runs of {pg.endpoint}")
        rid = run["run_id"]
        facts = RunFacts(
            run=run,
            loads=_all(cur, "select * from ops.layer_loads where run_id = %s order by recorded_at, layer", rid),
            checks=_checks(cur, rid),
            reconciliation=_all(cur, "select * from ops.reconciliation where run_id = %s order by table_name", rid),
            trends=_all(cur, _TRENDS, run["started_at"], TREND_RUNS)[::-1],
        )
        facts.quarantine_rules.extend(_quarantine_rules(cur))
        for rule in facts.quarantine_rules:
            key = (rule["table_name"], rule["rule"])
            facts.samples[key] = _samples(cur, rule["table_name"], rule["rule"])
    with _cursor(marts or pg) as cur:
        headline = _marts(cur)
    return facts if headline is None else dataclasses.replace(facts, kpis=headline[0], top_campaigns=headline[1])


@contextlib.contextmanager
def _cursor(pg: PostgresSettings) -> Iterator[Any]:
    """A read-only cursor returning dict rows; the connection is closed afterwards, whatever happens."""
    conn = connect(pg)
    try:
        conn.set_session(readonly=True)
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            yield cur
    finally:
        conn.close()


def latest_run_id(pg: PostgresSettings) -> str | None:
    """The id of the run that started last (None when none is recorded)."""
    with _cursor(pg) as cur:
        run = _run(cur, None)
    return None if run is None else str(run["run_id"])


def _run(cur: Any, run_id: str | None) -> Row | None:
    seconds = "extract(epoch from coalesce(ended_at, now()) - started_at)::float as seconds"
    if run_id is None:
        cur.execute(f"select *, {seconds} from ops.pipeline_runs order by started_at desc, run_id desc limit 1")
    else:
        cur.execute(f"select *, {seconds} from ops.pipeline_runs where run_id = %s", (run_id,))
    row = cur.fetchone()
    return dict(row) if row else None


def _all(cur: Any, query: str | sql.Composable, *params: Any) -> list[Row]:
    cur.execute(query, params)
    return [dict(row) for row in cur.fetchall()]


def _checks(cur: Any, run_id: str) -> list[Row]:
    """Failures first, then warnings, then passes; within each, layer order, then as recorded."""
    return _all(
        cur,
        "select * from ops.quality_results where run_id = %s order by"
        " array_position(array['fail', 'warn', 'pass'], outcome),"
        " array_position(array['bronze', 'silver', 'gold'], layer), recorded_at, source desc, table_name, check_name",
        run_id,
    )


# Per run up to the reported one: silver rows (bronze for a bronze-only run, none for gold alone), seconds,
# quarantine share, failed checks.
_TRENDS = """
    select r.run_id, r.status, r.started_at,
           extract(epoch from coalesce(r.ended_at, r.started_at) - r.started_at)::float as seconds,
           coalesce(
               (select sum(rows_out) from ops.layer_loads l where l.run_id = r.run_id and l.layer = 'silver'),
               (select sum(rows_out) from ops.layer_loads l where l.run_id = r.run_id and l.layer = 'bronze')
           )::bigint as rows,
           (select 100.0 * sum(quarantined) / nullif(sum(rows_in), 0) from ops.layer_loads l
             where l.run_id = r.run_id and l.layer = 'silver')::float as quarantine_pct,
           (select count(*) from ops.quality_results q where q.run_id = r.run_id and q.outcome = 'fail')::int
               as failed_checks
      from ops.pipeline_runs r
     where r.started_at <= %s
     order by r.started_at desc, r.run_id desc
     limit %s
"""


def _existing(cur: Any, schema: str, tables: Sequence[str]) -> list[str]:
    cur.execute(
        "select table_name from information_schema.tables where table_schema = %s and table_name = any(%s)",
        (schema, list(tables)),
    )
    found = {row["table_name"] for row in cur.fetchall()}
    return [t for t in tables if t in found]


def _quarantine_rules(cur: Any) -> list[Row]:
    rows: list[Row] = []
    for table in _existing(cur, "quarantine", list(TABLES)):
        rows += _all(
            cur,
            sql.SQL(
                "select %s as table_name, reason as rule, count(*)::bigint as rows"
                " from {}, unnest(_reasons) reason group by reason order by rows desc, reason"
            ).format(sql.Identifier("quarantine", table)),
            table,
        )
    return sorted(rows, key=lambda r: (-r["rows"], r["table_name"], r["rule"]))


def _samples(cur: Any, table: str, rule: str) -> list[Row]:
    """A few raw rows that broke ``rule``: the bronze text as landed, lineage columns left out."""
    rows = _all(
        cur,
        sql.SQL("select * from {} where %s = any(_reasons) order by _source_file, _batch_id limit %s").format(
            sql.Identifier("quarantine", table)
        ),
        rule,
        SAMPLES_PER_RULE,
    )
    shown = ("_reasons", "_corrupt_record")
    return [{k: v for k, v in row.items() if not k.startswith("_") or k in shown} for row in rows]


def _marts(cur: Any) -> tuple[Row, list[Row]] | None:
    if not _existing(cur, "analytics", ["campaign_performance_summary"]):
        return None
    (totals,) = _all(
        cur,
        "select coalesce(sum(cost), 0) as spend, coalesce(sum(revenue), 0) as revenue,"
        " sum(revenue) / nullif(sum(cost), 0) as roas, count(*) as campaigns,"
        " coalesce(sum(conversions), 0)::bigint as conversions from analytics.campaign_performance_summary",
    )
    top = _all(
        cur,
        "select campaign_id, campaign_name, advertiser_name, cost, revenue, roas"
        " from analytics.campaign_performance_summary order by revenue desc nulls last, campaign_id limit %s",
        TOP_CAMPAIGNS,
    )
    return totals, top


def as_of(run: Row) -> str:
    started: dt.datetime = run["started_at"]
    return f"{started.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
