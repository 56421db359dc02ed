"""Sample-data generator: determinism, size, CSV shape, clean funnels, and a manifest that predicts Silver exactly.

The manifest is checked against an independent reading of the files: each file is re-parsed with the ``csv``
module (strict) and run through a small Python model of the Silver rules written from the contracts, so a
generator bug and a manifest bug cannot hide each other.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.contracts import CAMPAIGN_TYPES, LINEAGE, SILVER, SOURCE_COLUMNS, TABLES, Column
from lakehouse.rules import rule_names as silver_rules
from lakehouse.sample import generate
from lakehouse.sample.data import CHANNELS, COUNTRIES

SMALL = 0.01
FOREIGN_KEYS = {"campaigns": ("advertiser_id", "advertisers"), "performance": ("campaign_id", "campaigns")}
INTEGER = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MONEY = re.compile(r"[0-9]+\.[0-9]{2}")


@dataclass
class Record:
    """One CSV record as the csv module reads it; ``fields`` is None when it rejects the line."""

    file: str
    line: int
    fields: list[str] | None
    values: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def read_csv(path: Path) -> tuple[list[str], list[Record], int]:
    """Header, records (with the line each starts on) and blank-line count of one landing file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        header, blanks = next(reader), 0
        records: list[Record] = []
        while True:
            start = reader.line_num + 1
            try:
                fields: list[str] | None = next(reader)
            except StopIteration:
                return header, records, blanks
            except csv.Error:
                fields = None
            if fields == []:
                blanks += 1
            else:
                records.append(Record(path.name, start, fields))


def files_of(manifest: dict[str, Any], table: str) -> list[str]:
    return sorted(name for name, entry in manifest["files"].items() if entry["table"] == table)


def source_columns(table: str) -> list[Column]:
    lineage = {c.name for c in LINEAGE}
    return [c for c in SILVER[table].columns if c.name not in lineage]


def parse_value(column: Column, text: str) -> Any:
    """The typed value Silver keeps, or None when the text is invalid for the column."""
    if column.name == "country":  # the oracle's own idea of a country code, not the contract's list
        code = "GB" if text.upper() == "UK" else text.upper()
        return code if re.fullmatch("[A-Z]{2}", code) else None
    if column.accepted_values:
        return next((v for v in column.accepted_values if v.lower() == text.lower()), None)
    if column.type in ("int", "bigint"):
        return int(text) if INTEGER.fullmatch(text) else None
    if column.type.startswith("decimal"):
        return Decimal(text) if DECIMAL.fullmatch(text) else None
    if column.type == "date":
        try:
            return date.fromisoformat(text) if ISO_DATE.fullmatch(text) else None
        except ValueError:
            return None
    return text.title() if column.name == "industry" else text


def check_row(table: str, header: list[str], record: Record) -> None:
    """Row-level Silver rules: structure, missing, invalid, negative and comparisons."""
    if record.fields is None or len(record.fields) != len(header):
        record.reasons = ["malformed_line"]
        return
    raw = {name.strip().lower(): text for name, text in zip(header, record.fields, strict=True)}
    for column in source_columns(table):
        text = raw[column.name].strip(" ")
        value = parse_value(column, text) if text else None
        record.values[column.name] = value
        if not text and column.required:
            record.reasons.append(f"missing_{column.name}")
        elif text and value is None:
            record.reasons.append(f"invalid_{column.name}")
        elif isinstance(value, int | Decimal) and not column.name.endswith("_id") and value < 0:
            record.reasons.append(f"negative_{column.name}")
    for rule, low, high in (
        ("clicks_gt_impressions", "impressions", "clicks"),
        ("conversions_gt_clicks", "clicks", "conversions"),
        ("end_before_start", "end_date", "start_date"),
        ("daily_budget_gt_total", "budget_total", "budget_daily"),
    ):
        small, large = record.values.get(low), record.values.get(high)
        if small is not None and large is not None and large > small:
            record.reasons.append(rule)


