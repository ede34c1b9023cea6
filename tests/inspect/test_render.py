"""Renderers: tables fitted to a width, warnings kept out of tables, counts worded right."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tfmodelkit.description import CheckReport, Finding, ModelDescription, Weight
from tfmodelkit.inspect import render as render_module
from tfmodelkit.inspect.render import fit_rows, render
from tfmodelkit.inspect.views import check_view, ops_view, summary_view, weights_view

LONG = (
    "TF Serving serves SavedModels, this is a checkpoint file; fix: a checkpoint holds weights only; "
    "build a SavedModel with modelconv ckpt-to-savedmodel"
)
ROWS = [["error", "serving", "format", LONG], ["warning", "serving", "signature 'serving_default'", "short"]]
HEADERS = ["severity", "target", "subject", "problem"]


def _tabulate(rows, headers):
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _words(text: str) -> list[str]:
    return text.split()


def _letters(text: str) -> str:
    """The text without its spacing: what wrapping must keep."""
    return "".join(text.split())


def _weight(name: str, shape=(1,), role: str = "model") -> Weight:
    array = np.zeros(shape, np.float32)
    return Weight(name, "float32", tuple(shape), array.nbytes, "memory", role=role, _loader=lambda: array)


@pytest.mark.parametrize("width", [50, 60, 80, 100])
def test_wrapped_table_fits_and_keeps_every_word(width):
    fitted = fit_rows(ROWS, HEADERS, width, wrap=[2, 3])
    table = _tabulate(fitted, HEADERS)
    assert max(len(line) for line in table.splitlines()) <= width, table
    assert _letters(fitted[0][3]) == _letters(LONG)  # wrapped, nothing cut off
    assert [r[:2] for r in fitted] == [r[:2] for r in ROWS]  # columns not named are left alone


def test_a_table_that_fits_is_unchanged():
    assert fit_rows(ROWS, HEADERS, 1000, wrap=[3]) == ROWS


def test_a_table_that_cannot_fit_is_left_whole():
    """Wrapping names into 12-character pieces would not make 10 fixed columns fit 40."""
    rows = [["conv2d_1/kernel/Adam_1", *["-0.00305565"] * 9]]
    headers = ["name", *"abcdefghi"]
    assert fit_rows(rows, headers, 40, wrap=[0]) == rows


def test_names_break_after_slashes_and_long_words_are_cut():
    (cell,) = fit_rows([["conv2d_1/kernel/Adam_1", "x" * 30]], ["name", "other"], 44, wrap=[0])[0][:1]
    assert cell.split("\n") == ["conv2d_1/", "kernel/", "Adam_1"]
    (cell,) = fit_rows([["a" * 30, "x" * 30]], ["name", "other"], 46, wrap=[0])[0][:1]
    assert cell.split("\n") == ["a" * 14, "a" * 14, "a" * 2]


def test_wrapped_layer_names_keep_their_indent():
    (cell,) = render_module._wrap("    inner_block/dense_layer", 16).split("\n")[1:]
    assert cell == "    dense_layer"


def _check_doc() -> dict:
    report = CheckReport("m.ckpt", "checkpoint", {"tensors": 1}, (Finding("error", "format", LONG),))
    return check_view(report)


def test_table_output_fits_the_width_markdown_and_json_keep_the_full_text():
    doc = _check_doc()
    table = render("check", doc, "table", width=60)
    assert all(len(line) <= 60 for line in table.splitlines()), table
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("severity"))
    column = lines[header].index("problem")
    problem = " ".join(
        line[column:] for line in lines[header + 2 :] if line.strip() and not line.startswith("FAILED")
    )
    assert LONG not in table and _letters(problem) == _letters(LONG)
    assert LONG in render("check", doc, "table")  # no width (not a terminal): nothing wrapped
    assert LONG in render("check", doc, "markdown", width=60)
    assert json.loads(render("check", doc, "json", width=60))["findings"][0]["message"] == LONG


def test_key_value_blocks_wrap_their_values_only():
    desc = ModelDescription("savedmodel", "m", metadata={"note": LONG})
    text = render("summary", summary_view(desc), "table", width=50)
    lines = text.splitlines()
    assert all(len(line) <= 50 for line in lines), text
    assert any(line.startswith("note ") for line in lines)


def test_warnings_stay_out_of_tables_and_markdown_but_in_json():
    desc = ModelDescription("checkpoint", "m", weights=(_weight("w"),), warnings=("stale entry",))
    for view, data in (("summary", summary_view(desc)), ("weights", weights_view(desc))):
        for output in ("table", "markdown"):
            assert "stale entry" not in render(view, data, output), (view, output)
        assert json.loads(render(view, data, "json"))["warnings"] == ["stale entry"]


def test_counts_of_one_are_singular():
    desc = ModelDescription(
        "savedmodel", "m", weights=(_weight("w"), _weight("slot", role="optimizer")), ops={"Const": 1}
    )
    one = ModelDescription("savedmodel", "m", weights=(_weight("w"),), ops={"Const": 1})
    summary = render("summary", summary_view(one), "table")
    assert re.search(r"weights +1 tensor \(1 model\)$", summary, re.M), summary
    assert re.search(r"ops +1 node of 1 kind$", summary, re.M), summary
    assert "1 op of 1 kind\n" in render("ops", ops_view(one), "table")
    footer = render("weights", weights_view(desc), "table").splitlines()[-1]
    assert footer == "1 tensor, 1 element, 4 B; 1 optimizer tensor hidden (--include-optimizer shows them)"


def test_counts_of_many_stay_plural():
    two = ModelDescription(
        "savedmodel", "m", weights=(_weight("a", (2,)), _weight("b")), ops={"Const": 2, "Add": 1}
    )
    summary = render("summary", summary_view(two), "table")
    assert "2 tensors (2 model)" in summary and "3 nodes of 2 kinds" in summary
    assert "3 ops of 2 kinds\n" in render("ops", ops_view(two), "table")
    assert render("weights", weights_view(two), "table").splitlines()[-1] == "2 tensors, 3 elements, 12 B"


def test_check_verdicts_word_their_counts():
    def verdict(findings, checked, targets=()):
        report = CheckReport("m", "savedmodel", checked, tuple(findings), targets=tuple(targets))
        return render("check", check_view(report), "table").splitlines()[-1]

    error, warning = Finding("error", "x", "bad", "serving"), Finding("warning", "y", "odd", "safety")
    assert (
        verdict([error], {"tensors": 1, "shards": 1}) == "FAILED: 1 problem found (checked 1 tensor, 1 shard)"
    )
    assert verdict([error, error], {"tensors": 2}) == "FAILED: 2 problems found (checked 2 tensors)"
    assert verdict([], {"tensors": 1, "bytes": 1}) == "OK: checked 1 tensor, 1 byte"
    lint_checked = {"op kinds the signatures reach": 1, "op kinds (all but saver and init, no signature)": 1}
    assert verdict([error, warning], lint_checked, ["serving"]) == (
        "FAILED: 1 error, 1 warning for serving; checked 1 op kind the signatures reach, "
        "1 op kind (all but saver and init, no signature)"
    )
    assert verdict([warning], {}, ["safety"]) == "OK: no errors (1 warning) for safety; checked nothing"
    assert verdict([error, error, warning, warning], {"signatures": 2}, ["serving"]).startswith(
        "FAILED: 2 errors, 2 warnings"
    )


def _nested_layers_doc() -> dict:
    from tfmodelkit.description import Layer
    from tfmodelkit.inspect.views import layers_view

    layers = (
        Layer("signal", "InputLayer", output_shapes=((None, 3),)),
        Layer("block", "Sequential", inbound=("signal",), params=64, output_shapes=((None, 4),)),
        Layer("inner_dense", "Dense", params=36, depth=1, output_shapes=((None, 6),)),
        Layer("cell", "LSTMCell", depth=2),
        Layer("head", "Dense", inbound=("block",), params=5, output_shapes=((None, 1), (None, 2))),
    )
    return layers_view(ModelDescription("keras_h5", "m.h5", layers=layers))


def test_nested_layers_are_indented_under_their_parent():
    lines = render("layers", _nested_layers_doc(), "table").splitlines()
    assert lines[0].split() == ["layer", "class", "output", "shape", "params", "inbound"]
    rows = {line.strip().split()[0]: line for line in lines[2:]}
    assert rows["block"].startswith("block ")
    assert rows["inner_dense"].startswith("  inner_dense ")
    assert rows["cell"].startswith("    cell ")
    assert "(?, 6)" in rows["inner_dense"] and "(?, 1), (?, 2)" in rows["head"]
    assert rows["cell"].split()[2] == "?"  # unknown output shape
    # the columns stay aligned: every class starts where the header's does
    column = lines[0].index("class")
    assert all(
        line[column:].split()[0] == name
        for line, name in zip(
            lines[2:], ["InputLayer", "Sequential", "Dense", "LSTMCell", "Dense"], strict=True
        )
    )
    # markdown would collapse plain spaces: no-break spaces indent there
    md = render("layers", _nested_layers_doc(), "markdown")
    assert "| \u00a0\u00a0inner_dense" in md and "| \u00a0\u00a0\u00a0\u00a0cell" in md
    # wrapped to a narrow terminal, continuation lines keep the indent
    narrow = render("layers", _nested_layers_doc(), "table", width=60)
    assert "  inner_dense" in narrow


def test_layers_without_known_output_shapes_have_no_such_column():
    from tfmodelkit.description import Layer
    from tfmodelkit.inspect.views import layers_view

    doc = layers_view(ModelDescription("savedmodel", "sm", layers=(Layer("dense", "Dense"),)))
    assert "output shape" not in render("layers", doc, "table")
    assert doc["layers"][0]["output_shapes"] is None


def test_ops_of_a_format_without_an_op_graph_says_so():
    keras = ops_view(ModelDescription("keras_zip", "m.keras"))
    assert keras["no_op_graph"] and keras["total"] == 0
    text = render("ops", keras, "table")
    assert text.strip().endswith("no ops: a Keras .keras file holds layers, not ops: modelinspect layers lists them")
    assert "0 ops of 0 kinds" not in text
    # A format with an op graph and none in it says so plainly
    empty = ops_view(ModelDescription("tflite", "m.tflite"))
    assert empty["no_op_graph"] is None and "0 ops of 0 kinds" in render("ops", empty, "table")
    graph = ops_view(ModelDescription("tfjs", "model.json", metadata={"tfjs_format": "graph-model"}))
    assert graph["no_op_graph"] is None
