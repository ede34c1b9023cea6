"""``check --target tflite``: what stands between a model and LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES
from tests.lint.common import CYCLIC, HAS_TF, LITERT, MULTISIG, edited_tflite, errors, need, warnings
from tfmodelkit.lint import lint


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
            str(vocab),
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
    else:
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(["a", "b", "c"]), tf.constant([0, 1, 2], tf.int64)
        )
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(init, default_value=-1)
    module.f = tf.function(
        lambda w: {"id": module.table.lookup(w)}, input_signature=[tf.TensorSpec([None], tf.string)]
    )
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
    assert not [
        f
        for f in lint(FIXTURES / "keras_zip/conv_bn.keras", ["tflite"]).findings
        if f.subject.startswith("layers ")
    ]


def test_keras_and_checkpoints_for_tflite():
    [keras] = lint(FIXTURES / "keras_zip/conv_bn.keras", "tflite").findings
    assert keras.severity == "warning" and "modelconv" in keras.message
    [ckpt] = lint(FIXTURES / "checkpoint/sharded", "tflite").findings
    assert ckpt.severity == "error" and "weights only" in ckpt.message


def test_mediapipe_ops_stock_litert_runs_do_not_fail_the_gate(tmp_path):
    """MediaPipe's Convolution2DTransposeBias (and its pooling pair) have no kernel in LiteRT's
    resolver, but the XNNPACK delegate LiteRT applies by default runs them on float32: a
    warning, not an error. On int8 tensors XNNPACK refuses them and LiteRT cannot run the model."""
    from tests.lint.custom_ops import INT8, UNRESOLVED, litert_error, mediapipe_models, run_outputs, write

    for name, content in mediapipe_models().items():
        assert litert_error(content) is None  # stock LiteRT runs it
        report = lint(write(tmp_path, name, content), ["tflite"])
        assert report.ok, report.findings
        [finding] = report.findings
        assert (finding.severity, finding.subject) == ("warning", f"op {name}")
        assert "XNNPACK" in finding.message and "fix:" in finding.message
    # It computes a transposed convolution (2x2 kernel, stride 2: no overlap) plus the bias.
    deconv = mediapipe_models()["Convolution2DTransposeBias"]
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 2)).astype(np.float32)
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(deconv, 0)
    w = np.frombuffer(bytes(model.buffers[1].data), np.float32).reshape(3, 2, 2, 2)
    b = np.frombuffer(bytes(model.buffers[2].data), np.float32)
    expected = np.einsum("nijc,oabc->niajbo", x, w).reshape(1, 8, 8, 3) + b
    [got] = run_outputs(deconv, {0: x})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    content = mediapipe_models(INT8)["Convolution2DTransposeBias"]
    assert UNRESOLVED in (litert_error(content) or "")
    [error] = errors(lint(write(tmp_path, "int8", content), ["tflite"]))
    assert error.subject == "op Convolution2DTransposeBias" and "int8" in error.message


def test_unknown_custom_op_is_still_an_error(tmp_path):
    from tests.lint.custom_ops import UNRESOLVED, litert_error, plain_model, write

    content = plain_model("NoSuchOpAnywhere")
    assert UNRESOLVED in (litert_error(content) or "")
    [error] = errors(lint(write(tmp_path, "made_up", content), ["tflite"]))
    assert error.subject == "op NoSuchOpAnywhere" and "register the kernel" in error.message
