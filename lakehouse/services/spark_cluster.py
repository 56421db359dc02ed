"""A Spark standalone cluster as local processes: a master and workers from the Spark distribution pyspark ships
(``bin/spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), on loopback, for running the
pipeline on a real cluster here and for the test that does.

Every daemon runs in a session of its own, so stopping one stops its whole process group: a worker and the
executors it launched (and their Python workers). The daemons inherit this process's environment, so their
executors' Python workers run this interpreter (``PYSPARK_PYTHON``) with this ``PYTHONPATH``'s ``lakehouse``. The
master's JSON page (``http://127.0.0.1:<ui port>/json/``) tells when every worker has registered.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.adapters.spark import check_java
from lakehouse.services import free_port
from lakehouse.services.local import LocalServer, spawn, terminate, wait_until
from lakehouse.settings import load_settings

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_START_TIMEOUT_S = 120  # cold JVMs on two busy cores
_STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class ClusterShape:
    """How many workers, and what each offers its executors (one executor per worker and application)."""

    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    daemon_memory: str = "256m"  # the master's and workers' own JVMs, which only schedule


def spark_class(*args: str) -> list[str]:
    """The command running a class of the Spark distribution inside pyspark (``spark-class`` execs the JVM)."""
    import pyspark

    return [str(Path(pyspark.__file__).parent / "bin" / "spark-class"), *args]


class LocalSparkCluster(LocalServer[str]):
    """A standalone master and ``shape.workers`` workers on free loopback ports, their logs and work dirs in
    ``work_dir``; stopped on exit, executors included."""

    def __init__(self, work_dir: Path, *, shape: ClusterShape | None = None) -> None:
        self.work_dir = work_dir
        self.shape = shape or ClusterShape()
        self.port: int | None = None
        self.ui_port: int | None = None
        self.worker_ui_ports: list[int] = []  # an executor's log URLs name its worker by this port
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._groups: list[int] = []  # every daemon's process group, even after stop()

    @property
    def url(self) -> str:
        """What ``LAKEHOUSE_SPARK_MASTER`` is set to for this cluster."""
        return f"spark://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the master, then the workers; return the master URL once every worker has registered.

        Raises:
            ServiceUnavailableError: a daemon exited, or the workers did not register in time (the message names
                the logs); whatever was started is stopped.
        """
        check_java()
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port, self.ui_port = free_port(), free_port()
        try:
            self._launch("master", MASTER_CLASS, "--host", "127.0.0.1", "--port", str(self.port),
                         "--webui-port", str(self.ui_port))  # fmt: skip
            self._wait(lambda state: state.get("status") == "ALIVE", "the master is not alive")
            self.worker_ui_ports = [free_port() for _ in range(self.shape.workers)]
            for index, ui_port in enumerate(self.worker_ui_ports):
                worker_dir = self.work_dir / f"worker-{index}"
                worker_dir.mkdir(exist_ok=True, mode=0o700)
                self._launch(f"worker-{index}", WORKER_CLASS, self.url, "--host", "127.0.0.1",
                             "--port", str(free_port()), "--webui-port", str(ui_port),
                             "--cores", str(self.shape.cores), "--memory", self.shape.memory,
                             "--work-dir", str(worker_dir))  # fmt: skip
            self._wait(
                lambda state: int(state.get("aliveworkers", 0)) >= self.shape.workers,
                f"{self.shape.workers} workers did not register",
            )
        except BaseException:
            self.stop()
            raise
        return self.url

    def state(self) -> dict[str, Any]:
        """The master's JSON status page: workers, their cores and memory in use, applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as response:
            return dict(json.load(response))

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`stop`: whether no live process of any daemon's group is left (executors included). A zombie
        does not count: ``spark-class`` leaves its launcher's exit unreaped, and where PID 1 reaps nothing it stays."""
        return not any(_live_members(pgid) for pgid in self._groups)

    def stop(self) -> None:
        """Stop the workers (with their executors), then the master: SIGTERM to each process group, SIGKILL to
        whatever is left after a grace period."""
        for _, process in reversed(self._processes):
            # Executors are the worker's children in its group: none may outlive it.
            terminate(process, grace_s=_STOP_TIMEOUT_S, group=True)
        self._processes = []

    def log(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"

    def _launch(self, name: str, main_class: str, *args: str) -> None:
        env = os.environ | {
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_DAEMON_MEMORY": self.shape.daemon_memory,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_NO_DAEMONIZE": "1",
        }
        process = spawn(spark_class(main_class, *args), log=self.log(name), env=env)
        self._processes.append((name, process))
        self._groups.append(process.pid)

    def _wait(self, ready: Callable[[dict[str, Any]], bool], what: str) -> None:
        daemons = [(name, process, self.log(name)) for name, process in self._processes]
        wait_until(
            lambda: ready(self.state()), daemons, service="Spark standalone", endpoint=self.url,
            timeout_s=_START_TIMEOUT_S, hint=f"see the logs in {self.work_dir}", not_ready=what, interval_s=0.5,
        )  # fmt: skip


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (from ``/proc``; Linux)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)": state, ppid, pgrp...
            if int(fields[2]) == pgid and fields[0] != "Z":
                live.append(int(stat.parent.name))
    return live


def main() -> None:
    """``python -m lakehouse.services.spark_cluster``: a local master and two one-core workers, until interrupted;
    prints the ``LAKEHOUSE_SPARK_MASTER`` to use."""
    work_dir = load_settings().data_dir / "spark-cluster"
    LocalSparkCluster(work_dir).serve(lambda url: f"LAKEHOUSE_SPARK_MASTER={url}  (logs and work dirs: {work_dir})")


if __name__ == "__main__":
    main()