def simulate_silver(out_dir: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[tuple[str, int], Any]]:
    """Per table outcome and per (file, line) reasons, from the files alone."""
    outcome: dict[str, Any] = {}
    verdicts: dict[tuple[str, int], list[str]] = {}
    kept_keys: dict[str, set[Any]] = {}
    for table in TABLES:
        records: list[Record] = []
        for name in files_of(manifest, table):
            header, file_records, _ = read_csv(out_dir / name)
            for record in file_records:
                check_row(table, header, record)
            records += file_records
        if table in FOREIGN_KEYS:
            column, parent = FOREIGN_KEYS[table]
            for record in records:
                if record.values.get(column) is not None and record.values[column] not in kept_keys[parent]:
                    record.reasons.append(f"orphan_{column}")
        kept_keys[table], duplicates = deduplicate(table, records)
        by_rule = Counter(rule for record in records for rule in record.reasons)
        outcome[table] = {
            "records": len(records),
            "malformed": by_rule["malformed_line"],
            "silver_rows": len(kept_keys[table]),
            "duplicates": duplicates,
            "quarantined": sum(1 for record in records if record.reasons),
            "quarantined_by_rule": dict(by_rule),
        }
        verdicts |= {(r.file, r.line): sorted(r.reasons) for r in records}
    return outcome, verdicts


def deduplicate(table: str, records: list[Record]) -> tuple[set[Any], int]:
    """Collapse identical valid versions of a key; quarantine every version of a key that has several."""
    key = SILVER[table].key[0]
    versions: dict[Any, list[Record]] = defaultdict(list)
    for record in records:
        if not record.reasons:
            versions[record.values[key]].append(record)
    kept, duplicates = set(), 0
    for value, group in versions.items():
        if len({tuple(r.values.values()) for r in group}) > 1:
            for record in group:
                record.reasons.append("conflicting_duplicate")
        else:
            kept.add(value)
            duplicates += len(group) - 1
    return kept, duplicates


def assert_manifest_matches_files(out_dir: Path, manifest: dict[str, Any]) -> None:
    outcome, verdicts = simulate_silver(out_dir, manifest)
    for table in TABLES:
        expected = {k: v for k, v in manifest["tables"][table].items() if k not in ("defects", "superseded")}
        assert outcome[table] == expected, table
    injected = {
        (e["file"], e["line"]): e["expected_reasons"] for e in manifest["injected"] if e["defect"] != "blank_line"
    }
    assert {k: v for k, v in verdicts.items() if v} == {k: v for k, v in injected.items() if v}
    assert all(verdicts[k] == [] for k, v in injected.items() if not v)


def assert_parse_counts(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Strict csv parsing finds the manifest's records and blank lines, and fails exactly on the malformed lines."""
    malformed = {
        (e["file"], e["line"]): e["defect"] for e in manifest["injected"] if e["expected_reasons"] == ["malformed_line"]
    }
    for name, entry in manifest["files"].items():
        header, records, blanks = read_csv(out_dir / name)
        assert (len(records), blanks) == (entry["records"], entry["blank_lines"]), name
        assert sorted(h.strip().lower() for h in header) == sorted(SOURCE_COLUMNS[entry["table"]])
        rejected = {(name, r.line) for r in records if r.fields is None}
        misfit = {(name, r.line) for r in records if r.fields is not None and len(r.fields) != len(header)}
        expected = {k: v for k, v in malformed.items() if k[0] == name}
        assert rejected == {k for k, v in expected.items() if v == "malformed_broken_quoting"}, name
        assert misfit == {k for k, v in expected.items() if v != "malformed_broken_quoting"}, name


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], float]:
    out_dir = tmp_path_factory.mktemp("scale1")
    started = time.perf_counter()
    manifest = generate(out_dir)
    return out_dir, manifest, time.perf_counter() - started


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("small")
    return out_dir, generate(out_dir, scale=0.1)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("clean")
    return out_dir, generate(out_dir, scale=0.1, dirty_rate=0)


def test_scale_one_writes_about_15_mb_quickly(default_run: tuple[Path, dict[str, Any], float]) -> None:
    out_dir, manifest, seconds = default_run
    on_disk = sum(p.stat().st_size for p in out_dir.glob("*.csv"))

    assert on_disk == sum(entry["bytes"] for entry in manifest["files"].values())
    assert 12e6 <= on_disk <= 18e6
    assert seconds < 30  # about 2 s on one core; generous for a busy CI machine


def test_same_arguments_give_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("a", "b", "other")}
    for name, out_dir in runs.items():
        generate(out_dir, scale=SMALL, seed=7 if name == "other" else 42)

    def contents(out_dir: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir())}

    assert contents(runs["a"]) == contents(runs["b"])
    assert contents(runs["a"]) != contents(runs["other"])


