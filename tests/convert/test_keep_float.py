"""Selective int8 quantization (--keep-float): named layers stay float, ``auto`` finds the layer
whose extreme channels break full int8, and gives up with its best attempt's figures.

The model: a Dense layer ("outlier", sigmoid) with two channels biased to +-500, so that its
pre-activation tensor's per-tensor int8 scale (about 4) rounds every other channel to nothing;
full int8 then fails verification, and keeping that one layer float makes it pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.conftest import FIXTURES  # noqa: E402
from tfmodelkit.cli.modelconv import main as modelconv  # noqa: E402
from tfmodelkit.convert import convert  # noqa: E402
from tfmodelkit.convert.selective import graph_layers  # noqa: E402
from tfmodelkit.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def outlier_model(tmp_path_factory) -> tuple[Path, Path]:
    """(the .keras file, 512 calibration samples as .npz: a quarter is held out to verify on, and
    fewer left some held-out samples outside the calibrated ranges)."""
    import keras

    folder = tmp_path_factory.mktemp("keepfloat")
    inp = keras.Input((16,), name="x")
    h = keras.layers.Dense(32, activation="relu", name="features")(inp)
    o = keras.layers.Dense(16, activation="sigmoid", name="outlier")(h)
    out = keras.layers.Dense(4, name="head")(o)
    model = keras.Model(inp, out, name="spiky")
    rng = np.random.default_rng(3)  # weights of our own: the same model every run
    for layer in model.layers[1:]:
        fan_in, units = layer.kernel.shape
        kernel = rng.standard_normal((fan_in, units)) * np.sqrt(2.0 / fan_in)
        bias = rng.uniform(-0.1, 0.1, units)
        if layer.name == "outlier":
            bias[0], bias[1] = 500.0, -500.0
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    src = folder / "spiky.keras"
    model.save(src)
    calibration = folder / "calibration.npz"
    np.savez(calibration, x=np.random.default_rng(5).uniform(-1, 1, (512, 16)).astype(np.float32))
    return src, calibration


def _float_and_int8_ops(path: Path) -> tuple[set[str], set[str]]:
    """Output tensor names of the ops computing in float32 and in int8."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    floats, ints = set(), set()
    for op in interp._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for i in op["outputs"]:
            detail = interp._get_tensor_details(i, 0)
            (floats if detail["dtype"] == np.float32 else ints).add(detail["name"])
    return floats, ints


def test_bad_requests_are_refused_before_tensorflow_runs(outlier_model, tmp_path):
    src, calibration = outlier_model
    dst = tmp_path / "m.tflite"
    with pytest.raises(UserError, match=r"--keep-float nope: no such layer; the model's layers are: x, features, outlier, head"):
        convert(src, dst, quantize="int8", calibration_data=str(calibration), keep_float=["outlier", "nope"])
    with pytest.raises(UserError, match="only used with --quantize int8"):
        convert(src, dst, quantize="dynamic", keep_float="outlier")
    with pytest.raises(UserError, match="only used with --keep-float auto"):
        convert(src, dst, quantize="int8", calibration_data=str(calibration), keep_float="outlier", max_float_layers=2)
    with pytest.raises(UserError, match="either 'auto' or layer names"):
        convert(src, dst, quantize="int8", calibration_data=str(calibration), keep_float="auto,outlier")
    assert modelconv(["convert", str(src), str(dst), "--keep-float", "outlier", "-q"]) == 2
    assert not dst.exists()


def test_named_layer_stays_float_and_the_model_verifies(outlier_model, tmp_path):
    src, calibration = outlier_model
    dst = tmp_path / "kept.tflite"
    report = convert(
        src, dst, quantize="int8", calibration_data=str(calibration), keep_float=["outlier"], io_dtype="int8"
    )
    assert report.ok, report.verification
    step = report.details["tflite"]
    assert step["kept_float"] == ["outlier"] and step["keep_float"] == ["outlier"]
    assert step["kept_float_bytes"] == dst.stat().st_size > step["full_int8_bytes"] > 0
    floats, ints = _float_and_int8_ops(dst)
    # Keras 3 traces the layer under the scope outlier_1: its matmul and sigmoid stay float...
    assert set(step["kept_float_nodes"]) == floats and sum("outlier" in n for n in floats) == 2
    # ... but not head's matmul, which reads it: it writes the model output, which stays int8.
    assert step["float_readers"] == {}
    # ... and the other ops are int8.
    assert not any("outlier" in n for n in ints) and any("features" in n for n in ints)
    # The integer I/O asked for is set on the requantized model.
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(dst))
    assert interp.get_input_details()[0]["dtype"] == interp.get_output_details()[0]["dtype"] == np.int8
    # Without the Keras names (a SavedModel source), the layers are the scopes, Keras 3's _1 taken off.
    assert [g.name for g in graph_layers(dst.read_bytes())] == ["features", "outlier", "head"]


