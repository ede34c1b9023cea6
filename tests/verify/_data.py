"""The fixture models' recorded inputs and outputs (fixtures/inputs/index.json)."""

from __future__ import annotations

import json
from functools import cache

import numpy as np

from tests.conftest import FIXTURES

INPUTS = FIXTURES / "inputs"


@cache
def index() -> dict[str, dict]:
    return json.loads((INPUTS / "index.json").read_text())


def entries(*runners: str) -> list[str]:
    return sorted(name for name, e in index().items() if e["runner"] in runners)


def model_path(name: str):
    return FIXTURES / index()[name]["model"]


def recorded(name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, outputs) recorded for fixture entry ``name``."""
    with np.load(INPUTS / f"{name}.inputs.npz") as i, np.load(INPUTS / f"{name}.outputs.npz") as o:
        return {k: i[k] for k in i.files}, {k: o[k] for k in o.files}
