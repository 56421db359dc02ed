"""The command line's handlers: each calls the package and turns the outcome into an :class:`ExitCode`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lakehouse import health, pipeline
from lakehouse.cli.exit_codes import ExitCode
from lakehouse.contracts import LAYERS
from lakehouse.report import as_json, quality_lines, render_table
from lakehouse.settings import Settings, describe

log = logging.getLogger("lakehouse.runner")


def cmd_layers(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """``run``, ``bronze``, ``silver``, ``gold``: the layers of the command, then the summary."""
    if getattr(args, "abandon", None):
        print(pipeline.abandon(settings, args.abandon, wait_s=args.wait, arguments=sys.argv[1:]))
        return ExitCode.OK
    layers = LAYERS if args.command == "run" else (args.command,)
    started = time.monotonic()
    outcome = pipeline.run(
        settings,
        layers=layers,
        input_dir=Path(args.input) if getattr(args, "input", None) else None,
        full_refresh=getattr(args, "full_refresh", False),
        scan=not args.no_quality,
        force=getattr(args, "force", False),
        wait_s=args.wait,
        arguments=sys.argv[1:],
        log_line=lambda line: log.info("%s", line),
    )
    return finish(outcome, args, seconds=time.monotonic() - started)


def cmd_quality(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Run the Soda scans alone (every layer, or --layer), record them, and gate like a run."""
    started = time.monotonic()
    layers = (args.layer,) if args.layer else LAYERS
    outcome = pipeline.scan_only(settings, layers, arguments=sys.argv[1:], log_line=lambda line: log.info("%s", line))
    return finish(outcome, args, seconds=time.monotonic() - started)


def finish(outcome: pipeline.RunOutcome, args: argparse.Namespace, *, seconds: float) -> ExitCode:
    """Print the summary (table or --json) and turn the outcome into the exit code."""
    if args.json:
        scans, storage = outcome.quality, outcome.storage
        print(as_json(run_id=outcome.run_id, status=outcome.status, rows=outcome.summary, scans=scans,
                      storage=storage, seconds=seconds))  # fmt: skip
    else:
        print()
        if outcome.summary:
            print(render_table(outcome.summary))
        for line in [*outcome.notes, *quality_lines(outcome.quality)]:
            print(line)
        if outcome.storage is not None:
            print(outcome.storage.render())
        print(f"run {outcome.run_id}: {outcome.status} in {seconds:.1f}s (ops.pipeline_runs)")
    if outcome.failed_tests:
        _stderr(f"gold: {len(outcome.failed_tests)} dbt test(s) failed:", outcome.failed_tests)
        return ExitCode.FAILED
    if outcome.gate_failures:
        failures = [f"{r.table_name}: {r.check_name} ({r.diagnostics})" for r in outcome.gate_failures]
        _stderr(f"quality gate failed ({len(failures)} check(s)); downstream layers were not run:", failures)
        if outcome.unpublished:
            published = " and ".join(outcome.unpublished)
            _stderr(f"the {published} candidate was not published: readers still see the previous version", [])
        return ExitCode.QUALITY
    if outcome.blocked:
        _stderr(outcome.blocked, [])
        return ExitCode.QUALITY
    if outcome.refused:
        _stderr(f"{len(outcome.refused)} landing file(s) refused:", [r.reason for r in outcome.refused])
        return ExitCode.REFUSED
    return ExitCode.OK


def _stderr(title: str, items: Sequence[str]) -> None:
    print(title, file=sys.stderr)
    for item in items:
        print(f"  {item}", file=sys.stderr)


def cmd_check(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Settings (secrets masked), then Java, Spark, lake, PostgreSQL, schemas, dbt and Soda: one line each."""
    for name, value in describe(settings):
        print(f"{name:<22} {value}")
    print()
    ok = True
    for probe in health.check_all(settings):
        print(probe.line())
        ok = ok and probe.ok
    return ExitCode.OK if ok else ExitCode.SERVICE


def cmd_generate(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Write a deterministic sample landing directory and its manifest of injected defects."""
    from lakehouse.sample import generate

    out = Path(args.out).resolve() if args.out else settings.landing_dir
    manifest = generate(out, scale=args.scale, seed=args.seed, dirty_rate=args.dirty_rate)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} CSV files ({total / 1e6:.1f} MB) and manifest.json to {out}")
    return ExitCode.OK


def cmd_docs(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Generate the dbt documentation offline (catalog from PostgreSQL) and print where it is."""
    from lakehouse.gold import docs_generate
    from lakehouse.services import provide

    with provide.postgres(settings) as pg:
        site = docs_generate(pg, log=lambda line: log.info("%s", line))
    print(f"dbt docs: {site} (a single file; open it in a browser)")
    return ExitCode.OK


def cmd_db(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Manage the embedded PostgreSQL so it can outlive a run (e.g. for the seed guide's psql queries)."""
    from lakehouse.services.provide import SharedEmbedded, embedded_postgres

    if settings.postgres is not None:
        print(f"PG* variables point at {settings.postgres.endpoint}; the embedded server is not used")
        return ExitCode.USAGE
    server = embedded_postgres(settings)
    if args.action in ("start", "stop"):  # from now on the user decides when it stops, not the last run
        SharedEmbedded(server).owned.unlink(missing_ok=True)
    if args.action == "start":
        pg = server.start()
        print(
            f"embedded PostgreSQL running: {pg.endpoint}  (psql -h {pg.host} -p {pg.port} -U {pg.user} {pg.database})"
        )
    elif args.action == "stop":
        server.stop_server()
        print("embedded PostgreSQL stopped")
    else:
        port = server.running_port()
        print(f"embedded PostgreSQL {'running on port ' + str(port) if port else 'not running'}")
    return ExitCode.OK
