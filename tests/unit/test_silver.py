"""Silver transforms: normalization, every rule, orphans and dedup — chispa examples with null rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.contracts import SILVER, bronze_table
from lakehouse.rules import rule_names as all_rule_names
from lakehouse.silver.transforms import (
    classify,
    quarantine_rows,
    silver_rows,
    with_orphan_reasons,
    with_outcome,
    with_row_reasons,
)

UTC = dt.UTC
AT = dt.datetime(2024, 2, 9, 10, tzinfo=UTC)


def bronze(spark: Any, table: str, rows: list[tuple[Any, ...]]) -> Any:
    """Bronze frame from (source values..., corrupt, batch, file) tuples."""
    full = [(*values, corrupt, AT, batch, file, AT.date()) for *values, corrupt, batch, file in rows]
    return spark.createDataFrame(full, bronze_table(table).spark_schema())


def reasons_of(df: Any, key: str) -> dict[Any, list[str]]:
    return {r[0]: list(r[1]) for r in df.select(key, "_reasons").collect()}


def test_campaign_values_are_normalized_before_validation(spark: Any) -> None:
    rows = [
        ("1", " 10 ", "  Brand ", "  search ", "ACTIVE", "sales", "2024-01-01", "", " 12.50 ", "100", None, "b", "f"),
        ("2", "10", "X", "Search", "Active", None, "2024-01-01", None, None, None, None, "b", "f"),
    ]
    result = with_row_reasons(bronze(spark, "campaigns", rows), "campaigns").select("_typed.*", "_reasons")

    expected = spark.createDataFrame(
        [
            (
                1,
                10,
                "Brand",
                "Search",
                "Active",
                "Sales",
                dt.date(2024, 1, 1),
                None,
                Decimal("12.50"),
                Decimal("100.00"),
                [],
            ),
            (2, 10, "X", "Search", "Active", None, dt.date(2024, 1, 1), None, None, None, []),
        ],
        "campaign_id int, advertiser_id int, campaign_name string, campaign_type string, status string, "
        "objective string, start_date date, end_date date, budget_daily decimal(12,2), budget_total decimal(14,2), "
        "_reasons array<string>",
    )
    assert_df_equality(result, expected, ignore_nullable=True, ignore_row_order=True)


def test_every_campaign_rule_is_named_and_all_rules_of_a_row_are_kept(spark: Any) -> None:
    rows = [
        ("1", "10", "C", "Radio", "Live", "Fame", "2024-02-30", "2024-01-01", "1,000", "-5", None, "b", "f"),
        ("2", None, "", None, None, None, None, None, None, None, None, "b", "f"),
        ("3", "10", "C", "Video", "Draft", "Leads", "2024-03-01", "2024-02-01", "50", "10", None, "b", "f"),
        ("x7", "1e3", "C", "Video", "Draft", "Leads", "2024/03/01", "2024-03-01", "1.234", "-0.01", None, "b", "f"),
        (None, None, None, None, None, None, None, None, None, None, "1,2,3", "b", "f"),
    ]
    result = reasons_of(with_row_reasons(bronze(spark, "campaigns", rows), "campaigns"), "campaign_id")

    assert result == {
        "1": [
            "invalid_campaign_type",
            "invalid_status",
            "invalid_objective",
            "invalid_start_date",
            "invalid_budget_daily",
            "negative_budget_total",
        ],
        "2": [
            "missing_advertiser_id",
            "missing_campaign_name",
            "missing_campaign_type",
            "missing_status",
            "missing_start_date",
        ],
        "3": ["end_before_start", "daily_budget_gt_total"],
        "x7": [
            "invalid_campaign_id",
            "invalid_advertiser_id",
            "invalid_start_date",
            "invalid_budget_daily",
            "negative_budget_total",
        ],
        None: ["malformed_line"],
    }


def test_advertiser_country_and_industry_normalization(spark: Any) -> None:
    rows = [
        ("1", "A", " food & beverage ", " uk ", "", None, "b", "f"),
        ("2", "B", "Tech", "us", None, None, "b", "f"),
        ("3", "C", "Tech", "USA", None, None, "b", "f"),
        ("4", "D", "Tech", "XX", None, None, "b", "f"),
    ]
    df = with_row_reasons(bronze(spark, "advertisers", rows), "advertisers")

    got = {
        r[0]: (r[1], r[2], list(r[3]))
        for r in df.select("advertiser_id", "_typed.industry", "_typed.country", "_reasons").collect()
    }
    assert got == {
        "1": ("Food & Beverage", "GB", []),
        "2": ("Tech", "US", []),
        "3": ("Tech", None, ["invalid_country"]),
        "4": ("Tech", None, ["invalid_country"]),
    }


def test_performance_numbers_and_funnel_rules(spark: Any) -> None:
    rows = [
        ("1", "10", "2024-02-09", "100", "10", "1", "1.50", "9.99", None, "b", "f"),
        ("2", "10", "2024-02-09", "-1", "5", "6", "-0.01", "1", None, "b", "f"),
        ("3", "10", "2024-02-09", " 1 000 ", "N/A", "12abc", "1e3", "12.345", None, "b", "f"),
        ("4", "10", "2024-13-01", "9223372036854775808", "0", "0", "99999999999.99", "0", None, "b", "f"),
    ]
    result = reasons_of(with_row_reasons(bronze(spark, "performance", rows), "performance"), "performance_id")

    assert result == {
        "1": [],
        "2": ["negative_impressions", "negative_cost", "clicks_gt_impressions", "conversions_gt_clicks"],
        "3": ["invalid_impressions", "invalid_clicks", "invalid_conversions", "invalid_cost", "invalid_revenue"],
        "4": ["invalid_date", "invalid_impressions", "invalid_cost"],
    }


def test_orphans_are_judged_against_the_final_parent(spark: Any) -> None:
    rows = [
        ("1", "10", "2024-02-09", "1", "1", "1", "1", "1", None, "b", "f"),
        ("2", "11", "2024-02-09", "1", "1", "1", "1", "1", None, "b", "f"),
        ("3", None, "2024-02-09", "1", "1", "1", "1", "1", None, "b", "f"),
    ]
    parent = spark.createDataFrame([(10,)], "campaign_id int")

    df = with_orphan_reasons(with_row_reasons(bronze(spark, "performance", rows), "performance"), "performance", parent)

    assert reasons_of(df, "performance_id") == {"1": [], "2": ["orphan_campaign_id"], "3": ["missing_campaign_id"]}


def test_dedup_duplicates_conflicts_and_supersession(spark: Any) -> None:
    rows = [
        ("1", "A", "Tech", "US", "", None, "b1", "f1"),
        ("1", " A ", "tech", "us", None, None, "b1", "f2"),  # same after normalization: a duplicate
        ("2", "B", "Tech", "US", None, None, "b1", "f1"),
        ("2", "B2", "Tech", "US", None, None, "b1", "f2"),  # two versions in one batch: both quarantined
        ("3", "old", "Tech", "US", None, None, "b1", "f1"),
        ("3", "new", "Tech", "US", None, None, "b2", "f3"),  # the later batch wins
        ("4", "valid", "Tech", "US", None, None, "b1", "f1"),
        ("4", "", "Tech", "US", None, None, "b2", "f3"),  # a newer invalid version does not win
        ("5", "kept", "Tech", "US", None, None, "b1", "f1"),
        ("5", "x", "Tech", "US", None, None, "b2", "f3"),
        ("5", "y", "Tech", "US", None, None, "b2", "f3"),  # nor does a newer batch of conflicting versions
    ]
    out = with_outcome(with_row_reasons(bronze(spark, "advertisers", rows), "advertisers"), "advertisers")

    got = sorted(
        (r[0], r[1], r[2], list(r[3]))
        for r in out.select("advertiser_id", "advertiser_name", "_outcome", "_reasons").collect()
    )
    assert got == [
        ("1", " A ", "duplicate", []),
        ("1", "A", "silver", []),
        ("2", "B", "quarantined", ["conflicting_duplicate"]),
        ("2", "B2", "quarantined", ["conflicting_duplicate"]),
        ("3", "new", "silver", []),
        ("3", "old", "superseded", []),
        ("4", "", "quarantined", ["missing_advertiser_name"]),
        ("4", "valid", "silver", []),
        ("5", "kept", "silver", []),
        ("5", "x", "quarantined", ["conflicting_duplicate"]),
        ("5", "y", "quarantined", ["conflicting_duplicate"]),
    ]


def test_outputs_follow_the_contracts_with_lineage(spark: Any) -> None:
    rows = [("1", "A", "Tech", "US", None, None, "b1", "f1"), (None, None, None, None, None, "x", "b1", "f1")]
    classified = classify(bronze(spark, "advertisers", rows), "advertisers", None)

    good = silver_rows(classified, "advertisers", processed_at=AT)
    bad = quarantine_rows(classified, "advertisers", processed_at=AT)

    assert tuple(good.columns) == SILVER["advertisers"].column_names
    assert good.where(F.col("_silver_processed_at").isNull()).count() == 0
    assert [(r["_corrupt_record"], list(r["_reasons"]), r["_batch_id"]) for r in bad.collect()] == [
        ("x", ["malformed_line"], "b1")
    ]


def test_rule_catalogue_lists_every_rule_a_table_can_break() -> None:
    assert "orphan_campaign_id" in all_rule_names("performance")
    assert "invalid_advertiser_name" not in all_rule_names("advertisers")  # free text can only be missing
    assert all_rule_names("campaigns")[-1] == "conflicting_duplicate"
