"""A MinIO server run as a local process, for development and tests on machines without Docker; and the one
access policy the pipeline's own key gets.

MinIO is distributed as source now; ``scripts/build-minio.sh`` builds the pinned version with
``go install`` into the cache directory, where :func:`find_minio_binary` looks for it.

The pipeline never runs on MinIO's root key: the root key creates the buckets, a user and the policy of
:func:`pipeline_policy` (docker compose's ``minio-init`` job from ``scripts/minio-policy.json``, the test
fixtures through the admin API), and the pipeline gets that user's key, which can read and write objects in its
buckets and nothing else: no bucket created or deleted, no other bucket listed or read, no admin call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from lakehouse.services import free_port
from lakehouse.services.local import LocalServer, spawn, terminate, wait_until
from lakehouse.settings import S3Settings, Secret

# The Go module proxy serves only the final commit of the archived repository, not the RELEASE tags;
# this is that commit (2026-02-12), newer than RELEASE.2025-09-07T16-13-09Z pinned for containers.
MINIO_MODULE_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
_START_TIMEOUT_S = 30

# The buckets of docker compose's stack: the seed guide's bucket per layer, and one for landing files.
PIPELINE_BUCKETS = ("landing", "bronze", "silver", "quarantine")
PIPELINE_POLICY_NAME = "lakehouse-pipeline"
# What the pipeline does to a bucket (list it, find its region) and to its objects (Delta logs, Parquet, the run
# lease; multipart for large files). Bucket creation and deletion, bucket policies and admin are bootstrap's.
_BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads")
_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def pipeline_policy(buckets: Iterable[str] = PIPELINE_BUCKETS) -> dict[str, object]:
    """The IAM policy of the pipeline's key: read and write objects in ``buckets``, nothing else.

    Args:
        buckets: bucket names, or patterns with ``*`` (the tests' ``lh-test-*``).

    Returns:
        The policy document, as MinIO's ``mc admin policy create`` and ``MinioAdmin.policy_add`` take it.
    """
    names = sorted(buckets)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListItsBuckets",
                "Effect": "Allow",
                "Action": list(_BUCKET_ACTIONS),
                "Resource": [f"arn:aws:s3:::{name}" for name in names],
            },
            {
                "Sid": "ReadWriteItsObjects",
                "Effect": "Allow",
                "Action": list(_OBJECT_ACTIONS),
                "Resource": [f"arn:aws:s3:::{name}/*" for name in names],
            },
        ],
    }


def pipeline_policy_json(buckets: Iterable[str] = PIPELINE_BUCKETS) -> str:
    """:func:`pipeline_policy` as the text of ``scripts/minio-policy.json`` (``python -m lakehouse.services.minio``
    writes it to stdout)."""
    return json.dumps(pipeline_policy(buckets), indent=2) + "\n"


def find_minio_binary(cache_dir: Path, explicit: Path | None = None) -> Path | None:
    """``explicit`` if given, else the pinned build in ``cache_dir``, else ``minio`` on PATH."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    cached = cache_dir / "minio" / MINIO_MODULE_VERSION / "minio"
    if cached.is_file():
        return cached
    found = shutil.which("minio")
    return Path(found) if found else None


class LocalMinio(LocalServer[S3Settings]):
    """``minio server`` on a free loopback port with its own data dir; stopped on exit."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        access_key: str = "minioadmin",
        secret_key: str = "minioadmin123",
        port: int | None = None,
    ) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.access_key = access_key
        self._secret_key = Secret(secret_key)
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> S3Settings:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = os.environ | {
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self._secret_key.reveal(),
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        command = [str(self.binary), "server", str(self.data_dir), "--address", f"127.0.0.1:{self.port}", "--quiet"]
        self._process = spawn(command, log=self.log, env=env)
        try:
            wait_until(
                self._live, [("server", self._process, self.log)], service="MinIO", endpoint=self.endpoint_url,
                timeout_s=_START_TIMEOUT_S, hint=f"see {self.log}", not_ready="not live",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return S3Settings(
            endpoint_url=self.endpoint_url, access_key_id=self.access_key, secret_access_key=self._secret_key
        )

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, grace_s=10)
            self._process = None

    def _live(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint_url}/minio/health/live", timeout=2) as response:
            return bool(response.status == 200)


if __name__ == "__main__":
    print(pipeline_policy_json(), end="")
