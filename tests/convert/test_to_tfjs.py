"""Keras -> TF.js layers models: the topology translation (no TensorFlow), the conversions proven
in TF.js itself (Node.js + @tensorflow/tfjs), the CLI (to-tfjs, convert, verify, check
--target tfjs), shards, quantization, and what happens without Node."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.convert.tfjs_topology import model_topology
from tfmodelkit.convert.to_tfjs import destination_folder, quantize_array

ROOT = Path(__file__).resolve().parents[2]


def tfjs_available() -> bool:
    from tfmodelkit.verify.runners.tfjs import TFJSUnavailable, find_tfjs

    try:
        find_tfjs()
    except TFJSUnavailable:
        return False
    return True


needs_tfjs = pytest.mark.skipif(not tfjs_available(), reason="Node.js or @tensorflow/tfjs missing (npm ci --prefix tfjs)")
needs_tf = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")


# ----------------------------------------------------------------------------------------
# Without TensorFlow: the translation and the quantizer


def keras3_functional() -> dict:
    tensor = lambda name: {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [name, 0, 0]}}  # noqa: E731
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    return {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {"module": "keras.layers", "class_name": "InputLayer", "name": "x", "inbound_nodes": [],
                 "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "x", "optional": False, "ragged": False}},
                {"module": "keras.layers", "class_name": "Dense", "name": "d", "registered_name": None,
                 "build_config": {"input_shape": [None, 4]},
                 "config": {"name": "d", "units": 2, "dtype": policy, "quantization_config": None,
                            "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                   "config": {"seed": None, "input_axes": None}, "registered_name": None},
                            "kernel_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, "registered_name": None}},
                 "inbound_nodes": [{"args": [tensor("x")], "kwargs": {}}]},
                {"module": "keras", "class_name": "Sequential", "name": "inner",
                 "config": {"name": "inner", "layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 2], "name": "i"}}]},
                 "inbound_nodes": [{"args": [tensor("d")], "kwargs": {}}]},
                {"module": "keras.layers", "class_name": "Add", "name": "sum", "config": {"name": "sum", "dtype": policy},
                 "inbound_nodes": [{"args": [[tensor("inner"), tensor("d")]], "kwargs": {}}]},
            ],
            "input_layers": ["x", 0, 0],
            "output_layers": {"out": ["sum", 0, 0]},
        },
    }  # fmt: skip


def test_keras3_config_is_translated_for_tfjs_layers():
    topo = model_topology(keras3_functional())
    assert topo["class_name"] == "Model"
    cfg = topo["config"]
    x, d, inner, add = cfg["layers"]
    assert x["config"]["batch_input_shape"] == [None, 4] and "batch_shape" not in x["config"]
    assert "optional" not in x["config"] and "ragged" not in x["config"]
    assert d["config"]["dtype"] == "float32"
    assert d["config"]["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert d["config"]["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}}
    assert "module" not in d and "build_config" not in d and "quantization_config" not in d["config"]
    assert d["inbound_nodes"] == [[["x", 0, 0, {}]]]
    # a nested model is node 1 of itself in TF.js (node 0 is its own input's)
    assert add["inbound_nodes"] == [[["inner", 1, 0, {}], ["d", 0, 0, {}]]]
    assert inner["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 2]
    assert cfg["input_layers"] == [["x", 0, 0]] and cfg["output_layers"] == [["sum", 0, 0]]


def test_mixed_precision_and_subclassed_models_are_refused():
    from tfmodelkit.errors import UnsupportedError

    cfg = keras3_functional()
    cfg["config"]["layers"][1]["config"]["dtype"]["config"]["name"] = "mixed_float16"
    with pytest.raises(UnsupportedError, match="mixed_float16"):
        model_topology(cfg)
    with pytest.raises(UnsupportedError, match="subclassed"):
        model_topology({"class_name": "MyModel", "config": {}})


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float16"])
def test_quantizer_keeps_zero_exact_and_errors_within_half_a_step(dtype):
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.normal(0, 0.3, 999).astype(np.float32), [0.0]]).reshape(10, 100)
    raw, q, back = quantize_array(w, dtype)
    assert len(raw) == w.size * (1 if dtype == "uint8" else 2)
    assert back[9, 99] == 0.0
    if dtype == "float16":
        np.testing.assert_array_equal(back, w.astype(np.float16).astype(np.float32))
    else:
        assert np.abs(back - w).max() <= q["scale"] / 2 + 1e-7
        stored = np.frombuffer(raw, dtype=np.uint8 if dtype == "uint8" else "<u2")
        np.testing.assert_allclose(stored * q["scale"] + q["min"], back.ravel(), atol=1e-6)


def test_destination_is_the_folder_of_model_json():
    assert destination_folder("out/m/model.json") == Path("out/m")
    assert destination_folder("out/m") == Path("out/m")


# ----------------------------------------------------------------------------------------
# Conversions, proven in TF.js


CASES = {
    "conv_bn": ("keras_zip/conv_bn.keras", {}),
    "multi_io": ("keras_zip/functional_multi_io.keras", {}),
    "nested_keras3": ("keras_h5/keras3_nested_sequential.h5", {}),
    "lstm_tf_keras": ("keras_h5/tfkeras_lstm.h5", {}),
    "conv_bn_uint8_sharded": ("keras_zip/conv_bn.keras", {"quantize": "uint8", "shard_size": 100}),
    "multi_io_float16_some": ("keras_zip/functional_multi_io.keras", {"quantize": "float16", "quantize_weights": ("trunk/*",)}),
    "graph_two_io": ("savedmodel/keras3_two_io", {}),
    "graph_tf_keras_float16": ("savedmodel/tfkeras_functional", {"quantize": "float16"}),
    "graph_from_keras_multi_io": ("keras_zip/functional_multi_io.keras", {"graph": True}),
    "graph_from_h5_lstm_uint8": ("keras_h5/tfkeras_lstm.h5", {"graph": True, "quantize": "uint8"}),
}


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    if not (tfjs_available() and tf_available()):
        pytest.skip("needs TensorFlow and Node.js with @tensorflow/tfjs")
    from tfmodelkit.convert.to_tfjs import to_tfjs

    root = tmp_path_factory.mktemp("tfjs")
    out = {}
    for name, (src, options) in CASES.items():
        report = to_tfjs(FIXTURES / src, root / name / "model.json", **options)
        out[name] = (FIXTURES / src, root / name, report)
    return out


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(CASES))
def test_conversion_verifies_in_tfjs(converted, name):
    src, folder, report = converted[name]
    assert report.ok, report.verification
    labels = [v["label"] for v in report.verification]
    quantize = CASES[name][1].get("quantize")
    if name.startswith("graph"):
        from_keras = CASES[name][1].get("graph", False)
        assert labels == ["Keras vs TF.js (graph model)" if from_keras else "SavedModel vs TF.js"]
        assert report.details["tfjs_format"] == "graph-model"
        assert report.route == (["keras_zip" if src.suffix == ".keras" else "keras_h5", "savedmodel", "tfjs"] if from_keras else ["savedmodel", "tfjs"])
        assert report.verification[0]["atol"] == {"float16": 1e-2, "uint8": 2e-2}.get(quantize, 1e-5)  # verify.tolerances
        assert report.verification[0]["context"]["candidate"]["loader"].startswith("tf.loadGraphModel")
        desc = tfmodelkit.read(folder)
        assert desc.metadata["tfjs_format"] == "graph-model" and "Placeholder" in desc.ops and not desc.layers
        source = tfmodelkit.read(src).signatures
        serving = source[0] if from_keras else next(s for s in source if s.key == "serving_default")
        assert {s.name for s in desc.signatures[0].inputs} == {s.name for s in serving.inputs}
        assert {s.name for s in desc.signatures[0].outputs} == {s.name for s in serving.outputs}
        if quantize:
            assert {w.extra["quantization"]["dtype"] for w in desc.weights if "quantization" in w.extra} == {quantize}
        if from_keras:  # the variables' constants are named after them, so diff pairs every Keras weight
            assert not [w.name for w in desc.weights if w.name.startswith("unknown")]
            d = tfmodelkit.diff(src, folder)
            assert not d.only_in_a and d.same + len(d.changed) == len(tfmodelkit.read(src).weights)
        assert tfmodelkit.check(folder).ok
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        return
    if quantize:
        assert labels == [f"Keras with the {quantize} weights vs TF.js", f"Keras vs TF.js ({quantize} weights)"]
        exact, derived = report.verification
        assert exact["atol"] == 1e-5  # TF.js computes exactly the weights it was given
        assert derived["atol"] == report.details["quantization_tolerance"]["atol"] > 1e-5
    else:
        assert labels == ["Keras vs TF.js"] and report.verification[0]["atol"] == 1e-5
    assert report.verification[0]["context"]["candidate"]["loader"].startswith("tf.loadLayersModel")
    desc = tfmodelkit.read(folder)
    assert desc.format == "tfjs" and tfmodelkit.check(folder).ok
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.tf
def test_shards_and_quantized_weights(converted):
    _, folder, report = converted["conv_bn_uint8_sharded"]
    shards = sorted(folder.glob("group1-shard*.bin"))
    assert len(shards) == len(report.details["shards"]) > 1
    assert all(p.stat().st_size <= 100 for p in shards)
    desc = tfmodelkit.read(folder)
    assert {w.extra["quantization"]["dtype"] for w in desc.weights} == {"uint8"}
    _, some, report = converted["multi_io_float16_some"]
    quantized = {w.name for w in tfmodelkit.read(some).weights if "quantization" in w.extra}
    assert quantized == {"trunk/kernel", "trunk/bias"} == set(report.details["quantized_weights"])


@pytest.mark.tf
@pytest.mark.parametrize("name", ["conv_bn", "multi_io", "nested_keras3"])
def test_diff_pairs_every_weight(converted, name):
    src, folder, _ = converted[name]
    d = tfmodelkit.diff(src, folder)
    assert not d.only_in_a and not d.only_in_b and not d.changed and d.same > 0
    # The layers model's signature has the topology's output shapes, as the Keras file's has.
    assert d.identical and not d.signature_changes, d.signature_changes


def modelconv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )  # fmt: skip


@pytest.mark.tf
@needs_tfjs
def test_cli_convert_then_verify(tmp_path, converted):
    dst = tmp_path / "m" / "model.json"
    p = modelconv("convert", str(FIXTURES / "keras_h5/keras3_lstm.h5"), str(dst), "-q", "--report", str(tmp_path / "r.json"))
    assert p.returncode == 0, p.stderr
    assert "keras_h5 -> tfjs; verified: Keras vs TF.js" in p.stdout
    assert json.loads((tmp_path / "r.json").read_text())["route"] == ["keras_h5", "tfjs"]
    src, folder, _ = converted["multi_io"]
    p = modelconv("verify", str(src), str(folder / "model.json"), "-q")
    assert p.returncode == 0 and p.stdout.startswith("PASS"), p.stdout + p.stderr


@pytest.mark.tf
def test_without_node_nothing_is_written_unless_no_verify(tmp_path):
    env = {"TFMODELKIT_NODE_MODULES": str(tmp_path / "nowhere")}
    dst = tmp_path / "m" / "model.json"
    p = modelconv("to-tfjs", str(FIXTURES / "keras_zip/conv_bn.keras"), str(dst), env=env)
    assert p.returncode == 2, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "npm ci --prefix tfjs" in lines[0] and "--no-verify" in lines[0], p.stderr
    assert not dst.parent.exists()
    p = modelconv("to-tfjs", str(FIXTURES / "keras_zip/conv_bn.keras"), str(dst), "--no-verify", "-q", "--report", str(tmp_path / "r.json"), env=env)
    assert p.returncode == 0, p.stderr
    assert "not verified" in p.stdout and dst.is_file()
    assert any("--no-verify" in w for w in json.loads((tmp_path / "r.json").read_text())["warnings"])


@pytest.mark.tf
def test_existing_destination_and_bad_options(tmp_path):
    dst = tmp_path / "m"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    for args, words in [
        ([str(dst / "model.json"), "--no-verify"], "already exists"),
        ([str(tmp_path / "n" / "model.json"), "--shard-size", "0"], "--shard-size"),
        ([str(tmp_path / "n" / "model.json"), "--quantize-weights", "d*"], "--quantize"),
    ]:
        p = modelconv("to-tfjs", str(FIXTURES / "keras_zip/conv_bn.keras"), *args)
        assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert (dst / "keep.txt").is_file()


def test_check_target_tfjs_names_what_tfjs_lacks():
    from tfmodelkit.lint import lint

    report = lint(FIXTURES / "keras_zip/conv_bn.keras", "tfjs")
    assert report.ok and report.targets == ("tfjs",)
    graph = lint(FIXTURES / "tfjs/graph_mlp", "tfjs")
    assert graph.ok
    sm = lint(FIXTURES / "savedmodel/keras3_two_io", "tfjs")
    assert sm.ok and not sm.findings


def test_unsupported_layers_are_named_and_refused(tmp_path):
    import shutil

    folder = tmp_path / "odd"
    shutil.copytree(FIXTURES / "tfjs/layers_mlp", folder)
    doc = json.loads((folder / "model.json").read_text())
    doc["modelTopology"]["config"]["layers"][1]["class_name"] = "UnitNormalization"
    (folder / "model.json").write_text(json.dumps(doc))
    from tfmodelkit.lint import lint

    report = lint(folder, "tfjs")
    assert not report.ok
    assert [f.subject for f in report.findings] == ["probs (UnitNormalization)"]
    assert "fix:" in report.findings[0].message and math.isfinite(len(report.findings))


@pytest.mark.tf
@needs_tfjs
def test_cli_graph_model_of_a_keras_file(tmp_path):
    dst = tmp_path / "g" / "model.json"
    p = modelconv("to-tfjs", str(FIXTURES / "keras_h5/keras3_nested_sequential.h5"), str(dst), "--graph", "-q")
    assert p.returncode == 0, p.stderr
    assert "keras_h5 -> savedmodel -> tfjs; verified: Keras vs TF.js (graph model)" in p.stdout
    assert json.loads(dst.read_text())["format"] == "graph-model"
    assert not list(tmp_path.glob("g/.*"))


@pytest.mark.tf
@needs_tfjs
def test_string_constants_are_written_read_and_run_in_tfjs(tmp_path):
    """A string Const becomes a string weight (per element a uint32 LE length and the bytes, as
    tf.io.encodeWeights stores it) that tf.loadGraphModel decodes and StringToHashBucketFast runs on."""
    import hashlib

    import tensorflow as tf

    from tfmodelkit.convert.tfjs_write import string_bytes
    from tfmodelkit.convert.to_tfjs import to_tfjs
    from tfmodelkit.verify.runners.tfjs import describe_in_tfjs

    words = ["a", "bb", "héllo", ""]

    class Hashed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": x + tf.cast(tf.strings.to_hash_bucket_fast(tf.constant(words), 1000), tf.float32)}

    module = Hashed()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.__call__})
    report = to_tfjs(tmp_path / "sm", tmp_path / "js" / "model.json")
    assert report.ok and report.verification[0]["atol"] == 1e-5
    desc = tfmodelkit.read(tmp_path / "js")
    (weight,) = [w for w in desc.weights if w.dtype == "string"]
    assert list(weight.read()) == [w.encode() for w in words] and weight.shape == (4,)
    assert weight.nbytes == sum(4 + len(w.encode()) for w in words)
    assert tfmodelkit.check(tmp_path / "js").ok
    theirs = {w["name"]: w for w in describe_in_tfjs(tmp_path / "js")["weights"]}[weight.name]
    assert theirs["dtype"] == "string" and theirs["shape"] == [4]
    assert theirs["sha256"] == hashlib.sha256(string_bytes(weight.read())).hexdigest()


@pytest.mark.tf
def test_verify_holds_a_quantized_tfjs_model_to_its_quantization(converted):
    """modelconv verify A model.json of a quantized TF.js model: the tolerance a conversion derives
    (measured against Keras for a layers model, the quantization's default for a graph model), shown."""
    from tfmodelkit.verify.report import format_report

    src, folder, conversion = converted["conv_bn_uint8_sharded"]
    report = tfmodelkit.verify(src, folder / "model.json")
    assert report.ok
    derived = conversion.details["quantization_tolerance"]["atol"]
    assert report.atol == pytest.approx(derived) and derived > 1e-5
    assert report.context["quantization_tolerance"]["quantization"] == ["uint8"]
    assert any("tolerance from the TF.js model's uint8 weights" in n for n in report.notes)
    assert "note: tolerance from the TF.js model's uint8 weights: atol" in format_report(report)
    worst = max(o.max_abs_error for o in report.outputs)
    assert worst > 1e-5  # it needs the tolerance: at float32's it fails
    strict = tfmodelkit.verify(src, folder / "model.json", atol=1e-5)
    assert not strict.ok and "quantization_tolerance" not in strict.context
    src, folder, _ = converted["graph_tf_keras_float16"]
    report = tfmodelkit.verify(src, folder / "model.json")
    assert report.ok and (report.atol, report.rtol) == (1e-2, 1e-2)
    assert report.context["quantization_tolerance"]["derived_from"].startswith("the default for float16 weights")
    src, folder, _ = converted["multi_io"]
    plain = tfmodelkit.verify(src, folder / "model.json")
    assert plain.ok and plain.atol == 1e-5 and "quantization_tolerance" not in plain.context


@pytest.mark.tf
@needs_tfjs
def test_convert_takes_the_tfjs_options(tmp_path):
    """convert SRC DST/model.json takes what to-tfjs takes: --graph, --shard-size,
    --quantize float16|uint8|uint16 and --quantize-weights."""
    dst = tmp_path / "g" / "model.json"
    p = modelconv(
        "convert", str(FIXTURES / "keras_h5/keras3_nested_sequential.h5"), str(dst),
        "--graph", "--quantize", "uint8", "--shard-size", "32", "-q", "--report", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "keras_h5 -> savedmodel -> tfjs; verified" in p.stdout
    doc = json.loads(dst.read_text())
    assert doc["format"] == "graph-model"
    [group] = doc["weightsManifest"]
    assert len(group["paths"]) > 1  # 89 bytes of uint8 weights in 32-byte shards
    assert {w.get("quantization", {}).get("dtype") for w in group["weights"] if w["dtype"] == "float32"} == {"uint8"}


def test_convert_refuses_options_its_destination_does_not_take(tmp_path):
    src = str(FIXTURES / "keras_h5/keras3_nested_sequential.h5")
    for dst, args, words in [
        ("m.tflite", ["--quantize", "uint8"], "--quantize 'uint8': a .tflite destination takes none, dynamic, float16, int8"),
        ("t/model.json", ["--quantize", "int8"], "--quantize 'int8': a TF.js destination takes none, float16, uint8, uint16"),
        ("m.tflite", ["--graph"], "--graph does not apply"),
        ("m.tflite", ["--shard-size", "1024"], "--shard-size does not apply"),
    ]:
        p = modelconv("convert", src, str(tmp_path / dst), *args)
        assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert not list(tmp_path.iterdir())


def test_the_routers_copy_of_the_tfjs_shard_size_agrees():
    from tfmodelkit.convert import route, tfjs_write

    assert route.TFJS_SHARD_SIZE == tfjs_write.DEFAULT_SHARD_SIZE
