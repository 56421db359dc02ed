"""Bronze transforms and the Spark-side parser: metadata, corrupt lines and header matching, with null rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality

from lakehouse.bronze.landing import discover
from lakehouse.bronze.parse import parse_files
from lakehouse.bronze.transforms import records_only, with_bronze_metadata
from lakehouse.contracts import SOURCE_COLUMNS, bronze_table

UTC = dt.UTC
ADVERTISERS = SOURCE_COLUMNS["advertisers"]


def test_metadata_is_added_in_contract_order_and_nulls_stay_null(spark: Any) -> None:
    source = spark.createDataFrame(
        [("1", "Acme", "Retail", "US", "Jane", None, "a.csv"), (None, None, None, None, None, "1,bad", "a.csv")],
        ", ".join(f"`{c}` string" for c in (*ADVERTISERS, "_corrupt_record", "_source_file")),
    )
    at = dt.datetime(2024, 2, 9, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 04:30 UTC next day

    result = with_bronze_metadata(source, table="advertisers", batch_id="b1", ingested_at=at)

    expected = spark.createDataFrame(
        [
            (
                "1",
                "Acme",
                "Retail",
                "US",
                "Jane",
                None,
                dt.datetime(2024, 2, 10, 4, 30, tzinfo=UTC),
                "b1",
                "a.csv",
                dt.date(2024, 2, 10),
            ),
            (
                None,
                None,
                None,
                None,
                None,
                "1,bad",
                dt.datetime(2024, 2, 10, 4, 30, tzinfo=UTC),
                "b1",
                "a.csv",
                dt.date(2024, 2, 10),
            ),
        ],
        bronze_table("advertisers").spark_schema(),
    )
    assert_df_equality(result, expected, ignore_nullable=True)
    assert tuple(result.columns) == bronze_table("advertisers").column_names


def test_naive_timestamps_are_refused(spark: Any) -> None:
    source = spark.createDataFrame(
        [], ", ".join(f"`{c}` string" for c in (*ADVERTISERS, "_corrupt_record", "_source_file"))
    )

    with pytest.raises(ValueError, match="timezone-aware"):
        with_bronze_metadata(source, table="advertisers", batch_id="b", ingested_at=dt.datetime(2024, 1, 1))


def test_spark_parsing_keeps_every_record_and_counts_per_file(spark: Any, tmp_path: Path) -> None:
    """Pins the behaviour for short, long and broken lines, quoted newlines, blank lines and header order."""
    (tmp_path / "advertisers_1.csv").write_text(
        "Country, ADVERTISER_ID,advertiser_name,industry,account_manager\n"
        'US,1,"Acme, Inc.",Retail,\n'
        "\n"
        'GB,2,"two\nlines",Tech,Bob\n'
        "US,3,short\n"
        "US,4,a,b,c,too long\n"
        'US,5,"Acme" Corp,Retail,Bob\n'
    )
    (tmp_path / "advertisers_2.csv").write_text(",".join(ADVERTISERS) + "\n" + "6,Zed,Retail,FR,\n")
    files, _ = discover(tmp_path)

    parsed = parse_files(spark, "advertisers", files)
    records = records_only(parsed.frame, "advertisers")

    expected = spark.createDataFrame(
        [
            ("1", "Acme, Inc.", "Retail", "US", "", None, "advertisers_1.csv"),
            ("2", "two\nlines", "Tech", "GB", "Bob", None, "advertisers_1.csv"),
            (None, None, None, None, None, "US,3,short", "advertisers_1.csv"),
            (None, None, None, None, None, "US,4,a,b,c,too long", "advertisers_1.csv"),
            (None, None, None, None, None, 'US,5,"Acme" Corp,Retail,Bob', "advertisers_1.csv"),
            ("6", "Zed", "Retail", "FR", "", None, "advertisers_2.csv"),
        ],
        ", ".join(f"`{c}` string" for c in (*ADVERTISERS, "_corrupt_record", "_source_file")),
    )
    assert_df_equality(records, expected, ignore_row_order=True, ignore_nullable=True)
    assert parsed.stats == {"advertisers_1.csv": (5, 3, 1), "advertisers_2.csv": (1, 0, 0)}
