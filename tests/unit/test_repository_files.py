"""Files users run by hand: docker-compose.yml (no Docker engine here, so its structure is checked) and the
MinIO build script, which must build the same version the library looks for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lakehouse.services.containers import MINIO_IMAGE, POSTGRES_IMAGE
from lakehouse.services.minio import MINIO_MODULE_VERSION
from lakehouse.settings import PG_VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_pins_the_quay_minio_image_with_seed_names_ports_and_healthchecks() -> None:
    services = _compose()["services"]
    minio, postgres = services["minio"], services["postgres"]

    assert minio["image"] == MINIO_IMAGE == "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    assert minio["container_name"] == "campaign_minio"
    assert {"9000:9000", "9001:9001"} <= set(minio["ports"])
    assert "healthcheck" in minio
    assert postgres["image"] == POSTGRES_IMAGE
    assert postgres["container_name"] == "campaign_analytics_db"
    assert "healthcheck" in postgres


def test_compose_defaults_match_the_seed_guide_credentials_and_database() -> None:
    services = _compose()["services"]

    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == "${AWS_ACCESS_KEY_ID:-minioadmin}"
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "${AWS_SECRET_ACCESS_KEY:-minioadmin123}"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "${PGDATABASE:-campaign_analytics}"
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "${PGUSER:-dbt_user}"


def test_compose_creates_one_bucket_per_layer_after_minio_is_healthy() -> None:
    init = _compose()["services"]["minio-init"]

    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert re.search(r"mc mb --ignore-existing local/bronze local/silver local/quarantine", init["entrypoint"])
    assert init["restart"] == "no"


def test_build_script_builds_the_version_the_library_looks_for() -> None:
    script = (ROOT / "scripts" / "build-minio.sh").read_text()

    assert f'MINIO_MODULE_VERSION="{MINIO_MODULE_VERSION}"' in script


def test_env_example_documents_every_variable_the_code_reads() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    code = "\n".join(p.read_text() for p in (ROOT / "lakehouse").rglob("*.py"))
    read = set(re.findall(r'(?:\.get\(|_int\(env, )"([A-Z][A-Z0-9_]+)"', code))
    read |= set(PG_VARIABLES)

    assert len(read) > 15
    assert read - documented == set()
