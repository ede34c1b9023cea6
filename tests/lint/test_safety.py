"""``check --target safety``: ops reaching outside SavedModels (read from the files, and in
models TensorFlow writes here), Python code in Keras files, Flex I/O in ``.tflite`` files, and the
conversions that refuse models with safety errors unless ``--unsafe``."""

from __future__ import annotations

import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tests.lint.common import (
    FIXTURE_SAVEDMODELS,
    HALF_PLUS_TWO,
    HAS_TF,
    HASH_TABLE,
    LAMBDA_H5,
    LITERT,
    MULTISIG,
    edited_savedmodel,
    edited_tflite,
    errors,
    need,
)
from tfmodelkit.errors import UserError
from tfmodelkit.lint import lint, require_safe, safety_errors


@pytest.mark.parametrize("path", FIXTURE_SAVEDMODELS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_savedmodels_have_no_safety_errors(path):
    report = lint(path, ["safety"])
    assert report.ok, errors(report)
    # TF2 exports hold functions (their savers' among them); a TF1 builder's graphs hold none
    tf1_graphs = (path / "variables" / "variables.index").is_file() and not tfmodelkit.read(path).functions
    assert report.checked["functions"] > 0 or tf1_graphs
    # saver functions hold SaveV2/RestoreV2/MergeV2Checkpoints: never reported there
    assert not [f for f in report.findings if "SaveV2" in f.subject or "RestoreV2" in f.subject]
    assert safety_errors(path) == []


def test_reading_an_own_asset_is_a_warning():
    [read] = lint(MULTISIG, ["safety"]).findings
    assert read.severity == "warning"
    assert read.subject.startswith("op ReadFile (function __inference_label_names_")
    assert "one of the model's own assets" in read.message and "root.label_names" in read.message
    report = lint(need(HASH_TABLE), ["safety"])
    assert report.ok and {f.severity for f in report.findings} == {"warning"}
    assert all("InitializeTableFromTextFileV2" in f.subject and "loads" in f.message for f in report.findings)


def test_tf1_saver_graph_is_not_flagged():
    report = lint(need(HALF_PLUS_TWO), ["safety"])
    assert not report.findings


def test_saver_ops_are_flagged_when_a_signature_reaches_them(tmp_path):
    def serve_the_saver(mg):
        save_node = mg.saver_def.save_tensor_name  # StatefulPartitionedCall_2:0 -> __inference__traced_save
        mg.signature_def["predict_logits"].outputs["logits"].name = save_node

    report = lint(edited_savedmodel(MULTISIG, tmp_path / "served_saver", serve_the_saver), ["safety"])
    flagged = {f.subject.split(" ")[1] for f in errors(report)}
    assert {"SaveV2", "MergeV2Checkpoints"} <= flagged
    assert all("reached from signature 'predict_logits'" in f.message for f in errors(report))
    assert "RestoreV2" not in flagged  # the restore function is still only the saver's


def test_asset_names_leaving_assets_are_errors(tmp_path):
    def escape(mg):
        mg.asset_file_def[0].filename = "../../etc/passwd"

    [err] = safety_errors(edited_savedmodel(MULTISIG, tmp_path / "escape", escape))
    assert err.subject == "asset '../../etc/passwd'" and "leaves assets/" in err.message


def test_keras_lambda_is_a_safety_error():
    report = lint(need(LAMBDA_H5), ["safety"])
    names = sorted(f.subject for f in errors(report))
    assert names == ["layer 'lambda_1' (Lambda)", "layer 'lambda_2' (Lambda)"]
    assert all("Python code" in f.message for f in errors(report))


def test_flex_io_in_tflite_is_a_safety_error(tmp_path):
    def to_read_file(model):
        model.operatorCodes[0].customCode = b"FlexReadFile"

    path = edited_tflite(need(LITERT / "softplus_flex.tflite"), tmp_path / "flex_read.tflite", to_read_file)
    [err] = safety_errors(path)
    assert err.subject == "op FlexReadFile" and "reads a file" in err.message
    assert lint(need(LITERT / "softplus_flex.tflite"), ["safety"]).ok


def test_checkpoints_are_data():
    report = lint(FIXTURES / "checkpoint/sharded", ["safety"])
    assert report.ok and not report.findings


# ---------------------------------------------------------------------------------- models built with TensorFlow


@pytest.fixture(scope="module")
def tf_models(tmp_path_factory):
    """SavedModels whose serving functions reach outside: file I/O and tf.print, a py_function,
    a read in a tf.switch_case branch (functions referenced from a list attribute)."""
    if not HAS_TF:
        pytest.skip("TensorFlow is not installed")
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    root = tmp_path_factory.mktemp("lint_models")
    data = root / "data.txt"
    data.write_text("hello")
    spec = [tf.TensorSpec([None, 2], tf.float32, name="x")]

    class FileIO(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x):
            n = tf.cast(tf.strings.length(tf.io.read_file(str(data))), tf.float32)
            tf.print("x:", x)
            tf.io.write_file(str(root / "written.txt"), tf.strings.as_string(n))
            return {"y": x * n}

    class Reader(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x):
            return {"y": x * tf.cast(tf.strings.length(tf.io.read_file(str(data))), tf.float32)}

    class PyFn(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x):
            return {"y": tf.py_function(lambda a: a * 2, [x], tf.float32)}

    class Switch(tf.Module):
        @tf.function(input_signature=spec)
        def serve(self, x):
            def read():
                return x * tf.cast(tf.strings.length(tf.io.read_file(str(data))), tf.float32)

            index = tf.cast(tf.reduce_sum(x) > 0, tf.int32)
            return {"y": tf.switch_case(index, [lambda: x * 2.0, read, lambda: x * 3.0])}

    paths = {}
    for name, cls in (("io", FileIO), ("read", Reader), ("py", PyFn), ("switch", Switch)):
        module = cls()
        paths[name] = root / name
        tf.saved_model.save(module, str(paths[name]), signatures={"serving_default": module.serve})
    paths["root"] = root
    return paths


@pytest.mark.tf
def test_file_io_and_print_in_a_serving_function(tf_models):
    report = lint(tf_models["io"], ["safety"])
    found = {f.subject.split(" ")[1]: f for f in report.findings}
    assert set(found) == {"ReadFile", "WriteFile", "PrintV2"}
    for op in ("ReadFile", "WriteFile"):
        assert found[op].severity == "error"
        assert "(function __inference_serve_" in found[op].subject and f"node {op}" in found[op].subject
        assert "reached from signature 'serving_default'" in found[op].message and "fix:" in found[op].message
    assert found["PrintV2"].severity == "warning"
    assert [f.subject for f in safety_errors(tf_models["io"])] == [
        found["ReadFile"].subject,
        found["WriteFile"].subject,
    ]
    # the same ops block TFLite: files do not travel in a .tflite
    tfl = lint(tf_models["io"], ["tflite"])
    assert {f.subject.split(" ")[1] for f in errors(tfl)} == {"ReadFile", "WriteFile"}


@pytest.mark.tf
def test_py_function_is_an_error(tf_models):
    [err] = safety_errors(tf_models["py"])
    assert err.subject.startswith("op EagerPyFunc (function __inference_serve_")
    assert "Python function" in err.message
    assert [f.subject for f in errors(lint(tf_models["py"], "tflite"))] == [
        "op EagerPyFunc (x1 in 'serving_default')"
    ]


@pytest.mark.tf
def test_switch_case_branches_are_followed(tf_models):
    [err] = safety_errors(tf_models["switch"])
    assert "ReadFile" in err.subject and "reached from signature 'serving_default'" in err.message


@pytest.mark.tf
def test_runner_refuses_in_safe_mode(tf_models):
    from tfmodelkit.verify import SavedModelRunner

    with pytest.raises(UserError, match="refusing to run a model with safety errors: op ReadFile"):
        SavedModelRunner(tf_models["read"])
    with pytest.raises(UserError, match="--target safety"):
        require_safe(tf_models["read"])
    runner = SavedModelRunner(tf_models["read"], safe_mode=False)
    assert [s.name for s in runner.inputs] == ["x"]


@pytest.mark.tf
def test_modelconv_refuses_unless_unsafe(tf_models, capsys):
    from tfmodelkit.cli import modelconv

    src = str(tf_models["read"])
    dst = tf_models["root"] / "read.tflite"
    code = modelconv.main(["savedmodel-to-tflite", src, str(dst), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and not dst.exists()
    assert "modelconv: error:" in err and "refusing to run a model with safety errors: op ReadFile" in err
    assert "--unsafe" in err

    code = modelconv.main(["verify", src, src, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to run a model with safety errors" in err

    code = modelconv.main(["verify", src, src, "-q", "--unsafe"])
    out = capsys.readouterr().out
    assert code == 0 and "PASS" in out

    code = modelconv.main(["savedmodel-to-tflite", src, str(dst), "-q", "--unsafe", "--select-tf-ops"])
    capsys.readouterr()
    assert code == 0 and dst.is_file()
    # what came out needs Flex, and reads a file on the device
    assert lint(dst, "tflite").ok
    assert [f.subject for f in safety_errors(dst)] == ["op FlexReadFile"]
    code = modelconv.main(["verify", str(dst), str(dst), "-q"])
    assert code == 2 and "op FlexReadFile" in capsys.readouterr().err
