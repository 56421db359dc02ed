"""Deterministic landing-zone sample data for the campaign-analytics lakehouse, with a manifest of its defects.

:func:`generate` writes the three landing tables as RFC 4180 CSV files (advertisers and campaigns in two parts,
performance one file per ISO week of 2024) and ``manifest.json``, which predicts exactly what Silver concludes:
rows kept, copies collapsed, rows quarantined and under which rules. Same arguments, byte-identical files.

This module writes the files and the manifest. Clean rows come from :mod:`lakehouse.sample.data`, grouped into
files by :mod:`lakehouse.sample.sources`; defect kinds are cataloged in :mod:`lakehouse.sample.defects` and
placed by :mod:`lakehouse.sample.plan`.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.contracts import SOURCE_COLUMNS, TABLES
from lakehouse.sample.data import Row, random_stream
from lakehouse.sample.defects import DUPLICATE_KINDS
from lakehouse.sample.lines import Injected, format_record
from lakehouse.sample.plan import TablePlan, plan_table
from lakehouse.sample.sources import Source, sources


def _layout(table: str, shuffled: bool, rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Column order and header cells of one file; a shuffled header also varies case and padding (`` Clicks ``)."""
    columns = SOURCE_COLUMNS[table]
    if not shuffled:
        return columns, columns
    order = list(columns)
    rng.shuffle(order)
    header = [f" {c.capitalize()} " if c == "clicks" else rng.choice((c, c.upper())) for c in order]
    return tuple(order), tuple(header)


def _renderer(table: str, order: tuple[str, ...]) -> Callable[[Row], str]:
    positions = [SOURCE_COLUMNS[table].index(c) for c in order]
    if table == "performance":  # clean numbers and dates never need quoting
        return lambda row: ",".join([row[i] for i in positions])
    return lambda row: format_record([row[i] for i in positions])


def _real_lines(
    table: str, rows: list[Row], first_row: int, plan: TablePlan, render: Callable[[Row], str], rng: random.Random
) -> tuple[list[str | Injected], list[Injected], list[Injected]]:
    """A file's clean rows, rendered, with the planned valid kinds applied (``first_row``: global index of the first).

    Returns the lines, the copies due in this file and the copies due in the next one.
    """
    lines: list[str | Injected] = []
    copies: dict[str, list[Injected]] = {"same_file": [], "next_file": []}
    for offset, row in enumerate(rows):
        kind = plan.real_rows.get(first_row + offset)
        if kind is None:
            lines.append(render(row))
            continue
        injected = kind.inject(table, dict(zip(SOURCE_COLUMNS[table], row, strict=True)), rng)
        lines.append(injected if kind.placement == "replace" else render(row))
        if kind.placement != "replace":
            copies[kind.placement].append(injected)
    return lines, copies["same_file"], copies["next_file"]


def _scatter(lines: list[str | Injected], extras: list[Injected], rng: random.Random) -> list[str | Injected]:
    for extra in extras:
        lines.insert(rng.randint(0, len(lines)), extra)
    return lines


class _CsvFile:
    """A landing CSV being written: its header first, then records a chunk at a time."""

    def __init__(self, path: Path, table: str, header: tuple[str, ...]) -> None:
        self.path, self.table, self.header = path, table, header
        self._f = path.open("wb")
        self._f.write((format_record(header) + "\n").encode("utf-8"))
        self.line, self.records, self.blanks = 2, 0, 0

    def write(self, order: tuple[str, ...], lines: list[str | Injected]) -> list[dict[str, Any]]:
        """Append ``lines``; return the injected entries with their line numbers."""
        texts, entries = [], []
        for item in lines:
            text = item if isinstance(item, str) else item.render(order)
            if isinstance(item, Injected):
                entries.append(item.entry(self.path.name, self.line))
            self.line += text.count("\n") + 1
            texts.append(text)
        blanks = sum(1 for text in texts if not text)  # a record always holds a comma, so only blank lines are empty
        self.records, self.blanks = self.records + len(texts) - blanks, self.blanks + blanks
        if texts:
            self._f.write(("\n".join(texts) + "\n").encode("utf-8"))
        return entries

    def close(self) -> dict[str, Any]:
        """Close the file; return its manifest entry."""
        self._f.close()
        entry = {"table": self.table, "records": self.records, "blank_lines": self.blanks}
        entry["bytes"] = self.path.stat().st_size
        entry["header"] = list(self.header)  # as written: order and spelling vary in one performance file
        return entry


