"""``modelinspect check --target serving|tflite|safety``: the lint library, the CLI, and the
conversions that refuse models with safety errors unless ``--unsafe``."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES
from tfmodelkit.cli import modelinspect
from tfmodelkit.errors import UserError
from tfmodelkit.inspect import lint as lint_module
from tfmodelkit.inspect.lint import (
    RISKY_OPS,
    TFLITE_BUILTIN,
    TFLITE_FLEX,
    lint,
    parse_targets,
    require_safe,
    safety_errors,
)

HALF_PLUS_TWO = CORPUS / "savedmodel/tf_half_plus_two/00000123"
CYCLIC = CORPUS / "savedmodel/tf_CyclicModule"
HASH_TABLE = CORPUS / "savedmodel/tf_StaticHashTableModule"
LITERT = CORPUS / "tflite/litert"
LAMBDA_H5 = CORPUS / "keras_h5/dl4j/examples_lambda_sequential_lambda.h5"
MULTISIG = FIXTURES / "savedmodel/module_multisig"
FIXTURE_SAVEDMODELS = sorted(
    p
    for p in (FIXTURES / "savedmodel").rglob("*")
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()
)

HAS_TF = importlib.util.find_spec("tensorflow") is not None


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (corpus absent?)")
    return path


def errors(report):
    return [f for f in report.findings if f.severity == "error"]


def warnings(report):
    return [f for f in report.findings if f.severity == "warning"]


def edited_savedmodel(src: Path, dst: Path, edit) -> Path:
    """A copy of the SavedModel ``src`` whose proto went through ``edit(meta_graph)``."""
    from tfmodelkit.formats.savedmodel import load_proto

    shutil.copytree(src, dst)
    model = load_proto(dst)
    edit(model.meta_graphs[0])
    (dst / "saved_model.pb").write_bytes(model.SerializeToString())
    return dst


def edited_tflite(src: Path, dst: Path, edit) -> Path:
    """A copy of ``src`` rewritten through LiteRT's schema object API after ``edit(ModelT)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


# ---------------------------------------------------------------------------------- tables


def test_builtin_table_names_real_litert_builtins():
    from ai_edge_litert import schema_py_generated as schema

    known = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    named = {tok for value in TFLITE_BUILTIN.values() for tok in value.split() if tok.isupper()}
    assert named and named <= known, sorted(named - known)


def test_tables_do_not_contradict_each_other():
    assert not set(TFLITE_BUILTIN) & TFLITE_FLEX
    assert not set(TFLITE_BUILTIN) & set(RISKY_OPS)
    assert {"ReadFile", "WriteFile", "EagerPyFunc", "PyFunc", "SaveV2", "RestoreV2", "PrintV2"} <= set(
        RISKY_OPS
    )
    # pure string ops of every saver are never risky
    assert not {"StringJoin", "ShardedFilename", "StaticRegexFullMatch"} & set(RISKY_OPS)


def test_parse_targets():
    assert parse_targets(["serving,tflite", "serving", " Safety "]) == ("serving", "tflite", "safety")
    assert parse_targets("tflite") == ("tflite",)
    with pytest.raises(UserError, match="choose from serving, tflite, safety"):
        parse_targets(["serving,gpu"])
    with pytest.raises(UserError):
        parse_targets([","])


# ---------------------------------------------------------------------------------- serving


def test_half_plus_two_passes_serving():
    report = lint(need(HALF_PLUS_TWO), ["serving"])
    assert report.ok, errors(report)
    assert report.targets == ("serving",)
    assert report.checked["signatures"] == 6
    assert report.checked["tensors"] >= 2  # the integrity check ran over the variables
    # classify/regress signatures take tf.Examples: their unknown-rank input is no problem
    assert not [f for f in report.findings if "unknown rank" in f.message]
    # a numbered version folder: no layout warning
    assert not [f for f in report.findings if f.subject == "layout"]
    assert all(f.message.count("fix:") == 1 for f in report.findings)