def test_graph_layers_of_a_tf_keras_conversion():
    """The fixture's int8 TFLite (from a tf_keras SavedModel: scopes without a suffix): each
    layer's ops, the output op by its weights' names, and which layers read each layer."""
    model = (FIXTURES / "tflite/outlier_channels_int8.tflite").read_bytes()
    names = ["features", "features2", "outliers", "mix", "mix2", "mix3", "mix4", "head"]
    for known in ((), ("x", *names)):
        layers = graph_layers(model, known)
        assert [g.name for g in layers] == names
        by = {g.name: g for g in layers}
        assert by["outliers"].nodes == ["outlier_channels/outliers/MatMul;outlier_channels/outliers/BiasAdd"]
        assert by["outliers"].reader_layers == ["mix"] and by["outliers"].readers == by["mix"].nodes
        assert by["head"].nodes and by["head"].nodes[0].startswith("StatefulPartitionedCall")


def test_auto_keeps_the_fixtures_outlier_layer_after_full_int8_fails(tmp_path, capsys):
    """The fixture whose layer ``outliers`` has 2 extreme channels of 64, verified (every attempt
    too) on the calibration samples held out of calibration: full int8 fails, keeping that one
    layer float passes."""
    # What fixtures/models/make_outlier_channels.py writes.
    rel, outlier = "keras_h5/outlier_channels.h5", "outliers"
    calibration = "inputs/outlier_channels.calibration.npz"
    dst, report_file = tmp_path / "auto.tflite", tmp_path / "r.json"
    code = modelconv([
        "convert", str(FIXTURES / rel), str(dst), "--quantize", "int8", "--calibration-data",
        str(FIXTURES / calibration), "--keep-float", "auto",
        "--report", str(report_file), "-q",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and dst.is_file()
    report = json.loads(report_file.read_text())
    step = report["details"]["tflite"]
    assert step["kept_float"] == [outlier] and step["keep_float"] == "auto"
    first, last = step["keep_float_attempts"][0], step["keep_float_attempts"][-1]
    assert first["kept_float"] == [] and first["ok"] is False and first["worst"] > 10  # full int8 fails
    assert first["first_divergent_layer"] == outlier  # the layer-by-layer comparison named it
    assert last == {**last, "kept_float": [outlier], "ok": True} and last["worst"] < 1
    assert max(step["layer_errors"], key=step["layer_errors"].get) == outlier
    assert step["max_float_layers"] == 2  # a quarter of its 8 layers
    assert report["verification"][-1]["context"]["inputs_source"] == "calibration"
    assert step["float_readers"] == {outlier: ["mix"]}
    assert step["full_int8_bytes"] < step["kept_float_bytes"] == dst.stat().st_size
    assert f"kept float: outliers (and the ops of mix reading it) ({step['kept_float_bytes']:,} bytes against" in out


def test_auto_gives_up_with_the_best_attempt_when_no_set_passes(outlier_model, tmp_path, capsys):
    src, calibration = outlier_model
    dst, report_file = tmp_path / "none.tflite", tmp_path / "r.json"
    code = modelconv([
        "convert", str(src), str(dst), "--quantize", "int8", "--calibration-data", str(calibration),
        "--keep-float", "auto", "--max-float-layers", "1", "--atol", "1e-7", "--report", str(report_file), "-q",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and not dst.exists()
    assert "did not verify" in captured.err
    report = json.loads(report_file.read_text())
    step = report["details"]["tflite"]
    attempts = step["keep_float_attempts"]
    assert len(attempts) == 2 and not any(a["ok"] for a in attempts)  # full int8, then one layer: the limit
    best = min(attempts, key=lambda a: a["worst"])
    assert step["kept_float"] == best["kept_float"] == ["outlier"]
    assert any("no set of at most 1 float layers verifies" in w for w in report["warnings"])
    assert report["verification"][-1]["ok"] is False  # the best attempt's own figures
