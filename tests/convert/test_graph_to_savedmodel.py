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
