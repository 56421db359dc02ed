"""A Spark Connect server with Delta as a local process: for running the pipeline on Spark Connect here, and for
the test that does.

pyspark ships the server (``jars/spark-connect_2.13-*.jar``) and ``bin/spark-submit``; the server is started with
every launch setting of :func:`lakehouse.adapters.spark.spark_conf` (master, memory, Delta's jars, extension and
catalog, the workers' Python and time zone), listening on loopback only. It gets no credentials: a client session
sets its own (:func:`lakehouse.adapters.spark.configure_s3a`). Python functions sent by a client (``mapInArrow``)
run in the server's Python workers, so the server's Python must import the same ``lakehouse``: it inherits this
process's interpreter and ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from lakehouse.adapters.jars import required_artifacts, resolve_jars
from lakehouse.adapters.spark import check_java, make_spark_dirs, owner_only_event_logs, spark_conf
from lakehouse.services import free_port
from lakehouse.services.local import LocalServer, spawn, terminate, wait_until
from lakehouse.settings import Settings, load_settings

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_START_TIMEOUT_S = 180  # a cold JVM on two busy cores


def server_command(settings: Settings, jars: list[Path], *, port: int) -> list[str]:
    """``spark-submit`` starting a Connect server on ``127.0.0.1:port`` with the project's launch settings."""
    import pyspark

    conf = spark_conf(settings, jars) | {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }
    command = [str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return command


class LocalSparkConnect(LocalServer[str]):
    """A Spark Connect server on a free loopback port, its output in ``log``; stopped on exit."""

    def __init__(self, settings: Settings, log: Path, *, port: int | None = None) -> None:
        self.settings = settings
        self.log = log
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What ``LAKEHOUSE_SPARK_REMOTE`` is set to for this server."""
        return f"sc://127.0.0.1:{self.port}"

    def start(self) -> str:
        check_java()
        jars = resolve_jars(
            required_artifacts(s3=self.settings.s3 is not None),
            self.settings.jar_cache_dir,
            repository=self.settings.maven_repository,
        )
        make_spark_dirs(self.settings)
        port = self.port = self.port or free_port()
        # Its Python workers run this interpreter (and so this virtualenv and this PYTHONPATH's lakehouse).
        env = os.environ | {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        self._process = spawn(server_command(self.settings, jars, port=port), log=self.log, env=env)

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        try:
            wait_until(
                listening, [("server", self._process, self.log)], service="Spark Connect", endpoint=self.url,
                timeout_s=_START_TIMEOUT_S, hint=f"see {self.log}", not_ready="not listening", interval_s=0.5,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, grace_s=30)  # spark-submit's JVM is the process itself (exec): it stops its workers
        self._process = None
        owner_only_event_logs(self.settings)


def main() -> None:
    """``python -m lakehouse.services.spark_connect``: a local server for this environment's settings (its master,
    memory, shuffle partitions, S3 endpoint), until interrupted; prints the ``LAKEHOUSE_SPARK_REMOTE`` to use."""
    settings = load_settings()
    log = settings.data_dir / "spark-connect.log"
    LocalSparkConnect(settings, log).serve(lambda url: f"LAKEHOUSE_SPARK_REMOTE={url}  (server log: {log})")


if __name__ == "__main__":
    main()
