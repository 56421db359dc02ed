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
        timeout=900,
    )


def test_runner_works_on_the_embedded_default_from_any_directory(tmp_path: Path) -> None:
    """`python runner.py` with nothing configured: generates the sample, runs bronze, silver and gold."""
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(_free_port()),
    }

    proc = _run([], env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "generating the default sample" in proc.stderr
    summary = proc.stdout
    for layer, table in [("bronze", "performance"), ("silver", "campaigns"), ("gold", "dbt tests")]:
        assert any(line.startswith(layer) and table in line for line in summary.splitlines()), summary
    assert "silver: audited, then published; it reconciles with bronze for every table" in summary
    assert "gold: dbt build passed" in summary
    for layer in ("bronze", "silver", "gold"):  # a clean sample passes every quality check
        line = next(line for line in summary.splitlines() if line.startswith(f"quality {layer}:"))
        assert " 0 warned, 0 failed" in line, line
    assert "storage: landing CSV" in summary
    report = Path(summary.rstrip().splitlines()[-1].removeprefix("report: "))  # the run's last line: its report
    assert report.parent == tmp_path / "data" / "reports"
    assert "succeeded" in report.read_text()
    assert (tmp_path / "data" / "landing" / "manifest.json").is_file()
    assert "stopped embedded PostgreSQL" in proc.stderr  # it stops what it started
    assert "\tat org.apache." not in proc.stderr, proc.stderr[-5000:]  # a clean run prints no Java stack trace
    assert "All paths were ignored" not in proc.stderr, proc.stderr[-5000:]  # listing the lake's tables is quiet
    # The local lake (raw rows with personal data), the landing copy, the server and the role passwords: all
    # owner-only, files and folders.
    assert list((tmp_path / "data" / "lake" / "silver").rglob("*.parquet"))
    loose = [p for p in (tmp_path / "data").rglob("*") if p.stat().st_mode & 0o077]
    assert loose == [], f"readable by other users: {loose[:5]}"
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


def test_refused_files_are_named_and_exit_5_while_the_rest_loads(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "advertisers.csv").write_text(
        "advertiser_id,advertiser_name,industry,country,account_manager\n1,Acme,Retail,US,Jane\n"
    )
    (landing / "campaigns.csv").write_text(
        "campaign_id,advertiser_id,campaign_name,campaign_type,status,objective,start_date,end_date,budget_daily,"
        "budget_total\n10,1,Brand,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00\n"
    )
    (landing / "performance.csv").write_text(
        "performance_id,campaign_id,date,impressions,clicks,conversions,cost,revenue\n"
        "100,10,2024-01-02,1000,20,2,11.50,80.00\n"
    )
    (landing / "campaigns_broken.csv").write_text("campaign_id,colour\n1,blue\n")
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(_free_port()),
    }

    proc = _run(["bronze", "--input", str(landing)], env, cwd=tmp_path)

    assert proc.returncode == 5, proc.stderr[-3000:]
    assert "campaigns_broken.csv: header refused" in proc.stderr
    assert "unknown: colour" in proc.stderr
    advertisers = next(line for line in proc.stdout.splitlines() if line.startswith("bronze") and "advertisers" in line)
    assert advertisers.split()[2:4] == ["1", "1"]  # one file, one row


def test_check_against_real_minio_and_postgres_masks_secrets(
    tmp_path: Path, s3_service: S3Settings, pg_service: PostgresSettings, s3_bucket: str
) -> None:
    env = (
        {
            "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
            "LAKEHOUSE_LAKE_URI": f"s3a://{s3_bucket}/lake",
            "LAKEHOUSE_SPARK_MASTER": "local[2]",
        }
        | s3_service.aws_env()
        | pg_service.libpq_env()
    )

    proc = _run(["check"], env, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"OK   lake                   s3a://{s3_bucket}/lake writable (Delta)" in proc.stdout
    assert "OK   postgres" in proc.stdout
    assert s3_service.secret_access_key.reveal() not in proc.stdout + proc.stderr


def _free_port() -> int:
    from lakehouse.services import free_port

    return free_port()
