"""A Delta table written with the lake adapter reads back equal and is really in the storage, checked without Spark,
on real MinIO over s3a and on a local folder; plain Parquet on s3a goes through the magic committer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

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


@pytest.fixture(params=["local", "s3"])
def lake_root(request: pytest.FixtureRequest, local_lake: str) -> tuple[str, Callable[[], dict[str, int]]]:
    """A lake root (a local folder or a fresh MinIO bucket) and a function listing what is stored below it,
    ``{relative key: size}``, read with the file system or an S3 client rather than through Spark."""
    if request.param == "local":
        folder = Path(url2pathname(urlsplit(local_lake).path))
        return local_lake, lambda: {
            p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()
        }
    bucket: str = request.getfixturevalue("s3_bucket")
    client = s3_client(request.getfixturevalue("s3_service"))

    def objects() -> dict[str, int]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}

    return f"s3a://{bucket}", objects


def test_a_table_written_to_the_lake_reads_back_equal_and_is_delta_in_the_storage_itself(
    spark: Any, lake_root: tuple[str, Callable[[], dict[str, int]]]
) -> None:
    root, stored = lake_root
    uri = f"{root}/bronze/campaigns"
    expected = spark.createDataFrame(ROWS, SCHEMA)

    result = lake.write_table(expected, uri, mode="replace", partition_by=("day",))

    assert_df_equality(lake.read_table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    # The storage holds partitioned Parquet and the Delta transaction log, and the write reported what is there.
    objects = stored()
    parquet = {key: size for key, size in objects.items() if key.endswith(".parquet")}
    assert {key.split("/")[2] for key in parquet} == {
        "day=2024-02-09",
        "day=2024-02-10",
        "day=1999-12-31",
        "day=__HIVE_DEFAULT_PARTITION__",
    }
    assert all(key.startswith("bronze/campaigns/day=") for key in parquet)
    assert "bronze/campaigns/_delta_log/00000000000000000000.json" in objects
    assert (result.files, result.bytes) == (len(parquet), sum(parquet.values()))
    assert lake.list_tables(spark, f"{root}/bronze") == ["campaigns"]


def test_plain_parquet_on_s3a_goes_through_the_magic_committer(
    spark: Any, s3_bucket: str, s3_service: S3Settings
) -> None:
    spark.createDataFrame(ROWS, SCHEMA).write.parquet(f"s3a://{s3_bucket}/plain")

    body = s3_client(s3_service).get_object(Bucket=s3_bucket, Key="plain/_SUCCESS")["Body"].read()

    # S3A committers write a JSON _SUCCESS manifest naming the committer; the classic one writes an empty file.
    assert b'"committer":"magic"' in body.replace(b" ", b"")
