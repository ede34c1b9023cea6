"""Keras -> SavedModel and SavedModel -> TFLite conversions, checked with TF and LiteRT themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES

tf = pytest.importorskip("tensorflow")

from tfmodelkit.convert.base import VerifyOptions  # noqa: E402
from tfmodelkit.convert.keras_to_savedmodel import keras_to_savedmodel  # noqa: E402
from tfmodelkit.convert.route import convert  # noqa: E402
from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite  # noqa: E402
from tfmodelkit.errors import UserError  # noqa: E402

INDEX = json.loads((FIXTURES / "inputs" / "index.json").read_text())
KERAS = sorted(k for k, v in INDEX.items() if v["runner"] == "keras")


def _io(name: str) -> tuple[dict, dict]:
    x = dict(np.load(FIXTURES / "inputs" / f"{name}.inputs.npz"))
    y = dict(np.load(FIXTURES / "inputs" / f"{name}.outputs.npz"))
    return x, y


def _run_savedmodel(folder: Path, feed: dict) -> dict:
    loaded = tf.saved_model.load(str(folder))
    fn = loaded.signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}


@pytest.mark.parametrize("name", KERAS)
def test_keras_fixture_to_savedmodel_keeps_names_and_numbers(name, tmp_path):
    src = FIXTURES / INDEX[name]["model"]
    report = keras_to_savedmodel(src, tmp_path / "sm")
    assert report.ok and report.verification[0]["ok"]
    # checked while staged under a temporary name, reported under the name it ships as
    assert report.verification[0]["context"]["candidate"]["path"] == str(tmp_path / "sm")
    x, y = _io(name)
    got = _run_savedmodel(tmp_path / "sm", x)  # TensorFlow itself, keyed by the Keras names
    assert set(got) == set(y)
    for k in y:
        np.testing.assert_allclose(got[k], y[k], rtol=1e-5, atol=1e-5)
    sig = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    for spec in sig.structured_input_signature[1].values():
        assert spec.shape[0] is None  # dynamic batch


@pytest.mark.parametrize("quantize, atol", [("none", 1e-5), ("float16", 1e-2), ("dynamic", 5e-2), ("int8", None)])
def test_keras_to_tflite_every_quantization(quantize, atol, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    src = FIXTURES / "keras_zip/functional_multi_io.keras"
    dst = tmp_path / "m.tflite"
    report = convert(src, dst, quantize=quantize, **({"allow_generated_calibration": True} if quantize == "int8" else {}))
    assert report.ok and report.route == ["keras_zip", "savedmodel", "tflite"]
    assert len(report.verification) == 2 and all(v["ok"] for v in report.verification)
    assert report.verification[1]["context"]["candidate"]["path"] == str(dst)
    runner = Interpreter(model_path=str(dst)).get_signature_runner("serving_default")
    x, y = _io("keras_zip_functional_multi_io")
    if quantize == "int8":
        # Calibration used generated inputs in [-1, 1): compare on fresh inputs of that range. The
        # inputs and outputs stay float32 (TensorFlow's default): the model quantizes them itself.
        from tfmodelkit.verify import KerasRunner, generate_inputs

        assert report.calibration == {"source": "generated", "samples": 128}
        assert all(d["dtype"] == np.float32 for d in runner.get_input_details().values())
        keras_runner = KerasRunner(src)
        x = generate_inputs(keras_runner.inputs, seed=123, batch=4)
        y = keras_runner.run(x)
        got = runner(**x)
        quantized = report.verification[1]["context"]["candidate"]["dequantized_in_model"]
        for k in y:
            assert got[k].dtype == np.float32
            step = quantized[k]["scale"][0]
            # generated calibration: a few elements land up to ~12 steps off
            assert np.max(np.abs(got[k] - y[k])) <= 16 * step
            assert np.mean(np.abs(got[k] - y[k])) <= 3 * step
    else:
        got = runner(**{k: v.astype(np.float32) for k, v in x.items()})
        assert set(got) == set(y)  # the Keras output names survive the chain
        for k in y:
            np.testing.assert_allclose(got[k], y[k], atol=atol, rtol=atol)


def test_multi_signature_savedmodel_keeps_all(tmp_path):
    report = savedmodel_to_tflite(FIXTURES / "savedmodel/module_multisig", tmp_path / "m.tflite", all_signatures=True)
    assert report.ok and len(report.verification) == 2
    import tfmodelkit

    assert {s.key for s in tfmodelkit.read(tmp_path / "m.tflite").signatures} == {"serving_default", "predict_logits"}


def test_unknown_signature_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no signature 'nope'"):
        savedmodel_to_tflite(FIXTURES / "savedmodel/module_multisig", tmp_path / "m.tflite", signature="nope")
    assert not (tmp_path / "m.tflite").exists()


def test_occupied_destination_is_refused_and_untouched(tmp_path):
    dst = tmp_path / "sm"
    dst.mkdir()
    (dst / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="already exists"):
        keras_to_savedmodel(FIXTURES / "keras_h5/keras3_legacy.h5", dst)
    assert (dst / "precious.txt").read_text() == "keep me"
    report = keras_to_savedmodel(FIXTURES / "keras_h5/keras3_legacy.h5", dst, overwrite=True)
    assert report.ok and (dst / "saved_model.pb").exists() and not (dst / "precious.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]  # no partial or backup left


def test_failed_verification_leaves_nothing_unless_keep_failed(tmp_path):
    src = FIXTURES / "savedmodel/keras3_two_io"
    strict = VerifyOptions(atol=0.0, rtol=0.0)
    report = savedmodel_to_tflite(src, tmp_path / "q.tflite", quantize="int8", allow_generated_calibration=True, verify=strict)
    assert not report.ok and not (tmp_path / "q.tflite").exists()
    assert list(tmp_path.iterdir()) == []
    report = savedmodel_to_tflite(
        src, tmp_path / "q.tflite", quantize="int8", allow_generated_calibration=True, verify=strict, keep_failed=True
    )
    assert not report.ok and report.kept_failed and (tmp_path / "q.tflite").exists()


def test_leftover_partial_of_a_killed_run_is_cleaned(tmp_path):
    dead = tmp_path / ".sm.tfmodelkit-partial-999999999"
    dead.mkdir()
    (dead / "junk").write_text("x")
    report = keras_to_savedmodel(FIXTURES / "keras_h5/keras3_legacy.h5", tmp_path / "sm")
    assert report.ok and not dead.exists()


@pytest.mark.corpus
def test_lambda_needs_unsafe(tmp_path):
    src = CORPUS / "keras_h5/dl4j/examples_lambda_sequential_lambda.h5"
    if not src.exists():
        pytest.skip("corpus not available")
    with pytest.raises(UserError, match="Python code"):
        keras_to_savedmodel(src, tmp_path / "sm")
    assert not (tmp_path / "sm").exists()


def _modelconv(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd,
    )  # fmt: skip


def test_cli_report_and_exit_codes(tmp_path):
    p = _modelconv("h5-to-savedmodel", str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"), str(tmp_path / "sm"),
                   "--report", str(tmp_path / "r.json"), "-q")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # quiet, and TensorFlow's noise silenced
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["route"] == ["keras_h5", "savedmodel"] and report["loader"] == "keras"
    assert set(report["timings"]) >= {"load", "export", "verify"}
    assert report["verification"][0]["ok"] is True
    p = _modelconv("h5-to-savedmodel", str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"), str(tmp_path / "sm"))
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("modelconv: error:")
    p = _modelconv("keras-to-savedmodel", str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"), str(tmp_path / "x"))
    assert p.returncode == 2 and "h5-to-savedmodel" in p.stderr
    p = _modelconv("savedmodel-to-tflite", str(FIXTURES / "savedmodel/keras3_two_io"), str(tmp_path / "q.tflite"),
                   "--quantize", "int8", "--allow-generated-calibration", "--atol", "0", "--rtol", "0", "-q")  # fmt: skip
    assert p.returncode == 1 and not (tmp_path / "q.tflite").exists()


def test_without_tensorflow_says_how_to_install(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys
            class _Block:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                        raise ImportError(f"{name} is blocked in this test")
            sys.meta_path.insert(0, _Block())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    p = _modelconv("h5-to-savedmodel", str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"), str(tmp_path / "sm"), env=env)
    assert p.returncode == 2, p.stderr
    assert "pip install" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "sm").exists()


def test_int8_calibration_from_npz(tmp_path):
    from tfmodelkit.verify import SavedModelRunner, generate_inputs, save_arrays

    src = FIXTURES / "savedmodel/keras3_two_io"
    runner = SavedModelRunner(src)
    save_arrays(tmp_path / "calib.npz", generate_inputs(runner.inputs, seed=3, batch=128))
    # 32 verification samples: this model's score output sits about 5 steps off at worst, so the
    # test allows 0.05 (what it checks is the calibration file, not the default of 4 steps).
    report = savedmodel_to_tflite(
        src, tmp_path / "q.tflite", quantize="int8", calibration_data=str(tmp_path / "calib.npz"),
        verify=VerifyOptions(atol=0.05),
    )
    assert report.ok
    assert not any("generated inputs" in w for w in report.warnings)  # no calibration warning
    with pytest.raises(UserError, match="only used with --quantize int8"):
        savedmodel_to_tflite(src, tmp_path / "f.tflite", calibration_data=str(tmp_path / "calib.npz"))


def test_recurrent_model_needs_flex_and_says_so(tmp_path):
    sm = tmp_path / "sm"
    assert keras_to_savedmodel(FIXTURES / "keras_h5/tfkeras_lstm.h5", sm).ok
    with pytest.raises(UserError, match="--select-tf-ops"):
        savedmodel_to_tflite(sm, tmp_path / "a.tflite")
    assert not (tmp_path / "a.tflite").exists()
    report = savedmodel_to_tflite(sm, tmp_path / "b.tflite", select_tf_ops=True)
    assert report.details["flex_ops"], report.details
    assert any("Flex" in w for w in report.warnings)
    assert (tmp_path / "b.tflite").exists()


def test_backup_of_a_run_killed_mid_commit_is_restored(tmp_path):
    from tfmodelkit.convert.base import clean_leftovers

    dst = tmp_path / "sm"
    backup = tmp_path / ".sm.tfmodelkit-old-999999999"
    backup.mkdir()
    (backup / "saved_model.pb").write_text("previous model")
    clean_leftovers(dst)
    assert (dst / "saved_model.pb").read_text() == "previous model" and not backup.exists()


@pytest.fixture(scope="module")
def lstm_keras(tmp_path_factory):
    """A small Keras 3 LSTM model: its loop becomes TensorList ops when traced with a dynamic batch."""
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4, 3), name="seq"), keras.layers.LSTM(5, name="lstm"), keras.layers.Dense(2, name="out")])
    path = tmp_path_factory.mktemp("lstm") / "lstm.keras"
    model.save(path)
    return path


def test_rnn_model_to_tflite_gets_a_fixed_batch(lstm_keras, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    dst = tmp_path / "m.tflite"
    report = convert(lstm_keras, dst)
    assert report.ok and all(v["ok"] for v in report.verification)
    assert report.details["savedmodel"]["batch_size"] == 1
    assert "fixed batch size" in report.warnings[0]
    (inp,) = Interpreter(model_path=str(dst)).get_input_details()
    assert list(inp["shape"]) == [1, 4, 3]
    # the verification's reference is named by the source, not the temporary SavedModel
    assert report.verification[1]["context"]["reference"]["path"] == f"{lstm_keras} (as a SavedModel)"


def test_rnn_savedmodel_with_a_dynamic_batch_says_what_to_do(lstm_keras, tmp_path):
    from tfmodelkit.convert.savedmodel_to_tflite import TensorListError

    assert keras_to_savedmodel(lstm_keras, tmp_path / "sm").ok
    with pytest.raises(TensorListError, match="fixed batch size.*--batch-size.*--select-tf-ops"):
        savedmodel_to_tflite(tmp_path / "sm", tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()
    # an explicit batch size is kept as given
    report = convert(lstm_keras, tmp_path / "b3.tflite", batch_size=3)
    assert report.ok and report.details["savedmodel"]["batch_size"] == 3
    assert not any("fixed batch size" in w for w in report.warnings)
    with pytest.raises(UserError, match="--batch-size applies to Keras sources"):
        convert(tmp_path / "sm", tmp_path / "x.tflite", batch_size=1)


def test_rnn_model_declaring_its_batch_keeps_it(corpus, tmp_path):
    """A stateful-era Keras 2 LSTM declares batch_input_shape [25, 1, 1]: the retry with a fixed
    batch keeps 25 rather than imposing 1 (its Keras reference would refuse batches of 1)."""
    from ai_edge_litert.interpreter import Interpreter

    dst = tmp_path / "m.tflite"
    report = convert(corpus / "keras_h5/dl4j_oracle/simple_lstm_tf_keras_2_model.h5", dst)
    assert report.ok and all(v["ok"] for v in report.verification)
    (inp,) = Interpreter(model_path=str(dst)).get_input_details()
    assert list(inp["shape"]) == [25, 1, 1]


def test_custom_recurrent_layer_gets_a_fixed_batch_on_the_second_attempt(tmp_path):
    """A layer class tfmodelkit does not know as recurrent: the converter's TensorList failure
    is what tells, and the conversion is redone with a fixed batch."""
    import keras

    class Recurrent(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.GRU(4)

        def call(self, x):
            return self.inner(x)

    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((3, 2)), Recurrent(name="rec")])
    src = tmp_path / "rec.keras"
    model.save(src)
    report = convert(src, tmp_path / "m.tflite", custom_objects={"Recurrent": Recurrent})
    assert report.ok and report.details["savedmodel"]["batch_size"] == 1
    assert "fixed batch size" in report.warnings[0]
