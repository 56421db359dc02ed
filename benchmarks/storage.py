"""Benchmark the lake's storage against the landing CSV, on one machine, in one run.

    python benchmarks/storage.py [--scale S]

Generates the sample at ``--scale`` (1 is the default sample, about 15 MB of CSV) into a temporary directory,
then runs bronze and silver (no Soda scans, maintenance on) into a local lake there, with the PG* PostgreSQL or an
embedded one on a free port. Sizes are the Delta tables' current-version Parquet bytes and the layer's bytes on
disk (superseded files and the Delta log included).
The last line is ``RESULT bronze_vs_csv=<bronze/CSV> silver_vs_csv=<silver/CSV> silver_disk_vs_current=<ratio>``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import lakehouse
from lakehouse.report import human_bytes
from lakehouse.sample import generate
from lakehouse.settings import load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="sample size multiplier (default 1)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lakehouse-storage-") as tmp:
        landing = Path(tmp) / "landing"
        generate(landing, scale=args.scale, seed=42, dirty_rate=0.02)
        env = dict(os.environ) | {"LAKEHOUSE_DATA_DIR": tmp, "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port())}
        env.pop("LAKEHOUSE_LAKE_URI", None)
        settings = load_settings(env, dotenv_path=None)
        outcome = lakehouse.run(settings, layers=("bronze", "silver"), input_dir=landing, scan=False)
    storage = outcome.storage
    if outcome.status != "succeeded" or storage is None:
        print(f"run {outcome.run_id} {outcome.status}", file=sys.stderr)
        return 1
    print(storage.render())
    silver = next(layer for layer in storage.layers if layer.layer == "silver")
    print(f"scale {args.scale:g}: landing CSV {human_bytes(storage.csv_bytes)}")
    print(
        f"RESULT bronze_vs_csv={storage.bronze_parquet_bytes / storage.csv_bytes:.3f} "
        f"silver_vs_csv={storage.silver_parquet_bytes / storage.csv_bytes:.3f} "
        f"silver_disk_vs_current={silver.disk_bytes / silver.current_bytes:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
