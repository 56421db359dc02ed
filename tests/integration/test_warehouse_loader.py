"""The PostgreSQL loader against a real server: exact values, idempotent appends, atomic replaces, task retries."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from decimal import Context, Decimal, localcontext
from typing import Any, Literal

import pytest
from psycopg2 import sql

from lakehouse.adapters.loader import ROWS_PER_STREAM, LoadError, TableLoad, load, load_many
from lakehouse.adapters.spark import parallelism
from lakehouse.adapters.staging import STAGING_SCHEMA
from lakehouse.adapters.warehouse import connect, ensure_table
from lakehouse.contracts import Column, Table
from lakehouse.settings import PostgresSettings
from tests.hostile import HOSTILE, hostile_rows

pytestmark = pytest.mark.integration

SMALL = Table("small", (Column("id", "bigint"), Column("name", "string", required=True)), key=("id",))


def fetch(pg: PostgresSettings, query: sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
    conn = connect(pg)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


def table_rows(pg: PostgresSettings, schema: str, name: str) -> list[tuple[Any, ...]]:
    return fetch(pg, sql.SQL("select * from {} order by 1").format(sql.Identifier(schema, name)))


def small_df(spark: Any, ids: range, name: str = "v1") -> Any:
    return spark.createDataFrame([(i, f"{name}-{i}") for i in ids], SMALL.spark_schema()).repartition(
        2
    )  # one COPY stream per core of local[2,2]


def test_hostile_values_round_trip_exactly(spark: Any, pg_service: PostgresSettings, pg_schema: str) -> None:
    df = spark.createDataFrame(hostile_rows(), HOSTILE.spark_schema()).repartition(3)

    result = load(df, pg_service, HOSTILE, schema=pg_schema, mode="replace")

    assert result.rows == len(hostile_rows())
    actual = table_rows(pg_service, pg_schema, "hostile")
    for got, want in zip(actual, hostile_rows(), strict=True):
        for column, g, w in zip(HOSTILE.column_names, got, want, strict=True):
            assert (column, g) == (column, w)


def _columns(pg: PostgresSettings, schema: str, name: str) -> list[tuple[Any, ...]]:
    """``(column, type, nullable)`` as PostgreSQL's catalog reports them."""
    return fetch(
        pg,
        sql.SQL(
            "select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull from pg_attribute a"
            " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum"
        ),
        f'"{schema}"."{name}"',
    )


def _primary_key(pg: PostgresSettings, schema: str, name: str) -> list[str]:
    rows = fetch(
        pg,
        sql.SQL(
            "select a.attname from pg_index i"
            " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
            " where i.indrelid = %s::regclass and i.indisprimary order by array_position(i.indkey, a.attnum)"
        ),
        f'"{schema}"."{name}"',
    )
    return [r[0] for r in rows]


def test_the_table_is_created_from_the_contract(pg_service: PostgresSettings, pg_schema: str, spark: Any) -> None:
    """Types, NOT NULL on required and key columns, and the primary key, as PostgreSQL reports them."""
    load(small_df(spark, range(3)), pg_service, SMALL, schema=pg_schema, mode="replace")
    with contextlib.closing(connect(pg_service, autocommit=True)) as conn:
        ensure_table(conn, pg_schema, HOSTILE)

    assert _columns(pg_service, pg_schema, "small") == [("id", "bigint", False), ("name", "text", False)]
    assert _primary_key(pg_service, pg_schema, "small") == ["id"]
    assert _columns(pg_service, pg_schema, "hostile") == [
        ("id", "bigint", False),
        ("text_value", "text", True),
        ("money", "numeric(12,2)", True),
        ("day", "date", True),
        ("at", "timestamp with time zone", True),
        ("big", "bigint", True),
        ("small", "integer", True),
        ("flag", "boolean", True),
        ("ratio", "double precision", True),
        ("tags", "text[]", True),
    ]
    assert _primary_key(pg_service, pg_schema, "hostile") == ["id"]


def test_append_is_idempotent_per_batch(spark: Any, pg_service: PostgresSettings, pg_schema: str) -> None:
    first = load(small_df(spark, range(100)), pg_service, SMALL, schema=pg_schema, mode="append", batch_id="b1")
    again = load(small_df(spark, range(100)), pg_service, SMALL, schema=pg_schema, mode="append", batch_id="b1")
    second = load(small_df(spark, range(100, 150)), pg_service, SMALL, schema=pg_schema, mode="append", batch_id="b2")

    assert (first.rows, again.skipped, again.rows, second.rows) == (100, True, 0, 50)
    assert len(table_rows(pg_service, pg_schema, "small")) == 150


