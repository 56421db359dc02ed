"""Benchmark how the whole pipeline's time and driver memory grow with the data, on one machine, in one run.

    python benchmarks/scaling.py [--scales 1 10 30]

For each scale the sample is generated (seed 42, 2 % defects; 1 is about 15 MB of CSV) into a fresh directory
(timed apart, not counted), then ``runner.py run`` runs it as a child process in its own data directory on the
embedded default (a Delta lake on local disk, an embedded PostgreSQL on a free port): every scale starts its own
Python process and JVM, so each peak is that scale's own. Timed end to end as a user runs it. Printed: the run
summary's seconds per layer, the CSV's bytes and rows, and the peak RSS (the kernel's high-water mark, read from
``/proc`` every 0.2 s) of: the runner's Python process and its JVM (in local mode the JVM is the driver and runs
the tasks too; its heap is capped by ``spark.driver.memory``, the ``-Xmx`` printed), the largest PySpark Python
worker, and the embedded PostgreSQL (all its processes; shared buffers count once per process that touched them;
not the driver).
The driver's RSS is the Python process's peak plus the JVM's. The last line is
``RESULT time<hi>_vs_time<lo>=<x> rss<hi>_vs_rss<lo>=<y>``: the largest scale given over the smallest one, wall
time and driver RSS (e.g. ``time30_vs_time1``). The line before it gives the same ratio for each process kind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.sample import generate
from lakehouse.services import free_port

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("python", "jvm", "worker", "postgres")
SAMPLE_SECONDS = 0.2


@dataclass
class Peaks:
    """Peak RSS in bytes per process kind, and the JVM's ``-Xmx`` as given on its command line."""

    rss: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    xmx: str = "?"

    @property
    def driver(self) -> int:
        return self.rss["python"] + self.rss["jvm"]