def _write_table(
    out_dir: Path, source: Source, plan: TablePlan, rng: random.Random, *, single_file: bool = False
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Write a table's files (or, with ``single_file``, all its records in ``<table>.csv`` under one header)."""
    files: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    shuffled = rng.randrange(len(source.files)) if source.table == "performance" and not single_file else None
    pending: list[Injected] = []
    first_row = 0
    out: _CsvFile | None = None
    for index, (name, rows) in enumerate(zip(source.files, source.chunks(), strict=True)):
        order, header = _layout(source.table, index == shuffled, rng)
        lines, same_file, later = _real_lines(source.table, rows, first_row, plan, _renderer(source.table, order), rng)
        extras = plan.carriers[index] + pending + same_file
        if index == len(source.files) - 1:  # no next file: the last file's re-deliveries stay in it
            extras, later = extras + later, []
        pending = later
        first_row += len(rows)
        if out is None or not single_file:
            out = _CsvFile(out_dir / (f"{source.table}.csv" if single_file else name), source.table, header)
        entries += out.write(order, _scatter(lines, extras, rng))
        if not single_file:
            files[name] = out.close()
    if single_file and out is not None:
        files[out.path.name] = out.close()
    return files, entries


def _summarize(
    table: str, silver_rows: int, files: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """A table's expected Silver outcome; checks that every record is accounted for exactly once."""
    by_rule = Counter(rule for entry in entries for rule in entry["expected_reasons"])
    summary = {
        "records": sum(f["records"] for f in files),
        "malformed": by_rule["malformed_line"],
        "silver_rows": silver_rows,
        "duplicates": sum(1 for entry in entries if entry["defect"] in DUPLICATE_KINDS),
        "superseded": 0,  # one landing directory is one batch: nothing from an earlier batch is replaced
        "quarantined": sum(1 for entry in entries if entry["expected_reasons"]),
        "quarantined_by_rule": dict(sorted(by_rule.items())),
        "defects": dict(sorted(Counter(entry["defect"] for entry in entries).items())),
    }
    accounted = sum(summary[k] for k in ("silver_rows", "quarantined", "duplicates", "superseded"))
    if summary["records"] != accounted:
        raise RuntimeError(f"generator bug: {table} has {summary['records']} records but accounts for {accounted}")
    return summary


def _check_arguments(scale: float, dirty_rate: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (1.0 is about 15 MB of CSV), got {scale!r}")
    if not (math.isfinite(dirty_rate) and 0 <= dirty_rate <= 0.5):
        raise ValueError(f"dirty_rate must be between 0 and 0.5 (share of defective rows), got {dirty_rate!r}")


def generate(
    out_dir: Path, *, scale: float = 1.0, seed: int = 42, dirty_rate: float = 0.02, single_file: bool = False
) -> dict[str, Any]:
    """Write landing CSVs and ``out_dir/manifest.json``; return the manifest.

    Args:
        out_dir: landing directory (created if missing); files of the same names are overwritten.
        scale: multiplies the number of advertisers and campaigns; 1.0 gives about 15 MB of CSV.
        seed: same seed and arguments give byte-identical files.
        dirty_rate: about this share of each table's rows is defective, at least one of each kind; 0 for none.
        single_file: one file per table (``advertisers.csv``, ``campaigns.csv``, ``performance.csv``), written
            as a stream: the same kinds of rows and defects, for testing large files.

    Returns:
        The manifest: per file its table, records, blank lines, bytes and header; per table records, malformed,
        expected silver rows, duplicates, superseded, quarantined, quarantined_by_rule and defect counts; and
        every injected line with its file, line, key, defect kind and expected quarantine reasons.

    Raises:
        ValueError: ``scale`` is not positive or ``dirty_rate`` is outside [0, 0.5].
    """
    _check_arguments(scale, dirty_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = sources(seed, scale)
    manifest: dict[str, Any] = {"seed": seed, "scale": scale, "dirty_rate": dirty_rate, "files": {}, "tables": {}}
    injected: list[dict[str, Any]] = []
    for table in TABLES:
        source = tables[table]
        plan = plan_table(
            table,
            n_rows=source.n_rows,
            n_files=len(source.files),
            dirty_rate=dirty_rate,
            rng=random_stream(seed, f"defects:{table}"),
            base_row=source.base_row,
            orphan_key=source.orphan_key,
        )
        layout = random_stream(seed, f"layout:{table}")
        files, entries = _write_table(out_dir, source, plan, layout, single_file=single_file)
        manifest["files"] |= files
        manifest["tables"][table] = _summarize(table, source.n_rows, list(files.values()), entries)
        injected += entries
    manifest["injected"] = injected
    (out_dir / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return manifest
