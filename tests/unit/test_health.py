"""`runner.py check` lines: OK, WARN (reported, not failing) and FAIL with the fix to try."""

from __future__ import annotations

from lakehouse.errors import ServiceUnavailableError
from lakehouse.health import Probe as CheckResult
from lakehouse.health import run_check


def test_lines_say_ok_warn_or_fail_and_show_the_fix_only_when_useful() -> None:
    assert CheckResult("lake", True, "writable", fix="start MinIO").line() == f"OK   {'lake':<22} writable"
    warn = CheckResult("warehouse schemas", True, "not created yet: ops", fix="run it", warning=True).line()
    assert warn.splitlines() == [f"WARN {'warehouse schemas':<22} not created yet: ops", "     fix: run it"]
    assert CheckResult("postgres", False, "refused", fix="start it").line().endswith("fix: start it")


def test_a_probe_error_becomes_a_failed_line_with_its_first_line() -> None:
    def probe() -> str:
        raise ServiceUnavailableError("MinIO", "http://127.0.0.1:9000", "connection refused", hint="start it")

    result = run_check("lake", probe, fix="docker compose up -d minio")

    assert not result.ok
    assert result.detail == "MinIO is not available at http://127.0.0.1:9000: connection refused"