def _processes() -> dict[int, tuple[int, str, str, int, int]]:
    """Every process now: pid -> (parent pid, name, command line, RSS bytes, peak RSS bytes)."""
    found: dict[int, tuple[int, str, str, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while being read
            continue
        kib = {key: int(status.get(key, "0 kB").split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}
        found[int(entry.name)] = (
            int(status["PPid"]),
            status["Name"].strip(),
            command,
            kib["VmRSS"],
            kib["VmHWM"],
        )
    return found


def _descendants(roots: set[int], procs: dict[int, tuple[int, str, str, int, int]]) -> set[int]:
    tree = set(roots)
    while grown := {pid for pid, p in procs.items() if p[0] in tree and pid not in tree}:
        tree |= grown
    return tree


def sample_peaks(runner: int, pg_data: str, peaks: Peaks) -> None:
    """Fold one look at the runner's tree and at the PostgreSQL serving ``pg_data`` into ``peaks``.

    The postmaster detaches from the runner (``pg_ctl`` daemonizes it), so it is found by its data directory.
    """
    procs = _processes()
    tree = _descendants({runner}, procs)
    # A child the JVM is spawning shows the JVM's name and memory until it execs: count only the top JVM, and
    # as workers only the Python processes (PySpark's daemon and the workers it forks).
    jvms = {pid for pid in tree if procs[pid][1] == "java" and procs.get(procs[pid][0], (0, ""))[1] != "java"}
    workers = {pid for pid in _descendants(jvms, procs) if procs[pid][1].startswith("python")}
    postmasters = {pid for pid, p in procs.items() if p[1] == "postgres" and pg_data in p[2]}
    postgres = _descendants(postmasters, procs)
    seen = {
        "python": procs[runner][4] if runner in procs else 0,
        "jvm": sum(procs[pid][4] for pid in jvms),
        "worker": max((procs[pid][4] for pid in workers), default=0),
        "postgres": sum(procs[pid][3] for pid in postgres),
    }
    for kind, value in seen.items():
        peaks.rss[kind] = max(peaks.rss[kind], value)
    for pid in jvms:
        if xmx := re.search(r"-Xmx(\S+)", procs[pid][2]):
            peaks.xmx = xmx.group(1)


def run_pipeline(
    landing: Path, scratch: Path, command: str = "run", *options: str, env: dict[str, str] | None = None
) -> tuple[float, dict[str, float], Peaks]:
    """``runner.py <command>`` (``run`` or a layer) on the embedded default, watched: wall seconds, summary seconds
    per layer, peak RSS."""
    data = scratch / "data"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    child_env |= {"LAKEHOUSE_DATA_DIR": str(data), "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port())}
    if "LAKEHOUSE_CACHE_DIR" in os.environ:  # the jar cache
        child_env["LAKEHOUSE_CACHE_DIR"] = os.environ["LAKEHOUSE_CACHE_DIR"]
    child_env |= env or {}
    argv = [sys.executable, str(ROOT / "runner.py"), command, "--input", str(landing), "--json", *options]
    out, err = scratch / "stdout.json", scratch / "stderr.log"
    peaks = Peaks()
    with out.open("w") as stdout, err.open("w") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=child_env, cwd=scratch, stdout=stdout, stderr=stderr)
        while child.poll() is None:
            sample_peaks(child.pid, str(data), peaks)
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"runner.py {command} exited {child.returncode}:\n{err.read_text()[-4000:]}")
    per_layer: dict[str, float] = defaultdict(float)
    for row in json.loads(out.read_text())["tables"]:
        per_layer[row["layer"]] += row["seconds"] or 0.0
    return wall, dict(per_layer), peaks


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0, 30.0], help="default 1 10 30")
    args = parser.parse_args(argv)
    walls: dict[float, float] = {}
    peaks: dict[float, Peaks] = {}
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
            scratch = Path(tmp)
            started = time.perf_counter()
            manifest = generate(scratch / "landing", scale=scale, seed=42, dirty_rate=0.02)
            generated = time.perf_counter() - started
            csv_bytes = sum(p.stat().st_size for p in (scratch / "landing").glob("*.csv"))
            rows = {table: t["records"] for table, t in manifest["tables"].items()}
            walls[scale], per_layer, peaks[scale] = run_pipeline(scratch / "landing", scratch)
        p = peaks[scale]
        print(f"scale {scale:g}: {csv_bytes / 1e6:.1f} MB of CSV, {sum(rows.values()):,} rows", end=" (")
        print(", ".join(f"{table} {n:,}" for table, n in rows.items()) + f"), generated in {generated:.1f} s")
        print(f"  run       {walls[scale]:7.1f} s   (runner.py run, end to end; generation not counted)")
        for layer, seconds in per_layer.items():
            print(f"    {layer:<8}{seconds:7.1f} s")
        rest = walls[scale] - sum(per_layer.values())
        print(f"    {'the rest':<8}{rest:7.1f} s   start-up, gates, maintenance, storage, report")
        print(f"  driver    {mib(p.driver):>9}   peak RSS: Python {mib(p.rss['python'])} + JVM {mib(p.rss['jvm'])}")
        print(f"            (JVM -Xmx{p.xmx}, spark.driver.memory)")
        print(f"  worker    {mib(p.rss['worker']):>9}   the largest PySpark Python worker")
        print(f"  postgres  {mib(p.rss['postgres']):>9}   the embedded PostgreSQL, all its processes (not the driver)")
    lo, hi = min(args.scales), max(args.scales)
    kinds = " ".join(
        f"{kind}_rss{hi:g}_vs_rss{lo:g}={peaks[hi].rss[kind] / max(peaks[lo].rss[kind], 1):.2f}" for kind in KINDS
    )
    print(f"by process {kinds}")
    time_ratio, rss_ratio = walls[hi] / walls[lo], peaks[hi].driver / peaks[lo].driver
    print(f"RESULT time{hi:g}_vs_time{lo:g}={time_ratio:.2f} rss{hi:g}_vs_rss{lo:g}={rss_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
