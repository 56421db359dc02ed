"""The Delta lake adapter on a local folder and on real MinIO over s3a: exact round trips, idempotent
appends, all-or-nothing replaces, and one file per partition value per write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.adapters import lake
from tests.hostile import HOSTILE, hostile_rows

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def table_uri(request: pytest.FixtureRequest, local_lake: str) -> Callable[[str], str]:
    """A function naming a fresh table location, on a local folder or in a fresh MinIO bucket."""
    if request.param == "local":
        return lambda name: f"{local_lake}/silver/{name}"
    bucket = request.getfixturevalue("s3_bucket")
    return lambda name: f"s3a://{bucket}/silver/{name}"


def _hostile_df(spark: Any) -> Any:
    return spark.createDataFrame(hostile_rows(), HOSTILE.spark_schema())


def _data_files_of_last_commit(spark: Any, uri: str) -> list[str]:
    version = lake.table_version(spark, uri)
    log = spark.read.json(f"{uri}/_delta_log/{version:020d}.json")
    return [r.path for r in log.where(F.col("add").isNotNull()).select("add.path").collect()]


def test_hostile_round_trip(spark: Any, table_uri: Callable[[str], str]) -> None:
    uri = table_uri("hostile")
    expected = _hostile_df(spark)

    lake.write_table(expected, uri, mode="replace", partition_by=HOSTILE.partition_by)

    assert_df_equality(lake.read_table(spark, uri), expected, ignore_row_order=True, ignore_column_order=True)


def test_one_file_per_partition_value_per_write(spark: Any, table_uri: Callable[[str], str]) -> None:
    uri = table_uri("files")
    df = spark.range(0, 3000, numPartitions=6).withColumn("bucket", (F.col("id") % 4).cast("int"))

    result = lake.write_table(df, uri, mode="replace", partition_by=("bucket",))
    replaced = _data_files_of_last_commit(spark, uri)
    assert (result.written, result.files) == (True, 4)
    assert result.bytes > 0
    lake.write_table(df.where("id < 2"), uri, mode="append")
    appended = _data_files_of_last_commit(spark, uri)

    assert sorted(f.split("/")[0] for f in replaced) == ["bucket=0", "bucket=1", "bucket=2", "bucket=3"]
    assert sorted(f.split("/")[0] for f in appended) == ["bucket=0", "bucket=1"]


def test_an_unpartitioned_write_is_one_file_not_one_per_task(spark: Any, table_uri: Callable[[str], str]) -> None:
    uri = table_uri("single")

    lake.write_table(spark.range(0, 3000, numPartitions=6), uri, mode="replace")

    assert len(_data_files_of_last_commit(spark, uri)) == 1


def test_append_with_an_idempotency_key_writes_once(spark: Any, table_uri: Callable[[str], str]) -> None:
    uri = table_uri("appends")
    batch = spark.range(100).withColumn("batch", F.lit("b1"))

    written = [
        lake.write_table(batch, uri, mode="append", idempotency_key="bronze/campaigns:b1").written,
        lake.write_table(batch, uri, mode="append", idempotency_key="bronze/campaigns:b1").written,
        lake.write_table(batch.withColumn("batch", F.lit("b2")), uri, mode="append", idempotency_key="x:b2").written,
    ]

    assert written == [True, False, True]
    counts = {r.batch: r["count"] for r in lake.read_table(spark, uri).groupBy("batch").count().collect()}
    assert counts == {"b1": 100, "b2": 100}


def test_a_replace_that_fails_in_its_last_partition_changes_nothing(
    spark: Any, table_uri: Callable[[str], str]
) -> None:
    uri = table_uri("atomic")
    lake.write_table(spark.range(50).withColumn("v", F.lit("old")), uri, mode="replace")
    version = lake.table_version(spark, uri)

    @F.udf(T.StringType())
    def explode_on_last(i: int) -> str:
        if i == 9_999:
            raise ValueError("injected failure in the last partition")
        return "new"

    new = spark.range(0, 10_000, numPartitions=4).withColumn("v", explode_on_last("id"))
    with pytest.raises(Exception, match="injected failure"):
        lake.write_table(new, uri, mode="replace")

    assert lake.table_version(spark, uri) == version
    after = lake.read_table(spark, uri)
    assert after.count() == 50
    assert {r.v for r in after.select("v").distinct().collect()} == {"old"}


@pytest.mark.parametrize("rewrite", [False, True], ids=["merge", "rewrite"])
def test_replace_matching_deletes_the_matched_rows_and_adds_the_inserts_in_one_commit(
    spark: Any, table_uri: Callable[[str], str], rewrite: bool
) -> None:
    """Both ways give the same rows: a target row goes when every match pair equals a delete row's (a null never
    equals, so a null key is matched through a text the caller coalesces it to), every insert is added, and it
    is one commit; the rewrite leaves one file."""
    uri = table_uri("matching")
    schema = "id int, parent string, v string"
    rows = [(1, "a", "old"), (2, "a", "old"), (3, "b", "old"), (None, "b", "old"), (4, None, "old")]
    lake.write_table(spark.createDataFrame(rows, schema), uri, mode="replace")
    lake.write_table(spark.createDataFrame([(5, "c", "old")], schema), uri, mode="append")  # a second file
    version = lake.table_version(spark, uri)
    deletes = spark.createDataFrame([("1", "a"), ("3", "a"), ("~", "b"), ("4", "~"), ("9", "z")], "k string, p string")
    inserts = spark.createDataFrame([(1, "a", "new"), (6, "d", "new")], schema)
    match = [
        ("k", F.coalesce(F.col("id").cast("string"), F.lit("~"))),
        ("p", F.coalesce(F.col("parent"), F.lit("~"))),
    ]

    result = lake.replace_matching(inserts, uri, deletes=deletes, match=match, rewrite=rewrite)

    assert result.written
    assert result.version == lake.table_version(spark, uri) == (version or 0) + 1
    after = sorted(tuple(r) for r in lake.read_table(spark, uri).collect())
    assert after == sorted(
        [(1, "a", "new"), (2, "a", "old"), (3, "b", "old"), (5, "c", "old"), (6, "d", "new")], key=str
    )
    if rewrite:
        assert len(_data_files_of_last_commit(spark, uri)) == 1
        assert lake.table_size(spark, uri)[0] == 1


@pytest.mark.parametrize("rewrite", [False, True], ids=["merge", "rewrite"])
def test_replace_matching_within_deletes_only_rows_meeting_it(
    spark: Any, table_uri: Callable[[str], str], rewrite: bool
) -> None:
    """``within`` is part of the match: a target row whose key is a delete's but which does not meet it stays."""
    uri = table_uri("matching_within")
    schema = "id int, day date, v string"
    jan, feb = dt.date(2024, 1, 10), dt.date(2024, 2, 10)
    lake.write_table(spark.createDataFrame([(1, jan, "old"), (2, jan, "old")], schema), uri, mode="replace")
    lake.write_table(spark.createDataFrame([(1, feb, "old"), (3, feb, "old")], schema), uri, mode="append")
    deletes = spark.createDataFrame([(1,), (3,)], "k int")
    inserts = spark.createDataFrame([(1, jan, "new")], schema)
    january = F.col("day").between(dt.date(2024, 1, 1), dt.date(2024, 1, 31))

    lake.replace_matching(inserts, uri, deletes=deletes, match=[("k", F.col("id"))], rewrite=rewrite, within=january)

    after = sorted(tuple(r) for r in lake.read_table(spark, uri).collect())
    assert after == [(1, jan, "new"), (1, feb, "old"), (2, jan, "old"), (3, feb, "old")]