@pytest.mark.parametrize(("scale", "dirty_rate"), [(0, 0.02), (-1, 0.02), (float("nan"), 0.02), (1, -0.1), (1, 0.6)])
def test_out_of_range_arguments_are_rejected(tmp_path: Path, scale: float, dirty_rate: float) -> None:
    with pytest.raises(ValueError, match=r"scale|dirty_rate"):
        generate(tmp_path, scale=scale, dirty_rate=dirty_rate)
    assert not list(tmp_path.iterdir())


def test_channels_and_countries_follow_the_contracts() -> None:
    assert set(CHANNELS) == set(CAMPAIGN_TYPES)
    assert all(re.fullmatch("[A-Z]{2}", code) for code in COUNTRIES)


def test_files_follow_the_landing_layout(default_run: tuple[Path, dict[str, Any], float]) -> None:
    out_dir, manifest, _ = default_run
    names = set(manifest["files"])

    assert {"advertisers_part1.csv", "advertisers_part2.csv", "campaigns_part1.csv", "campaigns_part2.csv"} < names
    assert len(files_of(manifest, "performance")) == 53
    for name in files_of(manifest, "performance"):
        monday = date.fromisoformat(name.removeprefix("performance_").removesuffix(".csv"))
        assert monday.isoweekday() == 1
    assert {p.name for p in out_dir.glob("*.csv")} == names
    assert all(re.split(r"[_.]", name)[0] == entry["table"] for name, entry in manifest["files"].items())
    headers = [entry["header"] for entry in manifest["files"].values()]
    assert sum(h != list(SOURCE_COLUMNS["performance"]) for h in headers if len(h) == 8) == 1
    assert " Clicks " in next(h for h in headers if len(h) == 8 and h != list(SOURCE_COLUMNS["performance"]))


def test_manifest_accounts_for_every_record(default_run: tuple[Path, dict[str, Any], float]) -> None:
    out_dir, manifest, _ = default_run
    for table, summary in manifest["tables"].items():
        parts = summary["silver_rows"] + summary["quarantined"] + summary["duplicates"] + summary["superseded"]
        assert (
            summary["records"] == parts == sum(e["records"] for e in manifest["files"].values() if e["table"] == table)
        )
        injected = [e for e in manifest["injected"] if e["table"] == table]
        assert summary["defects"] == dict(Counter(e["defect"] for e in injected))
        assert summary["quarantined"] == sum(1 for e in injected if e["expected_reasons"])
    assert (out_dir / "manifest.json").read_text(encoding="utf-8").startswith('{\n  "dirty_rate": 0.02,')


def test_every_silver_rule_is_exercised_at_the_default_dirty_rate(
    default_run: tuple[Path, dict[str, Any], float],
) -> None:
    _, manifest, _ = default_run
    for table in TABLES:
        summary = manifest["tables"][table]
        assert set(summary["quarantined_by_rule"]) == set(silver_rules(table))
        assert {"exact_duplicate", "normalized_duplicate", "casing_whitespace", "blank_line"} <= set(summary["defects"])
        assert 0.01 < summary["quarantined"] / summary["records"] < 0.1


def test_strict_csv_parsing_matches_the_manifest(default_run: tuple[Path, dict[str, Any], float]) -> None:
    out_dir, manifest, _ = default_run
    assert_parse_counts(out_dir, manifest)


def test_manifest_predicts_the_silver_outcome_of_every_row(small_run: tuple[Path, dict[str, Any]]) -> None:
    assert_manifest_matches_files(*small_run)


