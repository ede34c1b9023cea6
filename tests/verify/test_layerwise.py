"""Layerwise verification (``modelconv verify A B --layerwise``): real Keras models against their real
TFLite conversions (LiteRT keeping every tensor) and against other Keras-family artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import FIXTURES, tf_available
from tfmodelkit.cli.modelconv import main
from tfmodelkit.errors import UnsupportedError
from tfmodelkit.verify.layerwise import LayerwiseReport, check_pair, compare_layers

pytestmark = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")

H5 = FIXTURES / "keras_h5/outlier_channels.h5"
INT8 = FIXTURES / "tflite/outlier_channels_int8.tflite"
VERIFY = FIXTURES / "inputs/outlier_channels.verify.npz"
LAYERS = ["features", "features2", "outliers", "mix", "mix2", "mix3", "mix4", "head"]


@pytest.fixture(scope="module")
def int8_report() -> LayerwiseReport:
    return compare_layers(H5, INT8, VERIFY)


def test_int8_outlier_model_diverges_at_the_outlier_layer(int8_report):
    r = int8_report
    assert [row.layer for row in r.layers] == ["x", *LAYERS]
    assert r.first_divergent_layer == "outliers"
    assert r.largest_growth_layer == "outliers"
    assert r.unmatched == ()
    by = {row.layer: row for row in r.layers}
    # The input's own rounding shows: the tensor LiteRT's QUANTIZE op made of it, one step of 1/255.
    assert by["x"].matched_by == "input" and by["x"].b_dtype == "int8"
    assert by["x"].max_abs == pytest.approx(by["x"].scale / 2, rel=0.05)
    # Before the outlier layer every layer is within a few steps; there, the 62 small channels are lost.
    assert all(by[n].relative < 0.1 for n in ("features", "features2"))
    assert by["outliers"].relative > 1.0 and by["outliers"].exceeds
    assert by["outliers"].scale > 5.0  # the two extreme channels' range over 255 steps
    assert all(by[n].matched_by == "name" for n in LAYERS[:-1])
    # The output layer's tensor has no layer name in it (StatefulPartitionedCall:0...): by shape.
    assert by["head"].matched_by == "shape" and by["head"].shape == (64, 4)
    assert all(row.scale is not None for row in r.layers)
    assert r.tolerance == 0.25 and r.context["samples"] == 64


def test_cli_layerwise_table_json_and_verdict(tmp_path, capsys):
    report = tmp_path / "r.json"
    code = main(
        ["verify", str(H5), str(INT8), "--inputs", str(VERIFY), "--layerwise", "--report", str(report)]
    )
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "first divergent layer: outliers (relative error" in out
    assert "largest growth: outliers" in out
    row = next(line for line in out.splitlines() if line.startswith("FAIL  outliers"))
    assert "name" in row and "int8" in row
    assert out.rstrip().endswith("first divergent layer outliers")
    data = json.loads(report.read_text())
    assert data["first_divergent_layer"] == "outliers"
    assert data["largest_growth_layer"] == "outliers"
    keys = {"layer", "a_tensor", "b_tensor", "matched_by", "max_abs", "mean_abs", "relative", "scale"}
    assert all(keys <= set(row) for row in data["layers"])
    outliers = next(row for row in data["layers"] if row["layer"] == "outliers")
    assert "outliers" in outliers["b_tensor"] and outliers["relative"] > 1.0


def test_library_verify_layerwise_uses_the_verification_samples():
    import tfmodelkit

    report = tfmodelkit.verify(H5, INT8, inputs=str(VERIFY), layerwise=True, layer_tolerance=5.0)
    assert not report.ok  # the verdict stays the outputs'
    assert report.layerwise.context["samples"] == 64
    assert report.layerwise.first_divergent_layer is None  # nothing is 5x its channel's range off
    assert report.as_dict()["layer_tolerance"] == 5.0


def _float_pair(tmp_path):
    """A Keras 3 Conv2D + BatchNormalization + ReLU + Dense model and its float32 TFLite."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(6, 3, name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Dropout(0.5, name="drop")(x)
    x = L.Flatten(name="flat")(x)
    # Keras 3's export scopes layer `dense` as `dense_1` and layer `dense_1` as `dense_1_2`.
    x = L.Dense(5, activation="relu", name="dense")(x)
    x = L.Dense(4, activation="relu", name="dense_1")(x)
    out = L.Dense(3, name="logits")(x)
    model = keras.Model(inp, out, name="small_cnn")
    bn = model.get_layer("bn")
    bn.set_weights([w + np.linspace(0.1, 0.6, w.size).astype(np.float32) for w in bn.get_weights()])
    path = tmp_path / "cnn.keras"
    model.save(path)
    model.export(str(tmp_path / "sm"), verbose=False)
    (tmp_path / "cnn.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()
    )
    half = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    half.optimizations = [tf.lite.Optimize.DEFAULT]
    half.target_spec.supported_types = [tf.float16]
    (tmp_path / "cnn_f16.tflite").write_bytes(half.convert())
    return path, tmp_path / "cnn.tflite"


