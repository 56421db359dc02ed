"""The runner's command line: help, exit codes and configuration errors, without starting services."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import lakehouse
import runner
from lakehouse.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_commands_and_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for command in ("run", "check", "db"):
        assert command in out
    assert "Exit codes:" in out
    assert "4  a service is unavailable" in out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["bogus"])

    assert exit_info.value.code == runner.ExitCode.USAGE


def test_configuration_error_exits_3_with_the_variable_named(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LAKEHOUSE_LAKE_URI": "s3a://"},
        check=False,
        timeout=60,
    )

    assert proc.returncode == runner.ExitCode.CONFIG
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, str(ROOT / "runner.py")],
        [sys.executable, "-m", "lakehouse"],
        [str(Path(sys.executable).parent / "lakehouse")],
    ],
    ids=["runner.py", "python -m lakehouse", "console script"],
)
def test_every_entry_point_runs_the_same_command_line(command: list[str], tmp_path: Path) -> None:
    version = subprocess.run([*command, "--version"], capture_output=True, text=True, check=False, cwd=tmp_path)
    bogus = subprocess.run([*command, "bogus"], capture_output=True, text=True, check=False, cwd=tmp_path)

    assert version.returncode == runner.ExitCode.OK
    assert version.stdout.strip() == f"lakehouse {lakehouse.__version__}"
    assert bogus.returncode == runner.ExitCode.USAGE
    assert "invalid choice: 'bogus'" in bogus.stderr


def test_a_missing_input_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["bronze", "--input", str(tmp_path / "nowhere")])

    assert exit_info.value.code == runner.ExitCode.USAGE
    assert "does not exist" in capsys.readouterr().err


def test_maintain_below_the_safe_retention_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = runner.main(["maintain", "--retention-hours", "0.25"], base_dir=tmp_path)

    err = capsys.readouterr().err
    assert code == runner.ExitCode.CONFIG
    assert "refusing to VACUUM with a retention of 0.25 hours: the safe minimum is 1 hours" in err
    assert not (tmp_path / "lakehouse_data").exists()  # no lake, no PostgreSQL, no Spark was started


def test_export_needs_a_layer_and_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main(["export", "performance", "--as-of", "3", "--out", str(tmp_path / "x.csv")], base_dir=tmp_path)

    assert code == runner.ExitCode.CONFIG
    assert "'performance' is not a lake table: write LAYER/TABLE" in capsys.readouterr().err


def test_gold_refused_on_a_failed_silver_audit_exits_6_naming_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    from lakehouse.cli.commands import finish
    from lakehouse.steps import RunOutcome

    args = build_parser().parse_args(["gold", "--force"])
    blocked = RunOutcome("r2", blocked="gold was not built: silver's last audit failed in run r1 at ...")

    code = finish(blocked, argparse.Namespace(json=False), seconds=0.1)

    assert args.force is True
    assert build_parser().parse_args(["gold"]).force is False
    assert code == runner.ExitCode.QUALITY
    out, err = capsys.readouterr()
    assert "silver's last audit failed in run r1" in err
    assert "run r2: failed" in out


def test_a_failed_silver_audit_exits_6_saying_nothing_was_published(capsys: pytest.CaptureFixture[str]) -> None:
    from lakehouse.cli.commands import finish
    from lakehouse.quality import CheckResult, LayerQuality
    from lakehouse.steps import RunOutcome

    check = CheckResult("has rows", "silver.performance", "fail", 0.0, "value 0; fail when <= 0")
    outcome = RunOutcome("r1", quality=[LayerQuality("silver", (check,), 1.0)], unpublished=("silver", "quarantine"))

    code = finish(outcome, argparse.Namespace(json=False), seconds=0.1)

    assert code == runner.ExitCode.QUALITY
    err = capsys.readouterr().err
    assert "silver.performance: has rows (value 0; fail when <= 0)" in err
    assert "the silver and quarantine candidate was not published: readers still see the previous version" in err


def test_silver_run_and_gold_take_full_refresh_and_only_gold_takes_force() -> None:
    for command in ("silver", "run", "gold"):
        assert build_parser().parse_args([command, "--full-refresh"]).full_refresh is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["silver", "--force"])


def test_quality_as_of_needs_a_lake_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["quality", "--as-of", "3"], ["quality", "--layer", "gold", "--as-of", "2026-01-01"]):
        assert runner.main(argv, base_dir=tmp_path) == runner.ExitCode.USAGE
        assert "--as-of needs --layer bronze or --layer silver" in capsys.readouterr().err
    assert not (tmp_path / "lakehouse_data").exists()  # refused before any service started
