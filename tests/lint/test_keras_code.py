"""``modelinspect check --target safety`` on Keras files holding Python code in the places
only conversion used to refuse: a marshalled ``output_shape``, a Keras 1 ``Merge`` mode."""

from __future__ import annotations

import base64
import json
import marshal

import h5py
import numpy as np
import pytest

from tfmodelkit.cli import modelinspect
from tfmodelkit.formats.keras_config import code_sites


def _code_b64(src: str, name: str) -> str:
    ns: dict = {}
    exec(compile(src, "/home/someone/model.py", "exec"), ns)  # the test makes its own bytecode
    return base64.b64encode(marshal.dumps(ns[name].__code__)).decode()


def _merge(**over):
    config = {
        "name": "merge_1",
        "mode": "concat",
        "mode_type": "raw",
        "concat_axis": -1,
        "dot_axes": -1,
        "output_shape": None,
        "output_shape_type": "raw",
        "output_mask": None,
        "output_mask_type": "raw",
        "arguments": {},
    }
    return {
        "class_name": "Merge",
        "name": "merge_1",
        "config": {**config, **over},
        "inbound_nodes": [[["x", 0, 0], ["x", 0, 0]]],
    }


def _keras1_h5(path, merge):
    """A Keras 1 functional model (input -> Merge(input, input)) as Keras 1.2 wrote it."""
    config = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "x",
                    "config": {"name": "x", "batch_input_shape": [None, 3], "input_dtype": "float32"},
                    "inbound_nodes": [],
                },
                merge,
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["merge_1", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = np.bytes_(b"1.2.2")
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        f.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"x", b"merge_1"])
        for name in ("x", "merge_1"):
            mw.create_group(name).attrs["weight_names"] = np.array([], dtype="S1")
    return path, config


SHAPE = _code_b64("def merged_shape(shapes):\n    return (shapes[0][0], 6)\n", "merged_shape")
MODE = _code_b64("f = lambda xs: xs[0] * xs[1]\n", "f")


@pytest.fixture
def output_shape_h5(tmp_path):
    """The only code is the output shape: the mode is the built-in "concat"."""
    return _keras1_h5(tmp_path / "output_shape.h5", _merge(output_shape=SHAPE, output_shape_type="lambda"))


@pytest.fixture
def merge_mode_h5(tmp_path):
    return _keras1_h5(tmp_path / "merge_mode.h5", _merge(mode=MODE, mode_type="lambda"))


def _check(capsys, path, *extra):
    code = modelinspect.main(["check", str(path), "--target", "safety", *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("fixture", "field", "detail"),
    [("output_shape_h5", "output_shape", "merged_shape"), ("merge_mode_h5", "mode", "<lambda>")],
)
def test_safety_check_names_the_layer_and_the_field(fixture, field, detail, capsys, request):
    path, config = request.getfixturevalue(fixture)
    assert [str(s) for s in code_sites(config)] == [f"merge_1 (Merge) {field}"]

    code, out, _ = _check(capsys, path)
    assert code == 1
    assert "merge_1" in out and field in out and "FAILED" in out

    code, out, _ = _check(capsys, path, "--format", "json")
    assert code == 1
    doc = json.loads(out)
    [finding] = doc["findings"]
    assert finding["severity"] == "error" and finding["target"] == "safety"
    assert finding["subject"] == "layer 'merge_1' (Merge)"
    assert f"'{field}'" in finding["message"] and detail in finding["message"]
    assert "marshalled bytecode" in finding["message"] and "fix:" in finding["message"]


def test_without_code_the_same_model_is_safe(tmp_path, capsys):
    path, _ = _keras1_h5(tmp_path / "plain.h5", _merge())
    code, out, _ = _check(capsys, path, "--format", "json")
    assert code == 0 and json.loads(out)["findings"] == []
