"""Shared test helpers: where the fixtures and the real-world corpus live.

The corpus (model files written by other projects over ten years) sits outside the
repository; its location is ``$TFMODELKIT_CORPUS`` or ``../shared/corpus`` from the project
root. Tests over it skip when it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = Path(os.environ.get("TFMODELKIT_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()


def modelconv_reporting_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """modelconv in a fresh process whose stderr ends with ``imported: ...``: which of
    tensorflow, keras and tf_keras got imported (``-`` for none)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['modelconv', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('tfmodelkit.cli.modelconv', run_name='__main__')\n"
        "finally:\n"
        "    bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "    print('imported:', ','.join(bad) or '-', file=sys.stderr)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def corpus_available() -> bool:
    return (CORPUS / "EXPECTED.json").is_file()


def load_expected() -> dict:
    if not corpus_available():
        return {}
    return json.loads((CORPUS / "EXPECTED.json").read_text())


def corpus_entries(kind: str) -> list[tuple[str, dict]]:
    """(relative path, expectation) for every corpus entry of ``kind``; empty when absent."""
    return [(k, v) for k, v in sorted(load_expected().items()) if v.get("kind") == kind]


def tf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not corpus_available():
        pytest.skip(f"corpus not found at {CORPUS} (set TFMODELKIT_CORPUS)")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
