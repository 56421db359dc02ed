"""Benchmark bronze parsing of one large landing file: its memory when ingested, and its speed against Spark's
own CSV reader on the same file with the same cores, in one process run.

    python benchmarks/bronze_parse.py [--scale 150] [--cores 2] [--split-mb 64] [--driver-memory 2g]
                                      [--skip-ingest | --skip-parse]

The file is ``performance.csv`` of ``runner.py generate --single-file --scale N`` (seed 42, 2 % defects; 150
gives 2.39 GB and 42.8 million records). It is generated once into ``<cache>/bench/single-<N>`` and reused
while its manifest matches.

1. **Ingest**: ``runner.py bronze --no-maintain`` on the three files, as a child process on the embedded default
   (its own data directory and PostgreSQL), with the peak RSS (``/proc`` ``VmHWM`` every 0.2 s) of the runner's
   Python process, its JVM (``-Xmx`` printed), the largest PySpark Python worker and the embedded PostgreSQL.
2. **Parse**, in this process, on ``local[<cores>]``, best of two runs each, both cached and counted:
   bronze's parse (:func:`lakehouse.bronze.parse.parse_files`: ranges of ``--split-mb``, strict RFC 4180, every
   record kept, per-file counts), with the discovery that hashes the file and plans its ranges timed apart; and
   Spark's CSV reader (``header``, every column a string, ``PERMISSIVE`` with ``_corrupt_record``; line-based,
   so splittable, and not strict RFC 4180: it cannot read a quoted line break without ``multiLine``, which
   makes it one task per file).

The last line is ``RESULT parse_vs_spark_csv=<x>``: bronze's parse throughput over Spark's (Spark's seconds over
bronze's), discovery not counted; the line before it gives the ratio with discovery counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from scaling import Peaks, mib, run_pipeline, sample_peaks

from lakehouse.bronze.landing import discover
from lakehouse.bronze.parse import parse_files
from lakehouse.contracts import SOURCE_COLUMNS
from lakehouse.sample import generate
from lakehouse.settings import DEFAULT_CACHE_DIR, load_settings


def single_file_sample(scale: float) -> tuple[Path, dict[str, object]]:
    """The ``--single-file`` sample at ``scale`` (seed 42, 2 % defects), generated once into the cache."""
    out = Path(os.environ.get("LAKEHOUSE_CACHE_DIR", DEFAULT_CACHE_DIR)) / "bench" / f"single-{scale:g}"
    manifest_file = out / "manifest.json"
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        on_disk = {p.name: p.stat().st_size for p in out.glob("*.csv")}
        if on_disk == {name: f["bytes"] for name, f in manifest["files"].items()}:
            print(f"sample: reusing {out}")
            return out, manifest
    print(f"sample: generating --single-file --scale {scale:g} into {out} ...", flush=True)
    started = time.perf_counter()
    manifest = generate(out, scale=scale, seed=42, dirty_rate=0.02, single_file=True)
    print(f"sample: generated in {time.perf_counter() - started:.0f} s")
    return out, manifest


class Watch:
    """Peak RSS of this process's tree (its JVM and PySpark workers), sampled in a thread."""

    def __init__(self) -> None:
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            sample_peaks(os.getpid(), "-none-", self.peaks)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def ingest(landing: Path, driver_memory: str | None) -> None:
    env = {"LAKEHOUSE_SPARK_DRIVER_MEMORY": driver_memory} if driver_memory else {}
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        wall, per_layer, peaks = run_pipeline(landing, Path(tmp), "bronze", "--no-maintain", env=env)
    print(f"ingest: runner.py bronze --no-maintain: {wall:.1f} s end to end; summary seconds: ", end="")
    print(", ".join(f"{layer} {seconds:.1f}" for layer, seconds in per_layer.items()))
    print(f"  python    {mib(peaks.rss['python']):>9}   the runner's Python process (the driver program)")
    print(f"  jvm       {mib(peaks.rss['jvm']):>9}   its JVM (-Xmx{peaks.xmx}): in local mode driver and executors")
    print(f"  worker    {mib(peaks.rss['worker']):>9}   the largest PySpark Python worker")
    print(f"  postgres  {mib(peaks.rss['postgres']):>9}   the embedded PostgreSQL, all its processes")
    worst = max(peaks.rss["python"], peaks.rss["worker"])
    print(f"  the driver program's and every Python worker's peak below 1 GiB: {worst < 2**30} ({mib(worst)})")


