"""tfmodelkit.diff: the public call behind ``modelinspect diff``, returning a DiffReport.

The real pairs are fixtures made by ``fixtures/models/make_diff_pairs.py``: a ``.h5`` and the
SavedModel ``h5-to-savedmodel`` made of it, a ``save_weights`` checkpoint and its SavedModel, a
checkpoint with a string variable and its SavedModel, two TFLite files that differ only in
metadata.
"""

from __future__ import annotations

import math
import shutil

import h5py
import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.description import ROLE_MODEL, ROLE_OPTIMIZER, ModelDescription, Weight
from tfmodelkit.errors import UserError
from tfmodelkit.inspect.diff import (
    BY_NAME,
    BY_NORMALIZED_NAME,
    BY_SHAPE_AND_ORDER,
    DiffReport,
    canonical,
    diff_view,
    tflite_metadata_entries,
)

H5 = FIXTURES / "keras_h5/tfkeras_full_adam.h5"
H5_AS_SAVEDMODEL = FIXTURES / "savedmodel/from_h5/tfkeras_full_adam"
CKPT = FIXTURES / "checkpoint/tfkeras_save_weights/ckpt"
CKPT_AS_SAVEDMODEL = FIXTURES / "savedmodel/from_ckpt/tfkeras_save_weights"
STRINGS = FIXTURES / "checkpoint/string_tagger/ckpt"
STRINGS_AS_SAVEDMODEL = FIXTURES / "savedmodel/from_ckpt/string_tagger"
PLAIN = FIXTURES / "tflite/metadata_pair/plain.tflite"
CARDED = FIXTURES / "tflite/metadata_pair/with_model_card.tflite"


def test_a_model_against_itself_is_identical():
    path = FIXTURES / "tflite/mlp_int8.tflite"
    report = tfmodelkit.diff(path, path)
    assert isinstance(report, DiffReport) and report.identical and report.same > 0
    assert report.as_dict()["identical"] is True


def test_descriptions_are_taken_as_they_are():
    a = tfmodelkit.read(FIXTURES / "tflite/mlp_int8.tflite")
    b = tfmodelkit.read(FIXTURES / "tflite/mlp_float16.tflite")
    report = tfmodelkit.diff(a, b)
    assert not report.identical and report.a == a.path and report.b == b.path


def test_unknown_option_is_refused():
    with pytest.raises(UserError, match="unknown option 'tol'"):
        tfmodelkit.diff("a", "b", tol=1)


# ------------------------------------------------------------------ metadata, signatures, ops


def test_tflite_files_that_differ_only_in_metadata_differ():
    report = tfmodelkit.diff(PLAIN, CARDED)
    assert not report.identical
    assert report.same == len(report.pairs) > 0 and not report.changed
    assert {p.matched_by for p in report.pairs} == {BY_NAME}
    assert report.signature_changes == () and report.op_changes == ()
    assert report.metadata_changes == ("metadata entry 'model_card' only in B (72 bytes)",)
    assert tfmodelkit.diff(CARDED, PLAIN).metadata_changes == (
        "metadata entry 'model_card' only in A (72 bytes)",
    )
    assert tfmodelkit.diff(PLAIN, PLAIN).identical


def test_a_changed_metadata_entry_is_found_by_its_contents(tmp_path):
    data = bytearray(CARDED.read_bytes())
    at = data.index(b'"version": "1.0"')
    data[at : at + 16] = b'"version": "2.0"'
    changed = tmp_path / "card_v2.tflite"
    changed.write_bytes(bytes(data))
    assert tflite_metadata_entries(changed)["model_card"][0] == 72
    report = tfmodelkit.diff(CARDED, changed)
    assert report.metadata_changes == ("metadata entry 'model_card' differs (72 bytes each)",)
    assert report.same == len(report.pairs) and not report.identical


def test_op_census_and_signatures_are_compared():
    report = tfmodelkit.diff(FIXTURES / "tflite/mlp_int8.tflite", FIXTURES / "tflite/mlp_float16.tflite")
    assert any(c.startswith("op DEQUANTIZE only in B (") for c in report.op_changes), report.op_changes
    assert (
        "serving_default: input 'x' is int8 (?, 8) in A, float32 (?, 8) in B" in report.signature_changes
    )
    assert 'producer min_runtime_version: "1.14.0" in A, "1.15.0" in B' in report.metadata_changes
    other = tfmodelkit.diff(
        FIXTURES / "tflite/multi_signature.tflite", FIXTURES / "tflite/two_io_float32.tflite"
    )
    assert "signature 'predict_logits' only in A" in other.signature_changes


def test_ops_and_metadata_are_not_compared_across_formats():
    report = tfmodelkit.diff(H5, H5_AS_SAVEDMODEL)
    assert report.op_changes == () and report.metadata_changes == ()


# ------------------------------------------------------------------ a model and its own conversion