def test_missing_serving_default_is_an_error_naming_the_keys(tmp_path):
    report = lint(need(CYCLIC), ["serving"])
    assert not report.ok
    [missing] = [f for f in errors(report) if f.subject == "signature 'serving_default'"]
    assert "signatures: none" in missing.message  # __saved_model_init_op is not a signature

    def rename(mg):
        mg.signature_def["classify"].CopyFrom(mg.signature_def["serving_default"])
        del mg.signature_def["serving_default"]

    renamed = edited_savedmodel(MULTISIG, tmp_path / "renamed", rename)
    report = lint(renamed, "serving")
    [missing] = [f for f in errors(report) if f.subject == "signature 'serving_default'"]
    assert "signatures: classify, predict_logits" in missing.message
    assert "fix:" in missing.message


def test_layout_version_folders():
    assert not [
        f for f in lint(FIXTURES / "savedmodel/serving/affine/2", "serving").findings if f.subject == "layout"
    ]
    # the base folder resolves to its highest version: fine too
    base = lint(FIXTURES / "savedmodel/serving/affine", "serving")
    assert base.path.endswith("2") and not [f for f in base.findings if f.subject == "layout"]
    [layout] = [f for f in lint(MULTISIG, "serving").findings if f.subject == "layout"]
    assert layout.severity == "warning" and "mkdir -p base/1" in layout.message


def test_rest_dtypes_unknown_rank_and_sparse(tmp_path):
    from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb

    def edit(mg):
        sig = mg.signature_def["serving_default"]
        sig.inputs["x"].dtype = pb.DT_HALF
        sig.inputs["x"].tensor_shape.unknown_rank = True
        sig.outputs["label_index"].dtype = pb.DT_RESOURCE
        mg.signature_def["predict_logits"].outputs["logits"].dtype = pb.DT_BFLOAT16

    report = lint(edited_savedmodel(MULTISIG, tmp_path / "dtypes", edit), ["serving"])
    by_subject = {f.subject: f for f in report.findings if "dtype" in f.message}
    assert by_subject["input 'x' of 'serving_default'"].severity == "warning"
    assert "REST" in by_subject["input 'x' of 'serving_default'"].message
    assert by_subject["output 'label_index' of 'serving_default'"].severity == "error"
    assert by_subject["output 'logits' of 'predict_logits'"].severity == "warning"
    assert [f for f in warnings(report) if "unknown rank" in f.message and "'x'" in f.subject]
    # float32, int32 outputs are fine
    assert "output 'probabilities' of 'serving_default'" not in by_subject
    assert not report.ok


