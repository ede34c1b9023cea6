"""TF1 graphs to SavedModels (graph-to-savedmodel, ckpt-to-savedmodel --meta), verified against the
TF1 session runner; a TF1 CNN .meta + checkpoint goes on to TFLite, verified, in two commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.cli.modelconv import main

pytestmark = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")

CNN = FIXTURES / "checkpoint/tf1_cnn/model.ckpt"
V1_META = FIXTURES / "checkpoint/v1_saver/model.ckpt.meta"
FROZEN = FIXTURES / "graphdef/frozen.pb"


def _session(meta, fetch, feed):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as s:
        tf.compat.v1.train.import_meta_graph(str(meta)).restore(s, str(meta)[: -len(".meta")])
        return s.run(fetch, feed)


def _verified(report_path):
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["verification"] and all(v["ok"] for v in report["verification"])
    return report


def test_tf1_cnn_to_savedmodel_to_tflite_in_two_commands(tmp_path, capsys):
    sm, lite = tmp_path / "cnn", tmp_path / "cnn.tflite"
    argv = ["ckpt-to-savedmodel", CNN, sm, "--meta", f"{CNN}.meta", "--input-tensors", "images",
            "--output-tensors", "probs:0", "--report", tmp_path / "a.json", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "a.json")
    assert report["route"] == ["checkpoint", "savedmodel"]
    assert main(["savedmodel-to-tflite", str(sm), str(lite), "--report", str(tmp_path / "b.json"), "-q"]) == 0
    _verified(tmp_path / "b.json")
    # The variables stayed variables: the SavedModel's checkpoint holds them by their graph names.
    desc = tfmodelkit.read(sm)
    assert {w.name for w in desc.weights} >= {"conv/w", "conv/b", "fc/w", "fc/b"}
    (sig,) = [s for s in desc.signatures if s.key == "serving_default"]
    assert [(t.name, t.tensor) for t in sig.inputs] == [("images", "images:0")]
    # And the SavedModel computes what the TF1 graph computes.
    import tensorflow as tf

    images = np.random.default_rng(1).uniform(-1, 1, (2, 8, 8, 1)).astype(np.float32)
    got = (
        tf.saved_model.load(str(sm))
        .signatures["serving_default"](images=tf.constant(images))["probs"]
        .numpy()
    )
    np.testing.assert_allclose(
        got, _session(f"{CNN}.meta", "probs:0", {"images:0": images}), rtol=1e-6, atol=1e-7
    )


def test_frozen_graph_with_renamed_keys(tmp_path, capsys):
    argv = ["graph-to-savedmodel", FROZEN, tmp_path / "sm", "--input-names", "features", "--output-names",
            "scores", "--report", tmp_path / "r.json", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["details"]["signature"]["serving_default"]["inputs"] == {"features": "x:0"}
    (sig,) = [s for s in tfmodelkit.read(tmp_path / "sm").signatures if s.key == "serving_default"]
    assert [t.name for t in sig.inputs] == ["features"] and [t.name for t in sig.outputs] == ["scores"]


def test_v1_meta_with_partitioned_and_string_variables(tmp_path, capsys):
    argv = ["graph-to-savedmodel", V1_META, tmp_path / "sm", "--input-tensors", "x", "--output-tensors", "y",
            "--report", tmp_path / "r.json", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["source_format"] == "metagraph"
    names = {w.name for w in tfmodelkit.read(tmp_path / "sm").weights}
    assert {"emb", "labels", "dense/kernel"} <= names  # the partitioned variable is still partitioned


def test_refusals_are_one_line(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["graph-to-savedmodel", str(FROZEN), str(tmp_path / "taken"), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    h5 = next((FIXTURES / "keras_h5").glob("*.h5"))
    assert main(["graph-to-savedmodel", str(h5), str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "not a TF1 graph" in err and err.strip().count("\n") == 0
    assert main(["graph-to-savedmodel", str(FROZEN), str(tmp_path / "y"), "--input-names", "a,b", "-q"]) == 2
    assert "--input-names" in capsys.readouterr().err
    assert not (tmp_path / "y").exists() and not (tmp_path / "x").exists()


# ------------------------------------------------------------------ `convert`: TF1 graphs in one command


def test_tf1_cnn_meta_and_checkpoint_to_tflite_in_one_command(tmp_path, capsys):
    """The checkpoint's P.meta beside it is its graph: no model code, no --meta, one command."""
    from ai_edge_litert.interpreter import Interpreter

    lite = tmp_path / "cnn.tflite"
    argv = ["convert", CNN, lite, "--report", tmp_path / "r.json", "-q"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["route"] == ["checkpoint", "savedmodel", "tflite"]
    labels = [v["label"] for v in report["verification"]]
    assert any("TF1 graph vs SavedModel" in x for x in labels) and any("TFLite" in x for x in labels)
    assert report["source"] == str(CNN) and report["destination"] == str(lite)
    assert "tfmodelkit-convert-" not in json.dumps(report)  # the deleted temporary SavedModel is named as the source
    assert f"{CNN} (as a SavedModel)" in json.dumps(report["verification"])
    # LiteRT on the .tflite computes what the TF1 session computes.
    images = np.random.default_rng(2).uniform(-1, 1, (1, 8, 8, 1)).astype(np.float32)
    interpreter = Interpreter(model_path=str(lite))
    runner = interpreter.get_signature_runner("serving_default")
    got = runner(images=images)["probs"]
    np.testing.assert_allclose(
        got, _session(f"{CNN}.meta", "probs:0", {"images:0": images}), rtol=1e-5, atol=1e-6
    )


def test_convert_frozen_graph_to_a_savedmodel_with_named_tensors(tmp_path, capsys):
    argv = ["convert", FROZEN, tmp_path / "sm", "--input-tensors", "x", "--output-tensors", "y:0",
            "--output-names", "scores", "--report", tmp_path / "r.json", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["route"] == ["graphdef", "savedmodel"]
    (sig,) = [s for s in tfmodelkit.read(tmp_path / "sm").signatures if s.key == "serving_default"]
    assert [t.name for t in sig.inputs] == ["x"] and [t.name for t in sig.outputs] == ["scores"]


def test_library_convert_v1_checkpoint_with_its_meta_to_tflite(tmp_path):
    """A V1 checkpoint (partitioned and string variables, a tf.cond) given its graph by ``meta``."""
    lite = tmp_path / "v1.tflite"
    report = tfmodelkit.convert(V1_META.with_suffix(""), lite, meta=V1_META, input_tensors="x", output_tensors="y")
    assert report.ok and report.route == ["checkpoint_v1", "savedmodel", "tflite"] and lite.is_file()
    assert len(report.verification) == 2 and all(v["ok"] for v in report.verification)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["convert", str(CNN), "{tmp}/m.keras"], "no Keras model"),
        (["convert", str(FROZEN), "{tmp}/m.tflite", "--meta", str(V1_META)], "--meta applies to a checkpoint"),
        (["convert", str(CNN), "{tmp}/m.tflite", "--meta", f"{CNN}.meta", "--model", "m:f"], "not both"),
        (["convert", str(FIXTURES / "checkpoint/v1_sharded"), "{tmp}/m.tflite"], "--meta GRAPH.meta"),
        (["convert", str(FROZEN), "{tmp}/sm", "--select-tf-ops"], "--select-tf-ops does not apply"),
        (["convert", str(next((FIXTURES / "keras_h5").glob("*.h5"))), "{tmp}/m.tflite", "--input-tensors", "x"],
         "--input-tensors does not apply"),
    ],
)  # fmt: skip
def test_convert_refuses_what_a_tf1_route_cannot_do(tmp_path, capsys, argv, words):
    assert main([a.format(tmp=tmp_path) for a in argv] + ["-q"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.strip().count("\n") == 0, err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not __import__("tests.convert.test_to_tfjs", fromlist=["x"]).tfjs_available(),
                    reason="Node.js or @tensorflow/tfjs missing")  # fmt: skip
def test_convert_tf1_checkpoint_to_tfjs_through_a_savedmodel(tmp_path, capsys):
    argv = ["convert", CNN, tmp_path / "js" / "model.json", "--report", tmp_path / "r.json", "-q"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["route"] == ["checkpoint", "savedmodel", "tfjs"]
    doc = json.loads((tmp_path / "js" / "model.json").read_text())
    assert doc["format"] == "graph-model"


def test_tf0_session_bundle_to_tflite_in_one_command(corpus, tmp_path, capsys):
    """TF Serving's 2016 export (a V1 checkpoint of TF 0.x `Variable` ops, its .meta beside it),
    named by its base folder. Its Placeholder has no shape: verification takes --shape (a scalar,
    which is what the TFLite converter makes of an input of unknown rank)."""
    from ai_edge_litert.interpreter import Interpreter

    lite = tmp_path / "hp2.tflite"
    base = corpus / "savedmodel/tfserving_bad_half_plus_two"
    argv = ["convert", base, lite, "--shape", "Placeholder=", "--report", tmp_path / "r.json", "-q"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    report = _verified(tmp_path / "r.json")
    assert report["route"] == ["checkpoint_v1", "savedmodel", "tflite"]
    runner = Interpreter(model_path=str(lite)).get_signature_runner("serving_default")
    for x in (0.0, 3.0, -7.5):
        assert runner(Placeholder=np.float32(x))["Add"] == np.float32(0.5 * x + 2)
    # Without a shape, the one-line answer names the flag that gives it.
    assert main(["convert", str(base), str(tmp_path / "b.tflite"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--shape Placeholder=" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "b.tflite").exists()