def test_float_tflite_matches_every_layer_and_says_how(tmp_path):
    keras_path, tflite = _float_pair(tmp_path)
    r = compare_layers(keras_path, tflite, samples=8)
    by = {row.layer: row for row in r.layers}
    assert r.first_divergent_layer is None and r.tolerance == 1e-3
    assert all(row.relative < 1e-4 and row.scale is None for row in r.layers)
    assert by["image"].matched_by == "input" and by["image"].max_abs == 0
    # The converter folds the batch norm and the ReLU into the convolution: its tensor names all
    # three and is the ReLU's output; conv, bn and the inference-time Dropout have none of their own.
    assert by["relu"].matched_by == "name" and "conv" in by["relu"].b_tensor
    assert {"conv", "bn", "drop"} <= set(r.unmatched)
    assert by["flat"].shape == (8, 216)
    assert by["dense"].matched_by == "name" and "/dense_1/" in by["dense"].b_tensor
    assert by["dense_1"].matched_by == "name" and "/dense_1_2/" in by["dense_1"].b_tensor
    assert by["logits"].matched_by == "shape"  # StatefulPartitionedCall:0 names no layer
    assert r.context["candidate_kind"] == "float"
    # float16 weights (widened by DEQUANTIZE ops at run time): their own, looser tolerance.
    half = compare_layers(keras_path, tmp_path / "cnn_f16.tflite", samples=8)
    assert half.context["candidate_kind"] == "float16" and half.tolerance == 0.05
    assert half.first_divergent_layer is None
    assert 1e-5 < max(row.relative for row in half.layers) < 0.05
    assert r.context["samples"] == 8


def test_an_h5_and_the_savedmodel_made_from_it_compare_layer_by_layer():
    # savedmodel/from_h5 is `modelconv h5-to-savedmodel` of the .h5: no Keras metadata, its graph
    # is what is compared (frozen, every float tensor fetched), named by the layers' scopes.
    src = FIXTURES / "keras_h5/tfkeras_full_adam.h5"
    r = compare_layers(src, FIXTURES / "savedmodel/from_h5/tfkeras_full_adam", samples=4)
    assert [(row.layer, row.matched_by) for row in r.layers] == [
        ("measurements", "input"), ("dense", "name"), ("logits", "name")
    ]
    assert r.layer("dense").b_tensor.endswith("/dense_1/Relu:0")
    assert all(row.max_abs < 1e-6 for row in r.layers)
    assert r.unmatched == ("dropout",) and r.first_divergent_layer is None


def test_a_savedmodel_keras_wrote_is_revived_as_a():
    sm = FIXTURES / "savedmodel/tfkeras_functional"  # tf_keras model.save(dir): keras_metadata.pb
    r = compare_layers(sm, sm, samples=4)
    assert [(row.layer, row.matched_by) for row in r.layers] == [
        ("pixels", "input"), ("hidden", "name"), ("classes", "name")
    ]
    assert all(row.max_abs < 1e-6 for row in r.layers)