def test_an_h5_and_its_savedmodel_pair_every_weight():
    report = tfmodelkit.diff(H5, H5_AS_SAVEDMODEL)
    assert report.identical and report.same == 4 and report.changed == ()
    assert report.only_in_a == report.only_in_b == ()
    assert report.matched_by == BY_NORMALIZED_NAME
    pairs = {p.name: p.name_b for p in report.pairs}
    assert (
        pairs["model_weights/dense/dense/kernel:0"]
        == "model/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert (
        pairs["model_weights/logits/logits/bias:0"] == "model/_operations/3/bias/.ATTRIBUTES/VARIABLE_VALUE"
    )


def test_a_checkpoint_and_its_savedmodel_pair_every_weight():
    report = tfmodelkit.diff(CKPT, CKPT_AS_SAVEDMODEL)
    assert report.identical and report.same == 4 and report.only_in_a == report.only_in_b == ()
    pairs = {p.name: (p.name_b, p.matched_by) for p in report.pairs}
    assert pairs["layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"] == (
        "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE",
        BY_NORMALIZED_NAME,
    )
    # The checkpoint's optimizer state is optimizer state (its root lists itself as a child).
    desc = tfmodelkit.read(CKPT)
    assert {w.role for w in desc.weights if w.name.startswith("optimizer/")} == {ROLE_OPTIMIZER}


def test_unpaired_weights_remain_listed():
    report = tfmodelkit.diff(H5, H5_AS_SAVEDMODEL, include_optimizer=True)
    assert report.same == 4 and not report.identical and report.only_in_b == ()
    assert len(report.only_in_a) == 9 and all(n.startswith("optimizer_weights/") for n in report.only_in_a)
    report = tfmodelkit.diff(CKPT_AS_SAVEDMODEL, CKPT, include_optimizer=True)
    assert report.same == 4 and report.only_in_a == () and len(report.only_in_b) == 10


def test_a_changed_weight_is_found(tmp_path):
    changed = tmp_path / "changed.h5"
    shutil.copy(H5, changed)
    with h5py.File(changed, "r+") as f:
        kernel = f["model_weights/dense/dense/kernel:0"]
        values = kernel[()]
        values[1, 2] += 0.5
        kernel[...] = values
    report = tfmodelkit.diff(changed, H5_AS_SAVEDMODEL)
    assert report.same == 3 and len(report.changed) == 1 and not report.identical
    c = report.changed[0]
    assert (c.name, c.name_b, c.matched_by, c.what) == (
        "model_weights/dense/dense/kernel:0",
        "model/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        BY_NORMALIZED_NAME,
        "values",
    )
    assert c.max_abs_diff == pytest.approx(0.5) and (c.differing, c.size) == (1, 40)
    assert tfmodelkit.diff(changed, H5_AS_SAVEDMODEL, atol=0.6).identical


def test_a_string_checkpoint_and_its_savedmodel_are_identical():
    report = tfmodelkit.diff(STRINGS, STRINGS_AS_SAVEDMODEL)
    assert report.identical and report.same == 2, report.as_dict()
    assert "model/labels/.ATTRIBUTES/VARIABLE_VALUE" in {p.name for p in report.pairs}


# ------------------------------------------------------------------ pairing and comparing, in small


def _weight(name: str, values: np.ndarray, role: str = ROLE_MODEL, **names: str | None) -> Weight:
    dtype = "string" if values.dtype == object else str(values.dtype)
    extra = {"variable_name": names["variable_name"]} if names.get("variable_name") else {}
    return Weight(
        name=name,
        dtype=dtype,
        shape=values.shape,
        nbytes=values.size,
        location="test",
        role=role,
        path=names.get("path"),
        extra=extra,
        _loader=lambda: values,
    )


def _desc(*weights: Weight, fmt: str = "checkpoint") -> ModelDescription:
    return ModelDescription(format=fmt, path=f"{fmt}-{len(weights)}", weights=weights)


def test_strings_compare_as_equal_or_different():
    a = _desc(_weight("words", np.array([b"cat", b"dog", b""], dtype=object)))
    b = _desc(_weight("words", np.array([b"cat", b"cow", b""], dtype=object)))
    report = diff_view(a, b)
    (c,) = report.changed
    assert (c.what, c.max_abs_diff, c.differing, c.size) == ("values", None, 1, 3)
    assert diff_view(a, a).identical
    assert not any(isinstance(v, float) and math.isinf(v) for v in report.as_dict()["changed"][0].values())


def test_numbers_compare_with_nan_and_inf():
    x = np.array([1.0, np.nan, np.inf, -0.0], np.float32)
    same = diff_view(_desc(_weight("w", x)), _desc(_weight("w", x.copy())))
    assert same.identical
    y = np.array([1.0, 2.0, np.inf, 0.0], np.float32)
    (c,) = diff_view(_desc(_weight("w", x)), _desc(_weight("w", y))).changed
    assert c.differing == 1 and c.max_abs_diff == math.inf


