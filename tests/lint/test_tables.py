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
