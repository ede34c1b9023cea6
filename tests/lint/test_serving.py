"""``check --target serving``: what TF Serving needs from a SavedModel."""

from __future__ import annotations

import shutil

from tests.conftest import FIXTURES
from tests.lint.common import CYCLIC, HALF_PLUS_TWO, MULTISIG, edited_savedmodel, errors, need, warnings
from tfmodelkit.lint import lint


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