def test_normalized_names_pair_across_storage_decorations():
    f = np.zeros(3, np.float32)
    a = _desc(
        _weight("model_weights/dense/dense/kernel:0", f, path="dense/kernel"),
        _weight("model_weights/block/inner/bias:0", f, path="inner/bias"),
        fmt="keras_h5",
    )
    b = _desc(
        _weight("model/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE", f, variable_name="dense/kernel"),
        _weight("model/net/block/inner/bias/.ATTRIBUTES/VARIABLE_VALUE", f),
    )
    report = diff_view(a, b)
    assert report.identical and {p.matched_by for p in report.pairs} == {BY_NORMALIZED_NAME}
    assert canonical("model/x/_kernel/.ATTRIBUTES/VARIABLE_VALUE") == ("model", "x", "kernel")
    assert canonical("model_weights/dense/dense/kernel:0") == ("dense", "dense", "kernel")


def test_a_name_two_weights_share_does_not_pair_them():
    # Keras 3 names the kernels of a subclassed model alike; their object paths tell them apart.
    k1, k2 = np.zeros((3, 4), np.float32), np.ones((3, 4), np.float32)
    a = _desc(
        _weight("model/hidden/_kernel/.ATTRIBUTES/VARIABLE_VALUE", k1, variable_name="net/kernel"),
        _weight("model/head/_kernel/.ATTRIBUTES/VARIABLE_VALUE", k2, variable_name="net/kernel"),
    )
    b = _desc(
        _weight("head/kernel/.ATTRIBUTES/VARIABLE_VALUE", k2, variable_name="net/kernel"),
        _weight("hidden/kernel/.ATTRIBUTES/VARIABLE_VALUE", k1, variable_name="net/kernel"),
    )
    report = diff_view(a, b)
    assert report.identical, report.as_dict()
    assert {(p.name.split("/")[1], p.name_b.split("/")[0]) for p in report.pairs} == {
        ("hidden", "hidden"),
        ("head", "head"),
    }


def test_the_longest_shared_tail_wins():
    f = np.zeros(2, np.float32)
    a = _desc(_weight("model/block/dense/kernel", f), _weight("model/dense/kernel", f + 1))
    b = _desc(_weight("dense/kernel", f + 1), _weight("block/dense/kernel", f))
    report = diff_view(a, b)
    assert report.identical and report.same == 2


def test_shape_and_order_pair_what_names_cannot():
    a = _desc(
        _weight("w0", np.zeros((2, 3), np.float32)),
        _weight("w1", np.zeros(3, np.float32)),
        _weight("w2", np.ones(3, np.float32)),
    )
    b = _desc(
        _weight("v_10", np.ones(3, np.float32)),
        _weight("v_2", np.zeros(3, np.float32)),
        _weight("v_0", np.zeros((2, 3), np.float32)),
    )
    report = diff_view(a, b)
    assert report.identical and report.matched_by == BY_SHAPE_AND_ORDER
    assert {p.name: p.name_b for p in report.pairs} == {"w0": "v_0", "w1": "v_2", "w2": "v_10"}


def test_shapes_without_a_one_to_one_order_stay_unpaired():
    a = _desc(_weight("w1", np.zeros(3, np.float32)), _weight("w2", np.zeros(3, np.float32)))
    b = _desc(_weight("v", np.zeros(3, np.float32)), _weight("u", np.zeros(4, np.float32)))
    report = diff_view(a, b)
    assert report.pairs == () and report.only_in_a == ("w1", "w2") and report.only_in_b == ("u", "v")
    assert report.matched_by is None


def test_roles_are_never_paired_across():
    f = np.zeros(3, np.float32)
    a = _desc(_weight("Adam/m/dense/kernel", f, ROLE_OPTIMIZER))
    b = _desc(_weight("model/dense/kernel", f))
    report = diff_view(a, b, include_optimizer=True)
    assert report.pairs == () and report.only_in_a and report.only_in_b


def test_json_carries_how_each_pair_was_made():
    data = tfmodelkit.diff(H5, H5_AS_SAVEDMODEL).as_dict()
    assert data["paired_by"] == {BY_NAME: 0, BY_NORMALIZED_NAME: 4, BY_SHAPE_AND_ORDER: 0}
    assert {p["matched_by"] for p in data["pairs"]} == {BY_NORMALIZED_NAME}
    assert {p["result"] for p in data["pairs"]} == {"equal"}
    assert data["op_changes"] == [] and data["metadata_changes"] == []


def test_a_keras_files_signature_is_compared_with_its_conversions():
    from tfmodelkit.description import Signature, TensorSpec

    def desc(fmt: str, key: str, dtype: str) -> ModelDescription:
        spec = TensorSpec(name="x", dtype=dtype, shape=(None, 3))
        return ModelDescription(
            format=fmt, path=fmt, signatures=(Signature(key=key, inputs=(spec,), outputs=()),)
        )

    keras, exported = desc("keras_h5", "model", "float32"), desc("savedmodel", "serving_default", "float32")
    assert diff_view(keras, exported).identical
    changed = diff_view(keras, desc("savedmodel", "serving_default", "float16"))
    assert changed.signature_changes == (
        "model (B: serving_default): input 'x' is float32 (?, 3) in A, float16 (?, 3) in B",
    )
    # Between files of one format, a signature's key is its name.
    other = diff_view(exported, desc("savedmodel", "predict", "float32"))
    assert other.signature_changes == (
        "signature 'serving_default' only in A",
        "signature 'predict' only in B",
    )
