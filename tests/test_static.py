"""Static checks that run with the suite: ruff's lint rules and mypy's types over the package
(both configured in pyproject.toml; `make lint` runs the same)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_types():
    p = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_lint():
    p = subprocess.run(
        [_tool("ruff"), "check", "tfmodelkit", "tests", "benchmarks", "scripts", "fixtures"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:]
