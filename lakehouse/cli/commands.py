"""The command line's handlers: each calls the package and turns the outcome into an :class:`ExitCode`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lakehouse import health, pipeline
from lakehouse.adapters.roles import bootstrap
from lakehouse.cli.exit_codes import ExitCode
from lakehouse.contracts import LAYERS, ROLES
from lakehouse.report import as_json, human_bytes, quality_lines, render_table
from lakehouse.settings import PostgresSettings, Settings, describe
from lakehouse.steps import DOCS_SITE

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
        input_dir=getattr(args, "input", None),
        full_refresh=getattr(args, "full_refresh", False),
        scan=not args.no_quality,
        maintain=not getattr(args, "no_maintain", False),
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
    if args.as_of is not None and args.layer not in ("bronze", "silver"):
        print("usage error: --as-of needs --layer bronze or --layer silver (gold is not in the lake)", file=sys.stderr)
        return ExitCode.USAGE
    outcome = pipeline.scan_only(
        settings,
        layers,
        as_of=args.as_of,
        arguments=sys.argv[1:],
        wait_s=args.wait,
        log_line=lambda line: log.info("%s", line),
    )
    return finish(outcome, args, seconds=time.monotonic() - started)


def finish(outcome: pipeline.RunOutcome, args: argparse.Namespace, *, seconds: float) -> ExitCode:
    """Print the summary (table or --json) and turn the outcome into the exit code."""
    if args.json:
        scans, storage = outcome.quality, outcome.storage
        print(as_json(run_id=outcome.run_id, status=outcome.status, rows=outcome.summary, scans=scans,
                      storage=storage, seconds=seconds, report=outcome.report))  # fmt: skip
    else:
        print()
        if outcome.summary:
            print(render_table(outcome.summary))
        for line in [*outcome.notes, *quality_lines(outcome.quality)]:
            print(line)
        if outcome.storage is not None:
            print(outcome.storage.render())
        print(f"run {outcome.run_id}: {outcome.status} in {seconds:.1f}s (ops.pipeline_runs)")
        if outcome.report is not None:
            print(f"report: {outcome.report}")
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


def cmd_maintain(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Compact and VACUUM every lake table; print the bytes reclaimed and each layer's storage."""
    run_id, report, layers = pipeline.maintain(
        settings, retention_hours=args.retention_hours, wait_s=args.wait, arguments=sys.argv[1:]
    )
    if args.json:
        document = {
            "run_id": run_id,
            "retention_hours": report.retention_hours,
            "reclaimed_bytes": report.reclaimed_bytes,
            "tables": [
                {"layer": t.layer, "table": t.table, "files_compacted": t.files_compacted, "vacuumed": t.vacuumed,
                 "reclaimed_bytes": t.reclaimed_bytes, "disk_bytes": t.after.disk_bytes,
                 "current_bytes": t.after.current_bytes}
                for t in report.tables
            ],
            "layers": [vars(layer) for layer in layers],
        }  # fmt: skip
        print(json.dumps(document, indent=2))
        return ExitCode.OK
    for line in [*report.lines(), *(f"  {layer.render()}" for layer in layers)]:
        print(line)
    print(f"run {run_id}: succeeded (ops.pipeline_runs)")
    return ExitCode.OK


def cmd_history(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """A lake table's versions, oldest first: when, operation, rows written, and the run that wrote it."""
    versions = pipeline.history(settings, args.table)
    if args.json:
        print(json.dumps([vars(v) for v in versions], indent=2, default=str))
        return ExitCode.OK
    if not versions:
        print(f"{args.table}: no such table (yet)")
        return ExitCode.FAILED
    print(f"{'version':>7}  {'committed (UTC)':<19}  {'operation':<22}  {'rows':>10}  run")
    for v in versions:
        rows = "-" if v.rows is None else f"{v.rows:,}"
        print(f"{v.version:>7}  {v.timestamp:%Y-%m-%d %H:%M:%S}  {v.operation:<22}  {rows:>10}  {v.run_id or '-'}")
    return ExitCode.OK


def cmd_export(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Write a lake table (as of a version or a time) to a CSV file."""
    out = args.out.resolve()
    rows = pipeline.export(settings, args.table, out, as_of=args.as_of)
    size = human_bytes(out.stat().st_size)
    print(f"{args.table} as of {args.as_of or 'now'}: {rows:,} rows written to {out} ({size})")
    return ExitCode.OK


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
    manifest = generate(out, scale=args.scale, seed=args.seed, dirty_rate=args.dirty_rate, single_file=args.single_file)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} CSV files ({total / 1e6:.1f} MB) and manifest.json to {out}")
    return ExitCode.OK


def cmd_docs(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Generate the dbt documentation offline (catalog from PostgreSQL), then serve it on 127.0.0.1 until Ctrl-C."""
    from lakehouse.adapters.docserver import HOST, docs_server
    from lakehouse.gold import docs_generate
    from lakehouse.services import provide

    with provide.warehouse(settings) as roles:
        site = docs_generate(roles.transform, log=lambda line: log.info("%s", line))
    print(f"dbt docs: {site} (a single file; the run reports link to it)", flush=True)
    if args.no_serve:
        return ExitCode.OK
    server = docs_server(site, port=args.port)
    print(f"serving the dbt docs on http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return ExitCode.OK


def cmd_report(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Write the HTML report of a recorded run (the latest by default) and print its path; --open shows it."""
    import webbrowser

    from lakehouse.runreport import write_report
    from lakehouse.services import provide

    with provide.warehouse(settings) as roles:
        path = write_report(
            roles.loader, settings.reports_dir, run_id=args.run, docs_href=DOCS_SITE.as_uri(), marts=roles.reader
        )
    print(f"report: {path}")
    if args.open:
        webbrowser.open(path.as_uri())
    return ExitCode.OK


def cmd_db(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Manage the embedded PostgreSQL so it can outlive a run (e.g. for the seed guide's psql queries)."""
    from lakehouse.services.provide import SharedEmbedded, embedded_postgres

    if args.action == "init":
        return _db_init(settings)
    if settings.postgres is not None:
        print(f"PG* variables point at {settings.postgres.endpoint}; the embedded server is not used")
        return ExitCode.USAGE
    server = embedded_postgres(settings)
    if args.action in ("start", "stop"):  # from now on the user decides when it stops, not the last run
        SharedEmbedded(server).owned.unlink(missing_ok=True)
    if args.action == "start":
        roles = bootstrap(server.start(), settings.role_passfile)
        print(f"embedded PostgreSQL running: {roles.reader.endpoint}  ({_psql(roles.reader)})")
    elif args.action == "stop":
        server.stop_server()
        print("embedded PostgreSQL stopped")
    else:
        port = server.running_port()
        print(f"embedded PostgreSQL {'running on port ' + str(port) if port else 'not running'}")
    return ExitCode.OK


def _db_init(settings: Settings) -> ExitCode:
    """Bootstrap the roles, schemas and grants (idempotent) and say how each role connects."""
    from lakehouse.services import provide

    with provide.warehouse(settings) as roles:
        for role in ROLES:
            print(f"{role.name:<20} {role.job}")
        print(f"passwords: {settings.role_passfile} (owner-only); read-only access: {_psql(roles.reader)}")
    return ExitCode.OK


def _psql(pg: PostgresSettings) -> str:
    return f"PGPASSFILE={pg.passfile} psql -h {pg.host} -p {pg.port} -U {pg.user} {pg.database}"
