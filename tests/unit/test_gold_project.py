"""The dbt project's structure and style: naming, one YAML per folder, contracts, env-only profile, lowercase SQL,
and one owner per gold invariant (dbt tests the models; Soda's gold checks only gate on volume)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.gold import DBT_PROJECT_DIR
from lakehouse.quality.scan import CHECKS_DIR
from tests.dbt_staging import STAGING_MACRO, staging_call, staging_select

MODELS = DBT_PROJECT_DIR / "models"
SNAPSHOTS = DBT_PROJECT_DIR / "snapshots"
LAYERS = {  # folder: model name pattern
    "staging": r"stg_silver__[a-z]+",
    "intermediate": r"int_[a-z]+(_[a-z]+)+",
    "core": r"(dim|fct)_[a-z_]+",
    "analytics": r"[a-z]+(_[a-z]+)+",
}
KPIS = ("ctr", "cvr", "cpc", "cpm", "cpa", "roas", "roi")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def model_sql(folder: str) -> dict[str, str]:
    """The models of ``folder``, a staging model as the select its macro renders (``tests/dbt_staging.py``)."""
    return {p.stem: _expanded(p.read_text()) for p in sorted((MODELS / folder).rglob("*.sql"))}


def _expanded(sql: str) -> str:
    call = re.fullmatch(r"\{\{ silver_staging\('(\w+)'\) \}\}", sql.strip())
    return staging_select(call[1]).sql if call else sql


def without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|\{#.*?#\}", "", sql, flags=re.DOTALL)


def models_yaml(folder: str) -> dict[str, Any]:
    """The models documented under ``folder``: one ``_<directory>__models.yml`` in each directory with models
    (``staging/silver/_silver__models.yml``, ``core/_core__models.yml``), documenting that directory's models."""
    documented: dict[str, Any] = {}
    for directory in sorted({p.parent for p in (MODELS / folder).rglob("*.sql")}):
        (path,) = directory.glob("_*__models.yml")
        assert path.name == f"_{directory.name}__models.yml", path
        models = {m["name"]: m for m in load(path)["models"]}
        assert set(models) == {p.stem for p in directory.glob("*.sql")}, path
        documented |= models
    return documented


def test_model_folders_are_the_layers() -> None:
    assert {p.name for p in MODELS.iterdir() if p.is_dir()} == set(LAYERS)


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_each_folder_documents_exactly_its_models_in_one_yaml(folder: str) -> None:
    documented = models_yaml(folder)
    assert set(documented) == set(model_sql(folder))
    for name, model in documented.items():
        assert re.fullmatch(LAYERS[folder], name), name
        assert model.get("description"), name
        assert all(column.get("description") for column in model["columns"]), name


def test_staging_has_one_folder_per_source_with_its_sources_and_models_yaml() -> None:
    staging = MODELS / "staging"
    assert not list(staging.glob("*.*")), "staging files live in staging/<source>/"
    for folder in (p for p in staging.iterdir() if p.is_dir()):
        source = folder.name
        assert sorted(p.name for p in folder.glob("*.yml")) == [f"_{source}__models.yml", f"_{source}__sources.yml"]
        assert [s["name"] for s in load(folder / f"_{source}__sources.yml")["sources"]] == [source]
        assert all(p.stem.startswith(f"stg_{source}__") for p in folder.glob("*.sql")), source


def outside_staging_and_snapshots(text: str) -> list[str]:
    """The project's SQL files, other than staging models, snapshots and the staging macro, that hold ``text``."""
    return [
        str(path.relative_to(DBT_PROJECT_DIR))
        for path in DBT_PROJECT_DIR.rglob("*.sql")
        if text in path.read_text()
        and MODELS / "staging" not in path.parents
        and path.parent != SNAPSHOTS
        and path != STAGING_MACRO
        and "target" not in path.parts
    ]


def test_source_appears_only_in_staging_models_and_snapshots() -> None:
    """source() is called by the staging macro, which only staging models and snapshots call."""
    assert outside_staging_and_snapshots("source(") == []
    assert outside_staging_and_snapshots("silver_staging(") == []


def test_snapshots_select_from_sources_not_models() -> None:
    snapshots = {p.stem: p.read_text() for p in SNAPSHOTS.glob("*.sql")}
    assert set(snapshots) == {s["name"] for s in load(SNAPSHOTS / "_snapshots.yml")["snapshots"]}
    for name, sql in snapshots.items():
        table = name.removesuffix("_snapshot")
        select = staging_select(table)
        assert staging_call(table) in sql, name
        assert select.sources == (("silver", table),), name
        assert select.refs == 0, name
        assert "ref(" not in sql, name
    assert "relation:" not in (SNAPSHOTS / "_snapshots.yml").read_text()
    assert "ref('stg_" not in (SNAPSHOTS / "_snapshots.yml").read_text()


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_models_are_lowercase_ctes_ending_in_select_star_from_final(folder: str) -> None:
    keywords = r"\b(SELECT|FROM|WHERE|JOIN|LEFT|INNER|GROUP|ORDER|BY|AS|AND|OR|CASE|WHEN|THEN|ELSE|END|WITH|CAST)\b"
    for name, sql in model_sql(folder).items():
        code = without_comments(sql)
        assert not re.search(keywords, code), f"{name}: upper-case SQL"
        assert code.strip().splitlines()[-1] == "select * from final", name
        assert re.search(r"^final as \($", code, flags=re.MULTILINE), name


