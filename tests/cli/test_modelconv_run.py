"""``modelconv run``: one file of every format, run on the inputs stored beside the fixtures; the
outputs must equal what the format's own runtime computed for them (fixtures/inputs/, written by
TF/Keras/LiteRT when the fixtures were made), and TF1 graphs what a TF1 session computes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES, tf_available
from tfmodelkit.cli.modelconv import main

pytestmark = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")

INPUTS = FIXTURES / "inputs"
INDEX = json.loads((INPUTS / "index.json").read_text())
#: One recorded pair per format (and runtime) that `run` drives.
RECORDED = ["savedmodel_keras3_two_io", "keras_zip_conv_bn", "keras_h5_keras3_legacy", "tflite_two_io_float32",
            "savedmodel_module_multisig.predict_logits"]  # fmt: skip


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", RECORDED)
def test_outputs_equal_the_formats_own_runtime(name, tmp_path, capsys):
    entry = INDEX[name]
    args = [
        FIXTURES / entry["model"],
        "--inputs",
        INPUTS / f"{name}.inputs.npz",
        "--out",
        tmp_path / "y.npz",
        "-q",
    ]
    if entry["signature"] and entry["signature"] != "serving_default":
        args += ["--signature", entry["signature"]]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert "outputs:" in out
    with np.load(INPUTS / f"{name}.outputs.npz") as want, np.load(tmp_path / "y.npz") as got:
        assert sorted(got.files) == sorted(want.files)
        for k in want.files:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
            assert f"  {k}: {want[k].dtype} [" in out


def _session(meta, fetch, feed):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as s:
        tf.compat.v1.train.import_meta_graph(str(meta)).restore(s, str(meta)[: -len(".meta")])
        return s.run(fetch, feed)


@pytest.mark.parametrize(
    "model", ["graphdef/frozen.pb", "graphdef/frozen.pbtxt", "checkpoint/v1_saver/model.ckpt.meta"]
)
def test_tf1_graphs_equal_a_session(model, tmp_path, capsys):
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(
        capsys, FIXTURES / model, "--input", f"x={tmp_path / 'x.npy'}", "--format", "json", "-q"
    )
    assert code == 0, err
    report = json.loads(out)
    (y,) = report["outputs"]
    expected = _session(FIXTURES / "checkpoint/v1_saver/model.ckpt.meta", "y:0", {"x:0": x})
    assert y["name"] == "y" and y["shape"] == [2, 2] and report["runner"]["backend"] == "tf1"
    np.testing.assert_array_equal(np.array(y["values"], np.float32), expected)
    assert y["min"] == pytest.approx(float(expected.min()))


def test_tf1_savedmodel_and_checkpoint_with_meta(corpus, tmp_path, capsys):
    code, out, err = _run(
        capsys, corpus / "savedmodel/tfserving_saved_model_half_plus_three", "--out", tmp_path / "y.npz", "-q"
    )
    assert code == 0, err
    assert "tf.saved_model.load refused it" in out
    with np.load(tmp_path / "y.npz") as z:
        assert z["y"].shape == (1, 1)
    code, out, err = _run(capsys, FIXTURES / "checkpoint/tf1_cnn/model.ckpt", "--batch", "2", "-q")
    assert code == 0, err
    assert "probs: float32 [2, 3]" in out


def test_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", "run", str(FIXTURES / "graphdef/frozen.pb"), "--input", "x"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "NAME=FILE.npy" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_checkpoint_with_its_model_code(tmp_path, capsys):
    import tensorflow as tf

    ckpt = FIXTURES / "checkpoint/manager/ckpt-3"
    x = np.array([[1.0, 2.0], [-0.5, 0.25]], np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(
        capsys, ckpt, "--model", f"{FIXTURES / 'models/manager.py'}:build", "--input", f"x={tmp_path / 'x.npy'}",
        "--out", tmp_path / "y.npz", "-q",
    )  # fmt: skip
    assert code == 0, err
    weights = tf.train.load_checkpoint(str(ckpt)).get_tensor("model/weights/.ATTRIBUTES/VARIABLE_VALUE")
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_allclose(z["y"], x @ weights, rtol=1e-6)


def test_library_run_is_public():
    import tfmodelkit

    report = tfmodelkit.run(FIXTURES / "graphdef/frozen.pb", batch=2)
    assert [o.shape for o in report.outputs] == [(2, 2)]


@pytest.mark.parametrize(
    "where", ["savedmodel/tfserving_bad_half_plus_two", "savedmodel/tfserving_bad_half_plus_two/00000123",
              "savedmodel/tfserving_bad_half_plus_two/00000123/export"],
)  # fmt: skip
def test_serving_session_bundle_runs_from_its_file_version_or_base_folder(corpus, where, tmp_path, capsys):
    """A TF 0.x session bundle (a V1 ``export`` with ``export.meta`` beside it), however it is named:
    its Placeholder has no shape (TF's legacy rule), so --shape or --input gives one."""
    x = np.array([0.0, 1.0, -6.0], np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(capsys, corpus / where, "--input", f"Placeholder={tmp_path / 'x.npy'}", "--format", "json", "-q")
    assert code == 0, err
    (y,) = json.loads(out)["outputs"]
    assert y["name"] == "Add" and y["values"] == (0.5 * x + 2).tolist()
    code, out, err = _run(capsys, corpus / where, "--shape", "Placeholder=4", "-q")
    assert code == 0, err
    assert "Add: float32 [4]" in out
    code, out, err = _run(capsys, corpus / where, "-q")
    assert code == 2 and "unknown rank" in err and "--shape Placeholder=" in err


def test_shape_of_generated_inputs_and_checkpoint_folders(capsys):
    code, out, err = _run(capsys, FIXTURES / "graphdef/frozen.pb", "--shape", "x=5,3", "-q")
    assert code == 0, err
    assert "x: float32 [5, 3]" in out and "y: float32 [5, 2]" in out
    code, out, err = _run(capsys, FIXTURES / "graphdef/frozen.pb", "--shape", "x=5,4", "-q")
    assert code == 2 and "x" in err and err.strip().count("\n") == 0
    # A checkpoint named by its folder or its .index: the .meta beside its prefix is the graph.
    for name in ("checkpoint/tf1_cnn", "checkpoint/tf1_cnn/model.ckpt.index"):
        code, out, err = _run(capsys, FIXTURES / name, "-q")
        assert code == 0, err
        assert "probs: float32 [1, 3]" in out


def test_a_checkpoint_without_graph_or_code_says_what_to_give(corpus, capsys):
    code, out, err = _run(capsys, corpus / "checkpoint/tf_old_string_tensors/foo", "-q")
    assert code == 2 and "--meta GRAPH.meta" in err and "--model" in err
