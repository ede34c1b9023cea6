"""TF 1.x graph SavedModels (TF Serving exports with reference variables and assets) to TFLite,
and SavedModels TensorFlow itself cannot load: corpus files, converted and run by LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tfmodelkit.convert.savedmodel_to_tflite import _failed_ops, savedmodel_to_tflite  # noqa: E402
from tfmodelkit.errors import UnsupportedError, UserError  # noqa: E402

#: TF1 graphs with VariableV2; the _pbtxt one also has an assets/ folder, which TF1's own
#: from_saved_model refuses
TF1_MODELS = ["savedmodel/tf_half_plus_two", "savedmodel/tf_half_plus_two_pbtxt", "savedmodel/tf_half_plus_two_main_op"]


@pytest.mark.parametrize("rel", TF1_MODELS)
def test_tf1_graph_model_converts_and_verifies(rel, corpus, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    dst = tmp_path / "m.tflite"
    report = savedmodel_to_tflite(corpus / rel, dst)
    assert report.ok and [v["ok"] for v in report.verification] == [True]
    assert report.details["converter_path"].startswith("TF1 converter")
    assert not report.warnings
    # LiteRT itself, through the signature tfmodelkit wrote (TF1's converter writes none):
    # y = x / 2 + 2, with the variables frozen to their saved values
    runner = Interpreter(model_path=str(dst)).get_signature_runner("serving_default")
    x = np.array([[0.0], [1.0], [4.0]], np.float32)
    np.testing.assert_allclose(runner(x=x)["y"], x / 2 + 2)


def test_tf1_graph_model_other_signature(corpus, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    dst = tmp_path / "m.tflite"
    assert savedmodel_to_tflite(corpus / "savedmodel/tf_half_plus_two", dst, signature="regress_x2_to_y3").ok
    runner = Interpreter(model_path=str(dst)).get_signature_runner("regress_x2_to_y3")
    x = np.array([[1.0], [3.0]], np.float32)
    np.testing.assert_allclose(runner(inputs=x)["outputs"], x / 2 + 3)


def test_tf1_graph_model_int8(corpus, tmp_path):
    report = savedmodel_to_tflite(
        corpus / "savedmodel/tf_half_plus_two", tmp_path / "q.tflite", quantize="int8", allow_generated_calibration=True
    )
    assert report.ok and report.verification[0]["ok"]


def test_tf1_graph_model_with_several_signatures_asks_for_one(corpus, tmp_path):
    with pytest.raises(UserError, match="one signature at a time"):
        savedmodel_to_tflite(corpus / "savedmodel/tf_half_plus_two", tmp_path / "m.tflite", all_signatures=True)
    assert not (tmp_path / "m.tflite").exists()


def test_model_needing_an_op_this_tensorflow_lacks(corpus, tmp_path):
    with pytest.raises(UnsupportedError, match="TRTEngineOp"):
        savedmodel_to_tflite(corpus / "savedmodel/tf_tftrt_2.0_saved_model", tmp_path / "m.tflite")


def test_model_with_an_uninitialized_variable(corpus, tmp_path):
    with pytest.raises(UserError, match="no value for sub_module/uninitialized_variable"):
        savedmodel_to_tflite(corpus / "savedmodel/tf_c_UninitializedVariable", tmp_path / "m.tflite")


def test_unsupported_ops_are_read_only_from_that_error():
    lift = (
        "Failed to prepare to lift variables.<unknown>:0: error: 'tf.VariableV2' op expects all users "
        "to be 'tf.Identity', but got user tf.Assign"
    )
    assert _failed_ops(lift) == []
    flex = "'tf.ReadFile' op is neither a custom op nor a flex op\nerror: failed while converting"
    assert _failed_ops(flex) == ["ReadFile"]