def test_clean_run_has_no_defects(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out_dir, manifest = clean_run

    assert manifest["injected"] == []
    for summary in manifest["tables"].values():
        assert summary["silver_rows"] == summary["records"]
        assert summary["defects"] == summary["quarantined_by_rule"] == {}
        assert summary["quarantined"] == summary["duplicates"] == summary["malformed"] == 0
    assert_parse_counts(out_dir, manifest)
    assert_manifest_matches_files(out_dir, manifest)


def clean_rows(out_dir: Path, manifest: dict[str, Any], table: str, *, untouched: bool = False) -> list[dict[str, str]]:
    """The table's records that carry no injected defect (``untouched``: nor any injected line at all)."""
    injected = {(e["file"], e["line"]) for e in manifest["injected"] if untouched or e["expected_reasons"]}
    rows = []
    for name in files_of(manifest, table):
        header, records, _ = read_csv(out_dir / name)
        names = [h.strip().lower() for h in header]
        rows += [
            dict(zip(names, r.fields, strict=True))
            for r in records
            if r.fields is not None and (name, r.line) not in injected
        ]
    return rows


def test_clean_names_hold_commas_quotes_and_newlines(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out_dir, manifest = clean_run
    names = [row["advertiser_name"] for row in clean_rows(out_dir, manifest, "advertisers")]
    names += [row["campaign_name"] for row in clean_rows(out_dir, manifest, "campaigns")]

    for mark in (",", '"', "\n"):
        assert any(mark in name for name in names), repr(mark)


def test_clean_performance_follows_channel_funnels(small_run: tuple[Path, dict[str, Any]]) -> None:
    out_dir, manifest = small_run
    campaigns = clean_rows(out_dir, manifest, "campaigns")
    channels = {row["campaign_id"].strip(): row["campaign_type"].strip().capitalize() for row in campaigns}
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for row in clean_rows(out_dir, manifest, "performance", untouched=True):
        impressions, clicks, conversions = int(row["impressions"]), int(row["clicks"]), int(row["conversions"])
        (ctr_low, ctr_high), _ = CHANNELS[channels[row["campaign_id"]]]
        assert impressions >= clicks >= conversions >= 0
        assert ctr_low * 0.95 <= clicks / impressions <= ctr_high
        assert MONEY.fullmatch(row["cost"]), row
        assert MONEY.fullmatch(row["revenue"]), row
        totals[channels[row["campaign_id"]]].update(
            impressions=impressions, clicks=clicks, conversions=conversions, cents=int(Decimal(row["cost"]) * 100)
        )
    for channel, total in totals.items():
        _, (cpc_low, cpc_high) = CHANNELS[channel]
        assert 0.01 <= total["conversions"] / total["clicks"] <= 0.10
        assert cpc_low <= total["cents"] / total["clicks"] <= cpc_high
    ctr = {channel: total["clicks"] / total["impressions"] for channel, total in totals.items()}
    assert max(ctr, key=ctr.__getitem__) == "Search"
    assert min(ctr, key=ctr.__getitem__) == "Display"


def test_campaigns_deliver_every_day_of_their_flight(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out_dir, manifest = clean_run
    days: dict[str, set[date]] = defaultdict(set)
    for row in clean_rows(out_dir, manifest, "performance"):
        days[row["campaign_id"]].add(date.fromisoformat(row["date"]))
    for campaign in clean_rows(out_dir, manifest, "campaigns"):
        start = date.fromisoformat(campaign["start_date"])
        end = date.fromisoformat(campaign["end_date"] or "2024-12-31")
        flight = {start + timedelta(days=d) for d in range((end - start).days + 1)}
        assert end > start
        if campaign["budget_daily"] and campaign["budget_total"]:
            assert Decimal(campaign["budget_total"]) >= Decimal(campaign["budget_daily"])
        assert days[campaign["campaign_id"]] == (set() if campaign["status"] == "Draft" else flight)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), dirty_rate=st.sampled_from([0.0, 0.005, 0.05, 0.3, 0.5]))
def test_any_seed_and_rate_give_a_manifest_the_files_confirm(
    tmp_path_factory: pytest.TempPathFactory, seed: int, dirty_rate: float
) -> None:
    out_dir = tmp_path_factory.mktemp("prop")
    manifest = generate(out_dir, scale=SMALL, seed=seed, dirty_rate=dirty_rate)

    assert_parse_counts(out_dir, manifest)
    assert_manifest_matches_files(out_dir, manifest)
    if dirty_rate:
        assert all(set(manifest["tables"][t]["quarantined_by_rule"]) == set(silver_rules(t)) for t in TABLES)


def test_single_file_writes_one_file_per_table_that_the_manifest_predicts(
    small_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    manifest = generate(tmp_path, scale=0.1, single_file=True)

    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["advertisers.csv", "campaigns.csv", "performance.csv"]
    assert sorted(manifest["files"]) == ["advertisers.csv", "campaigns.csv", "performance.csv"]
    assert all(e["header"] == list(SOURCE_COLUMNS[e["table"]]) for e in manifest["files"].values())
    assert_parse_counts(tmp_path, manifest)
    assert_manifest_matches_files(tmp_path, manifest)
    many = small_run[1]["tables"]
    for table, summary in manifest["tables"].items():  # the same rows and defects as in many files
        assert summary == many[table], table
