"""The run report page from hand-made facts: what failed first in one sentence, and a page that needs nothing
from the network (no script, no stylesheet or font link, nothing fetched)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from lakehouse.runreport import RunFacts, render

AT = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)


def check(outcome: str, layer: str = "silver", source: str = "soda", **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, "layer": layer, "source": source, "table_name": "silver.performance",
            "check_name": "No negative cost", "value": 3.0, "diagnostics": "fail when > 0"} | extra  # fmt: skip


def facts(status: str, checks: list[dict[str, Any]], reconciliation: list[dict[str, Any]] | None = None) -> RunFacts:
    load = {"layer": "silver", "table_name": "performance", "rows_in": 10, "rows_out": 7, "quarantined": 2,
            "duplicates": 1, "superseded": 0, "csv_bytes": 0, "parquet_bytes": 500, "seconds": 1.5}  # fmt: skip
    bronze = load | {"layer": "bronze", "rows_out": 10, "quarantined": None, "csv_bytes": 900, "seconds": 0.5}
    trend = {"run_id": "r1", "status": status, "started_at": AT, "seconds": 9.0, "rows": 7, "quarantine_pct": 20.0,
             "failed_checks": sum(c["outcome"] == "fail" for c in checks)}  # fmt: skip
    return RunFacts(
        run={"run_id": "r1", "status": status, "started_at": AT, "seconds": 9.0, "arguments": ["run"]},
        loads=[bronze, load],
        checks=checks,
        reconciliation=reconciliation or [],
        trends=[trend],
        quarantine_rules=[{"table_name": "performance", "rule": "negative_cost", "rows": 2}],
        samples={("performance", "negative_cost"): [{"cost": "-1<script>", "_reasons": ["negative_cost"]}]},
    )


def test_a_failed_gate_is_the_headline_and_names_what_did_not_run() -> None:
    failed = facts("failed", [check("fail"), check("warn", layer="bronze")])

    assert failed.first_failure() == (
        "The silver gate's Soda check “No negative cost” on silver.performance failed (value 3; fail when > 0);"
        " gold did not run."
    )
    dbt = facts("failed", [check("fail", layer="gold", source="dbt", table_name="fct_performance", value=2.0)])
    assert dbt.first_failure() == "The dbt test “No negative cost” on fct_performance failed with 2 failing rows."
    unbalanced = {"table_name": "campaigns", "bronze_rows": 10, "silver_rows": 5, "quarantined": 1, "duplicates": 0,
                  "superseded": 0, "reconciled": False}  # fmt: skip
    assert facts("failed", [], [unbalanced]).first_failure() == (
        "Silver did not reconcile for campaigns: 10 bronze rows against 6 accounted for."
    )
    assert facts("failed", []).first_failure() == (
        "The run failed after silver without a failing check: see the runner's output (its exit code names why)."
    )
    assert facts("succeeded", [check("warn")]).first_failure() is None


def test_the_page_is_self_contained_and_escapes_data() -> None:
    page = render(facts("failed", [check("fail"), check("pass")]), docs_href="file:///x/static_index.html")

    assert "<script" not in page.replace("-1&lt;script&gt;", "")  # the quarantined raw text is escaped, not run
    assert "-1&lt;script&gt;" in page
    assert re.findall(r"<link\b|@import|url\(|\bsrc=", page) == []  # nothing to fetch
    assert page.count("<svg") == 8  # funnel, quarantine, timings, storage, four trends
    assert 'href="file:///x/static_index.html"' in page
    assert "500 B, 44 % smaller" in page  # bronze's Parquet against the run's CSV, worded as in the summary
    assert 'id="first-failure"' in page
    assert page.index("No negative cost</td>") < page.index("checks passed")  # failures first
