"""What the TFLite reader counts, against LiteRT's own interpreter on files TensorFlow's converter
wrote: which tensors are constants (weights), and tensors and operators over every subgraph."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tfmodelkit.formats import tflite
from tfmodelkit.formats.tflite_parse import load_model
from tfmodelkit.inspect.render import render
from tfmodelkit.inspect.views import summary_view

interpreter = pytest.importorskip("ai_edge_litert.interpreter")

EMPTY_CONSTANT = FIXTURES / "tflite/empty_constant.tflite"
CONTROL_FLOW = FIXTURES / "tflite/control_flow.tflite"


def litert_constants(path) -> dict[tuple[int, int], np.ndarray]:
    """(subgraph, tensor) -> value of every tensor LiteRT holds read-only data for: the ones it
    can hand back before allocate_tensors (writable tensors have no data yet); zero-element
    tensors have no data either way."""
    it = interpreter.Interpreter(model_path=str(path))
    found = {}
    for sg in range(it.num_subgraphs()):
        for detail in it.get_tensor_details(sg):
            if int(np.prod(detail["shape"])) == 0:
                continue
            try:
                found[(sg, detail["index"])] = it.get_tensor(detail["index"], sg)
            except ValueError:  # "Tensor data is null. Run allocate_tensors() first"
                pass
    return found


def _ours(path) -> dict[tuple[int, int], np.ndarray]:
    return {(w.extra["subgraph"], w.extra["tensor_index"]): w.read() for w in tflite.read(path).weights}


@pytest.mark.parametrize("path", [EMPTY_CONSTANT, CONTROL_FLOW], ids=lambda p: p.name)
def test_weights_are_the_constants_litert_holds(path):
    theirs, ours = litert_constants(path), _ours(path)
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value)


def test_an_empty_constant_buffer_is_no_weight():
    """The converter keeps tf.signal.frame's shape constant of shape (0,) with a present but
    empty data vector; LiteRT makes that a writable tensor. It is no weight, and the operator
    reading it lacks nothing."""
    model = load_model(EMPTY_CONSTANT)
    [empty] = [
        t
        for t in model.subgraphs[0].tensors
        if t.shape == (0,) and t.buffer and model.buffers[t.buffer].data_start is not None
    ]
    assert model.buffers[empty.buffer].data_len == 0
    assert any(empty.index in op.inputs for op in model.subgraphs[0].operators)
    d = tflite.read(EMPTY_CONSTANT)
    assert empty.name not in {w.name for w in d.weights}
    assert len(d.weights) == len(litert_constants(EMPTY_CONSTANT))
    report = tflite.check(EMPTY_CONSTANT)
    assert report.ok and report.findings == ()


def test_tensors_and_operators_are_counted_over_every_subgraph():
    it = interpreter.Interpreter(model_path=str(CONTROL_FLOW))
    d = tflite.read(CONTROL_FLOW)
    meta = d.metadata
    assert meta["subgraphs"] == it.num_subgraphs() == 5
    assert meta["tensors_per_subgraph"] == [len(it.get_tensor_details(i)) for i in range(5)]
    assert meta["operators_per_subgraph"][0] == it._interpreter.NumNodes()  # LiteRT counts subgraph 0's
    checked = tflite.check(CONTROL_FLOW).checked
    assert meta["tensors"] == sum(meta["tensors_per_subgraph"]) == checked["tensors"]
    assert meta["operators"] == sum(meta["operators_per_subgraph"]) == checked["operators"]
    assert meta["operators"] == sum(d.ops.values())
    assert {"WHILE", "IF"} <= set(d.ops)
    # The summary table says which count is which.
    table = render("summary", summary_view(d), "table")
    rows = {line.split()[0]: line.split(None, 1)[1] for line in table.splitlines()[1:] if line.strip()}
    assert rows["tensors"] == str(checked["tensors"]) and rows["operators"] == str(checked["operators"])
    assert rows["tensors_per_subgraph"] == str(meta["tensors_per_subgraph"])
