"""Lint targets over TF1 graphs (frozen GraphDefs and ``.meta`` files): the ops the signature
reaches, walked as for a SavedModel's meta graph; graphs written by TensorFlow in the tests."""

from __future__ import annotations

import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.cli.modelinspect import main

needs_tf = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")


def _frozen(tmp_path, build):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        build(tf)
    path = tmp_path / "graph.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


@needs_tf
def test_safety_finds_python_and_file_writes_in_a_frozen_graph(tmp_path, capsys):
    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        y = tf.compat.v1.py_func(lambda a: a * 2, [x], tf.float32, name="twice")
        tf.io.write_file("out.txt", tf.strings.as_string(tf.reduce_sum(y)), name="dump")
        tf.identity(y, name="y")

    path = _frozen(tmp_path, build)
    report = tfmodelkit.lint(path, "safety")
    errors = {f.subject.split(" (")[0] for f in report.findings if f.severity == "error"}
    assert errors == {"op PyFunc", "op WriteFile"} and not report.ok
    assert main(["check", str(path), "--target", "safety", "-q"]) == 1
    assert "PyFunc" in capsys.readouterr().out
    # The frozen fixture and a .meta with its saver (SaveV2/RestoreV2 run only to save and restore) are clean.
    for clean in (FIXTURES / "graphdef/frozen.pb", FIXTURES / "checkpoint/tf1_cnn/model.ckpt.meta"):
        assert tfmodelkit.lint(clean, "safety").ok, clean


@needs_tf
def test_tflite_and_tfjs_targets_judge_the_ops_a_graph_signature_reaches(tmp_path):
    def build(tf):
        x = tf.compat.v1.placeholder(tf.float32, [None, 3, 3], name="x")
        tf.identity(tf.linalg.det(x), name="det")

    path = _frozen(tmp_path, build)
    tflite = tfmodelkit.lint(path, "tflite")
    (flex,) = [f for f in tflite.findings if "MatrixDeterminant" in f.subject]
    assert flex.severity == "warning" and "--select-tf-ops" in flex.message and tflite.ok
    tfjs = tfmodelkit.lint(path, "tfjs")
    assert [f.subject for f in tfjs.findings if f.severity == "error"] == ["op MatrixDeterminant"]
    # Variables of a .meta become constants on the way: nothing to say about VariableV2.
    for target in ("tflite", "tfjs"):
        report = tfmodelkit.lint(FIXTURES / "checkpoint/tf1_cnn/model.ckpt.meta", target)
        assert report.ok and not report.findings, (target, report.findings)
        assert report.checked


def test_serving_and_checkpoint_hints_name_the_tf1_route():
    report = tfmodelkit.lint(FIXTURES / "graphdef/frozen.pb", "serving")
    assert "modelconv convert GRAPH.pb" in report.findings[0].message
    report = tfmodelkit.lint(FIXTURES / "checkpoint/tf1_cnn/model.ckpt", "tflite")
    assert "model.ckpt.meta beside it" in report.findings[0].message