def test_a_load_takes_a_copy_stream_per_rows_per_stream_rows_it_expects(
    spark: Any, pg_service: PostgresSettings, pg_schema: str
) -> None:
    """Each COPY stream costs a task and a connection: a small table goes in one stream, a big
    one in one per ``ROWS_PER_STREAM`` rows up to the session's parallelism, a table of unknown size in as many as
    the parallelism and its partitions allow (``coalesce`` never adds partitions)."""
    many, one = small_df(spark, range(1000)).repartition(4), small_df(spark, range(1000)).repartition(1)
    cases = [(many, 1000), (many, ROWS_PER_STREAM + 1), (many, 10 * ROWS_PER_STREAM), (many, None), (one, None)]
    tables = [dataclasses.replace(SMALL, name=f"small_{i}") for i in range(len(cases))]
    loads = [TableLoad(df, table, pg_schema, expected) for (df, expected), table in zip(cases, tables, strict=True)]

    results = load_many(loads, pg_service, mode="replace")

    cap = parallelism(spark)
    assert [r.partitions for r in results] == [1, min(2, cap), min(4, cap), min(4, cap), 1]
    assert [r.rows for r in results] == [1000] * len(cases)
    for table in tables:
        assert [r[0] for r in table_rows(pg_service, pg_schema, table.name)] == list(range(1000))


def test_a_replace_into_a_new_table_publishes_the_staged_rows_without_copying_them(
    spark: Any, pg_service: PostgresSettings, pg_schema: str
) -> None:
    """A replace into a table that does not exist yet (every candidate of a run) renames the staged table in: the
    published rows are the ones the executors' COPYs wrote (one transaction per stream), not a copy the publish
    made (which would all carry the publish's transaction id). The table is the contract's all the same."""
    result = load(small_df(spark, range(1000)), pg_service, SMALL, schema=pg_schema, mode="replace")

    writers = fetch(pg_service, sql.SQL("select count(distinct xmin::text) from {}").format(
        sql.Identifier(pg_schema, "small")))  # fmt: skip
    assert (result.rows, result.partitions, writers) == (1000, 2, [(2,)])
    assert [r[0] for r in table_rows(pg_service, pg_schema, "small")] == list(range(1000))
    assert _columns(pg_service, pg_schema, "small") == [("id", "bigint", False), ("name", "text", False)]
    assert _primary_key(pg_service, pg_schema, "small") == ["id"]
    assert fetch(pg_service, sql.SQL("select tablename from pg_tables where schemaname = %s"), STAGING_SCHEMA) == []


def _grant_new_tables(cur: Any, schema: str) -> None:
    """Default privileges in ``schema``: every table created there is readable by ``lakehouse_test_grantee``."""
    cur.execute("select 1 from pg_roles where rolname = 'lakehouse_test_grantee'")
    if not cur.fetchone():
        cur.execute("create role lakehouse_test_grantee nologin")
    cur.execute(sql.SQL("alter default privileges in schema {} grant select on tables to lakehouse_test_grantee")
                .format(sql.Identifier(schema)))  # fmt: skip


