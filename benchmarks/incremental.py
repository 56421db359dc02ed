"""Benchmark what a silver run costs against what arrived, on one machine, in one run.

    python benchmarks/incremental.py [--scale 10] [--master local[2]]

A sample history of ``--scale`` (1 is about 15 MB of CSV) is ingested and silver built once (not timed). Then,
each a whole ``silver`` step (classify, write the candidate, audit it with reconciliation and Soda, publish):
(full) ``--full-refresh``: a rebuild from all history;
(noop) a re-run with no new bronze batch;
(one_percent) a run after a new batch holding about 1 % of the history's rows (a sample of ``--scale / 100``
with another seed: new keys, and re-deliveries and changes of old ones) was ingested;
(one_row) a run after a batch of one performance row (the first of that sample's first performance file): what
an incremental run costs whatever arrived, the floor under ``one_percent``.
A lake and an embedded PostgreSQL in a temporary directory (the PG* variables pick another server).
The last line is ``RESULT noop_vs_full=<noop/full> one_percent_vs_full=<one_percent/full>
one_row_vs_full=<one_row/full>`` (time ratios).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lakehouse.bronze.landing import discover
from lakehouse.pipeline import spark_session
from lakehouse.sample import generate
from lakehouse.services import free_port, provide
from lakehouse.settings import load_settings
from lakehouse.steps import RunOutcome, run_layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0, help="history size; 1 is about 15 MB (default 10)")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        scratch = Path(tmp)
        settings = load_settings(
            {
                "LAKEHOUSE_DATA_DIR": str(scratch / "data"),
                "LAKEHOUSE_SPARK_MASTER": args.master,
                "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port()),  # never another process's embedded server
            },
            dotenv_path=None,
        )
        with provide.warehouse(settings) as roles, spark_session(settings) as spark:

            def step(layers: tuple[str, ...], landing: Path | None = None, *, full_refresh: bool = False) -> float:
                files = discover(landing)[0] if landing else []
                started = time.perf_counter()
                outcome: RunOutcome = run_layers(
                    settings,
                    roles,
                    layers=layers,
                    spark=spark,
                    files=files,
                    full_refresh=full_refresh,
                    maintain=False,
                    log_line=print,
                )  # no lake maintenance: it is not silver's cost
                seconds = time.perf_counter() - started
                for note in outcome.notes:
                    print(f"  {note}")
                for row in outcome.summary:
                    print(f"  {row.layer} {row.table_name}: {row.seconds:.1f} s")
                if outcome.status != "succeeded":
                    raise SystemExit(f"{layers} failed: {outcome.gate_failures}")
                return seconds

            generate(scratch / "history", scale=args.scale, seed=42, dirty_rate=0.02)
            step(("bronze", "silver"), scratch / "history")
            timings = {"full": step(("silver",), full_refresh=True), "noop": step(("silver",))}
            generate(scratch / "new", scale=args.scale / 100, seed=43, dirty_rate=0.02)
            step(("bronze",), scratch / "new")
            timings["one_percent"] = step(("silver",))
            first = sorted((scratch / "new").glob("performance*.csv"))[0]
            header, line = first.read_bytes().splitlines(keepends=True)[:2]
            (scratch / "one_row").mkdir()
            (scratch / "one_row" / "performance_one_row.csv").write_bytes(header + line)
            step(("bronze",), scratch / "one_row")
            timings["one_row"] = step(("silver",))
    for name, seconds in timings.items():
        print(f"silver {name:<12} {seconds:8.1f} s")
    noop, one, tiny = (timings[name] / timings["full"] for name in ("noop", "one_percent", "one_row"))
    print(f"RESULT noop_vs_full={noop:.3f} one_percent_vs_full={one:.3f} one_row_vs_full={tiny:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
