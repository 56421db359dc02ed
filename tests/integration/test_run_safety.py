"""One run at a time, and gates that judge what the run touched: real runner processes, real locks.

- Two runners started together on the same landing directory load every row exactly once (Delta and PostgreSQL).
- A runner that finds another run holding the lake or the warehouse exits 7 at once naming it, or waits (--wait).
- A lock held by a process killed with SIGKILL is free again (flock dies with it; an S3 lease of a dead local
  process is stale).
- A first delivery holding only some tables passes the gates; a refused file exits 5, not 6.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from lakehouse.adapters import locks
from lakehouse.adapters.objectstore import ensure_bucket
from lakehouse.errors import RunInProgressError
from lakehouse.services import free_port, provide
from lakehouse.services.minio import LocalMinio, find_minio_binary
from lakehouse.services.postgres import LocalPostgres, PostgresBinaries
from lakehouse.settings import PostgresSettings, S3Settings, load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ADVERTISERS = (
    "advertiser_id,advertiser_name,industry,country,account_manager\n1,Acme,Retail,US,Jane\n2,Bolt,Travel,GB,\n"
)
CAMPAIGNS = (
    "campaign_id,advertiser_id,campaign_name,campaign_type,status,objective,start_date,end_date,budget_daily,"
    "budget_total\n10,1,Brand,Search,Active,Sales,2024-01-01,2024-01-31,10.00,310.00\n"
)
PERFORMANCE = (
    "performance_id,campaign_id,date,impressions,clicks,conversions,cost,revenue\n"
    "100,10,2024-01-02,1000,20,2,11.50,80.00\n101,10,2024-01-03,900,18,1,10.00,40.00\n"
    "102,10,2024-01-04,800,10,0,9.00,0.00\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    return base | {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_SPARK_MASTER": "local[1]",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_EMBEDDED_PG_PORT": str(free_port()),
    }


def _runner(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, str(ROOT / "runner.py"), *args]
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _landing(tmp_path: Path, **files: str) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    for name, text in files.items():
        (landing / name).write_text(text, encoding="utf-8")
    return landing


def _query(pg: PostgresSettings, statement: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(**pg.connect_kwargs())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall()
    finally:
        conn.close()


def test_two_runners_started_together_load_every_row_exactly_once(tmp_path: Path, spark: Any) -> None:
    landing = _landing(
        tmp_path, **{"advertisers.csv": ADVERTISERS, "campaigns.csv": CAMPAIGNS, "performance.csv": PERFORMANCE}
    )
    env = _env(tmp_path)

    procs = [_runner(["bronze", "--input", str(landing), "--wait", "--no-quality"], env, tmp_path) for _ in range(2)]
    results = [_finish(proc) for proc in procs]

    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    waited = [err for _, _, err in results if "skipping" in err]
    assert len(waited) == 1, "the second runner waits for the first, then finds every file already ingested"
    lake = tmp_path / "data" / "lake" / "bronze"
    expected = {"advertisers": 2, "campaigns": 1, "performance": 3}
    assert {t: spark.read.format("delta").load(str(lake / t)).count() for t in expected} == expected
    settings = load_settings(env, dotenv_path=None)
    with provide.postgres(settings) as pg:
        counts = {t: _query(pg, f"select count(*) from bronze.raw_{t}")[0][0] for t in expected}
        runs = _query(pg, "select status, count(*) from ops.pipeline_runs group by status")
    assert counts == expected
    assert runs == [("succeeded", 2)]
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists(), "the last runner stops the server"


def test_a_busy_lake_makes_a_runner_exit_7_at_once_or_after_waiting(tmp_path: Path) -> None:
    landing = _landing(tmp_path, **{"advertisers.csv": ADVERTISERS})
    env = _env(tmp_path)
    settings = load_settings(env, dotenv_path=None)

    with locks.lake_lock(settings, run="holder-run"):
        started = time.monotonic()
        code, _, err = _finish(_runner(["bronze", "--input", str(landing)], env, tmp_path), timeout=120)
        at_once = time.monotonic() - started
        waited_code, _, waited_err = _finish(_runner(["bronze", "--input", str(landing), "--wait=2"], env, tmp_path))

    assert code == 7, err[-2000:]
    assert "another run holds the lake lock" in err
    assert "holder-run" in err
    assert "Traceback" not in err
    assert waited_code == 7, waited_err[-2000:]
    assert at_once < 60  # no Spark, no PostgreSQL started: it gave up before either


def test_the_warehouse_lock_names_its_holder_and_ends_with_its_session(pg_database: PostgresSettings) -> None:
    with (
        locks.warehouse_lock(pg_database, run="first"),
        pytest.raises(RunInProgressError, match="lakehouse run first"),
        locks.warehouse_lock(pg_database, run="second", wait_s=0.5),
    ):
        pass
    with locks.warehouse_lock(pg_database, run="third", wait_s=0):
        pass


def test_a_lake_lock_of_a_killed_process_is_free_again(tmp_path: Path, s3_service: S3Settings, s3_bucket: str) -> None:
    local = load_settings({"LAKEHOUSE_DATA_DIR": str(tmp_path / "data")}, dotenv_path=None)
    s3 = load_settings(
        {"LAKEHOUSE_DATA_DIR": str(tmp_path / "data"), "LAKEHOUSE_LAKE_URI": f"s3a://{s3_bucket}/lake"}
        | s3_service.aws_env(),
        dotenv_path=None,
    )
    for settings in (local, s3):
        holder = _hold_lake_lock_in_a_child(settings, tmp_path)
        with pytest.raises(RunInProgressError, match="child-run"), locks.lake_lock(settings, run="parent", wait_s=0):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with locks.lake_lock(settings, run="parent", wait_s=5):
            pass


def _hold_lake_lock_in_a_child(settings: Any, tmp_path: Path) -> subprocess.Popen[str]:
    ready = tmp_path / f"ready-{settings.lake_kind}"
    script = (
        "import pickle, sys, time, pathlib\n"
        "from lakehouse.adapters import locks\n"
        "settings = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
        "with locks.lake_lock(settings, run='child-run'):\n"
        f"    pathlib.Path({str(ready)!r}).touch()\n"
        "    time.sleep(600)\n"
    )
    import pickle

    child = subprocess.Popen([sys.executable, "-c", script, pickle.dumps(settings).hex()], text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, "the child could not take the lock"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return child


def test_a_first_delivery_of_some_tables_passes_the_gates_and_a_refused_file_exits_5(tmp_path: Path) -> None:
    landing = _landing(tmp_path, **{"advertisers.csv": ADVERTISERS, "performance.csv": "performance_id,colour\n1,x\n"})
    env = _env(tmp_path)

    code, out, err = _finish(_runner(["bronze", "--input", str(landing)], env, tmp_path))
    silver_code, silver_out, silver_err = _finish(_runner(["silver"], env, tmp_path))

    assert code == 5, err[-3000:]
    assert "performance.csv: header refused" in err
    assert "quality gate failed" not in err
    bronze_gate = next(line for line in out.splitlines() if line.startswith("quality bronze"))
    assert bronze_gate.startswith("quality bronze: 3 passed, 0 warned, 0 failed"), bronze_gate  # raw_advertisers only
    assert silver_code == 0, silver_err[-3000:]
    assert "quality silver: " in silver_out
    assert " 0 failed" in next(line for line in silver_out.splitlines() if line.startswith("quality silver"))


@pytest.mark.parametrize("lost", ["PostgreSQL", "S3"])
def test_a_service_lost_while_silver_runs_exits_4_naming_it(tmp_path: Path, lost: str) -> None:
    binary = find_minio_binary(load_settings(dotenv_path=None).cache_dir)
    assert binary is not None, "the MinIO build is missing (scripts/build-minio.sh)"
    landing = _landing(
        tmp_path, **{"advertisers.csv": ADVERTISERS, "campaigns.csv": CAMPAIGNS, "performance.csv": PERFORMANCE}
    )
    with (
        LocalMinio(binary, tmp_path / "minio", secret_key="canary-s3-secret-7f3a") as s3,
        LocalPostgres(PostgresBinaries.embedded(), tmp_path / "pg") as pg,
    ):
        ensure_bucket(s3, "lake")
        env = _env(tmp_path) | pg.libpq_env()
        env |= {"LAKEHOUSE_LAKE_URI": "s3a://lake/data"} | s3.aws_env()
        proc = _runner(["run", "--input", str(landing)], env, tmp_path)
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:
            seen.append(line)
            if "silver/advertisers:" in line:  # silver has written its first table: stop the service under it
                if lost == "PostgreSQL":
                    subprocess.run(_pg_ctl_immediate(tmp_path / "pg"), check=True, capture_output=True)
                else:
                    minio_pid = next(p for p in _children_named("minio") if str(tmp_path) in _cmdline(p))
                    os.kill(minio_pid, signal.SIGKILL)
                break
        out, rest = proc.communicate(timeout=600)
        err = "".join(seen) + rest

    assert any("silver/advertisers:" in line for line in seen), err[-3000:]
    assert proc.returncode == 4, err[-3000:]
    endpoint = f"{pg.host}:{pg.port}" if lost == "PostgreSQL" else s3.endpoint_url
    assert f"{lost} is not available at {endpoint}" in err
    assert "Traceback" not in err
    assert "canary-s3-secret-7f3a" not in out + err


def _pg_ctl_immediate(data_dir: Path) -> list[str]:
    """``pg_ctl stop -m immediate``, as the server's owner: a crash, not a shutdown."""
    server = LocalPostgres(PostgresBinaries.embedded(), data_dir)
    return server.command("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(data_dir))


def _children_named(name: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == name]


def _comm(proc_dir: Path) -> str:
    try:
        return (proc_dir / "comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_abandon_names_an_unknown_batch_and_is_recorded_as_a_run(tmp_path: Path) -> None:
    env = _env(tmp_path)

    code, _, err = _finish(_runner(["bronze", "--abandon", "20240101T000000Z-nosuchid"], env, tmp_path))

    assert code == 1, err[-3000:]
    assert "20240101T000000Z-nosuchid" in err
    assert "Traceback" not in err
    with provide.postgres(load_settings(env, dotenv_path=None)) as pg:
        runs = _query(pg, "select status, arguments from ops.pipeline_runs")
    assert runs == [("failed", ["bronze", "--abandon", "20240101T000000Z-nosuchid"])]