def test_serving_runs_the_integrity_check(tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(FIXTURES / "savedmodel/serving/affine/1", damaged)
    data = next((damaged / "variables").glob("variables.data-*"))
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    report = lint(damaged, ["serving"])
    assert not report.ok
    assert any("checksum" in f.message for f in errors(report))
    assert {f.target for f in errors(report)} == {"integrity"}
    # the same file is fine for the other targets
    assert lint(damaged, ["safety"]).ok

    no_asset = tmp_path / "no_asset"
    shutil.copytree(MULTISIG, no_asset)
    (no_asset / "assets" / "labels.txt").unlink()
    [missing] = errors(lint(no_asset, "serving"))
    assert (
        missing.subject == "assets/labels.txt" and "missing" in missing.message and "fix:" in missing.message
    )


def test_serving_refuses_other_formats():
    for path, fix in (
        (FIXTURES / "tflite/mlp_int8.tflite", "keep the SavedModel it was converted from"),
        (FIXTURES / "keras_zip/conv_bn.keras", "modelconv keras-to-savedmodel"),
        (FIXTURES / "checkpoint/sharded", "modelconv ckpt-to-savedmodel"),
    ):
        [finding] = lint(path, "serving").findings
        assert finding.severity == "error" and "TF Serving serves SavedModels" in finding.message
        assert fix in finding.message


# ---------------------------------------------------------------------------------- tflite


def test_flex_op_is_a_warning():
    report = lint(need(LITERT / "softplus_flex.tflite"), ["tflite"])
    assert report.ok
    [flex] = report.findings
    assert flex.subject == "op FlexSoftplus" and "Flex delegate" in flex.message


def test_custom_op_is_an_error():
    report = lint(need(LITERT / "custom_sinh.tflite"), ["tflite"])
    [custom] = errors(report)
    assert custom.subject == "op Sinh" and "custom op" in custom.message


def test_quantized_model_passes_and_a_bad_scale_fails(tmp_path):
    good = need(LITERT / "add_quantized_int8.tflite")
    report = lint(good, ["tflite"])
    assert report.ok and not report.findings
    assert report.checked["quantized tensors"] == 3

    def bad_scale(model):
        model.subgraphs[0].tensors[1].quantization.scale = np.array([-0.5], dtype=np.float32)

    report = lint(edited_tflite(good, tmp_path / "bad_scale.tflite", bad_scale), ["tflite"])
    [bad] = errors(report)
    assert "'input'" in bad.subject and "scale -0.5" in bad.message and "fix:" in bad.message

    def bad_zero_point(model):
        model.subgraphs[0].tensors[2].quantization.zeroPoint = np.array([300], dtype=np.int64)

    report = lint(edited_tflite(good, tmp_path / "bad_zp.tflite", bad_zero_point), ["tflite"])
    assert any("zero point 300" in f.message for f in errors(report))

    def bad_channels(model):
        q = model.subgraphs[0].tensors[1].quantization
        q.scale = np.array([0.1, 0.2, 0.3], dtype=np.float32)
        q.zeroPoint = np.array([0, 0, 0], dtype=np.int64)
        q.quantizedDimension = 1  # a dimension of size 8, not 3

    report = lint(edited_tflite(good, tmp_path / "bad_channels.tflite", bad_channels), ["tflite"])
    assert any("3 per-channel scales for dimension 1, which has size 8" in f.message for f in errors(report))


def test_dynamic_and_string_io_are_warnings():
    report = lint(need(LITERT / "dynamic_shapes.tflite"), ["tflite"])
    [dyn] = [f for f in report.findings if "dynamic dimension" in f.message]
    assert dyn.severity == "warning" and "[1]" in dyn.message and report.ok
    report = lint(need(LITERT / "string_input_model_with_signature.tflite"), ["tflite"])
    assert {f.subject for f in warnings(report) if "string tensor" in f.message} == {
        "input 'a' of 'serving_default'",
        "output 'output_0' of 'serving_default'",
    }


def test_savedmodel_tflite_follows_the_serving_signatures():
    report = lint(FIXTURES / "savedmodel/keras3_two_io", ["tflite"])
    assert report.ok and not report.findings
    assert report.checked["op kinds the signatures reach"] > 5
    # module_multisig reads its asset only in label_names, which no signature reaches
    report = lint(MULTISIG, ["tflite"])
    assert not [f for f in report.findings if "ReadFile" in f.subject]


def test_lookup_table_filled_from_a_file_cannot_run_in_tflite():
    """The converter keeps the table but drops its file initializer; LiteRT then fails at the
    first lookup (modelconv's verification sees it too)."""
    report = lint(need(CORPUS / "savedmodel/tf_StaticHashTableModule"), ["tflite"])
    assert [f.subject for f in errors(report)] == ["op InitializeTableFromTextFileV2"]


@pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow to write the models")
@pytest.mark.parametrize("from_file", [True, False])
def test_lookup_tables_by_how_they_are_filled(from_file, tmp_path):
    import tensorflow as tf

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    if from_file:
        init = tf.lookup.TextFileInitializer(
            str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        )
    else:
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(["a", "b", "c"]), tf.constant([0, 1, 2], tf.int64))
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(init, default_value=-1)
    module.f = tf.function(lambda w: {"id": module.table.lookup(w)}, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    found = [f for f in lint(tmp_path / "sm", ["tflite"]).findings if "lookup table" in f.message]
    assert [f.severity for f in found] == (["error"] if from_file else [])


def test_fed_tensors_cut_what_a_signature_reaches():
    """half_plus_two's serving_default feeds x, the Identity of a ParseExample output: the
    ParseExample runs only for the signatures fed a serialized tf.Example."""
    report = lint(need(CORPUS / "savedmodel/tf_half_plus_two"), ["tflite"])
    (parse,) = [f for f in report.findings if "ParseExample" in f.subject]
    assert "serving_default" not in parse.subject and "regress_x_to_y" in parse.subject


def test_savedmodel_tflite_without_signatures_checks_all_but_the_saver():
    report = lint(need(CYCLIC), ["tflite"])
    assert "op kinds (all but saver and init, no signature)" in report.checked
    assert [f for f in report.findings if f.subject == "signatures"]
    assert not [f for f in report.findings if "SaveV2" in f.subject or "RestoreV2" in f.subject]


def test_keras_rnn_layers_for_tflite():
    report = lint(need(CORPUS / "keras_h5/dl4j/weights_bidirectional_lstm_tensorflow_2.h5"), ["tflite"])
    (rnn,) = [f for f in report.findings if f.subject.startswith("layers ")]
    assert "Bidirectional" in rnn.subject and "fixed batch size" in rnn.message
    assert not [f for f in lint(FIXTURES / "keras_zip/conv_bn.keras", ["tflite"]).findings if f.subject.startswith("layers ")]


def test_keras_and_checkpoints_for_tflite():
    [keras] = lint(FIXTURES / "keras_zip/conv_bn.keras", "tflite").findings
    assert keras.severity == "warning" and "modelconv" in keras.message
    [ckpt] = lint(FIXTURES / "checkpoint/sharded", "tflite").findings
    assert ckpt.severity == "error" and "weights only" in ckpt.message


# ---------------------------------------------------------------------------------- safety


@pytest.mark.parametrize("path", FIXTURE_SAVEDMODELS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_savedmodels_have_no_safety_errors(path):
    report = lint(path, ["safety"])
    assert report.ok, errors(report)
    assert report.checked["functions"] > 0
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


def test_lint_accepts_a_description():
    import tfmodelkit

    desc = tfmodelkit.read(MULTISIG)
    assert [f.subject for f in lint(desc, ["safety"]).findings] == [
        f.subject for f in lint(MULTISIG, ["safety"]).findings
    ]


# ---------------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv):
    code = modelinspect.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_shape_and_exit_codes(capsys):
    code, out, _ = run_cli(
        capsys, "check", str(MULTISIG), "--target", "serving", "--target", "safety,tflite", "--format", "json"
    )
    assert code == 0  # warnings only
    doc = json.loads(out)
    assert set(doc) == {"path", "format", "ok", "checked", "findings", "targets"}
    assert doc["ok"] is True and doc["targets"] == ["serving", "safety", "tflite"]
    assert {f["target"] for f in doc["findings"]} == {"serving", "safety"}
    assert all(set(f) == {"severity", "subject", "message", "target"} for f in doc["findings"])

    code, out, _ = run_cli(capsys, "check", str(need(CYCLIC)), "--target", "serving", "--format", "json")
    assert code == 1 and json.loads(out)["ok"] is False

    # without --target, check stays the integrity check and its JSON is unchanged
    code, out, _ = run_cli(capsys, "check", str(MULTISIG), "--format", "json")
    assert code == 0 and "targets" not in json.loads(out)


def test_cli_table_and_markdown(capsys):
    code, out, _ = run_cli(capsys, "check", str(need(CYCLIC)), "--target", "serving")
    assert code == 1
    assert "targets: serving" in out and "signature 'serving_default'" in out
    assert "FAILED: 1 error(s)" in out
    code, out, _ = run_cli(capsys, "check", str(MULTISIG), "--target", "safety", "--format", "markdown")
    assert (
        code == 0 and out.startswith("## ") and "| warning" in out and "OK: no errors (1 warning(s))" in out
    )


def test_cli_bad_target_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "check", str(MULTISIG), "--target", "phone")
    assert code == 2 and "modelinspect: error: --target 'phone': choose from serving, tflite, safety" in err


def test_check_help_documents_target():
    parser = modelinspect.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["check"].format_help()
    assert "--target" in text and "serving" in text and "safety" in text


def test_lint_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from tfmodelkit.inspect.lint import lint; "
        f"lint({str(MULTISIG)!r}, ['serving', 'tflite', 'safety']); "
        f"lint({str(FIXTURES / 'tflite/mlp_int8.tflite')!r}, ['tflite', 'safety']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


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


def test_module_docstring_names_the_targets():
    assert all(t in lint_module.__doc__ for t in ("serving", "tflite", "safety"))