def compare(landing: Path, cores: int, split_bytes: int) -> None:
    from lakehouse.adapters.spark import build_spark, stop_spark

    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        env = {"LAKEHOUSE_DATA_DIR": tmp, "LAKEHOUSE_SPARK_MASTER": f"local[{cores}]"}
        if "LAKEHOUSE_CACHE_DIR" in os.environ:
            env["LAKEHOUSE_CACHE_DIR"] = os.environ["LAKEHOUSE_CACHE_DIR"]
        settings = load_settings(env, dotenv_path=None)
        spark = build_spark(settings, app_name="bronze-parse-benchmark")
        try:
            path = landing / "performance.csv"
            size = path.stat().st_size
            schema = ", ".join(f"`{c}` string" for c in SOURCE_COLUMNS["performance"]) + ", _corrupt_record string"
            ours: list[float] = []
            theirs: list[float] = []
            found: list[float] = []
            records = 0
            for _ in range(2):
                started = time.perf_counter()
                df = spark.read.options(header=True, mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt_record")
                frame = df.schema(schema).csv(str(path)).cache()
                spark_records = frame.count()
                theirs.append(time.perf_counter() - started)
                frame.unpersist()

                started = time.perf_counter()
                files = [f for f in discover(landing, split_bytes=split_bytes)[0] if f.table == "performance"]
                found.append(time.perf_counter() - started)
                with Watch() as watch:
                    started = time.perf_counter()
                    parsed = parse_files(spark, "performance", files)
                    ours.append(time.perf_counter() - started)
                records = parsed.stats["performance.csv"][0]
                parsed.frame.unpersist()
            print(f"parse: {path.name}, {size / 1e9:.2f} GB, {records:,} records, local[{cores}]")
            print(f"  ranges    {len(files[0].ranges) or 1} of about {split_bytes / 2**20:g} MiB")
            print(f"  spark csv {min(theirs):7.1f} s  {size / 1e6 / min(theirs):6.1f} MB/s   ({spark_records:,} rows)")
            print(f"  discover  {min(found):7.1f} s  {size / 1e6 / min(found):6.1f} MB/s   hash, check, plan ranges")
            print(f"  bronze    {min(ours):7.1f} s  {size / 1e6 / min(ours):6.1f} MB/s   parse, cache, per-file counts")
            print(f"  peak RSS during the parse: largest Python worker {mib(watch.peaks.rss['worker'])}")
            print(f"with discovery counted: parse_vs_spark_csv={min(theirs) / (min(ours) + min(found)):.2f}")
            print(f"RESULT parse_vs_spark_csv={min(theirs) / min(ours):.2f}")
        finally:
            stop_spark(spark, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=150.0, help="sample scale; 150 is about 2.4 GB (default)")
    parser.add_argument("--cores", type=int, default=2, help="local[N] for the parse comparison (default 2)")
    parser.add_argument("--split-mb", type=float, default=64.0, help="bronze's range size in MiB (default 64)")
    parser.add_argument("--skip-ingest", action="store_true", help="only the parse comparison")
    parser.add_argument("--skip-parse", action="store_true", help="only the ingest")
    parser.add_argument(
        "--driver-memory", metavar="SIZE", help="LAKEHOUSE_SPARK_DRIVER_MEMORY for the ingest (default: the default)"
    )
    args = parser.parse_args(argv)
    landing, manifest = single_file_sample(args.scale)
    files = manifest["files"]
    assert isinstance(files, dict)
    print("files: " + ", ".join(f"{name} {f['bytes'] / 1e6:,.1f} MB" for name, f in files.items()))
    if not args.skip_ingest:
        ingest(landing, args.driver_memory)
    if not args.skip_parse:
        compare(landing, args.cores, int(args.split_mb * 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
