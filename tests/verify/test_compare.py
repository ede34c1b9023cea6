"""The comparator on synthetic arrays: no models, no TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfmodelkit.errors import CheckFailed, UserError
from tfmodelkit.verify import compare, compare_arrays, format_report, histogram


def _rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_identical_outputs_pass_with_zero_error():
    y = _rand((3, 4))
    report = compare({"y": y}, {"y": y.copy()})
    assert report.ok and report.matched_by == "name"
    (o,) = report.outputs
    assert o.ok and o.failing == 0 and o.size == 12
    assert o.max_abs_error == 0 and o.min_atol == 0
    assert o.worst_index is None
    assert o.histogram.zero == 12 and o.histogram.counts == ()


def test_single_perturbed_element_is_found():
    e = _rand((3, 4))
    a = e.copy()
    a[1, 2] += 0.5
    report = compare({"y": e}, {"y": a})
    assert not report.ok
    o = report.output("y")
    assert o.failing == 1 and o.failing_fraction == pytest.approx(1 / 12)
    assert o.worst_index == (1, 2)
    assert o.worst_expected == pytest.approx(float(e[1, 2]))
    assert o.worst_actual == pytest.approx(float(a[1, 2]))
    assert o.max_abs_error == pytest.approx(0.5, rel=1e-6)
    assert "[1, 2]" in report.summary() and "1 of 12" in report.summary()


def test_smallest_passing_atol_is_exact():
    e = np.array([1.0, 10.0, 100.0])
    a = e + np.array([0.01, 0.02, 0.05])
    rtol = 1e-3
    o = compare({"y": e}, {"y": a}, atol=0.0, rtol=rtol).output("y")
    # |a-b| - rtol*|b| = 0.009, 0.01, -0.05: the middle element needs the most atol.
    assert o.min_atol == pytest.approx(0.01)
    assert o.worst_index == (1,)
    assert compare({"y": e}, {"y": a}, atol=o.min_atol, rtol=rtol).ok
    assert not compare({"y": e}, {"y": a}, atol=o.min_atol * (1 - 1e-9), rtol=rtol).ok


def test_rtol_scales_with_the_expected_side():
    # |a - b| = 1; allowed = rtol * |expected|: passes only when the expected value is the larger one.
    assert not compare({"y": np.array([1.0])}, {"y": np.array([2.0])}, atol=0.0, rtol=0.6).ok
    assert compare({"y": np.array([2.0])}, {"y": np.array([1.0])}, atol=0.0, rtol=0.6).ok
    e, a = np.array([100.0]), np.array([100.5])
    assert compare({"y": e}, {"y": a}, atol=0.0, rtol=0.01).ok
    o = compare({"y": e}, {"y": a}, atol=0.0, rtol=0.004).output("y")
    assert not o.ok and o.max_rel_error == pytest.approx(0.005)


def test_nan_and_inf_handling():
    e = np.array([np.nan, 1.0, np.inf, -np.inf, 2.0], dtype=np.float32)
    a = np.array([np.nan, 1.0, np.inf, np.inf, np.nan], dtype=np.float32)
    o = compare({"y": e}, {"y": a}, atol=1e9).output("y")
    assert not o.ok
    assert o.failing == 2  # -inf vs inf, 2.0 vs nan; nan==nan and inf==inf pass
    assert (o.expected_nan, o.expected_inf, o.actual_nan, o.actual_inf) == (1, 2, 2, 2)
    assert o.min_atol is None  # no tolerance fixes a NaN/Inf mismatch
    assert o.worst_index == (3,)
    assert o.max_abs_error == 0  # statistics cover the finite pairs only
    assert o.histogram.nonfinite == 2
    same_places = compare({"y": np.array([np.nan, 1.0])}, {"y": np.array([np.nan, 1.0])})
    assert same_places.ok and same_places.outputs[0].expected_nan == 1


def test_outputs_matched_by_position_when_names_differ():
    probs, score = _rand((2, 3)), _rand((2, 1), seed=1)
    report = compare({"probs": probs, "score": score}, {"output_0": probs, "output_1": score})
    assert report.ok and report.matched_by == "position"
    assert [(o.name, o.actual_name) for o in report.outputs] == [("probs", "output_0"), ("score", "output_1")]
    assert any("position" in n for n in report.notes)
    assert "position" in report.summary()


def test_position_matching_refused_when_shapes_disagree_in_order():
    probs, score = _rand((2, 3)), _rand((2, 1), seed=1)
    report = compare({"probs": probs, "score": score}, {"output_0": score, "output_1": probs})
    assert not report.ok and report.matched_by == "mismatch"
    assert report.missing == ("probs", "score") and report.extra == ("output_0", "output_1")


def test_mismatched_signatures_list_missing_and_extra():
    y = _rand((2, 2))
    report = compare({"a": y, "b": y}, {"a": y, "c": np.array(["x"] * 4).reshape(2, 2)})
    assert not report.ok and report.matched_by == "mismatch"
    assert report.missing == ("b",) and report.extra == ("c",)
    assert [o.name for o in report.outputs] == ["a"] and report.outputs[0].ok  # common names still compared
    assert "missing outputs b" in report.summary()
    fewer = compare({"a": y, "b": y}, {"a": y})
    assert not fewer.ok and fewer.missing == ("b",) and fewer.extra == ()


def test_per_output_tolerance():
    e = {"y": np.zeros(4), "z": np.zeros(4)}
    a = {"y": np.full(4, 1e-3), "z": np.full(4, 1e-3)}
    report = compare(e, a, per_output={"y": (1e-2, None)})
    assert report.output("y").ok and report.output("y").atol == 1e-2
    assert report.output("y").rtol == 1e-5  # None keeps the global rtol
    assert not report.output("z").ok and not report.ok
    with pytest.raises(UserError, match="nope"):
        compare(e, a, per_output={"nope": (1.0, None)})


def test_integers_exact_unless_tolerances_given():
    e, a = np.array([1, 2, 3], np.int32), np.array([1, 2, 4], np.int32)
    o = compare({"i": e}, {"i": a}, atol=10.0, rtol=1.0).output("i")
    assert o.exact and not o.ok and o.failing == 1 and o.worst_index == (2,)
    assert compare({"i": e}, {"i": a}, per_output={"i": (1.0, 0.0)}).ok
    big = np.array([2**62], np.int64)  # float64 cannot tell these apart; the comparison must
    assert not compare({"i": big}, {"i": big + 1}).ok
    flags = np.array([True, False])
    assert not compare({"b": flags}, {"b": ~flags}).ok


def test_strings_compared_exactly():
    e = np.array([b"cat", b"dog"], dtype=object)
    assert compare({"s": e}, {"s": np.array(["cat", "dog"])}).ok  # str and bytes agree
    o = compare({"s": e}, {"s": np.array([b"cat", b"dig"], dtype=object)}).output("s")
    assert not o.ok and o.failing == 1 and o.worst_index == (1,)
    assert (o.worst_expected, o.worst_actual) == (b"dog", b"dig")


def test_shape_mismatch_fails_without_statistics():
    o = compare({"y": np.zeros((2, 3))}, {"y": np.zeros((3, 2))}).output("y")
    assert not o.ok and not o.shape_match and "shape" in o.problem
    assert o.max_abs_error is None


def test_top1_agreement():
    e = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
    a = e.copy()
    a[2] = [0.9, 0.1]  # one row's argmax flips
    assert compare({"p": e}, {"p": a}).output("p").top1_agreement == pytest.approx(0.75)
    assert compare({"p": e}, {"p": e}).output("p").top1_agreement == 1.0
    assert compare({"p": e[:, :1]}, {"p": e[:, :1]}).output("p").top1_agreement is None
    assert compare({"p": e[0]}, {"p": e[0]}).output("p").top1_agreement is None


def test_histogram_decades():
    h = histogram(np.array([0.0, 5e-7, 5e-6, 6e-6, 0.5]))
    assert h.zero == 1
    assert h.edges[0] == pytest.approx(1e-7) and h.edges[-1] == pytest.approx(1.0)
    assert h.counts == (1, 2, 0, 0, 0, 0, 1)  # (1e-7,1e-6], (1e-6,1e-5], ... (0.1,1]
    assert sum(h.counts) + h.zero == 5


def test_mixed_dtypes_and_float16():
    e = np.array([1.0, 2.0], np.float32)
    report = compare({"y": e}, {"y": e.astype(np.float16)})
    assert report.ok and not report.outputs[0].dtype_match
    assert any("dtype" in n for n in report.notes)


def test_report_is_json_ready_and_renders():
    e = np.array([[np.nan, 1.0], [2.0, 3.0]])
    a = np.array([[1.0, 1.0], [2.0, 3.5]])
    report = compare({"y": e}, {"y": a})
    d = report.as_dict()
    text = json.dumps(d, allow_nan=False)  # non-finite numbers become null
    assert '"ok": false' in text and d["outputs"][0]["min_atol"] is None
    rendered = format_report(report)
    assert "FAILED" in rendered and "y" in rendered and "histogram" in rendered
    with pytest.raises(CheckFailed) as info:
        report.raise_if_failed()
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
    ok = compare({"y": a}, {"y": a})
    assert ok.raise_if_failed() is ok and "passed" in format_report(ok)


def test_empty_comparison_is_not_a_pass():
    report = compare({}, {})
    assert not report.ok and report.notes


def test_compare_arrays_rejects_negative_tolerance():
    with pytest.raises(UserError):
        compare_arrays("y", np.zeros(2), np.zeros(2), atol=-1.0)


def test_bfloat16_and_complex_outputs():
    import ml_dtypes

    e = np.array([1.0, 2.0, 3.0], dtype=ml_dtypes.bfloat16)
    a = e.copy()
    a[1] = 2.5
    o = compare({"y": e}, {"y": a}).output("y")
    assert not o.exact and o.failing == 1 and o.worst_index == (1,)
    c = np.array([1 + 1j, 2 - 1j])
    o = compare({"c": c}, {"c": c + 3e-6j}, atol=1e-5).output("c")
    assert o.ok and o.max_abs_error == pytest.approx(3e-6)
