"""`python runner.py` on the embedded default from a fresh data dir, and `check` against the real services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.settings import PostgresSettings, S3Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args],
        capture_output=True,
        text=True,
        env=base | env,
        cwd=cwd,
        check=False,
        timeout=300,
    )


def test_runner_works_on_the_embedded_default_from_any_directory(tmp_path: Path) -> None:
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(_free_port()),
    }

    proc = _run([], env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert "OK   lake" in proc.stdout
    assert "OK   postgres" in proc.stdout
    for layer in ("bronze", "silver", "quarantine", "gold"):
        assert layer in proc.stdout
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").is_file()
    assert "stopped embedded PostgreSQL" in proc.stderr  # it stops what it started


def test_check_against_real_minio_and_postgres_masks_secrets(
    tmp_path: Path, s3_service: S3Settings, pg_service: PostgresSettings, s3_bucket: str
) -> None:
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_LAKE_URI": f"s3a://{s3_bucket}/lake",
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "AWS_ENDPOINT_URL": s3_service.endpoint_url or "",
        "AWS_ACCESS_KEY_ID": s3_service.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_service.secret_access_key.reveal(),
    } | pg_service.libpq_env()

    proc = _run(["check"], env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"OK   lake                   s3a://{s3_bucket}/lake writable (Delta)" in proc.stdout
    assert "OK   postgres" in proc.stdout
    assert s3_service.secret_access_key.reveal() not in proc.stdout + proc.stderr


def _free_port() -> int:
    from lakehouse.services import free_port

    return free_port()
