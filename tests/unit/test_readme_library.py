"""The README's "Use it as a library" examples run as written, and the public API is what the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lakehouse

ROOT = Path(__file__).resolve().parents[2]


def library_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_public_api_is_declared_and_importable() -> None:
    assert len(library_examples()) == 3
    for name in lakehouse.__all__:
        assert getattr(lakehouse, name) is not None, name
    with pytest.raises(AttributeError):
        _ = lakehouse.no_such_thing  # type: ignore[attr-defined]


@pytest.mark.integration
def test_the_readme_library_examples_run_as_written(tmp_path: Path) -> None:
    script = "\n\n".join(library_examples())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "LAKEHOUSE_"))}
    env |= {"LAKEHOUSE_DATA_DIR": str(tmp_path / "data"), "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g"}
    if "LAKEHOUSE_CACHE_DIR" in os.environ:
        env["LAKEHOUSE_CACHE_DIR"] = os.environ["LAKEHOUSE_CACHE_DIR"]
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )

    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "advertisers" in proc.stdout
