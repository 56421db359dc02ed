"""Jar resolution: download once, verify the digest, reuse offline, re-check a cached jar cheaply at every use,
refuse a mismatched Hadoop; and the pinned connectors agree with what is actually installed (pyspark's bundled
jars, the delta-spark package)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.metadata
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.adapters import jars
from lakehouse.adapters.jars import (
    DELTA,
    POSTGRES_JDBC,
    S3A,
    Artifact,
    check_hadoop_version,
    required_artifacts,
    resolve_jars,
)
from lakehouse.errors import JarResolutionError


def _publish(repo: Path, group: str, name: str, version: str, content: bytes) -> Artifact:
    artifact = Artifact(group, name, version, hashlib.sha256(content).hexdigest())
    target = repo / artifact.path
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return artifact


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=["file", "http"])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str]]:
    """A function turning a folder into a Maven repository URL: ``file://``, or a local HTTP server like Central."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def url(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        if request.param == "file":
            return folder.as_uri()
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield url
    for server in servers:
        server.shutdown()
        server.server_close()


def test_downloads_verifies_and_then_works_offline(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")

    [path] = resolve_jars((artifact,), cache, repository=serve(repo))
    assert path == cache / "thing-1.0.jar"
    assert path.read_bytes() == b"jar bytes"

    (repo / artifact.path).unlink()  # the repository no longer has it: the cache must be enough
    assert resolve_jars((artifact,), cache, repository=serve(repo)) == [path]


def test_a_corrupted_download_is_rejected_and_not_cached(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    good = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    (repo / good.path).write_bytes(b"tampered")

    with pytest.raises(JarResolutionError, match="SHA-256"):
        resolve_jars((good,), cache, repository=serve(repo))
    assert sorted(p.name for p in cache.iterdir() if p.name != ".lock") == []  # no jar, no partial download


def test_a_jar_the_repository_does_not_have_names_the_artifact_and_the_way_out(
    tmp_path: Path, serve: Callable[[Path], str]
) -> None:
    cache = tmp_path / "cache"
    missing = Artifact("org.example", "absent", "9.9", "0" * 64)

    with pytest.raises(JarResolutionError, match=r"org\.example:absent:9\.9.*copy absent-9\.9\.jar"):
        resolve_jars((missing,), cache, repository=serve(tmp_path / "empty-repo"))
    assert sorted(p.name for p in cache.iterdir() if p.name != ".lock") == []


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full re-hash of a cached jar, recorded (downloads hash while streaming and are not counted)."""
    calls: list[Path] = []
    real = jars._file_sha256

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(jars, "_file_sha256", counting)
    return calls


def _tamper(jar: Path, content: bytes) -> None:
    """Same size, different bytes, and the mtime moved on, as an editor or a careless copy would leave it."""
    stat = jar.stat()
    assert len(content) == stat.st_size
    jar.write_bytes(content)
    os.utime(jar, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_an_unchanged_cached_jar_is_not_hashed_again(
    tmp_path: Path, serve: Callable[[Path], str], hash_calls: list[Path]
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    resolve_jars((artifact,), cache, repository=serve(repo))

    for _ in range(3):
        assert resolve_jars((artifact,), cache, repository=serve(repo)) == [cache / "thing-1.0.jar"]
    assert hash_calls == []


def test_a_cached_jar_without_a_stamp_is_hashed_once_then_trusted(
    tmp_path: Path, serve: Callable[[Path], str], hash_calls: list[Path]
) -> None:
    """A cache filled by an earlier version (no stamps) is verified in full once, then by its stamp."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    [path] = resolve_jars((artifact,), cache, repository=serve(repo))
    path.with_name(path.name + ".stamp").unlink()

    resolve_jars((artifact,), cache, repository=serve(repo))
    resolve_jars((artifact,), cache, repository=serve(repo))
    assert hash_calls == [path]


def test_a_tampered_cached_jar_is_detected_deleted_and_downloaded_again(
    tmp_path: Path, serve: Callable[[Path], str], hash_calls: list[Path]
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    [path] = resolve_jars((artifact,), cache, repository=serve(repo))

    _tamper(path, b"evil byte")
    assert resolve_jars((artifact,), cache, repository=serve(repo)) == [path]
    assert path.read_bytes() == b"jar bytes"
    assert hash_calls == [path]
    resolve_jars((artifact,), cache, repository=serve(repo))  # the fresh download is stamped: no hash again
    assert hash_calls == [path]


def test_tampering_that_restores_the_mtime_is_still_detected(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    """``touch -d`` can set mtime back, not ctime: the stamp records both."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    [path] = resolve_jars((artifact,), cache, repository=serve(repo))
    before = path.stat()

    path.write_bytes(b"evil byte")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert resolve_jars((artifact,), cache, repository=serve(repo)) == [path]
    assert path.read_bytes() == b"jar bytes"


def test_a_tampered_cached_jar_offline_names_the_file_and_both_digests(
    tmp_path: Path, serve: Callable[[Path], str]
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    artifact = _publish(repo, "org.example", "thing", "1.0", b"jar bytes")
    [path] = resolve_jars((artifact,), cache, repository=serve(repo))
    (repo / artifact.path).unlink()  # offline: the repository cannot give it back

    _tamper(path, b"evil byte")
    found = hashlib.sha256(b"evil byte").hexdigest()
    with pytest.raises(JarResolutionError) as raised:
        resolve_jars((artifact,), cache, repository=serve(repo))
    assert str(path) in str(raised.value)
    assert found in str(raised.value)
    assert artifact.sha256 in str(raised.value)
    assert not path.exists()  # a jar that failed its check is never handed to Spark


def test_every_pinned_jar_carries_a_sha256() -> None:
    for artifact in (*DELTA, *S3A, POSTGRES_JDBC):
        assert re.fullmatch(r"[0-9a-f]{64}", artifact.sha256), artifact


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _bundled_version(prefix: str) -> str:
    """The version of the one ``<prefix>-<version>.jar`` that pyspark ships."""
    versions = [m[1] for p in _pyspark_jars().iterdir() if (m := re.fullmatch(rf"{prefix}-(.+)\.jar", p.name))]
    assert len(versions) == 1, f"expected one {prefix} jar in {_pyspark_jars()}, found {versions}"
    return versions[0]


def test_the_s3a_connector_is_pinned_to_the_hadoop_and_spark_that_pyspark_bundles() -> None:
    """hadoop-aws must be the exact Hadoop release inside pyspark, spark-hadoop-cloud the exact Spark release."""
    pinned = {a.name: a.version for a in required_artifacts(s3=True)}

    assert pinned["hadoop-aws"] == _bundled_version("hadoop-client-api")
    assert pinned["spark-hadoop-cloud_2.13"] == importlib.metadata.version("pyspark")
    check_hadoop_version(_pyspark_jars())  # and the start-up check agrees


def test_the_jars_are_built_for_the_scala_of_pyspark_and_delta_matches_its_python_package() -> None:
    scala = ".".join(_bundled_version("scala-library").split(".")[:2])
    delta = {a.name: a.version for a in required_artifacts(s3=False)}

    assert delta["delta-spark_" + scala] == importlib.metadata.version("delta-spark")
    assert all(a.name.endswith(f"_{scala}") for a in required_artifacts(s3=True) if re.search(r"_\d+\.\d+$", a.name))


def test_a_local_lake_does_not_download_the_s3a_connector() -> None:
    """The ~560 MB AWS SDK bundle and hadoop-aws are fetched only for an object-store lake; Delta always."""
    local = {a.name for a in required_artifacts(s3=False)}
    s3 = {a.name for a in required_artifacts(s3=True)}

    assert {"hadoop-aws", "bundle"} <= s3 - local
    assert local < s3


def test_a_different_hadoop_in_pyspark_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hadoop-client-api-3.9.9.jar").touch()

    with pytest.raises(JarResolutionError, match="must match exactly"):
        check_hadoop_version(tmp_path)


def test_a_pyspark_without_its_hadoop_jar_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JarResolutionError, match="no hadoop-client-api"):
        check_hadoop_version(tmp_path)