def test_a_merge_within_a_range_reads_only_the_files_that_may_hold_it(spark: Any, local_lake: str) -> None:
    """The MERGE skips the files ``within`` excludes by their statistics: with February's file moved away, a
    MERGE within January still commits (one that read every file would fail on the missing one), and touches
    nothing of February."""
    uri = f"{local_lake}/silver/matching_skips"
    schema = "id int, day date, v string"
    jan, feb = dt.date(2024, 1, 10), dt.date(2024, 2, 10)
    lake.write_table(spark.createDataFrame([(1, jan, "old"), (2, jan, "old")], schema), uri, mode="replace")
    lake.write_table(spark.createDataFrame([(3, feb, "old")], schema), uri, mode="append")
    [february] = [Path(uri.removeprefix("file:")) / name for name in _data_files_of_last_commit(spark, uri)]
    january = F.col("day").between(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    deletes = spark.createDataFrame([(1,)], "k int")
    inserts = spark.createDataFrame([(1, jan, "new")], schema)
    aside = february.with_name("aside.parquet")
    february.rename(aside)
    try:
        with pytest.raises(Exception, match=r"(?i)file.*(not (found|exist))|FileNotFound|does not exist"):
            lake.replace_matching(inserts, uri, deletes=deletes, match=[("k", F.col("id"))])  # reads every file
        result = lake.replace_matching(inserts, uri, deletes=deletes, match=[("k", F.col("id"))], within=january)
    finally:
        aside.rename(february)

    assert result.written
    after = sorted(tuple(r) for r in lake.read_table(spark, uri).collect())
    assert after == [(1, jan, "new"), (2, jan, "old"), (3, feb, "old")]


def test_missing_table_has_no_version(spark: Any, table_uri: Callable[[str], str]) -> None:
    assert lake.table_version(spark, table_uri("nothing_here")) is None


def test_parallel_commits_run_at_once_carry_the_callers_tags_and_fail_after_all_have_ended(
    spark: Any, local_lake: str
) -> None:
    """``in_parallel`` (the silver publish's six Delta commits): the tasks overlap (a barrier only two concurrent
    tasks pass), each task's Spark jobs carry the caller's job tags, every commit lands, and an error is raised
    only once every task has ended: the first task's, naming every other task's that failed."""
    import threading
    import time

    from lakehouse.adapters.spark import in_parallel, tagged

    barrier = threading.Barrier(2, timeout=60)
    uris = [f"{local_lake}/silver/parallel_{n}" for n in range(2)]

    def commit(uri: str) -> tuple[set[str], bool]:
        barrier.wait()  # raises BrokenBarrierError unless the other task is running too
        written = lake.write_table(spark.range(10), uri, mode="replace").written
        return set(spark.getTags()), written

    with tagged(spark, "silver"):
        results = in_parallel(spark, [lambda u=uri: commit(u) for uri in uris])  # type: ignore[misc]
    assert results == [({"lakehouse-silver"}, True)] * 2
    assert [lake.read_table(spark, uri).count() for uri in uris] == [10, 10]
    assert spark.getTags() == set(), "the caller's tags end with its block"

    ended = threading.Event()

    def slow() -> None:
        time.sleep(1)
        ended.set()

    def broken() -> None:
        raise RuntimeError("the second commit failed")

    with pytest.raises(RuntimeError, match="the second commit failed"):
        in_parallel(spark, [slow, broken])
    assert ended.is_set(), "the error waited for the other task to end"

    def also_broken() -> None:
        raise ValueError("the third commit failed too")

    with pytest.raises(RuntimeError, match="the second commit failed") as raised:
        in_parallel(spark, [slow, broken, also_broken])
    assert raised.value.__notes__ == ["another task failed too: ValueError: the third commit failed too"], (
        "no task's error is lost"
    )
