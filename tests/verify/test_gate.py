"""`modelconv verify A B`: faithful pairs pass, a perturbed weight fails and is named, golden files, replay."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES

pytest.importorskip("tensorflow")

from tfmodelkit.errors import UserError  # noqa: E402
from tfmodelkit.verify.gate import parse_ranges, parse_shapes, parse_tolerances, save_run, verify_models  # noqa: E402

KERAS = FIXTURES / "keras_zip/functional_multi_io.keras"


def _modelconv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfmodelkit.cli.modelconv", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory):
    import keras

    model = keras.saving.load_model(str(KERAS), compile=False)
    layer = model.get_layer("box")
    kernel, bias = layer.get_weights()
    kernel += 0.1  # every weight of one layer: its output must move, the other head must not
    layer.set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("perturbed") / "perturbed.keras"
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from tfmodelkit.convert.route import convert
    from tfmodelkit.verify import KerasRunner, generate_inputs, save_arrays

    folder = tmp_path_factory.mktemp("converted")
    convert(KERAS, folder / "sm")
    convert(KERAS, folder / "float.tflite")
    # int8 calibrated on 64 samples of the range verification draws from (not the ones it draws):
    # what makes an int8 model pass 32 verification samples at a few output steps.
    calibration = save_arrays(folder / "calibration.npz", generate_inputs(KerasRunner(KERAS).inputs, seed=1000, batch=64))
    assert convert(KERAS, folder / "int8.tflite", quantize="int8", calibration_data=str(calibration)).ok
    return folder


@pytest.mark.parametrize("b", ["sm", "float.tflite", "int8.tflite"])
def test_faithful_pairs_pass_in_every_format(converted, b):
    report = verify_models(KERAS, converted / b)
    assert report.ok and {o.name for o in report.outputs} == {"label", "box"}


def test_savedmodel_against_tflite(converted):
    assert verify_models(converted / "sm", converted / "float.tflite").ok


def test_int8_tolerance_is_derived_from_output_scale(converted):
    report = verify_models(converted / "sm", converted / "int8.tflite")
    assert report.ok
    for o in report.outputs:
        assert o.atol > 1e-3  # steps of the output scale, not 1e-5
    assert not verify_models(converted / "sm", converted / "int8.tflite", atol=1e-5).ok


def test_perturbed_weight_fails_and_names_the_output(perturbed):
    report = verify_models(KERAS, perturbed)
    assert not report.ok
    failing = {o.name for o in report.outputs if not o.ok}
    assert failing == {"box"}  # the label head does not read the perturbed kernel
    p = _modelconv("verify", str(KERAS), str(perturbed))
    assert p.returncode == 1 and p.stdout.strip().splitlines()[-1] == "FAIL: outputs box differ on 32 generated samples"


def test_golden_mode_and_replay(converted, tmp_path):
    x, y = tmp_path / "x.npz", tmp_path / "y.npz"
    first = verify_models(KERAS, converted / "sm", seed=7)
    save_run(first, inputs=str(x), outputs=str(y))
    assert first.ok and x.exists() and y.exists()
    golden = verify_models(converted / "float.tflite", y, inputs=str(x), atol=1e-4)
    assert golden.ok
    replay = verify_models(KERAS, converted / "sm", inputs=str(x))
    np.testing.assert_array_equal(replay.arrays["inputs"]["metadata"], first.arrays["inputs"]["metadata"])
    with pytest.raises(UserError, match="--inputs"):
        verify_models(KERAS, y)
    bad = dict(np.load(y))
    bad["label"] = bad["label"] + 1.0
    np.savez(tmp_path / "bad.npz", **bad)
    p = _modelconv("verify", str(KERAS), str(tmp_path / "bad.npz"), "--inputs", str(x), "--report", str(tmp_path / "r.json"))
    assert p.returncode == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is False and any(o["name"] == "label" and not o["ok"] for o in report["outputs"])


def test_mismatched_signatures_exit_1(converted):
    p = _modelconv("verify", str(KERAS), str(FIXTURES / "savedmodel/serving/affine/1"))
    assert p.returncode == 1, p.stderr


def test_option_parsing():
    assert parse_tolerances(["1e-4", "box=1e-2"], "--atol") == (1e-4, {"box": 1e-2})
    assert parse_shapes(["image=1,224,224,3"]) == {"image": [1, 224, 224, 3]}
    assert parse_ranges(["x=0,255"]) == {"x": (0.0, 255.0)}
    for bad in (lambda: parse_tolerances(["x"], "--atol"), lambda: parse_ranges(["x=3,1"]), lambda: parse_shapes(["x=a"])):
        with pytest.raises(UserError):
            bad()


def test_could_not_run_is_exit_2(tmp_path):
    p = _modelconv("verify", str(KERAS), str(tmp_path / "missing.tflite"))
    assert p.returncode == 2 and "Traceback" not in p.stderr


CKPT = FIXTURES / "checkpoint/keras3_subclassed/ckpt"
CKPT_MODEL = {"model": f"{FIXTURES / 'models/subclassed.py'}:build", "input_specs": ("x:float32:-1,3",)}


@pytest.fixture(scope="module")
def from_checkpoint(tmp_path_factory):
    """The fixture checkpoint converted, and another checkpoint of the same model with one
    layer's kernel changed (written by TensorFlow, so its checksums are right)."""
    import importlib.util

    import tensorflow as tf

    from tfmodelkit.convert.ckpt_to_savedmodel import ckpt_to_savedmodel

    folder = tmp_path_factory.mktemp("from_ckpt")
    ckpt_to_savedmodel(CKPT, folder / "sm", **CKPT_MODEL)
    spec = importlib.util.spec_from_file_location("subclassed_model", FIXTURES / "models/subclassed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build()
    model(np.zeros((1, 3), np.float32))
    tf.train.Checkpoint(model=model).read(str(CKPT)).expect_partial()
    model.head.kernel.assign_add(tf.fill(model.head.kernel.shape, 0.1))
    tf.train.Checkpoint(model=model).write(str(folder / "changed"))
    return folder


def test_checkpoint_against_its_savedmodel(from_checkpoint):
    report = verify_models(CKPT, from_checkpoint / "sm", checkpoint=CKPT_MODEL)
    assert report.ok and report.context["reference"]["backend"] == "checkpoint"
    changed = verify_models(from_checkpoint / "changed", from_checkpoint / "sm", checkpoint=CKPT_MODEL)
    assert not changed.ok and [o.name for o in changed.outputs if not o.ok] == ["output_0"]


def test_checkpoint_options_from_the_command_line(from_checkpoint):
    model = CKPT_MODEL["model"]
    p = _modelconv("verify", str(CKPT), str(from_checkpoint / "sm"), "--model", model, "--input-spec", "x:float32:-1,3", "-q")
    assert p.returncode == 0, p.stderr
    p = _modelconv("verify", str(CKPT), str(from_checkpoint / "sm"))
    assert p.returncode == 2 and "--model" in p.stderr and "--architecture" in p.stderr
    p = _modelconv("verify", str(from_checkpoint / "sm"), str(from_checkpoint / "sm"), "--model", model)
    assert p.returncode == 2 and "neither" in p.stderr
