"""lakehouse.quality without a database: which files a layer scans, Soda refusing bad files before connecting,
the PG* environment, telemetry, and the outcome helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lakehouse.quality import CheckResult, LayerQuality, QualityError, has_failures, scan_layer
from lakehouse.quality import scan as quality
from lakehouse.settings import PostgresSettings, Secret

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens there, and nothing must try: every test below fails before Soda connects.
PG = PostgresSettings("db.invalid", 6543, "analyst", "warehouse", password=Secret("s3cr3t-pw"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_gold_files_are_scanned_against_the_data_source_of_their_schema_folder() -> None:
    files = quality.check_files("gold")

    assert set(files) == {"lakehouse_core", "lakehouse_analytics"}
    assert quality.CHECKS_DIR / "gold" / "core" / "fct_performance.yml" in files["lakehouse_core"]
    assert set(quality.check_files("silver")) == {"lakehouse_silver"}


def test_an_unknown_layer_or_a_layer_without_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(QualityError, match="unknown layer 'platinum'"):
        quality.check_files("platinum")
    with pytest.raises(QualityError, match="no SodaCL files for layer 'bronze'"):
        quality.check_files("bronze", tmp_path)


def test_a_broken_check_file_is_refused_before_connecting(tmp_path: Path) -> None:
    write(tmp_path / "silver" / "advertisers.yml", "checks for advertisers:\n  - row_count > 0:\n      name: [oops\n")

    with pytest.raises(QualityError, match="Soda cannot use"):
        scan_layer(PG, "silver", checks_dir=tmp_path, log=lambda _: None)


def test_a_broken_configuration_is_refused_before_connecting(tmp_path: Path) -> None:
    configuration = write(tmp_path / "configuration.yml", "data_source lakehouse_silver:\n  type: [postgres\n")

    with pytest.raises(QualityError, match="Soda cannot use"):
        scan_layer(PG, "silver", configuration=configuration, log=lambda _: None)


def test_a_folder_without_a_configured_data_source_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "gold" / "marts" / "x.yml", "checks for x:\n  - row_count > 0:\n      name: has rows\n")

    with pytest.raises(QualityError, match="data source lakehouse_marts is not configured"):
        scan_layer(PG, "gold", checks_dir=tmp_path, log=lambda _: None)


def test_pg_variables_are_restored_and_the_password_never_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "callers-host")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    configuration = write(tmp_path / "configuration.yml", "data_source lakehouse_silver:\n  type: [postgres\n")

    with pytest.raises(QualityError) as raised:
        scan_layer(PG, "silver", configuration=configuration, log=lambda _: None)

    assert os.environ["PGHOST"] == "callers-host"
    assert "PGPASSWORD" not in os.environ
    assert "s3cr3t-pw" not in str(raised.value)


def test_importing_soda_through_quality_sends_no_telemetry_and_writes_nothing_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    write(work / "configuration.yml", "data_source lakehouse_silver:\n  type: [postgres\n")
    script = """
        from pathlib import Path
        from opentelemetry import trace
        from lakehouse.quality import scan as quality
        from lakehouse.settings import PostgresSettings
        try:
            quality.scan_layer(PostgresSettings("db.invalid", 1, "u", "d"), "silver",
                               configuration=Path("configuration.yml"), log=print)
        except quality.QualityError:
            pass
        import soda.scan  # imported by the scan above
        print(type(trace.get_tracer_provider()).__name__)
    """
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=work, env=env, capture_output=True, text=True, check=True
    )

    # Soda installs its exporting TracerProvider only when telemetry is on; the default proxy exports nothing.
    assert done.stdout.strip().splitlines()[-1] == "ProxyTracerProvider"
    assert list(home.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == ["configuration.yml"]


def results(*outcomes: str) -> tuple[CheckResult, ...]:
    return tuple(CheckResult(f"check {i}", "silver.t", o, None) for i, o in enumerate(outcomes))  # type: ignore[arg-type]


def test_warnings_do_not_count_as_failures() -> None:
    warned = LayerQuality("silver", results("pass", "warn", "warn"), 0.1)
    failed = LayerQuality("gold", results("pass", "fail", "warn"), 0.1)

    assert warned.ok
    assert len(warned.warned) == 2
    assert not has_failures(warned)
    assert has_failures(warned, failed)
    assert [r.check_name for r in failed.failed] == ["check 1"]
