"""A Delta table written to the lake reads back equal, on real MinIO over s3a and on a local folder."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from chispa import assert_df_equality

from lakehouse.adapters import lake
from lakehouse.adapters.objectstore import s3_client
from lakehouse.settings import S3Settings

pytestmark = pytest.mark.integration

SCHEMA = "id bigint, name string, budget decimal(12,2), day date, at timestamp"
ROWS = [
    (1, "Search – brand", Decimal("12.50"), dt.date(2024, 2, 9), dt.datetime(2024, 2, 9, 12, 0)),
    (2, 'quote " and, comma', Decimal("0.00"), dt.date(2024, 2, 10), None),
    (3, None, None, None, None),
    (4, "emoji 📈 and\nnewline", Decimal("9999999999.99"), dt.date(1999, 12, 31), dt.datetime(2000, 1, 1)),
]


def _write_and_read(spark: Any, uri: str) -> None:
    expected = spark.createDataFrame(ROWS, SCHEMA)
    expected.write.format("delta").partitionBy("day").save(uri)

    actual = spark.read.format("delta").load(uri)

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_delta_round_trip_on_minio_over_s3a(spark: Any, s3_bucket: str, s3_service: S3Settings) -> None:
    uri = f"s3a://{s3_bucket}/bronze/campaigns"

    _write_and_read(spark, uri)

    # An independent client sees Parquet data files and the Delta transaction log in the bucket.
    keys = [
        obj["Key"]
        for page in s3_client(s3_service).get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for obj in page.get("Contents", [])
    ]
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert parquet
    assert all(k.startswith("bronze/campaigns/day=") for k in parquet)
    assert "bronze/campaigns/_delta_log/00000000000000000000.json" in keys
    assert lake.list_tables(spark, f"s3a://{s3_bucket}/bronze") == ["campaigns"]


def test_delta_round_trip_on_a_local_folder(spark: Any, local_lake: str) -> None:
    uri = f"{local_lake}/bronze/campaigns"

    _write_and_read(spark, uri)

    assert lake.list_tables(spark, f"{local_lake}/bronze") == ["campaigns"]


def test_plain_parquet_on_s3a_goes_through_the_magic_committer(
    spark: Any, s3_bucket: str, s3_service: S3Settings
) -> None:
    spark.createDataFrame(ROWS, SCHEMA).write.parquet(f"s3a://{s3_bucket}/plain")

    body = s3_client(s3_service).get_object(Bucket=s3_bucket, Key="plain/_SUCCESS")["Body"].read()

    # S3A committers write a JSON _SUCCESS manifest naming the committer; the classic one writes an empty file.
    assert b'"committer":"magic"' in body.replace(b" ", b"")
