"""``modelconv to-keras CKPT DST.keras --model code.py:fn | --architecture FILE``: a TF2 checkpoint,
restored into the model its code or architecture rebuilds, becomes a ``.keras`` that plain Keras 3
loads in a fresh process (tfmodelkit unimportable), the user's module importable where the model
is their own class."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.convert.plain_keras import plain_keras_run

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

pytestmark = pytest.mark.tf

MODELS = FIXTURES / "models"
SUBCLASSED_CKPT = FIXTURES / "checkpoint" / "keras3_subclassed" / "ckpt"
X_SPEC = ("x:float32:-1,3",)

#: A user's subclassed model that its module does not register with Keras.
PLAIN_NET = """
import keras


class PlainNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(5, activation="tanh", name="hidden")
        self.out = keras.layers.Dense(2, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def build():
    return PlainNet(name="plain_net")
"""


def _to_keras():
    from tfmodelkit.convert.to_keras import to_keras

    return to_keras


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    dst = tmp_path_factory.mktemp("ckpt_to_keras") / "small_net.keras"
    report = _to_keras()(SUBCLASSED_CKPT, dst, model=f"{MODELS / 'subclassed.py'}:build", input_specs=X_SPEC)
    return report, dst


def _restored_outputs(x):
    """SmallNet restored by TensorFlow alone (no tfmodelkit): the numbers the checkpoint means."""
    import tensorflow as tf

    model = _import(MODELS / "subclassed.py", "subclassed_reference").build()
    model(np.zeros((1, 3), np.float32))
    tf.train.Checkpoint(model=model).read(str(SUBCLASSED_CKPT)).expect_partial()
    return np.asarray(model(x))


def test_subclassed_checkpoint_converts_and_names_its_module(subclassed):
    report, dst = subclassed
    assert report.ok and dst.is_file(), report.verification
    assert report.route == ["checkpoint", "keras_zip"] and report.loader == "model code"
    assert report.details["needs_module"] == "subclassed"
    (cls,) = report.details["custom_classes"]
    assert cls == {
        "class": "subclassed.SmallNet",
        "registered_name": "subclassed>SmallNet",
        "registered_by": "its module",
        "sys_path": str(MODELS),
    }
    assert any("module subclassed is imported first" in w for w in report.warnings), report.warnings
    assert report.details["restored"] and not report.details["missing"]
    (check,) = report.verification
    assert check["ok"] and check["label"] == "model code vs .keras on tensorflow"
    import zipfile

    config = json.loads(zipfile.ZipFile(dst).read("config.json"))
    assert config["module"] == "subclassed" and config["registered_name"] == "subclassed>SmallNet"
    json.dumps(report.as_dict())


def _subclassed_job(subclassed, x: np.ndarray, tmp_path) -> dict:
    """A plain-Keras job loading the subclassed result with its module importable, fed ``x``."""
    _, dst = subclassed
    np.savez(tmp_path / "x.npz", x=x)
    return {"model": str(dst), "inputs": str(tmp_path / "x.npz"), "sys_path": [str(MODELS)], "setup": "import subclassed"}


def test_subclassed_result_loads_in_a_fresh_process_with_its_module_importable(subclassed, tmp_path):
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    (job,) = jobs = [_subclassed_job(subclassed, x, tmp_path)]
    answer = plain_keras_run(jobs, tmp_path)
    assert answer["importable"] is False and job["layers"] == ["hidden", "head"]
    np.testing.assert_allclose(job["outputs"]["output_0"], _restored_outputs(x), atol=1e-6)


def test_without_its_module_plain_keras_cannot_load_it(subclassed, tmp_path):
    """The report's warning is true: without the module Keras does not find the class."""
    _, dst = subclassed
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 3), np.float32))
    with pytest.raises(AssertionError, match="SmallNet"):
        plain_keras_run([{"model": str(dst), "inputs": str(tmp_path / "x.npz")}], tmp_path)


