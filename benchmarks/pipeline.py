"""Benchmark the whole pipeline against the physical floor of the same files, on one machine, in one run.

    python benchmarks/pipeline.py [--scales 1 10]

For each scale the sample is generated (``--scale``, seed 42, 2 % defects; 1 is about 15 MB of CSV), then:
(pipeline) ``runner.py run`` in a fresh data directory on the embedded default (a Delta lake on local disk, an
embedded PostgreSQL), timed end to end as a user runs it: process and Spark start-up, every layer, the Soda
gates, maintenance, the report. Printed: the run summary's seconds per layer and the Spark jobs each layer
started (from the Spark event log, where every job carries its layer's tag).
(floor) the physical floor for the same files, once per lake layer (bronze, silver): pyarrow reads every CSV
(bronze as text, silver with typed columns) and writes it as Parquet (zstd), and one single-stream ``COPY``
loads the rows into a PostgreSQL table: reading, writing and loading the data once per layer and nothing else
(no validation, no deduplication, no gold, no gates, no start-up).
The last line is ``RESULT scale1_vs_floor=<x> scale10_vs_floor=<y>`` (pipeline seconds over floor seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg2 import sql

from lakehouse.adapters.spark import jobs_by_tag
from lakehouse.adapters.warehouse import connect
from lakehouse.sample import generate
from lakehouse.services import free_port
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings

ROOT = Path(__file__).resolve().parents[1]
LAKE_LAYERS = ("bronze", "silver")


def run_pipeline(landing: Path, scratch: Path) -> tuple[float, dict[str, float], dict[str, int]]:
    """``runner.py run`` on the embedded default: wall seconds, summary seconds per layer, Spark jobs per tag."""
    events = scratch / "spark-events"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    env |= {
        "LAKEHOUSE_DATA_DIR": str(scratch / "data"),
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port()),
        "LAKEHOUSE_SPARK_EVENT_LOG_DIR": str(events),
    }
    if "LAKEHOUSE_CACHE_DIR" in os.environ:  # the jar cache
        env["LAKEHOUSE_CACHE_DIR"] = os.environ["LAKEHOUSE_CACHE_DIR"]
    command = [sys.executable, str(ROOT / "runner.py"), "run", "--input", str(landing), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"runner.py run exited {done.returncode}:\n{done.stderr[-4000:]}")
    summary = json.loads(done.stdout)
    per_layer: dict[str, float] = defaultdict(float)
    for row in summary["tables"]:
        per_layer[row["layer"]] += row["seconds"] or 0.0
    return wall, dict(per_layer), dict(jobs_by_tag(events))


def floor(landing: Path, scratch: Path, pg: PostgresSettings) -> dict[str, float]:
    """Per lake layer: seconds to read every CSV with pyarrow, write it as Parquet (zstd) and COPY it once."""
    files = sorted(landing.glob("*.csv"))
    seconds: dict[str, float] = {}
    with contextlib.closing(connect(pg, autocommit=True)) as conn, conn.cursor() as cur:
        for layer in LAKE_LAYERS:
            out = scratch / f"floor-{layer}"
            out.mkdir()
            started = time.perf_counter()
            for path in files:
                table = f"{layer}_{path.name.partition('_')[0]}"
                with path.open(newline="", encoding="utf-8") as handle:
                    header = next(csv.reader(handle))
                text = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
                rows = pacsv.read_csv(
                    path,
                    convert_options=text if layer == "bronze" else None,
                    parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda _: "skip"),
                )
                pq.write_table(rows, out / f"{path.stem}.parquet", compression="zstd")
                columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in rows.column_names)
                cur.execute(sql.SQL("create table if not exists {} ({})").format(sql.Identifier(table), columns))
                buffer = io.BytesIO()
                pacsv.write_csv(rows, buffer)
                buffer.seek(0)
                cur.copy_expert(
                    sql.SQL("copy {} from stdin with (format csv, header true)").format(sql.Identifier(table)), buffer
                )
            seconds[layer] = time.perf_counter() - started
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0], help="sample scales (default 1 10)")
    args = parser.parse_args(argv)
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        scratch = Path(tmp)
        with LocalPostgres(PostgresBinaries.embedded(), scratch / "floor-pg", port=free_port()) as pg:
            for scale in args.scales:
                here = scratch / f"scale-{scale:g}"
                landing = here / "landing"
                generate(landing, scale=scale, seed=42, dirty_rate=0.02)
                csv_bytes = sum(p.stat().st_size for p in landing.glob("*.csv"))
                wall, per_layer, jobs = run_pipeline(landing, here)
                floors = floor(landing, here, pg)
                name = f"scale{scale:g}"
                ratios[name] = wall / sum(floors.values())
                print(f"{name}: {csv_bytes / 1e6:.1f} MB of CSV")
                print(f"  pipeline {wall:7.1f} s   (runner.py run, end to end)")
                for layer, seconds in per_layer.items():
                    print(f"    {layer:<9} {seconds:6.1f} s   {jobs.get(layer, 0):4d} Spark jobs")
                rest = wall - sum(per_layer.values())
                print(f"    {'the rest':<9} {rest:6.1f} s   start-up, gates, maintenance, storage, report")
                for tag in sorted(set(jobs) - set(per_layer)):
                    print(f"    Spark jobs tagged {tag}: {jobs[tag]}")
                print(
                    f"  floor    {sum(floors.values()):7.1f} s   "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in floors.items())
                )
                print(f"  ratio    {ratios[name]:7.1f}")
    print("RESULT " + " ".join(f"{name}_vs_floor={ratio:.2f}" for name, ratio in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
