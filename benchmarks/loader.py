"""Benchmark the PostgreSQL loader against raw COPY and Spark's JDBC writer, on one machine, in one run.

    python benchmarks/loader.py [--rows N] [--partitions P]

(a) raw single-stream ``COPY FROM STDIN`` of the same rows as CSV with psycopg2: the physical floor;
(b) ``lakehouse.adapters.loader.load`` (parallel COPY from the executors, staged, published atomically) into a
    table that does not exist yet, as every candidate table of a pipeline run: the staged table is renamed in;
(b') the same load replacing an existing table: the publish copies the staged rows into it;
(c) Spark's JDBC writer with ``reWriteBatchedInserts=true``.
Every method loads the same cached DataFrame of performance rows into an identical table with a primary key.
PostgreSQL comes from the PG* variables, else an embedded server in a temporary directory.
The last line is ``RESULT loader_vs_copy=<b/a> replace_vs_copy=<b'/a> loader_vs_jdbc=<b/c>`` (ratios of rows/s).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.adapters.jars import POSTGRES_JDBC
from lakehouse.adapters.loader import load
from lakehouse.adapters.spark import build_spark
from lakehouse.adapters.warehouse import connect, create_table_sql
from lakehouse.contracts import SILVER, Table, source_columns
from lakehouse.services import provide
from lakehouse.settings import PostgresSettings, load_settings

# The silver performance contract without lineage columns: the rows a loader moves.
PERFORMANCE = Table("performance", source_columns("performance"), key=SILVER["performance"].key)


def performance_rows(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """Deterministic, realistic-looking performance rows, cached so no method pays for generating them."""
    impressions = (F.col("id") * 7919 % 50_000 + 100).cast("bigint")
    clicks = (impressions * (F.col("id") % 50 + 1) / 1000).cast("bigint")
    df = spark.range(0, rows, numPartitions=partitions).select(
        (F.col("id") + 1).alias("performance_id"),
        (F.col("id") % 5000 + 1).cast("int").alias("campaign_id"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 365).cast("int")).alias("date"),
        impressions.alias("impressions"),
        clicks.alias("clicks"),
        (clicks * (F.col("id") % 10) / 100).cast("bigint").alias("conversions"),
        (clicks * 0.37).cast("decimal(12,2)").alias("cost"),
        (clicks * (F.col("id") % 10) * 1.9).cast("decimal(12,2)").alias("revenue"),
    )
    df = df.cache()
    df.count()
    return df


def reset_table(pg: PostgresSettings, schema: str) -> None:
    with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(f'drop schema if exists "{schema}" cascade; create schema "{schema}"')
        cur.execute(create_table_sql(schema, PERFORMANCE))


def count_rows(pg: PostgresSettings, schema: str) -> int:
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur:
        cur.execute(f'select count(*) from "{schema}".performance')
        row = cur.fetchone()
        return int(row[0]) if row else 0


def raw_copy(df: DataFrame, pg: PostgresSettings, schema: str, scratch: Path) -> float:
    """CSV written beforehand (not timed); the timed part is one COPY FROM STDIN stream from that file."""
    csv_dir = scratch / "csv"
    df.coalesce(1).write.mode("overwrite").option("header", "false").csv(str(csv_dir))
    [csv_file] = list(csv_dir.glob("part-*.csv"))
    reset_table(pg, schema)
    columns = ", ".join(f'"{c}"' for c in PERFORMANCE.column_names)
    with contextlib.closing(connect(pg)) as conn, conn.cursor() as cur, csv_file.open("rb") as f:
        started = time.perf_counter()
        cur.copy_expert(f'copy "{schema}".performance ({columns}) from stdin with (format csv)', f, size=1 << 20)
        conn.commit()
        return time.perf_counter() - started


def loader(df: DataFrame, pg: PostgresSettings, schema: str, *, existing: bool) -> float:
    reset_table(pg, schema)
    if not existing:
        with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(f'drop table "{schema}".performance')
    started = time.perf_counter()
    load(df, pg, PERFORMANCE, schema=schema, mode="replace")
    return time.perf_counter() - started


def jdbc(df: DataFrame, pg: PostgresSettings, schema: str) -> float:
    reset_table(pg, schema)
    properties = {
        "user": pg.user,
        "driver": "org.postgresql.Driver",
        "reWriteBatchedInserts": "true",
        "batchsize": "10000",
    }
    if pg.password is not None:
        properties["password"] = pg.password.reveal()
    url = f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.database}"
    started = time.perf_counter()
    df.write.jdbc(url, f'"{schema}".performance', mode="append", properties=properties)
    return time.perf_counter() - started


def jvm_peak_rss_mb(spark: SparkSession) -> float:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # type: ignore[union-attr]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="performance rows (default 1,000,000)")
    parser.add_argument(
        "--partitions", type=int, default=os.cpu_count() or 2, help="Spark partitions (default: one per core)"
    )
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest counts (default 3)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        scratch = Path(tmp)
        settings = load_settings(
            {"LAKEHOUSE_DATA_DIR": str(scratch), "LAKEHOUSE_SPARK_MASTER": args.master}, dotenv_path=None
        )
        spark = build_spark(settings, app_name="loader-benchmark", extra_artifacts=(POSTGRES_JDBC,))
        with provide.postgres(load_settings(dotenv_path=None), data_dir=scratch / "pgdata") as pg:
            df = performance_rows(spark, args.rows, args.partitions)
            schema = "bench_loader"
            timings: dict[str, float] = {}
            methods: tuple[tuple[str, Callable[[], float]], ...] = (
                ("raw COPY (1 stream)", lambda: raw_copy(df, pg, schema, scratch)),
                ("loader, new table", lambda: loader(df, pg, schema, existing=False)),
                ("loader, replace", lambda: loader(df, pg, schema, existing=True)),
                ("Spark JDBC", lambda: jdbc(df, pg, schema)),
            )
            for name, run in methods:
                seconds = min(run() for _ in range(args.repeat))
                loaded = count_rows(pg, schema)
                if loaded != args.rows:
                    print(f"{name}: loaded {loaded} rows, expected {args.rows}", file=sys.stderr)
                    return 1
                timings[name] = seconds
                print(f"{name:<22} {seconds:8.2f} s  {args.rows / seconds:>12,.0f} rows/s", flush=True)
            python_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"driver peak RSS: python {python_rss:.0f} MB, JVM {jvm_peak_rss_mb(spark):.0f} MB")
        spark.stop()
    a, b, r, c = (timings[k] for k in ("raw COPY (1 stream)", "loader, new table", "loader, replace", "Spark JDBC"))
    # Ratios of throughput (rows/s), i.e. inverse ratios of time.
    print(f"RESULT loader_vs_copy={a / b:.2f} replace_vs_copy={a / r:.2f} loader_vs_jdbc={c / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