def test_a_class_its_module_does_not_register_is_registered_and_the_line_reported(tmp_path, monkeypatch):
    import tensorflow as tf

    code = tmp_path / "code" / "plainnet.py"
    code.parent.mkdir()
    code.write_text(PLAIN_NET)
    model = _import(code, "plainnet_writer").build()
    model(np.zeros((1, 3), np.float32))
    rng = np.random.default_rng(3)
    for v in model.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    expected = np.asarray(model(x))
    prefix = tmp_path / "ckpt" / "ckpt"
    tf.train.Checkpoint(model=model).write(str(prefix))

    dst = tmp_path / "plain.keras"
    report = _to_keras()(prefix, dst, model=f"{code}:build", input_specs=X_SPEC)
    assert report.ok, report.verification
    (cls,) = report.details["custom_classes"]
    line = "keras.saving.register_keras_serializable(package='plainnet')(plainnet.PlainNet)"
    assert cls["registered_name"] == "plainnet>PlainNet" and cls["registered_by"] == line
    assert any(line in w and "does not register PlainNet itself" in w for w in report.warnings)
    # What the report says is what loading takes: the module imported and that one line.
    np.savez(tmp_path / "x.npz", x=x)
    (job,) = jobs = [
        {
            "model": str(dst), "inputs": str(tmp_path / "x.npz"), "sys_path": [str(code.parent)],
            "setup": f"import keras, plainnet; {line}",
        }
    ]  # fmt: skip
    assert plain_keras_run(jobs, tmp_path)["importable"] is False
    np.testing.assert_allclose(job["outputs"]["output_0"], expected, atol=1e-6)


def test_architecture_checkpoint_becomes_a_standard_keras_file(tmp_path):
    """A tf_keras functional model's ``save_weights`` checkpoint with its ``to_json()``: the
    .keras is standard layers only, loads with no code and keeps the names."""
    folder = FIXTURES / "checkpoint" / "tfkeras_save_weights"
    dst = tmp_path / "m.keras"
    report = _to_keras()(folder / "ckpt", dst, architecture=str(folder / "arch.json"))
    assert report.ok, (report.verification, report.warnings)
    assert report.details["names_kept"] and report.details["custom_classes"] == []
    assert "needs_module" not in report.details
    assert any("optimizer state was dropped" in w for w in report.warnings)
    from tfmodelkit.verify.runners.checkpoint import CheckpointRunner

    reference = CheckpointRunner(folder / "ckpt", architecture=str(folder / "arch.json"))
    (spec,) = reference.inputs
    x = np.random.default_rng(0).normal(size=(3, *spec.shape[1:])).astype(np.float32)
    np.savez(tmp_path / "x.npz", **{spec.name: x})
    (job,) = jobs = [{"model": str(dst), "inputs": str(tmp_path / "x.npz")}]
    assert plain_keras_run(jobs, tmp_path)["importable"] is False
    expected = reference.run({spec.name: x})
    assert set(job["outputs"]) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(job["outputs"][k], v, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        ([str(SUBCLASSED_CKPT), "x.keras"], "needs exactly one of --model MODULE:CALLABLE"),
        ([str(SUBCLASSED_CKPT), "x.keras", "--model", f"{MODELS / 'tagger.py'}:build"], "not a Keras model"),
        (
            [str(FIXTURES / "keras_zip/conv_bn.keras"), "x.keras", "--model", "m.py:f"],
            "--model apply to checkpoint",
        ),
        (
            [str(FIXTURES / "keras_zip/conv_bn.keras"), "x.keras", "--input-spec", "x:float32:3"],
            "--input-spec apply",
        ),
    ],
)
def test_checkpoint_refusals_are_one_line(tmp_path, capsys, args, message):
    from tfmodelkit.cli.modelconv import main

    src, dst, *rest = args
    rc = main(["to-keras", src, str(tmp_path / dst), "-q", *rest])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_cli_checkpoint_to_keras(tmp_path, capsys, monkeypatch):
    """The command with a module on sys.path (``pkg.module:fn``), as ckpt-to-savedmodel takes it."""
    from tfmodelkit.cli.modelconv import main

    monkeypatch.syspath_prepend(str(MODELS))
    monkeypatch.delitem(sys.modules, "subclassed", raising=False)
    dst, out = tmp_path / "m.keras", tmp_path / "r.json"
    rc = main(
        ["to-keras", str(SUBCLASSED_CKPT), str(dst), "--model", "subclassed:build", "--input-spec", X_SPEC[0],
         "-q", "--report", str(out)]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["ok"] and data["details"]["needs_module"] == "subclassed"
    assert data["details"]["model"] == "--model subclassed:build"


def test_subclassed_result_loads_on_jax(subclassed, tmp_path):
    """The same .keras, with its module importable, in plain Keras on JAX (the jax extra)."""
    pytest.importorskip("jax", reason="the jax extra is not installed (pip install 'tfmodelkit[jax]')")
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    (job,) = jobs = [_subclassed_job(subclassed, x, tmp_path)]
    answer = plain_keras_run(jobs, tmp_path, backend="jax")
    assert answer["backend"] == "jax" and answer["importable"] is False
    np.testing.assert_allclose(job["outputs"]["output_0"], _restored_outputs(x), atol=1e-6)
