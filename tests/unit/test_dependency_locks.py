"""The dependency locks agree with pyproject.toml and with each other, and CI installs from them: constraints.txt
(exact versions), requirements.lock (the same versions with SHA-256 hashes), both from scripts/lock-dependencies.sh.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(.*)$")


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    """``{canonical name: (version, rest of the line)}`` of every non-comment line, which must be an exact pin."""
    pins: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = (match[2], match[3].strip())
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_every_declared_dependency_is_pinned_to_a_version_its_range_allows() -> None:
    constraints = _pins(ROOT / "constraints.txt")

    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in constraints, f"{requirement} is not in constraints.txt: run scripts/lock-dependencies.sh"
        version = constraints[name][0]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} but locked {version}"
    assert "lakehouse" not in constraints


def test_the_hashed_lock_holds_the_same_versions_each_with_a_sha256() -> None:
    constraints = _pins(ROOT / "constraints.txt")
    lock = _pins(ROOT / "requirements.lock")

    assert {name: version for name, (version, _) in lock.items()} == {
        name: version for name, (version, _) in constraints.items()
    }
    for name, (_, rest) in lock.items():
        assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", rest), f"requirements.lock: {name} {rest!r}"


def test_ci_installs_the_hashed_lock_and_keeps_the_constraints_for_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    lock = script.index("--require-hashes -r requirements.lock")

    assert script.index('export PIP_CONSTRAINT="$PWD/constraints.txt"') < lock < script.index("--no-deps -e '.[dev]'")
    assert lock < script.index('eval "$test_command"')


def test_ci_extracts_the_readme_test_command() -> None:
    """The same sed pipeline as .ci/run, on the real README."""
    extract = next(line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("test_command="))
    proc = subprocess.run(
        ["bash", "-c", f'{extract}\nprintf %s "$test_command"'], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout == "python -m pip install -e '.[dev]' && python -m pytest"
