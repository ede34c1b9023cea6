"""The TF1 session runner (frozen graphs, .meta + checkpoint, TF1 SavedModels) and ``run``,
against what TensorFlow computes with its own TF1 APIs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES, tf_available
from tfmodelkit.errors import NotFoundError, UnsupportedError, UserError

pytestmark = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")

FROZEN = FIXTURES / "graphdef/frozen.pb"
META = FIXTURES / "checkpoint/v1_saver/model.ckpt.meta"
CNN = FIXTURES / "checkpoint/tf1_cnn/model.ckpt"
HALF_PLUS_THREE = "savedmodel/tfserving_saved_model_half_plus_three"
X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], np.float32)


def _tf_session_run(meta, prefix, fetch, feed):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as s:
        tf.compat.v1.train.import_meta_graph(str(meta)).restore(s, str(prefix))
        return s.run(fetch, feed)


def test_frozen_graph_and_its_source_agree_with_tf():
    from tfmodelkit.verify.runners import runner_for

    expected = _tf_session_run(META, META.with_suffix(""), "y:0", {"x:0": X})
    frozen = runner_for(FROZEN)
    assert [s.tensor for s in frozen.inputs] == ["x:0"] and [s.tensor for s in frozen.outputs] == ["y:0"]
    np.testing.assert_array_equal(frozen.run({"x": X})["y"], expected)
    meta = runner_for(META)
    np.testing.assert_array_equal(meta.run({"x": X})["y"], expected)
    # The cond's other branch, through a named input with a default.
    both = runner_for(META, input_tensors="x,flag", output_tensors="y:0")
    expected_false = _tf_session_run(META, META.with_suffix(""), "y:0", {"x:0": X, "flag:0": False})
    np.testing.assert_array_equal(both.run({"x": X, "flag": np.array(False)})["y"], expected_false)


def test_checkpoint_with_meta_beside_runs_its_graph():
    from tfmodelkit.verify.runners import TF1Runner, runner_for

    r = runner_for(CNN)
    assert isinstance(r, TF1Runner)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).astype(np.float32)
    expected = _tf_session_run(CNN.with_suffix(".ckpt.meta"), CNN, "probs:0", {"images:0": images})
    np.testing.assert_allclose(r.run({"images": images})["probs"], expected, rtol=0, atol=0)


def test_tf1_savedmodel_tf2_rejects_runs_in_a_session(corpus):
    import tensorflow as tf

    from tfmodelkit.verify.runners import TF1Runner, runner_for

    r = runner_for(corpus / HALF_PLUS_THREE)
    assert isinstance(r, TF1Runner)
    assert any("tf.saved_model.load refused it" in n for n in r.notes)
    x = np.array([[1.0], [2.0], [-4.0]], np.float32)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as s:
        tf.compat.v1.saved_model.loader.load(s, ["serve"], str(corpus / HALF_PLUS_THREE / "00000123"))
        expected = s.run("y:0", {"x:0": x})
    np.testing.assert_array_equal(r.run({"x": x})["y"], expected)
    np.testing.assert_array_equal(expected, 0.5 * x + 3)


def test_errors_are_one_line():
    from tfmodelkit.verify.runners import runner_for

    with pytest.raises(NotFoundError, match="no tensor 'nope:0'"):
        runner_for(FROZEN, output_tensors="nope")
    with pytest.raises(UnsupportedError, match="--meta"):
        runner_for(FIXTURES / "checkpoint/v1_sharded/model.ckpt")
    with pytest.raises(UserError, match="does not apply to a TF1 graph"):
        runner_for(FROZEN, quantize_inputs=True)
    with pytest.raises(UserError, match="NAME:INDEX"):
        runner_for(FROZEN, input_tensors="x:zero")


def test_graph_with_python_ops_is_refused(tmp_path):
    from tensorflow.core.framework import graph_pb2

    from tfmodelkit.verify.runners import runner_for

    g = graph_pb2.GraphDef()
    g.ParseFromString(FROZEN.read_bytes())
    node = g.node.add()
    node.name, node.op = "evil", "PyFunc"
    node.input.append("x")
    bad = tmp_path / "evil.pb"
    bad.write_bytes(g.SerializeToString())
    with pytest.raises(UserError, match="PyFunc.*--unsafe"):
        runner_for(bad)


def test_run_summarizes_outputs_and_saves_them(tmp_path):
    from tfmodelkit.verify.run import run

    np.save(tmp_path / "x.npy", X)
    report = run(FROZEN, input_files={"x": tmp_path / "x.npy"}, out=tmp_path / "y.npz")
    expected = _tf_session_run(META, META.with_suffix(""), "y:0", {"x:0": X})
    (y,) = report.outputs
    assert (y.name, y.dtype, y.shape) == ("y", "float32", (2, 2))
    assert y.min == pytest.approx(float(expected.min())) and y.max == pytest.approx(float(expected.max()))
    assert y.values == expected.tolist()
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_array_equal(z["y"], expected)
    assert report.as_dict()["outputs"][0]["shape"] == [2, 2]
    generated = run(FROZEN, seed=3, batch=4)
    assert generated.outputs[0].shape == (4, 2) and "generated (seed 3, batch 4)" in generated.inputs_source
    with pytest.raises(UserError, match="has no input 'nope'|has no input nope"):
        run(FROZEN, inputs={"nope": X})
    with pytest.raises(UserError, match="bogus"):
        run(FROZEN, bogus=1)


def test_serving_export_meta_runs_half_plus_two(corpus):
    from tfmodelkit.verify.runners import runner_for

    r = runner_for(corpus / "savedmodel/tfserving_bad_half_plus_two/00000123/export.meta")
    x = np.array([0.0, 1.0, -6.0], np.float32)
    np.testing.assert_array_equal(r.run({"Placeholder": x})["Add"], 0.5 * x + 2)
