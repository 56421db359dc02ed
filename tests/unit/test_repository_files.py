"""Files users run by hand, checked against the code that has to agree with them: docker-compose.yml (no Docker
engine here, so compose's variable substitution is applied in the test), .env.example, the MinIO policy file and
the MinIO build script.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lakehouse.adapters.objectstore import bucket_of
from lakehouse.services.containers import MINIO_IMAGE, POSTGRES_IMAGE
from lakehouse.services.minio import PIPELINE_BUCKETS, PIPELINE_POLICY_NAME, find_minio_binary, pipeline_policy_json
from lakehouse.settings import LAKE_LAYERS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
POLICY_FILE = ROOT / "scripts" / "minio-policy.json"
# Documented in .env.example but read by other components than load_settings (compose, the test fixtures).
READ_OUTSIDE_SETTINGS = {"JAVA_HOME", "LAKEHOUSE_REQUIRE_SERVICES", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def _documented() -> dict[str, str]:
    """Every ``VAR=example`` line of .env.example, commented out or not."""
    return dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


def _substitute(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}`` (default when unset or empty), ``$$`` for ``$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1]) or (match[2] if match[2] is not None else "")

    return re.sub(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}", one, value)


def _resolved_service(name: str, env: Mapping[str, str]) -> dict[str, str]:
    service = _compose()["services"][name]
    return {key: _substitute(str(value), env) for key, value in service.get("environment", {}).items()}


def _init_script() -> list[str]:
    """The words of the shell script minio-init's container runs."""
    shell = shlex.split(_substitute(_compose()["services"]["minio-init"]["entrypoint"], {}))
    return shlex.split(shell[shell.index("-c") + 1])


def _published(name: str, container_port: int) -> set[int]:
    """The host ports compose publishes for ``container_port`` of service ``name``."""
    mappings = [str(mapping).split(":") for mapping in _compose()["services"][name]["ports"]]
    return {int(m[-2]) for m in mappings if int(m[-1]) == container_port}


def _dotenv_settings(tmp_path: Path, env: Mapping[str, str]) -> Settings:
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return load_settings({}, dotenv_path=dotenv, base_dir=tmp_path)


def test_compose_runs_the_images_the_integration_tests_run() -> None:
    services = _compose()["services"]

    assert services["minio"]["image"] == MINIO_IMAGE
    assert services["postgres"]["image"] == POSTGRES_IMAGE