def test_kpi_formulas_live_only_in_their_macros() -> None:
    for kpi in KPIS:
        assert (DBT_PROJECT_DIR / "macros" / "kpis" / f"{kpi}.sql").is_file(), kpi
    for folder in LAYERS:
        for name, sql in model_sql(folder).items():
            code = re.sub(r"\{\{.*?\}\}", "", without_comments(sql), flags=re.DOTALL)
            assert "/" not in code, f"{name} divides inline; use a KPI macro or safe_divide"
            assert "nullif" not in code, name


@pytest.mark.parametrize("folder", ["core", "analytics"])
def test_core_and_analytics_models_enforce_typed_contracts(folder: str) -> None:
    config = load(DBT_PROJECT_DIR / "dbt_project.yml")["models"]["lakehouse"][folder]
    assert config["+contract"] == {"enforced": True}
    assert config["+schema"] == folder
    for name, model in models_yaml(folder).items():
        assert all(column.get("data_type") for column in model["columns"]), name
        assert any(c["type"] == "primary_key" for c in model.get("constraints", [])), name


def test_folders_build_into_exactly_named_schemas() -> None:
    models = load(DBT_PROJECT_DIR / "dbt_project.yml")["models"]["lakehouse"]
    assert {folder: config["+schema"] for folder, config in models.items()} == {f: f for f in LAYERS}
    macro = (DBT_PROJECT_DIR / "macros" / "generate_schema_name.sql").read_text()
    assert "{{ custom_schema_name | trim }}" in macro


def test_profile_reads_every_connection_setting_from_libpq_variables() -> None:
    profile = load(DBT_PROJECT_DIR / "profiles.yml")["lakehouse"]
    output = profile["outputs"][profile["target"]]
    assert output["type"] == "postgres"
    assert output["threads"] == 2
    expected = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    for field, variable in expected.items():
        assert re.fullmatch(rf"\{{\{{ env_var\('{variable}'(, '')?\) (\| as_number )?\}}\}}", output[field]), field
    assert output["password"] == "{{ env_var('PGPASSWORD', '') }}"


def test_fct_performance_watermark_is_the_ingestion_time_not_the_processing_time() -> None:
    sql = (MODELS / "core" / "fct_performance.sql").read_text()
    assert "unique_key='performance_id'" in sql
    incremental = without_comments(sql.split("{% if is_incremental() %}")[1].split("{% endif %}")[0])
    assert "source_ingested_at >" in incremental
    assert "processed_at" not in incremental


def test_project_generic_tests_are_defined() -> None:
    generic = {p.stem for p in (DBT_PROJECT_DIR / "tests" / "generic").glob("*.sql")}
    assert {"non_negative", "not_greater_than_column", "dates_in_order", "is_ratio"} <= generic
    assert list((DBT_PROJECT_DIR / "tests" / "singular").glob("assert_*.sql"))


# dbt_utils tests our generic tests share a name with: each says so on its first line.
DBT_UTILS_TESTS = {
    "equal_rowcount", "fewer_rows_than", "equality", "expression_is_true", "recency", "at_least_one", "not_constant",
    "not_empty_string", "cardinality_equality", "not_null_proportion", "not_accepted_values", "relationships_where",
    "mutually_exclusive_ranges", "sequential_values", "unique_combination_of_columns", "accepted_range",
}  # fmt: skip


def test_generic_tests_named_like_dbt_utils_say_they_mirror_it() -> None:
    mirrored = 0
    for path in (DBT_PROJECT_DIR / "tests" / "generic").glob("*.sql"):
        if path.stem in DBT_UTILS_TESTS:
            first = path.read_text().splitlines()[0]
            assert f"dbt_utils' {path.stem}" in first, path.name
            assert "dbt Hub is unreachable" in first, path.name
            mirrored += 1
    assert mirrored >= 2


def gold_tables() -> dict[str, set[str]]:
    """Schema: the tables dbt builds there (one per model), for core and analytics."""
    return {folder: set(model_sql(folder)) for folder in ("core", "analytics")}


def test_soda_gold_checks_gate_volume_only_one_per_table() -> None:
    """dbt owns every model invariant (keys, foreign keys, ranges, reconciliation); Soda must not repeat one."""
    for schema, tables in gold_tables().items():
        files = {p.stem: p for p in (CHECKS_DIR / "gold" / schema).glob("*.yml")}
        assert set(files) == tables, schema
        for table, path in files.items():
            document = load(path)
            assert list(document) == [f"checks for {table}"], path
            lines = [next(iter(check)) for check in document[f"checks for {table}"]]
            assert "row_count > 0" in lines, path
            repeated = [line for line in lines if not re.match(r"(row_count|freshness\()", line)]
            assert repeated == [], f"{path}: a dbt data test owns these"
