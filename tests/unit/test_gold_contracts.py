"""The dbt project agrees with the silver contracts (lakehouse/contracts.py), so neither can drift alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.contracts import LINEAGE, SILVER
from lakehouse.gold import DBT_PROJECT_DIR
from tests.dbt_staging import LINEAGE_MACRO, staging_call, staging_select

MODELS = DBT_PROJECT_DIR / "models"
STAGING = MODELS / "staging" / "silver"  # one staging folder per source (dbt's structure guide)
SNAPSHOTS = DBT_PROJECT_DIR / "snapshots"
STAGING_RENAMES = {
    "date": "performance_date",
    "_batch_id": "batch_id",
    "_source_file": "source_file",
    "_ingestion_timestamp": "ingested_at",
    "_silver_processed_at": "silver_processed_at",
}
LINEAGE_NAMES = {c.name for c in LINEAGE}
CATEGORICAL = {c.name: c.accepted_values for t in SILVER.values() for c in t.columns if c.accepted_values}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def sources() -> dict[str, Any]:
    (silver,) = load(STAGING / "_silver__sources.yml")["sources"]
    return {table["name"]: table for table in silver["tables"]}


def data_tests_of(column: dict[str, Any]) -> set[str]:
    return {t if isinstance(t, str) else next(iter(t)) for t in column.get("data_tests", [])}


def documented_columns() -> Iterator[tuple[str, dict[str, Any]]]:
    """(file, column) for every column declared in the project's model, source and snapshot YAML."""
    for path in [*MODELS.rglob("*.yml"), *SNAPSHOTS.glob("*.yml")]:
        document = load(path)
        nodes = [*document.get("models", []), *document.get("snapshots", [])]
        nodes += [table for source in document.get("sources", []) for table in source["tables"]]
        for node in nodes:
            for column in node.get("columns", []):
                yield f"{path.name}:{node['name']}", column


def test_sources_declare_exactly_the_contract_columns_in_order() -> None:
    tables = sources()
    assert set(tables) == set(SILVER)
    for name, contract in SILVER.items():
        assert tuple(c["name"] for c in tables[name]["columns"]) == contract.column_names, name


@pytest.mark.parametrize("table", sorted(SILVER))
def test_source_tests_enforce_the_contract_key_and_required_columns(table: str) -> None:
    contract = SILVER[table]
    columns = {c["name"]: data_tests_of(c) for c in sources()[table]["columns"]}
    for column in contract.columns:
        tests = columns[column.name]
        assert ("not_null" in tests) == (column.required or column.name in contract.key), column.name
        assert ("unique" in tests) == (contract.key == (column.name,)), column.name
        assert ("accepted_values" in tests) == bool(column.accepted_values), column.name


def test_sources_are_fresh_by_silver_processing_time() -> None:
    (silver,) = load(STAGING / "_silver__sources.yml")["sources"]
    assert silver["config"]["loaded_at_field"] == "_silver_processed_at"
    assert set(silver["config"]["freshness"]) == {"warn_after", "error_after"}


def test_accepted_values_lists_are_the_contract_lists() -> None:
    project_vars = load(DBT_PROJECT_DIR / "dbt_project.yml")["vars"]
    checked = 0
    for where, column in documented_columns():
        for test in column.get("data_tests", []):
            if isinstance(test, dict) and "accepted_values" in test:
                values = test["accepted_values"]["arguments"]["values"]
                if column["name"] in CATEGORICAL:
                    match = re.fullmatch(r"\{\{ var\('(\w+)'\) \}\}", values)
                    assert match, f"{where}.{column['name']}: use the project var, not a copied list"
                    assert tuple(project_vars[match[1]]) == CATEGORICAL[column["name"]], where
                    checked += 1
    assert checked >= len(CATEGORICAL)


def test_every_categorical_column_has_an_accepted_values_test() -> None:
    missing = [
        f"{where}.{column['name']}"
        for where, column in documented_columns()
        if column["name"] in CATEGORICAL and "accepted_values" not in data_tests_of(column)
    ]
    assert missing == []


def test_staging_exposes_every_contract_column() -> None:
    models = {m["name"]: m for m in load(STAGING / "_silver__models.yml")["models"]}
    for table, contract in SILVER.items():
        name = f"stg_silver__{table}"
        expected = [STAGING_RENAMES.get(c, c) for c in contract.column_names]
        assert [c["name"] for c in models[name]["columns"]] == expected, name
        assert (STAGING / f"{name}.sql").read_text().strip() == staging_call(table), name
        select = staging_select(table)
        assert select.columns == expected, f"{name} selects {select.columns}"
        assert select.sources == (("silver", table),), name


def test_the_lineage_macro_renames_every_lineage_column() -> None:
    renames = dict(re.findall(r"(\w+) as (\w+)", LINEAGE_MACRO.read_text()))
    assert renames == {c.name: STAGING_RENAMES[c.name] for c in LINEAGE}


def test_snapshots_check_exactly_the_business_columns() -> None:
    snapshots = {s["name"]: s for s in load(SNAPSHOTS / "_snapshots.yml")["snapshots"]}
    for table in ("campaigns", "advertisers"):
        contract = SILVER[table]
        config = snapshots[f"{table}_snapshot"]["config"]
        (key,) = contract.key
        assert config["unique_key"] == key
        assert config["strategy"] == "check"
        business = [c for c in contract.column_names if c not in LINEAGE_NAMES and c != key]
        assert config["check_cols"] == business, table


@pytest.mark.parametrize("table", ["campaigns", "advertisers"])
def test_snapshots_read_the_source_under_the_staging_names(table: str) -> None:
    """A snapshot's select is its staging model's (one macro), and reads the source, never a model."""
    snapshot = (SNAPSHOTS / f"{table}_snapshot.sql").read_text()
    body = re.search(rf"{{% snapshot {table}_snapshot %}}(.*){{% endsnapshot %}}", snapshot, flags=re.DOTALL)
    assert body, f"{table}_snapshot.sql has no snapshot block"
    assert body[1].strip() == staging_call(table)
    select = staging_select(table)
    assert select.sources == (("silver", table),)
    assert select.refs == 0, "a snapshot reads its source, never a model"
