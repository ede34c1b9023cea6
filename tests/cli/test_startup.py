"""What modelinspect's commands import: the start-up a small file pays for, and the heavy
modules a command must not load when it does not need them (ml_dtypes costs about a second,
numpy a tenth, tabulate and importlib.metadata a fifth of a small file's whole run).

The timings themselves are `make bench`'s (benchmarks/run.py and scale.py); these tests pin
the import graph that makes them possible, so that a stray import is caught where it lands.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

RUN = """
import contextlib, io, json, sys
from tfmodelkit.cli.modelinspect import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules), "out": out.getvalue()}))
"""

#: Loaded by no command that reads a SavedModel or a checkpoint's listing.
NOT_FOR_LISTINGS = ("numpy", "ml_dtypes", "h5py", "tabulate", "importlib.metadata", "tensorflow", "keras")


def _run(*args: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", RUN, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", ["summary", "signatures"])
@pytest.mark.parametrize(
    "rel",
    ["savedmodel/tfkeras_functional", "checkpoint/keras3_subclassed/ckpt", "checkpoint/all_dtypes/ckpt"],
)
def test_listings_import_neither_numpy_nor_tabulate(fixtures_dir, command, rel):
    result = _run(command, str(fixtures_dir / rel))
    assert result["code"] == 0
    loaded = [m for m in NOT_FOR_LISTINGS if m in result["modules"]]
    assert not loaded, f"{command} {rel} imported {loaded}"


@pytest.mark.parametrize(
    "rel", ["tflite/two_io_float32.tflite", "keras_h5/tfkeras_lstm.h5", "keras_zip/conv_bn.keras"]
)
def test_other_formats_need_numpy_but_not_ml_dtypes_or_tabulate(fixtures_dir, rel):
    result = _run("summary", str(fixtures_dir / rel))
    assert result["code"] == 0
    loaded = [
        m for m in ("ml_dtypes", "tabulate", "importlib.metadata", "tensorflow") if m in result["modules"]
    ]
    assert not loaded, f"summary {rel} imported {loaded}"


def test_help_loads_no_reader():
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from tfmodelkit.cli.modelinspect import build_parser; build_parser(); "
         "print(sorted(m for m in sys.modules if m.startswith(('tfmodelkit.formats.', 'google', 'numpy'))))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_check_of_bfloat16_and_float8_tensors_needs_no_ml_dtypes(fixtures_dir):
    # The checksum reads bytes; sizes come from a table. Only converting values needs ml_dtypes.
    result = _run("check", str(fixtures_dir / "checkpoint/all_dtypes/ckpt"))
    assert result["code"] == 0 and "OK" in result["out"]
    assert "ml_dtypes" not in result["modules"]


def test_stats_of_bfloat16_tensors_need_no_ml_dtypes(fixtures_dir):
    # bfloat16 is the upper half of a float32: widened bit by bit, exactly.
    result = _run(
        "weights",
        "--stats",
        "--match",
        "bfloat16",
        "--format",
        "json",
        str(fixtures_dir / "checkpoint/all_dtypes/ckpt"),
    )
    assert result["code"] == 0
    assert "ml_dtypes" not in result["modules"]
    (w,) = json.loads(result["out"])["weights"]
    assert (w["min"], w["max"], w["nan"], w["inf"]) == (-2.5, pytest.approx(1.0002556e30, rel=1e-6), 0, 0)


def test_the_program_tunes_the_garbage_collector_and_a_call_with_arguments_does_not(fixtures_dir):
    # As the program, start-up's young-generation collections are spaced out and the last full
    # collection before exit is skipped (gc.freeze); a caller passing argv keeps its settings.
    code = (
        "import contextlib, gc, io, sys\n"
        "from tfmodelkit.cli.modelinspect import GC_THRESHOLD, main\n"
        "before = gc.get_threshold()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['summary', sys.argv[1]]) == 0\n"
        "assert gc.get_threshold() == before and gc.get_freeze_count() == 0\n"
        "sys.argv = ['modelinspect', 'summary', sys.argv[1]]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main() == 0\n"
        "print(gc.get_threshold()[0] == GC_THRESHOLD > before[0], gc.get_freeze_count() > 0)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(fixtures_dir / "savedmodel/tfkeras_functional")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("command", ["summary", "signatures", "weights", "layers", "ops"])
@pytest.mark.parametrize("rel", ["tfjs/graph_mlp", "tfjs/layers_two_io_uint8", "tfjs/graph_mlp/model.json"])
def test_tfjs_listings_read_no_values(fixtures_dir, command, rel):
    """Listing a TF.js model reads model.json and the shards' sizes: no numpy (values are lazy),
    no TF1 detection (no `checkpoint` file in the folder), no Keras config rules for a graph model."""
    result = _run(command, str(fixtures_dir / rel))
    assert result["code"] == 0
    unwanted = [*NOT_FOR_LISTINGS, "tfmodelkit.formats.tf1_detect", "tfmodelkit.formats.checkpoint_v1", "difflib"]
    if "graph" in rel:
        unwanted.append("tfmodelkit.formats.keras_config")
    loaded = [m for m in unwanted if m in result["modules"]]
    assert not loaded, f"{command} {rel} imported {loaded}"
