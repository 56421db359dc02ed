"""Jar resolution: download once, verify the digest, reuse offline, refuse a mismatched Hadoop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lakehouse.adapters.jars import DELTA, HADOOP_VERSION, S3A, Artifact, check_hadoop_version, resolve_jars
from lakehouse.errors import JarResolutionError


def _publish(repo: Path, group: str, name: str, version: str, content: bytes) -> Artifact:
    artifact = Artifact(group, name, version, hashlib.sha1(content).hexdigest())
    target = repo / artifact.path
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return artifact


def test_downloads_verifies_and_then_works_offline(tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")

    [path] = resolve_jars((artifact,), cache, repository=repo.as_uri())
    assert path == cache / "thing-1.0.jar"
    assert path.read_bytes() == b"jar bytes"

    (repo / artifact.path).unlink()  # the repository is gone: the cache must be enough
    assert resolve_jars((artifact,), cache, repository=repo.as_uri()) == [path]


def test_a_corrupted_download_is_rejected_and_not_cached(tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    good = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    (repo / good.path).write_bytes(b"tampered")

    with pytest.raises(JarResolutionError, match="SHA-1"):
        resolve_jars((good,), cache, repository=repo.as_uri())
    assert list(cache.glob("*.jar")) == []


def test_an_unreachable_repository_names_the_artifact_and_the_way_out(tmp_path: Path) -> None:
    missing = Artifact("org.example", "absent", "9.9", "0" * 40)

    with pytest.raises(JarResolutionError, match=r"org\.example:absent:9\.9.*copy absent-9\.9\.jar"):
        resolve_jars((missing,), tmp_path / "cache", repository=(tmp_path / "nowhere").as_uri())


def test_hadoop_aws_matches_the_hadoop_pinned_for_pyspark() -> None:
    hadoop_aws = next(a for a in S3A if a.name == "hadoop-aws")
    assert hadoop_aws.version == HADOOP_VERSION
    assert {a.name for a in DELTA} == {"delta-spark_2.13", "delta-storage"}


def test_installed_pyspark_bundles_the_pinned_hadoop() -> None:
    import pyspark

    check_hadoop_version(Path(pyspark.__file__).parent / "jars")


def test_a_different_hadoop_in_pyspark_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hadoop-client-api-3.9.9.jar").touch()

    with pytest.raises(JarResolutionError, match="must match exactly"):
        check_hadoop_version(tmp_path)