@pytest.mark.parametrize(
    "a, b, says",
    [
        (INT8, H5, "has no Keras layers"),
        (H5, VERIFY, "golden outputs hold no layers"),
        (FIXTURES / "savedmodel/keras3_two_io", INT8, "does not expose its layers"),
    ],
)
def test_pairs_without_layers_are_refused_in_one_line_with_exit_2(a, b, says, capsys):
    with pytest.raises(UnsupportedError, match=says):
        check_pair(a, b)
    code = main(["verify", str(a), str(b), "--layerwise", "--inputs", str(VERIFY)])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1


def test_html_shows_the_error_along_depth_with_the_tolerance_line(tmp_path):
    import tfmodelkit
    from tests.verify.browser import colour_share, screenshot
    from tfmodelkit.verify import render_html, write_html

    report = tfmodelkit.verify(H5, INT8, inputs=str(VERIFY), layerwise=True)
    page = render_html(report)
    assert "<h2>Layer by layer</h2>" in page
    assert 'aria-label="relative error of each layer along the depth of the model"' in page
    assert "tolerance 0.25" in page and 'stroke-dasharray="6 4"' in page
    assert "first divergent: outliers" in page
    exceeding = sum(row.exceeds for row in report.layerwise.layers)
    assert exceeding == 6  # outliers and the five layers after it
    assert page.count('r="4.5" fill="#c0392b"') == exceeding  # their points are red
    assert page.count('<tr class="failrow"><td><span class="pill fail">FAIL</span></td><td class="name mono">') == 6
    img = screenshot(write_html(report, tmp_path / "r.html"), tmp_path, 2000)
    # The chart sits between the outputs table and the per-output plots: in the lower half here.
    lower = img[900:1500]

    def share(colour: str) -> float:
        return colour_share(lower, colour, 8)

    assert share("#c0392b") > 0.0005, "no red tolerance line or divergent points"
    assert share("#3b6ea5") > 0.0005, "no blue error line"


def test_intermediate_tensors_of_a_signature_on_another_subgraph_are_refused():
    from tfmodelkit.verify.runners import TFLiteRunner

    path = FIXTURES / "tflite/multi_signature.tflite"  # serving_default is subgraph 1
    first = TFLiteRunner(path, signature="predict_logits", preserve_all_tensors=True)
    first.run({"x": np.ones((1, 4), np.float32)})
    tensors = first.intermediate_tensors()
    assert tensors[0][0]["name"].endswith("x:0") and tensors[0][2] is None  # the input first
    assert all(op is not None for _, _, op in tensors[1:])  # then what each op wrote
    other = TFLiteRunner(path, signature="serving_default", preserve_all_tensors=True)
    other.run({"x": np.ones((1, 4), np.float32)})
    with pytest.raises(UnsupportedError, match="runs subgraph 1"):
        other.intermediate_tensors()


def test_a_refused_pair_is_one_line_from_the_command_as_a_process():
    import subprocess
    import sys

    argv = [sys.executable, "-m", "tfmodelkit.cli.modelconv", "verify", str(INT8), str(H5), "--layerwise"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=FIXTURES.parent)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "has no Keras layers" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_generated_inputs_outside_the_calibrated_range_make_the_input_diverge_and_say_so():
    # Generated floats span [-1, 1); the int8 model's QUANTIZE holds [0, 1), its calibration range.
    r = compare_layers(H5, INT8, samples=4)
    assert r.context["inputs_source"] == "generated"
    assert r.first_divergent_layer == "x"
    assert any(n.startswith("input x: the values fed span -") and "holds 0 .. 0.9996" in n for n in r.notes)
    given = compare_layers(H5, INT8, VERIFY)
    assert not any(n.startswith("input x") for n in given.notes)


def test_models_with_other_inputs_are_not_compared_layer_by_layer(capsys):
    code = main(["verify", str(H5), str(FIXTURES / "keras_zip/conv_bn.keras"), "--layerwise", "--samples", "2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "note: layer by layer: not compared (nothing ran)" in out and "first divergent" not in out
