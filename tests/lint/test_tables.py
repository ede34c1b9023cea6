"""The op tables: names LiteRT knows, and tables that never contradict each other."""

from __future__ import annotations

from tfmodelkit.lint.tables import RISKY_OPS, TFLITE_BUILTIN, TFLITE_FLEX


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


# Custom ops LiteRT might know of, none of them registered by stock LiteRT: MediaPipe's
# other ops, TensorFlow's custom kernels outside the default resolver, and a made-up name.
NOT_STOCK = (
    "Landmarks2TransformMatrix", "TransformLandmarks", "TransformTensorBilinear", "Sinh", "Atan2",
    "Roll", "Irfft2d", "MaxPool3D", "AvgPool3D", "SentencepieceTokenizeOp",
    "TFText>WhitespaceTokenizeWithOffsetsV2", "RaggedTensorToTensor", "NoSuchOpAnywhere",
)  # fmt: skip


def test_stock_custom_table_is_what_litert_registers():
    """Every entry proven against the installed LiteRT: a kernel entry is found by the default
    resolver (LiteRT fails inside that kernel's own checks on a wrong node, never on an
    unresolved op); an XNNPACK entry runs a well-formed node with the default delegates and is
    unresolved without them. Other names stay unresolved either way."""
    from tests.lint.custom_ops import UNRESOLVED, litert_error, mediapipe_models, plain_model
    from tfmodelkit.lint.tables import TFLITE_STOCK_CUSTOM

    assert set(TFLITE_STOCK_CUSTOM.values()) == {"kernel", "xnnpack"}
    mediapipe = mediapipe_models()
    for name, how in TFLITE_STOCK_CUSTOM.items():
        if how == "kernel":
            for delegates in (True, False):
                error = litert_error(plain_model(name), default_delegates=delegates, invoke=False)
                assert error is not None and UNRESOLVED not in error and f"({name}) failed to prepare" in error
        else:
            assert litert_error(mediapipe[name]) is None, name
            assert UNRESOLVED in (litert_error(mediapipe[name], default_delegates=False) or ""), name
    assert set(mediapipe) == {n for n, how in TFLITE_STOCK_CUSTOM.items() if how == "xnnpack"}
    for name in NOT_STOCK:
        assert UNRESOLVED in (litert_error(plain_model(name), invoke=False) or ""), name
