"""The dbt project's structure and style: naming, one YAML per folder, contracts, env-only profile, lowercase SQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.gold import DBT_PROJECT_DIR

MODELS = DBT_PROJECT_DIR / "models"
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
    return {p.stem: p.read_text() for p in sorted((MODELS / folder).glob("*.sql"))}


def without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|\{#.*?#\}", "", sql, flags=re.DOTALL)


def models_yaml(folder: str) -> dict[str, Any]:
    (path,) = (MODELS / folder).glob("_*__models.yml")
    assert path.name == f"_{folder}__models.yml"
    return {m["name"]: m for m in load(path)["models"]}


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


def test_source_appears_only_in_staging() -> None:
    outside = [
        str(path.relative_to(DBT_PROJECT_DIR))
        for path in DBT_PROJECT_DIR.rglob("*.sql")
        if "source(" in path.read_text() and path.parent != MODELS / "staging" and "target" not in path.parts
    ]
    assert outside == []


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


def test_core_models_enforce_typed_contracts() -> None:
    core = load(DBT_PROJECT_DIR / "dbt_project.yml")["models"]["lakehouse"]["core"]
    assert core["+contract"] == {"enforced": True}
    assert core["+schema"] == "core"
    for name, model in models_yaml("core").items():
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
