"""SavedModel and Keras runners over the fixtures, and the Lambda refusal (needs TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.conftest import FIXTURES  # noqa: E402
from tfmodelkit.errors import CheckFailed, FormatError, NotFoundError, UnsupportedError, UserError  # noqa: E402
from tfmodelkit.verify import (  # noqa: E402
    KerasRunner,
    SavedModelRunner,
    TFLiteRunner,
    compare,
    compare_runners,
    format_report,
    runner_for,
)

from ._data import entries, index, model_path, recorded  # noqa: E402

pytestmark = pytest.mark.tf

_RUNNERS: dict[tuple, object] = {}


def _runner(kind, path, **options):
    """One runner per model and options for the whole module: each model is loaded once."""
    key = (kind, str(path), tuple(sorted(options.items())))
    if key not in _RUNNERS:
        _RUNNERS[key] = {"savedmodel": SavedModelRunner, "keras": KerasRunner}[kind](path, **options)
    return _RUNNERS[key]


@pytest.mark.parametrize("name", entries("savedmodel"))
def test_savedmodel_reproduces_recorded_outputs(name):
    runner = _runner("savedmodel", model_path(name), signature=index()[name]["signature"])
    feed, expected = recorded(name)
    report = compare(expected, runner.run(feed), atol=0.0, rtol=0.0)
    assert report.ok and report.matched_by == "name", report.summary()
    d = runner.describe()
    assert d["backend"] == "savedmodel" and d["signature"] == index()[name]["signature"]
    assert d["versions"]["tensorflow"]


@pytest.mark.parametrize("name", entries("keras", "tf_keras"))
def test_keras_reproduces_recorded_outputs(name):
    runner = _runner("keras", model_path(name))
    feed, expected = recorded(name)
    out = runner.run(feed)
    assert set(out) == set(expected)
    assert {s.name for s in runner.inputs} == set(index()[name]["inputs"])
    # Keras 3 reads some tf_keras .h5 files itself; its numbers then agree to float32 rounding.
    tol = 0.0 if runner.loader == index()[name]["runner"] else 1e-6
    report = compare(expected, out, atol=tol, rtol=tol)
    assert report.ok and report.matched_by == "name", report.summary()


def test_keras_loader_choice():
    # Keras 3 refuses this tf_keras file (an LSTM `time_major` argument): tf_keras runs it.
    lstm = _runner("keras", FIXTURES / "keras_h5/tfkeras_lstm.h5")
    d = lstm.describe()
    assert d["loader"] == "tf_keras" and d["versions"]["tf_keras"]
    assert any("time_major" in n for n in d["notes"])
    assert _runner("keras", FIXTURES / "keras_h5/keras3_lstm.h5").describe()["loader"] == "keras"
    assert _runner("keras", FIXTURES / "keras_zip/conv_bn.keras").describe()["versions"]["keras"]
    with pytest.raises(UserError, match="Keras 3 cannot load"):
        KerasRunner(FIXTURES / "keras_h5/tfkeras_lstm.h5", loader="keras")
    forced = _runner("keras", FIXTURES / "keras_h5/tfkeras_full_adam.h5", loader="tf_keras")
    feed, expected = recorded("keras_h5_tfkeras_full_adam")
    np.testing.assert_array_equal(forced.run(feed)["logits"], expected["logits"])


def test_keras_names_inputs_and_outputs():
    multi = _runner("keras", FIXTURES / "keras_zip/functional_multi_io.keras")
    assert [s.name for s in multi.inputs] == ["image_features", "metadata"]
    assert {s.name for s in multi.outputs} == {"box", "label"}
    assert multi.inputs[0].shape == (None, 6) and multi.inputs[0].dtype == "float32"
    seq = _runner("keras", FIXTURES / "keras_zip/conv_bn.keras")  # Sequential: output named by its layer
    assert [s.name for s in seq.outputs] == ["classes"] and seq.inputs[0].shape == (None, 8, 8, 1)


def test_weights_only_files_are_refused():
    with pytest.raises(UserError, match="weights only"):
        KerasRunner(FIXTURES / "keras_h5/tfkeras_weights_only.h5")
    with pytest.raises(UserError, match="weights only"):
        KerasRunner(FIXTURES / "keras_h5/keras3.weights.h5")
    with pytest.raises(FormatError):
        KerasRunner(FIXTURES / "tflite/mlp_int8.tflite")


def test_savedmodel_signatures_and_serving_layout():
    base = _runner("savedmodel", FIXTURES / "savedmodel/serving/affine", signature=None)
    assert base.folder.name == "2" and any("highest version" in n for n in base.notes)
    feed, expected = recorded("savedmodel_serving_affine_2")
    np.testing.assert_array_equal(base.run(feed)["y"], expected["y"])
    multi = _runner("savedmodel", FIXTURES / "savedmodel/module_multisig", signature="serving_default")
    assert {s.name: s.dtype for s in multi.outputs} == {"label_index": "int32", "probabilities": "float32"}
    with pytest.raises(NotFoundError, match="predict_logits"):
        SavedModelRunner(FIXTURES / "savedmodel/module_multisig", signature="nope")


def test_savedmodel_bad_feed_names_the_input():
    runner = _runner("savedmodel", FIXTURES / "savedmodel/keras3_two_io", signature="serving_default")
    good = {"features": np.zeros((2, 3), np.float32), "extra": np.zeros((2, 2), np.float32)}
    with pytest.raises(UserError, match="'extra' has shape \\[2, 5\\]"):
        runner.run({**good, "extra": np.zeros((2, 5), np.float32)})
    with pytest.raises(UserError, match="no value for input 'features'"):
        runner.run({"extra": good["extra"]})
    with pytest.raises(UserError, match="'features' expects float32"):
        runner.run({**good, "features": np.full((2, 3), "a")})


def test_runner_for_dispatch():
    assert isinstance(runner_for(FIXTURES / "tflite/mlp_float16.tflite"), TFLiteRunner)
    sm = runner_for(FIXTURES / "savedmodel/module_multisig", signature="predict_logits", tags=None)
    assert isinstance(sm, SavedModelRunner) and sm.signature == "predict_logits"
    assert isinstance(runner_for(FIXTURES / "keras_h5/keras3_lstm.h5", safe_mode=True), KerasRunner)
    with pytest.raises(UnsupportedError, match="checkpoint"):
        runner_for(FIXTURES / "checkpoint/manager")
    with pytest.raises(UserError, match="signature"):
        runner_for(FIXTURES / "keras_zip/conv_bn.keras", signature="serving_default")


def test_verify_conversion_pairs():
    # The TFLite fixtures were converted from these SavedModels.
    report = compare_runners(
        _runner("savedmodel", FIXTURES / "savedmodel/keras3_two_io", signature="serving_default"),
        FIXTURES / "tflite/two_io_float32.tflite",
    )
    assert report.ok, format_report(report)
    multi = compare_runners(
        _runner("savedmodel", FIXTURES / "savedmodel/module_multisig", signature="serving_default"),
        TFLiteRunner(FIXTURES / "tflite/multi_signature.tflite", signature="serving_default"),
        batch=5,
    )
    assert multi.ok and multi.output("label_index").exact
    assert multi.context["reference"]["backend"] == "savedmodel"
    json.dumps(multi.as_dict(), allow_nan=False)


def test_verify_catches_a_different_model():
    report = compare_runners(
        _runner("savedmodel", FIXTURES / "savedmodel/serving/affine/1", signature="serving_default"),
        _runner("savedmodel", FIXTURES / "savedmodel/serving/affine/2", signature="serving_default"),
    )
    (y,) = report.outputs
    assert not report.ok and y.failing == y.size
    assert y.min_atol == pytest.approx(1.0, rel=1e-4)  # y = 0.5x + 2 vs 0.5x + 3
    with pytest.raises(CheckFailed, match="y: 32 of 32"):
        report.raise_if_failed()


def test_verify_refuses_models_with_other_inputs():
    report = compare_runners(
        _runner("keras", FIXTURES / "keras_zip/functional_multi_io.keras"),
        _runner("savedmodel", FIXTURES / "savedmodel/keras3_two_io", signature="serving_default"),
    )
    assert not report.ok and report.outputs == ()
    assert "different inputs" in report.summary()


# --------------------------------------------------------------------------------------- Lambda


@pytest.fixture(scope="module")
def lambda_h5(tmp_path_factory):
    """A tf_keras model whose Lambda layer writes a marker file whenever its code runs."""
    from tfmodelkit.loaders.tf import import_tf_keras, quiet_fds

    tf_keras = import_tf_keras()
    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "ran.txt"
    # Built from source so the bytecode carries the marker path as a constant.
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x * 2.0)[1]")
    inp = tf_keras.Input((3,), name="x")
    out = tf_keras.layers.Dense(2, name="head")(tf_keras.layers.Lambda(fn, name="double")(inp))
    path = folder / "lambda.h5"
    with quiet_fds():
        tf_keras.Model(inp, out).save(path)
    assert marker.exists()  # building the model ran it once
    marker.unlink()
    return path, marker


@pytest.mark.parametrize("loader", ["auto", "tf_keras"])
def test_lambda_h5_refused_in_safe_mode(lambda_h5, loader):
    path, marker = lambda_h5
    with pytest.raises(UserError, match="double \\(Lambda\\).*safe_mode=False") as info:
        KerasRunner(path, loader=loader)
    assert info.value.exit_code == 2
    assert not marker.exists()  # nothing from the file ran
    with pytest.raises(UserError, match="refusing"):
        runner_for(path)
    assert not marker.exists()


@pytest.mark.parametrize("loader", ["auto", "tf_keras"])
def test_lambda_h5_loads_when_unsafe(lambda_h5, loader):
    path, marker = lambda_h5
    runner = KerasRunner(path, safe_mode=False, loader=loader)
    assert marker.exists()  # the file's code did run: that is what safe mode prevents
    marker.unlink()
    assert runner.describe()["safe_mode"] is False and any("safe mode off" in n for n in runner.notes)
    out = runner.run({"x": np.ones((2, 3), np.float32)})
    assert out["head"].shape == (2, 2)
    if loader == "tf_keras":
        assert runner.loader == "tf_keras"


def test_lambda_keras_zip_refused(tmp_path):
    from tfmodelkit.loaders.tf import import_keras

    keras = import_keras()
    inp = keras.Input((3,), name="x")
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t + 1.0, name="plus_one")(inp))
    path = tmp_path / "lam.keras"
    model.save(path)
    with pytest.raises(UserError, match="plus_one \\(Lambda\\)"):
        KerasRunner(path)
    assert KerasRunner(path, safe_mode=False).run({"x": np.zeros((1, 3), np.float32)})
