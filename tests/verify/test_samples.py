"""Enough inputs, and inputs that fit the model: 32 samples by default, repeated runs where the
batch is fixed, ids for Embedding inputs, declared ranges, folders of .npy files, and a report
that says how each input was chosen."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES, tf_available
from tfmodelkit.description import TensorSpec
from tfmodelkit.verify import (
    DEFAULT_SAMPLES,
    TFLiteRunner,
    compare_runners,
    format_report,
    load_inputs,
    save_arrays,
)
from tfmodelkit.verify.hints import keras_hints, layer_hint, quantized_hint
from tfmodelkit.verify.inputs import generate_inputs

TFLITE = FIXTURES / "tflite"


def _seq(*layers):
    return {"class_name": "Sequential", "config": {"name": "m", "layers": list(layers)}}


def test_embedding_input_gets_ids_below_input_dim():
    config = _seq(
        {"class_name": "InputLayer", "config": {"name": "tokens", "batch_shape": [None, 12]}},
        {"class_name": "Embedding", "config": {"name": "emb", "input_dim": 57, "output_dim": 4}},
    )
    ((name, hint),) = keras_hints(config).items()
    assert name == "tokens" and hint.integer and (hint.low, hint.high) == (0, 57)
    spec = TensorSpec("tokens", "float32", (None, 12))  # Keras 2 Embedding inputs are often float32
    x = generate_inputs([spec], batch=64, hints={"tokens": hint})["tokens"]
    assert x.dtype == np.float32 and np.array_equal(x, np.round(x))
    assert x.min() >= 0 and x.max() <= 56 and len(np.unique(x)) > 40  # not one repeated token


def test_functional_hints_follow_the_input_feeding_the_layer():
    layers = [
        {"class_name": "InputLayer", "name": "ids", "config": {"name": "ids"}, "inbound_nodes": []},
        {"class_name": "InputLayer", "name": "img", "config": {"name": "img"}, "inbound_nodes": []},
        {"class_name": "Embedding", "name": "e", "config": {"name": "e", "input_dim": 9}, "inbound_nodes": [[["ids", 0, 0, {}]]]},
        {"class_name": "Rescaling", "name": "r", "config": {"name": "r", "scale": 1 / 255, "offset": 0.0}, "inbound_nodes": [[["img", 0, 0, {}]]]},
    ]
    hints = keras_hints({"class_name": "Functional", "config": {"name": "m", "layers": layers}})
    assert hints["ids"].high == 9 and hints["img"].high == pytest.approx(255)
    assert not hints["img"].integer and "Rescaling" in hints["img"].why


def test_normalization_and_quantization_ranges():
    norm = layer_hint({"class_name": "Normalization", "config": {"name": "n", "mean": [10.0], "variance": [4.0]}})
    assert (norm.low, norm.high) == (6.0, 14.0)
    q = quantized_hint(0.5, -128, "int8")
    assert (q.low, q.high) == (0.0, 127.5)
    assert layer_hint({"class_name": "Dense", "config": {"name": "d"}}) is None


def test_user_range_wins_over_a_hint():
    spec = TensorSpec("x", "float32", (None, 3))
    hint = quantized_hint(0.1, 0, "int8")
    x = generate_inputs([spec], batch=50, ranges={"x": (5.0, 6.0)}, hints={"x": hint})["x"]
    assert x.min() >= 5.0 and x.max() < 6.0


def test_default_is_32_samples_and_the_report_says_how_inputs_were_chosen():
    model = TFLITE / "two_io_float32.tflite"
    report = compare_runners(TFLiteRunner(model), TFLiteRunner(model))
    assert report.ok and report.context["samples"] == DEFAULT_SAMPLES == 32
    assert all(v["samples"] == 32 for v in report.context["inputs"].values())
    assert all("uniform in [-1, 1) (default)" in v["chosen"] for v in report.context["inputs"].values())
    text = format_report(report)
    assert "inputs (32 generated samples, seed 0):" in text and "values" in text


def test_fixed_batch_is_run_as_often_as_it_takes(tmp_path):
    model = TFLITE / "mlp_int8.tflite"
    runner = TFLiteRunner(model)
    fixed = [s.shape[0] for s in runner.inputs]
    if fixed != [1]:  # the fixture's batch is dynamic: fix it by giving the full shape
        shapes = {runner.inputs[0].name: [1, *runner.inputs[0].shape[1:]]}
    else:
        shapes = None
    report = compare_runners(runner, TFLiteRunner(model), shapes=shapes, samples=5)
    assert report.context["runs"] == 5 and report.context["samples"] == 5
    assert report.arrays["inputs"][runner.inputs[0].name].shape[0] == 5
    # Given inputs of several batches are split the same way.
    save_arrays(tmp_path / "x.npz", report.arrays["inputs"])
    again = compare_runners(runner, TFLiteRunner(model), feed=load_inputs(tmp_path / "x.npz"), shapes=shapes)
    assert again.context["runs"] == 5 and again.context["inputs_source"] == "given"


def test_inputs_from_a_folder_of_npy_files(tmp_path):
    specs = [TensorSpec("a", "float32", (None, 2)), TensorSpec("b", "int32", (None,))]
    np.save(tmp_path / "a.npy", np.ones((3, 2), np.float32))
    np.save(tmp_path / "b.npy", np.arange(3, dtype=np.int32))
    got = load_inputs(tmp_path, specs)
    assert got["a"].shape == (3, 2) and list(got["b"]) == [0, 1, 2]
    from tfmodelkit.errors import UserError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .npy files"):
        load_inputs(tmp_path / "empty", specs)


@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
def test_keras_embedding_model_is_verified_on_real_ids(tmp_path):
    from tfmodelkit.loaders.tf import import_keras
    from tfmodelkit.verify import KerasRunner

    keras = import_keras()
    model = keras.Sequential([keras.Input((6,), name="tokens"), keras.layers.Embedding(30, 3, name="emb"), keras.layers.Flatten()])
    path = tmp_path / "emb.keras"
    model.save(path)
    runner = KerasRunner(path)
    assert runner.input_hints()["tokens"].high == 30
    report = compare_runners(runner, KerasRunner(path))
    ids = report.arrays["inputs"]["tokens"]
    assert report.ok and ids.min() >= 0 and ids.max() < 30 and len(np.unique(ids)) > 20
    assert "Embedding 'emb'" in report.context["inputs"]["tokens"]["chosen"]
