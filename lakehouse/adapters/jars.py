"""The JVM connector jars Spark needs, fetched once from a Maven repository into a cache and reused offline.

Spark's own ``spark.jars.packages`` would run an Ivy resolution at every session start; instead the exact
artifacts are pinned here with their SHA-1 digests, downloaded on first use, verified, renamed into place
atomically, and handed to Spark as local files. A warm cache never touches the network.

``hadoop-aws`` must match the Hadoop that pyspark bundles *exactly*, and the AWS SDK v2 ``bundle`` must be
the one that ``hadoop-aws`` release was built against; :func:`check_hadoop_version` enforces the first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lakehouse.adapters.locks import file_lock
from lakehouse.errors import JarResolutionError
from lakehouse.settings import MAVEN_CENTRAL

log = logging.getLogger(__name__)

HADOOP_VERSION = "3.4.1"  # the Hadoop inside pyspark 4.0.1
SPARK_VERSION = "4.0.1"


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str
    sha1: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    @property
    def path(self) -> str:
        return f"{self.group.replace('.', '/')}/{self.name}/{self.version}/{self.file_name}"

    def __str__(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


DELTA = (
    Artifact("io.delta", "delta-spark_2.13", "4.0.1", "3e469898dc4ed083c735ae360beb063adcd12e9d"),
    Artifact("io.delta", "delta-storage", "4.0.1", "ebc5384d953c1d70d0ce4ceee42892da74051a81"),
)
S3A = (
    Artifact("org.apache.hadoop", "hadoop-aws", HADOOP_VERSION, "641d8fe1d7683cdcc05cc3a794c0374553f6bd6a"),
    # ~560 MB: the AWS SDK v2 release hadoop-aws 3.4.1 was built and tested with.
    Artifact("software.amazon.awssdk", "bundle", "2.24.6", "242317b028d951dbbf6a142241e041b684696a3b"),
    # PathOutputCommitProtocol / BindingParquetOutputCommitter: lets Spark SQL use the S3A magic committer.
    Artifact(
        "org.apache.spark",
        "spark-hadoop-cloud_2.13",
        SPARK_VERSION,
        "df8ed6b07dad10ff1464ce07ef4b89d7393d6596",
    ),
)

# PostgreSQL's JDBC driver: only the loader benchmark uses it (the project loads with COPY, not JDBC).
POSTGRES_JDBC = Artifact("org.postgresql", "postgresql", "42.7.7", "67f8093e8d8104c74bbf588392ac3229803f5d17")


def required_artifacts(*, s3: bool) -> tuple[Artifact, ...]:
    """Delta always; the S3A connector only when the lake is on an object store."""
    return DELTA + S3A if s3 else DELTA


def resolve_jars(artifacts: tuple[Artifact, ...], cache_dir: Path, *, repository: str = MAVEN_CENTRAL) -> list[Path]:
    """Return local paths of ``artifacts``, downloading and verifying any missing from ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / ".lock"):
        return [_ensure(artifact, cache_dir, repository) for artifact in artifacts]


def check_hadoop_version(spark_jars_dir: Path) -> None:
    """Fail early, with the fix, when pyspark bundles a Hadoop other than the one the jars were pinned for."""
    found = sorted(p.name for p in spark_jars_dir.glob("hadoop-client-api-*.jar"))
    expected = f"hadoop-client-api-{HADOOP_VERSION}.jar"
    if not found:
        raise JarResolutionError(
            f"no hadoop-client-api jar in {spark_jars_dir}: pyspark's Hadoop cannot be checked against hadoop-aws "
            f"{HADOOP_VERSION}. Reinstall the pinned pyspark: pip install 'pyspark=={SPARK_VERSION}'"
        )
    if expected not in found:
        raise JarResolutionError(
            f"pyspark bundles {found[0]} but hadoop-aws is pinned to {HADOOP_VERSION}; the two must match "
            f"exactly. Reinstall the pinned pyspark: pip install 'pyspark=={SPARK_VERSION}'"
        )


def _ensure(artifact: Artifact, cache_dir: Path, repository: str) -> Path:
    target = cache_dir / artifact.file_name
    if target.is_file():
        return target
    url = f"{repository.rstrip('/')}/{artifact.path}"
    partial = target.with_name(target.name + ".part")
    log.info("downloading %s from %s (first run only; cached in %s)", artifact, repository, cache_dir)
    try:
        digest = _download(url, partial)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise JarResolutionError(
            f"could not download {artifact} from {url}: {exc}. Check network access to the Maven repository "
            f"(LAKEHOUSE_MAVEN_REPOSITORY) or copy {artifact.file_name} into {cache_dir}"
        ) from exc
    if digest != artifact.sha1:
        partial.unlink(missing_ok=True)
        raise JarResolutionError(
            f"{artifact} from {url} has SHA-1 {digest}, expected {artifact.sha1}; the download was corrupted "
            "or the repository serves a different file"
        )
    os.replace(partial, target)
    return target


def _download(url: str, destination: Path) -> str:
    sha1 = hashlib.sha1()
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done, next_report = 0, 0.25
        while chunk := response.read(1 << 20):
            out.write(chunk)
            sha1.update(chunk)
            done += len(chunk)
            if total and done / total >= next_report:
                log.info("  %s: %d%% of %.0f MB", destination.stem, 100 * done // total, total / 1e6)
                next_report += 0.25
    return sha1.hexdigest()