@pytest.mark.parametrize(
    ("compose_reads_the_env", "overrides"),
    [
        pytest.param(False, {}, id="compose-defaults-and-the-documented-values"),
        pytest.param(True, {}, id="one-env-file-with-the-documented-values"),
        pytest.param(
            True,
            {
                "AWS_ACCESS_KEY_ID": "alice",
                "AWS_SECRET_ACCESS_KEY": "alice-secret-1",
                "PGUSER": "bob",
                "PGPASSWORD": "pw",
            },
            id="one-env-file-with-other-credentials",
        ),
        pytest.param(True, {"PGDATABASE": "analytics_dev"}, id="one-env-file-with-another-database"),
    ],
)
def test_the_library_reaches_the_compose_services(
    tmp_path: Path, compose_reads_the_env: bool, overrides: dict[str, str]
) -> None:
    """The library configured from .env.example's values (as a .env, edited or not) points at the ports compose
    publishes, with the credentials and database compose creates: those compose reads from the same .env, or
    its own defaults, which are the values .env.example shows."""
    env = _documented() | overrides
    settings = _dotenv_settings(tmp_path, env)
    compose_env = env if compose_reads_the_env else {}
    minio, postgres = _resolved_service("minio", compose_env), _resolved_service("postgres", compose_env)

    assert settings.s3 is not None
    assert settings.postgres is not None
    assert urlsplit(settings.s3.endpoint).port in _published("minio", 9000)  # MinIO's S3 API, not its console
    pipeline = _resolved_service("minio-init", compose_env)
    assert (settings.s3.access_key_id, settings.s3.secret_access_key.reveal()) == (
        pipeline["PIPELINE_ACCESS_KEY"],
        pipeline["PIPELINE_SECRET_KEY"],
    )
    assert settings.s3.access_key_id != minio["MINIO_ROOT_USER"]  # the pipeline never holds the root key
    assert (pipeline["MINIO_ROOT_USER"], pipeline["MINIO_ROOT_PASSWORD"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert settings.postgres.port in _published("postgres", 5432)
    assert settings.postgres.password is not None
    assert (settings.postgres.user, settings.postgres.password.reveal(), settings.postgres.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_compose_creates_the_buckets_the_documented_lake_uri_writes_to(tmp_path: Path) -> None:
    settings = _dotenv_settings(tmp_path, _documented())
    words = _init_script()
    mb = words.index("mb")
    created = {w.removeprefix("local/") for w in words[mb + 1 : words.index("&&", mb)] if w.startswith("local/")}

    assert settings.lake_kind == "s3"
    assert {bucket_of(settings.layer_uri(layer)) for layer in LAKE_LAYERS} <= created
    assert created == set(PIPELINE_BUCKETS)  # exactly the buckets the pipeline's policy allows


def test_the_policy_file_is_the_one_the_code_builds() -> None:
    """scripts/minio-policy.json is generated (``python -m lakehouse.services.minio > scripts/minio-policy.json``)."""
    assert POLICY_FILE.read_text() == pipeline_policy_json()


def test_compose_gives_the_pipeline_user_the_policy_file() -> None:
    init = _compose()["services"]["minio-init"]
    mounts = dict(str(volume).rsplit(":", 1)[0].split(":", 1) for volume in init["volumes"])
    inside = mounts["./scripts/minio-policy.json"]
    words = _init_script()
    create = words.index("create")

    assert words[create - 2 : create + 4] == ["admin", "policy", "create", "local", PIPELINE_POLICY_NAME, inside]
    attach = words.index("attach")
    assert words[attach + 1 : attach + 5] == ["local", PIPELINE_POLICY_NAME, "--user", "${PIPELINE_ACCESS_KEY}"]
    add = words.index("add")
    assert words[add - 2 : add + 4] == [
        "admin",
        "user",
        "add",
        "local",
        "${PIPELINE_ACCESS_KEY}",
        "${PIPELINE_SECRET_KEY}",
    ]


def test_compose_publishes_ports_on_loopback_only_and_pins_images_by_tag_and_digest() -> None:
    services = _compose()["services"]
    published = [str(mapping) for service in services.values() for mapping in service.get("ports", [])]

    assert published, "compose publishes no port at all"
    for mapping in published:
        assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", mapping), f"{mapping!r} is not bound to 127.0.0.1"
    for name, service in services.items():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", service["image"]), f"{name}: {service['image']}"


def _leaves(settings: Settings) -> dict[str, Any]:
    """Every field of the settings, nested ones as ``postgres.host`` etc."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out |= {f"{field.name}.{f.name}": getattr(value, f.name) for f in dataclasses.fields(value)}
        else:
            out[field.name] = value
    return out


def _other_value(example: str) -> str:
    """A valid value different from the documented example (which is usually the default)."""
    return str(int(example) + 1) if example.isdigit() else f"{example}-other" if example else "other"


def test_every_setting_has_a_documented_variable_and_every_documented_variable_does_something(
    tmp_path: Path,
) -> None:
    # An external PostgreSQL, S3 credentials, a webhook and a Connect server, so that every nested setting exists
    # and can change.
    context = {"PGHOST": "context-host", "AWS_ACCESS_KEY_ID": "context-id", "AWS_SECRET_ACCESS_KEY": "context-key"}
    context["LAKEHOUSE_ALERT_WEBHOOK"] = "http://127.0.0.1:1/context-hook"
    context["LAKEHOUSE_SPARK_REMOTE"] = "sc://context-host:15002"
    baseline = _leaves(load_settings(context, dotenv_path=None, base_dir=tmp_path))

    changed_by: dict[str, set[str]] = {}
    for name, example in _documented().items():
        leaves = _leaves(load_settings(context | {name: _other_value(example)}, dotenv_path=None, base_dir=tmp_path))
        changed_by[name] = {leaf for leaf, value in leaves.items() if value != baseline[leaf]}

    inert = {name for name, leaves in changed_by.items() if not leaves}
    assert inert <= READ_OUTSIDE_SETTINGS, f"documented but ignored by load_settings: {inert - READ_OUTSIDE_SETTINGS}"
    reachable = set().union(*changed_by.values())
    # Set by the embedded provider, and by the role connections (from LAKEHOUSE_PGPASSFILE), never by a variable.
    not_from_environment = {"postgres.embedded", "postgres.passfile"}
    assert set(baseline) - not_from_environment - reachable == set(), "settings without a documented variable"


def test_the_build_script_puts_minio_where_the_library_looks_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stand-in `go` (the real build takes minutes): the binary lands where find_minio_binary looks, and a
    second run reuses it without building again."""
    fake_bin, cache = tmp_path / "bin", tmp_path / "cache"
    fake_bin.mkdir()
    calls = tmp_path / "go-calls"
    go = fake_bin / "go"
    go.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nprintf "#!/bin/sh\\n" > "$GOBIN/minio"\nchmod +x "$GOBIN/minio"\n')
    go.chmod(go.stat().st_mode | stat.S_IXUSR)

    def build() -> str:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-minio.sh")],
            env={**os.environ, "PATH": f"{fake_bin}:/usr/bin:/bin", "LAKEHOUSE_CACHE_DIR": str(cache)},
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    built = build()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `minio` on PATH to fall back on

    assert find_minio_binary(cache) == Path(built)
    assert build() == built
    assert len(calls.read_text().splitlines()) == 1  # built once, reused the second time