def test_a_new_table_gets_its_schemas_default_privileges(
    spark: Any, pg_service: PostgresSettings, pg_schema: str
) -> None:
    """Grants a schema gives every new table (``alter default privileges``) reach a table a load creates there,
    however the load publishes it."""
    with contextlib.closing(connect(pg_service, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("create schema {}").format(sql.Identifier(pg_schema)))
        _grant_new_tables(cur, pg_schema)

    load(small_df(spark, range(10)), pg_service, SMALL, schema=pg_schema, mode="replace")

    granted = fetch(pg_service, sql.SQL("select has_table_privilege('lakehouse_test_grantee', %s, 'select')"),
                    f"{pg_schema}.small")  # fmt: skip
    assert granted == [(True,)]
    assert len(table_rows(pg_service, pg_schema, "small")) == 10


@pytest.mark.parametrize("publish", ["rename", "copy"])
def test_two_replaces_creating_the_same_table_at_once_both_succeed_and_one_load_wins(
    spark: Any, pg_service: PostgresSettings, pg_schema: str, publish: str
) -> None:
    """Two loads replace the same table, which neither finds when it starts: each stages to rename its rows in
    (or, when the schema has default privileges, to create the table and copy them in). Their publishes are made to
    meet: a transaction holding the schema's lock (an uncommitted ``drop schema``) queues both behind it, past any
    check either made. Released, the first creates the table; the second must then find it and replace its rows,
    not fail on the name the first took. The table ends holding one load's rows, whole."""
    with contextlib.closing(connect(pg_service, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("create schema {}").format(sql.Identifier(pg_schema)))
        if publish == "copy":
            _grant_new_tables(cur, pg_schema)
    loads = {"a": range(0, 300), "b": range(200, 400)}
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = load(small_df(spark, loads[name], name), pg_service, SMALL, schema=pg_schema,
                                  mode="replace").rows  # fmt: skip
        except Exception as exc:  # the outcome under test
            outcomes[name] = exc

    blocker = connect(pg_service)
    watcher = connect(pg_service, autocommit=True)  # a transaction would see one snapshot of pg_stat_activity
    try:
        with blocker.cursor() as cur:
            cur.execute(sql.SQL("drop schema {}").format(sql.Identifier(pg_schema)))  # rolled back below
        threads = [threading.Thread(target=run, args=(name,)) for name in loads]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 180
        waiting = 0
        with watcher.cursor() as cur:
            while waiting < 2 and time.monotonic() < deadline and any(t.is_alive() for t in threads):
                time.sleep(0.2)
                cur.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock'")
                waiting = int(cur.fetchone()[0])
        assert waiting == 2, f"both publishes should have queued behind the schema's lock: {outcomes}"
    finally:
        watcher.close()
        blocker.rollback()
        blocker.close()
    for thread in threads:
        thread.join(180)

    assert outcomes == {"a": 300, "b": 200}
    ids = [r[0] for r in table_rows(pg_service, pg_schema, "small")]
    names = {r[1].split("-")[0] for r in table_rows(pg_service, pg_schema, "small")}
    assert (ids, names) in [(list(loads["a"]), {"a"}), (list(loads["b"]), {"b"})]
    assert _primary_key(pg_service, pg_schema, "small") == ["id"]


@pytest.mark.parametrize("mode", ["append", "replace"])  # a replace into a new table renames its staged table in
def test_a_retried_task_does_not_duplicate_rows(
    spark: Any, pg_service: PostgresSettings, pg_schema: str, mode: Literal["append", "replace"]
) -> None:
    """Every partition's first attempt fails after its rows committed: the retries find them claimed."""

    def fail_first_attempt_after_commit(partition: int, attempt: int) -> None:
        if attempt == 0:
            raise RuntimeError(f"injected failure after partition {partition} committed")

    result = load(
        small_df(spark, range(1000)),
        pg_service,
        SMALL,
        schema=pg_schema,
        mode=mode,
        batch_id="retry" if mode == "append" else None,
        after_partition_commit=fail_first_attempt_after_commit,
    )

    rows = table_rows(pg_service, pg_schema, "small")
    assert result.rows == 1000
    assert [r[0] for r in rows] == list(range(1000))  # no duplicates (and the primary key would refuse them)


def test_a_replace_failing_in_its_last_partition_leaves_the_table_intact(
    spark: Any, pg_service: PostgresSettings, pg_schema: str
) -> None:
    load(small_df(spark, range(10), "old"), pg_service, SMALL, schema=pg_schema, mode="replace")
    before = table_rows(pg_service, pg_schema, "small")

    def fail_last_partition(partition: int, attempt: int) -> None:
        if partition == 1:
            raise RuntimeError("injected failure in the last partition")

    with pytest.raises(LoadError, match=f"loading {pg_schema}.small failed; the table is unchanged"):
        load(
            small_df(spark, range(500), "new"),
            pg_service,
            SMALL,
            schema=pg_schema,
            mode="replace",
            after_partition_commit=fail_last_partition,
        )

    assert table_rows(pg_service, pg_schema, "small") == before
    leftovers = fetch(
        pg_service, sql.SQL("select tablename from pg_tables where schemaname = %s and tablename <> 'small'"), pg_schema
    )
    assert leftovers == []
    stages = fetch(
        pg_service,
        sql.SQL("select tablename from pg_tables where schemaname = %s and strpos(tablename, %s) > 0"),
        STAGING_SCHEMA,
        pg_schema,
    )
    assert stages == []


def test_replace_keeps_dependent_views_working(spark: Any, pg_service: PostgresSettings, pg_schema: str) -> None:
    load(small_df(spark, range(5), "old"), pg_service, SMALL, schema=pg_schema, mode="replace")
    conn = connect(pg_service, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("create view {} as select count(*) as n, min(name) as first from {}").format(
                    sql.Identifier(pg_schema, "small_summary"), sql.Identifier(pg_schema, "small")
                )
            )
    finally:
        conn.close()

    load(small_df(spark, range(7), "new"), pg_service, SMALL, schema=pg_schema, mode="replace")

    assert table_rows(pg_service, pg_schema, "small_summary") == [(7, "new-0")]


def test_a_constraint_violation_is_a_clear_error_and_changes_nothing(
    spark: Any, pg_service: PostgresSettings, pg_schema: str
) -> None:
    load(small_df(spark, range(3)), pg_service, SMALL, schema=pg_schema, mode="replace")
    duplicate_keys = spark.createDataFrame([(1, "a"), (1, "b")], SMALL.spark_schema())

    with pytest.raises(LoadError, match=r"Key \(id\)=\(1\) is duplicated"):
        load(duplicate_keys, pg_service, SMALL, schema=pg_schema, mode="replace")

    assert len(table_rows(pg_service, pg_schema, "small")) == 3


WIDE = Table(
    "wide",
    (
        Column("id", "bigint"),
        Column("cents", "decimal(12,2)"),
        Column("fraction", "decimal(4,4)"),
        Column("whole", "decimal(18,0)"),
        Column("fine", "decimal(18,17)"),
        Column("huge", "decimal(38,10)"),
    ),
    key=("id",),
)


def test_decimals_of_every_width_round_trip_exactly(spark: Any, pg_service: PostgresSettings, pg_schema: str) -> None:
    with localcontext(Context(prec=38)):  # the default context (28 digits) would round the widest
        extremes = [Decimal(10**p - 1).scaleb(-s) for p, s in ((12, 2), (4, 4), (18, 0), (18, 17), (38, 10))]
        negated = [-v for v in extremes]
    rows = [
        (1, *extremes),
        (2, *negated),
        (3, Decimal("0.00"), Decimal("0.0001"), Decimal(1), Decimal("0.00000000000000001"), Decimal("-0.0000000001")),
        (4, None, None, None, None, None),
    ]
    df = spark.createDataFrame(rows, WIDE.spark_schema()).repartition(2)

    load(df, pg_service, WIDE, schema=pg_schema, mode="replace")

    assert table_rows(pg_service, pg_schema, "wide") == rows
    as_text = fetch(
        pg_service, sql.SQL("select huge::text from {} where id = 1").format(sql.Identifier(pg_schema, "wide"))
    )
    assert as_text == [("9999999999999999999999999999.9999999999",)]


def test_timestamps_are_exact_whatever_the_server_time_zone(spark: Any, pg_database: PostgresSettings) -> None:
    with contextlib.closing(connect(pg_database, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("alter database {} set timezone = 'Pacific/Chatham'").format(sql.Identifier(pg_database.database))
        )
    events = Table("events", (Column("id", "bigint"), Column("at", "timestamp")), key=("id",))
    instants = [
        dt.datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=dt.UTC),  # Europe's clocks go forward at 01:00 UTC
        dt.datetime(2024, 4, 6, 13, 59, 59, tzinfo=dt.UTC),  # Chatham's go back at 14:00 UTC
        dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
        None,
    ]
    df = spark.createDataFrame(list(enumerate(instants)), events.spark_schema())

    load(df, pg_database, events, schema="tz", mode="replace")

    assert [at for _, at in table_rows(pg_database, "tz", "events")] == instants
    utc = fetch(
        pg_database,
        sql.SQL("select to_char(at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') from tz.events where id = 0"),
    )
    assert utc == [("2024-03-31 00:59:59.999999",)]


def test_a_replace_with_no_rows_empties_the_table(spark: Any, pg_service: PostgresSettings, pg_schema: str) -> None:
    load(small_df(spark, range(10)), pg_service, SMALL, schema=pg_schema, mode="replace")

    result = load(small_df(spark, range(0)), pg_service, SMALL, schema=pg_schema, mode="replace")

    assert result.rows == 0
    assert table_rows(pg_service, pg_schema, "small") == []
