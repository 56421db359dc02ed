"""The JVM connector jars Spark needs, fetched once from a Maven repository into a cache and reused offline.

Spark's own ``spark.jars.packages`` would run an Ivy resolution at every session start; instead the exact
artifacts are pinned here with their SHA-256 digests, downloaded on first use, verified, renamed into place
atomically, and handed to Spark as local files. A warm cache never touches the network.

A cached jar is checked again every time it is used, cheaply: next to it a stamp records the size, ``mtime_ns``
and ``ctime_ns`` it had when its SHA-256 was last computed. While those are unchanged the jar is trusted without
reading it (the AWS SDK bundle is ~560 MB); otherwise it is hashed in full, and a jar whose digest is not the
pinned one is deleted and downloaded again. ``ctime`` is there because a tamperer can set ``mtime`` back with
``touch -d`` but not ``ctime``.

``hadoop-aws`` must match the Hadoop that pyspark bundles *exactly*, and the AWS SDK v2 ``bundle`` must be
the one that ``hadoop-aws`` release was built against; :func:`check_hadoop_version` enforces the first.
"""

from __future__ import annotations

import hashlib
import json
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
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    @property
    def path(self) -> str:
        return f"{self.group.replace('.', '/')}/{self.name}/{self.version}/{self.file_name}"

    def __str__(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


# SHA-256 digests. Maven Central publishes a ``.sha256`` only for the PostgreSQL driver (it agrees); the others
# were computed once from downloads that matched Central's published ``.sha1``.
DELTA = (
    Artifact(
        "io.delta", "delta-spark_2.13", "4.0.1", "a1e76860b19fe1e6b205a4ea7a9099a2f9575d39bb71d49b3e679b299d0efb91"
    ),
    Artifact("io.delta", "delta-storage", "4.0.1", "ecc42c5aaa51c423312d9e4e48aa4a12b34740bf2c37de0e8f279277ec3d12e4"),
)
S3A = (
    Artifact(
        "org.apache.hadoop",
        "hadoop-aws",
        HADOOP_VERSION,
        "01334a07e179cae2b7e251f24857f11e3759108c9d6a79dcbe362a4295227da2",
    ),
    # ~560 MB: the AWS SDK v2 release hadoop-aws 3.4.1 was built and tested with.
    Artifact(
        "software.amazon.awssdk", "bundle", "2.24.6", "890bf9f2a80488f7a8aa8277d64d13a9ea3a3cdff8607ef3b63a878d8b467b41"
    ),
    # PathOutputCommitProtocol / BindingParquetOutputCommitter: lets Spark SQL use the S3A magic committer.
    Artifact(
        "org.apache.spark",
        "spark-hadoop-cloud_2.13",
        SPARK_VERSION,
        "d919ec1c4f70d214286b674fa972c695123bbb135820a3fdc692623517835e53",
    ),
)

# PostgreSQL's JDBC driver: only the loader benchmark uses it (the project loads with COPY, not JDBC).
POSTGRES_JDBC = Artifact(
    "org.postgresql", "postgresql", "42.7.7", "157963d60ae66d607e09466e8c0cdf8087e9cb20d0159899ffca96bca2528460"
)


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
        found = _cached_digest(target)
        if found == artifact.sha256:
            return target
        log.warning(
            "cached %s has SHA-256 %s, expected %s: deleting it and downloading it again",
            target,
            found,
            artifact.sha256,
        )
        target.unlink()
        _stamp_path(target).unlink(missing_ok=True)
        try:
            return _download_verified(artifact, target, repository)
        except JarResolutionError as exc:
            raise JarResolutionError(
                f"cached {target} was changed: its SHA-256 is {found}, expected {artifact.sha256}; it was deleted "
                f"and could not be downloaded again ({exc})"
            ) from exc
    return _download_verified(artifact, target, repository)


def _download_verified(artifact: Artifact, target: Path, repository: str) -> Path:
    cache_dir = target.parent
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
    if digest != artifact.sha256:
        partial.unlink(missing_ok=True)
        raise JarResolutionError(
            f"{artifact} from {url} has SHA-256 {digest}, expected {artifact.sha256}; the download was corrupted "
            "or the repository serves a different file"
        )
    os.replace(partial, target)
    _write_stamp(target, digest)
    return target


def _stamp_path(jar: Path) -> Path:
    return jar.with_name(jar.name + ".stamp")


def _identity(jar: Path) -> dict[str, int]:
    """What changes whenever the file's bytes do: size, mtime, and ctime (which ``touch`` cannot set back)."""
    st = jar.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _cached_digest(jar: Path) -> str:
    """The jar's SHA-256: from its stamp while size, mtime and ctime are the stamped ones, else hashed anew."""
    try:
        stamp = json.loads(_stamp_path(jar).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = None
    if isinstance(stamp, dict) and isinstance(stamp.get("sha256"), str) and _identity(jar).items() <= stamp.items():
        return str(stamp["sha256"])
    digest = _file_sha256(jar)
    _write_stamp(jar, digest)
    return digest


def _write_stamp(jar: Path, digest: str) -> None:
    stamp = _stamp_path(jar)
    partial = stamp.with_name(stamp.name + ".part")
    partial.write_text(json.dumps(_identity(jar) | {"sha256": digest}), encoding="utf-8")
    os.replace(partial, stamp)


def _file_sha256(path: Path) -> str:
    sha256 = hashlib.sha256()
    with path.open("rb") as jar:
        while chunk := jar.read(1 << 20):
            sha256.update(chunk)
    return sha256.hexdigest()


def _download(url: str, destination: Path) -> str:
    sha256 = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done, next_report = 0, 0.25
        while chunk := response.read(1 << 20):
            out.write(chunk)
            sha256.update(chunk)
            done += len(chunk)
            if total and done / total >= next_report:
                log.info("  %s: %d%% of %.0f MB", destination.stem, 100 * done // total, total / 1e6)
                next_report += 0.25
    return sha256.hexdigest()
