"""Shared test helpers: where the fixtures and the real-world corpus live.

The corpus (model files written by other projects over ten years) sits outside the
repository; its location is ``$TFMODELKIT_CORPUS`` or ``../shared/corpus`` from the project
root. Tests over it skip when it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = Path(os.environ.get("TFMODELKIT_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()


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
