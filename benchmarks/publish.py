"""Benchmark publishing a table: the MVCC-safe ``delete`` + ``insert`` of write-audit-publish against the
``truncate`` + ``insert`` it replaced, on one machine, in one run.

    python benchmarks/publish.py [--rows N] [--repeat R]

Both replace a populated ``silver.performance``-shaped table (primary key kept) with the N rows of a candidate
table, in one transaction each:
(a) ``truncate``, drop the primary key, ``insert ... select``, restore the key (the loader's ``replace``, which
    shows an older REPEATABLE READ snapshot an empty table and waits for every reader);
(b) :func:`lakehouse.adapters.publish.publish_candidates`: ``delete`` + ``insert ... select`` with the key
    maintained, verified (what silver and gold publish with now).
PostgreSQL comes from the PG* variables, else an embedded server in a temporary directory.
The last line is ``RESULT delete_vs_truncate=<b/a>`` (time ratio: above 1 means the safe publish is slower).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from psycopg2 import sql

from lakehouse.adapters.publish import candidate_schema, drop_candidates, publish_candidates
from lakehouse.adapters.warehouse import connect, create_table_sql, drop_primary_key
from lakehouse.contracts import SILVER
from lakehouse.services import provide
from lakehouse.settings import PostgresSettings, load_settings

TABLE = SILVER["performance"]
ROWS = """
    select i, mod(i, 5000)::int + 1, date '2024-01-01' + mod(i, 365)::int, mod(i * 7, 50000) + 100, mod(i, 500),
           mod(i, 50), mod(i, 997)::numeric(12, 2), mod(i, 1999)::numeric(12, 2), 'b' || mod(i, 3),
           'performance.csv', now(), now()
    from generate_series(1, %s) as i
"""


def prepare(pg: PostgresSettings, rows: int) -> None:
    """A published table and a candidate, both holding ``rows`` rows."""
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        for schema in ("silver", candidate_schema("silver")):
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, TABLE.name)))
            cur.execute(create_table_sql(schema, TABLE))
            cur.execute(sql.SQL("insert into {} ").format(sql.Identifier(schema, TABLE.name)) + sql.SQL(ROWS), (rows,))
    with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier("silver", TABLE.name)))


def truncate_publish(pg: PostgresSettings) -> float:
    target, source = sql.Identifier("silver", TABLE.name), sql.Identifier(candidate_schema("silver"), TABLE.name)
    started = time.perf_counter()
    with contextlib.closing(connect(pg)) as conn, conn, conn.cursor() as cur:
        cur.execute(sql.SQL("truncate {}").format(target))
        restore = drop_primary_key(cur, "silver", TABLE.name)
        cur.execute(sql.SQL("insert into {} select * from {}").format(target, source))
        if restore is not None:
            cur.execute(restore)
    return time.perf_counter() - started


def delete_publish(pg: PostgresSettings) -> float:
    started = time.perf_counter()
    publish_candidates(pg, [("silver", TABLE)])
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest counts (default 3)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp,
        provide.postgres(load_settings(dotenv_path=None), data_dir=Path(tmp) / "pgdata") as pg,
    ):
        timings = {}
        for name, method in (("truncate + insert", truncate_publish), ("delete + insert", delete_publish)):
            runs = []
            for _ in range(args.repeat):
                prepare(pg, args.rows)
                runs.append(method(pg))
            timings[name] = min(runs)
            print(f"{name:<18} {timings[name]:8.2f} s  {args.rows / timings[name]:>12,.0f} rows/s", flush=True)
        drop_candidates(pg, ["silver"])
    print(f"RESULT delete_vs_truncate={timings['delete + insert'] / timings['truncate + insert']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
