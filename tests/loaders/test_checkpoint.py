"""loaders.checkpoint: input specs, opening a checkpoint, and the model that wrote it rebuilt and
restored in memory, without writing anything.

The conversion built on it (a SavedModel written and proved) is tested in
tests/convert/test_ckpt_to_savedmodel.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.errors import NotFoundError, UserError
from tfmodelkit.loaders.checkpoint import (
    InputSpec,
    open_checkpoint,
    parse_input_spec,
    parse_input_specs,
    rebuild,
    restore_matched,
    restore_model,
)

MODELS = FIXTURES / "models"
SUBCLASSED_CKPT = FIXTURES / "checkpoint" / "keras3_subclassed" / "ckpt"
SUBCLASSED = f"{MODELS / 'subclassed.py'}"
TF1 = FIXTURES / "checkpoint" / "tf1_graph"
X_SPEC = ["x:float32:-1,3"]
KEY = "/.ATTRIBUTES/VARIABLE_VALUE"


def _weights(path) -> dict[str, np.ndarray]:
    return {
        w.name: w.read() for w in tfmodelkit.read(path).weights if w.name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def _tree(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------------------ input specs (no TF)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image:float32:-1,28,28,1", InputSpec("image", "float32", (None, 28, 28, 1))),
        ("x:float32:-1,3", InputSpec("x", "float32", (None, 3))),
        ("scale:float64:", InputSpec("scale", "float64", ())),
        ("ids:int32: -1 , 4", InputSpec("ids", "int32", (None, 4))),
        ("text:string:-1", InputSpec("text", "string", (None,))),
        ("a/b.c-d:bool:0", InputSpec("a/b.c-d", "bool", (0,))),
    ],
)
def test_input_spec_parses(text, expected):
    assert parse_input_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x", "expected NAME:DTYPE:DIMS"),
        ("x:float32", "expected NAME:DTYPE:DIMS"),
        ("x:float32:1:2", "expected NAME:DTYPE:DIMS"),
        (":float32:1", "not a usable input name"),
        ("bad name:float32:1", "not a usable input name"),
        ("x:float33:1", "unknown dtype 'float33' (accepted: float16, float32"),
        ("x:float32:a,3", "dimension 'a' is not an integer"),
        ("x:float32:1,,3", "dimension '' is not an integer"),
        ("x:float32:-2,3", "dimension -2 is negative"),
        ("x:float32:3.5", "dimension '3.5' is not an integer"),
    ],
)
def test_bad_input_specs_are_clear_errors(text, says):
    with pytest.raises(UserError) as e:
        parse_input_spec(text)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_input_spec_names_must_be_unique():
    with pytest.raises(UserError, match="input 'x' is given twice"):
        parse_input_specs(["x:float32:-1,3", "x:int32:-1"])
    assert parse_input_specs("x:float32:2") == (InputSpec("x", "float32", (2,)),)


# ------------------------------------------------------------------------------ opening (no TF)


def test_open_checkpoint_reads_what_restoring_needs():
    source = open_checkpoint(SUBCLASSED_CKPT.parent, input_specs=X_SPEC)
    assert source.prefix == SUBCLASSED_CKPT and source.where == str(SUBCLASSED_CKPT)
    assert source.input_specs == (InputSpec("x", "float32", (None, 3)),)
    assert source.graph is not None and source.root_key is None
    assert f"model/hidden/_kernel{KEY}" in source.weights
    assert set(source.weights) == {w.name for w in source.desc.weights}


def test_open_checkpoint_refuses_before_reading_anything(tmp_path):
    with pytest.raises(UserError, match="unknown dtype"):
        open_checkpoint(tmp_path / "nothing", input_specs=["x:floot:-1,3"])
    with pytest.raises(NotFoundError):
        open_checkpoint(tmp_path / "nothing")


def test_a_name_based_checkpoint_has_no_root_key():
    assert open_checkpoint(TF1).graph is None
    with pytest.raises(UserError, match="name-based .TF1. checkpoint has no object graph"):
        open_checkpoint(TF1, root_key="model")


@pytest.mark.parametrize(
    "kwargs", [{}, {"model": f"{SUBCLASSED}:build", "architecture": "arch.json"}], ids=["neither", "both"]
)
def test_restore_model_needs_exactly_one_way_to_build(kwargs):
    with pytest.raises(UserError, match="a checkpoint holds weights only; to run it, give the code"):
        restore_model(SUBCLASSED_CKPT, input_specs=X_SPEC, **kwargs)


# ------------------------------------------------------------------------------ restoring (TF)


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestRestoreModel:
    def test_object_based_values_land_in_the_model_and_nothing_is_written(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        before = _tree(SUBCLASSED_CKPT.parent)
        restored = restore_model(SUBCLASSED_CKPT, model=f"{SUBCLASSED}:build", input_specs=X_SPEC)
        assert _tree(SUBCLASSED_CKPT.parent) == before and list(tmp_path.iterdir()) == []
        assert restored.prefix == SUBCLASSED_CKPT and restored.warnings == [] and restored.notes == []
        match = restored.match
        assert match.kind == "object-based" and match.root_key == "model" and match.complete
        assert sorted(match.restored.values()) == ["head/_kernel", "head/bias", "hidden/_kernel", "hidden/bias"]
        w = _weights(SUBCLASSED_CKPT)
        for key, var in match.key_to_variable.items():
            np.testing.assert_array_equal(np.asarray(var.numpy()), w[key])
        built = restored.built
        assert built.loader == "model code" and built.detail == f"--model {SUBCLASSED}:build"
        x = np.ones((2, 3), np.float32)
        hidden = np.maximum(x @ w[f"model/hidden/_kernel{KEY}"] + w[f"model/hidden/bias{KEY}"], 0)
        expected = hidden @ w[f"model/head/_kernel{KEY}"] + w[f"model/head/bias{KEY}"]
        y = built.named(built.call(built.structure([x])))
        np.testing.assert_allclose(np.asarray(y["output_0"]), expected, rtol=1e-6, atol=1e-6)

    def test_name_based_values_are_assigned_by_name(self):
        restored = restore_model(TF1, model=f"{MODELS / 'tf1_graph.py'}:build", input_specs=X_SPEC)
        match = restored.match
        assert match.kind == "name-based" and match.root_key is None
        assert match.restored == {"dense/bias": "bias", "dense/kernel": "kernel", "dense_1/kernel": "kernel1"}
        w = _weights(TF1)
        for key, var in match.key_to_variable.items():
            np.testing.assert_array_equal(np.asarray(var.numpy()), w[key])

    def test_partial_restore_is_refused_or_warned(self):
        extra = f"{SUBCLASSED}:build_with_extra"
        with pytest.raises(UserError, match=r"2 model variable\(s\) found no value \(extra/_kernel, extra/bias\)"):
            restore_model(SUBCLASSED_CKPT, model=extra, input_specs=X_SPEC)
        restored = restore_model(SUBCLASSED_CKPT, model=extra, input_specs=X_SPEC, allow_partial=True)
        assert restored.match.missing == ["extra/_kernel", "extra/bias"]
        assert restored.warnings == [
            "partial restore (root key 'model'): 2 model variable(s) found no value (extra/_kernel, extra/bias)"
        ]
        assert restored.notes == restored.warnings

    def test_the_steps_one_by_one_restore_only_when_asked(self):
        from tfmodelkit.loaders.tf import import_tensorflow

        tf = import_tensorflow()
        source = open_checkpoint(SUBCLASSED_CKPT, input_specs=X_SPEC, root_key="model")
        built, match = rebuild(tf, source, model=f"{SUBCLASSED}:build")
        w = _weights(SUBCLASSED_CKPT)
        key = f"model/head/_kernel{KEY}"
        variable = match.key_to_variable[key]
        assert not np.array_equal(np.asarray(variable.numpy()), w[key])  # built on zeros, not yet restored
        restored = restore_matched(tf, source, built, match)
        np.testing.assert_array_equal(np.asarray(variable.numpy()), w[key])
        assert restored.built is built and restored.match is match
