"""The Soda files: generated checks equal the committed ones, every silver rule is enforced, and the configuration
takes every connection setting from the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.contracts import LAYERS, SILVER, TABLES
from lakehouse.quality import checks as quality_checks
from lakehouse.quality import scan as quality
from lakehouse.rules import rule_names as all_rule_names

GENERATED_FOLDERS = ("bronze", "silver")


def checks_of(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(table, check line, configuration) for every check of a SodaCL file."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = []
    for header, checks in document.items():
        table = header.removeprefix("checks for ")
        for check in checks:
            [(line, config)] = check.items()
            found.append((table, line, config or {}))
    return found


def all_check_files() -> list[Path]:
    return sorted(quality.CHECKS_DIR.rglob("*.yml"))


def test_committed_check_files_are_what_the_generator_writes() -> None:
    committed = {
        str(path.relative_to(quality.CHECKS_DIR)): path.read_text(encoding="utf-8")
        for folder in GENERATED_FOLDERS
        for path in (quality.CHECKS_DIR / folder).glob("*.yml")
    }
    assert committed == quality_checks.generated_checks(), (
        "run `python -m lakehouse.quality.checks --write-checks` and commit"
    )


def test_write_checks_writes_every_file_and_removes_stale_ones(tmp_path: Path) -> None:
    stale = tmp_path / "silver" / "dropped_table.yml"
    stale.parent.mkdir(parents=True)
    stale.write_text("checks for dropped_table:\n  - row_count > 0\n")
    hand_written = tmp_path / "gold" / "core" / "dim_x.yml"
    hand_written.parent.mkdir(parents=True)
    hand_written.write_text("checks for dim_x:\n  - row_count > 0\n")

    written = quality_checks.write_checks(tmp_path)

    assert {str(p.relative_to(tmp_path)) for p in written} == set(quality_checks.generated_checks())
    assert not stale.exists()
    assert hand_written.exists()


@pytest.mark.parametrize("table", TABLES)
def test_every_quarantine_rule_of_a_silver_table_is_enforced_by_a_named_check(table: str) -> None:
    checks = checks_of(quality.CHECKS_DIR / "silver" / f"{table}.yml")
    enforced = {rule for _, _, config in checks for rule in config.get("attributes", {}).get("rules", [])}

    assert enforced == set(all_rule_names(table))


@pytest.mark.parametrize("table", TABLES)
def test_silver_accepted_values_are_the_contracts(table: str) -> None:
    checks = checks_of(quality.CHECKS_DIR / "silver" / f"{table}.yml")
    valid = {
        line[len("invalid_count(") : -len(") = 0")]: c["valid values"] for _, line, c in checks if "valid values" in c
    }
    declared = {c.name: list(c.accepted_values) for c in SILVER[table].columns if c.accepted_values}

    assert {name: valid[name] for name in declared} == declared


def test_norway_stays_a_string_for_yaml_1_1_readers() -> None:
    [countries] = [
        config["valid values"]
        for _, line, config in checks_of(quality.CHECKS_DIR / "silver" / "advertisers.yml")
        if line == "invalid_count(country) = 0"
    ]
    assert "NO" in countries
    assert all(isinstance(code, str) and re.fullmatch("[A-Z]{2}", code) for code in countries)


@pytest.mark.parametrize("path", all_check_files(), ids=lambda p: str(p.relative_to(quality.CHECKS_DIR)))
def test_every_check_has_a_name_unique_within_its_table(path: Path) -> None:
    names = [(table, config.get("name")) for table, _, config in checks_of(path)]

    assert all(name for _, name in names), "every check needs a readable name"
    assert len(set(names)) == len(names), "check names are keys in ops.quality_results"


def test_every_check_folder_has_a_configured_data_source() -> None:
    configured = {name.removeprefix("data_source ") for name in configuration()}
    folders = {path.parent.name for path in all_check_files()}

    assert {quality.DATA_SOURCE_PREFIX + folder for folder in folders} <= configured
    assert set(LAYERS) == {path.relative_to(quality.CHECKS_DIR).parts[0] for path in all_check_files()}


def configuration() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(quality.CONFIGURATION.read_text(encoding="utf-8")))


@pytest.mark.parametrize("source", sorted(configuration()))
def test_every_connection_setting_comes_from_a_pg_variable(source: str) -> None:
    settings = configuration()[source]
    expected = {
        "host": "${PGHOST}",
        "port": "${PGPORT}",
        "username": "${PGUSER}",
        "password": "${PGPASSWORD}",
        "database": "${PGDATABASE}",
    }

    assert {key: settings.get(key) for key in expected} == expected
    assert settings["type"] == "postgres"
    assert set(settings) <= {*expected, "type", "schema", "connection_timeout"}, "no other literal setting"


def test_telemetry_settings_turn_usage_statistics_off() -> None:
    settings = yaml.safe_load(quality.TELEMETRY_SETTINGS.read_text(encoding="utf-8"))

    assert settings["send_anonymous_usage_stats"] is False
    assert settings["user_cookie_id"], "without it Soda rewrites the file to add one"
