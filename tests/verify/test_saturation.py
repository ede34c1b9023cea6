"""Saturation of quantized outputs: clipped elements counted, merely-at-the-limit ones not, the
share of the float range covered, and the 1% finding in the text, JSON and verdict."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tfmodelkit.verify import QuantParams, compare, format_report, verdict_line
from tfmodelkit.verify.saturation import quantized_range, saturation_masks, with_saturation

# int8, scale 0.02, zero point 0: represents [-2.56, 2.54].
Q = QuantParams("int8", (0.02,), (0,))


def _dequantized(expected: np.ndarray, q: QuantParams = Q) -> np.ndarray:
    return q.dequantize(q.quantize(expected))


def _report(expected: np.ndarray, q: QuantParams = Q):
    actual = _dequantized(expected, q)
    report = compare({"y": expected}, {"y": actual}, per_output={"y": (4 * q.scale[0], None)})
    return with_saturation(report, {"y": expected}, {"y": actual}, {"y": q}), actual


def test_quantized_range_of_int8_and_uint8():
    assert quantized_range(Q) == pytest.approx((-2.56, 2.54, 0.02))
    assert quantized_range(QuantParams("uint8", (1 / 256,), (0,))) == pytest.approx((0.0, 255 / 256, 1 / 256))
    assert quantized_range(QuantParams("int8", (0.1, 0.2), (0, 0))) is None  # per-channel: not judged
    assert quantized_range(QuantParams("int16", (0.1,), (0,))) is None


def test_clipped_elements_are_saturated_and_the_range_share_is_reported():
    expected = np.linspace(-4.0, 2.0, 600, dtype=np.float32).reshape(60, 10)
    report, actual = _report(expected)
    (o,) = report.outputs
    clipped = int(np.count_nonzero(expected < -2.56 - 0.01))
    assert o.saturated == clipped and o.saturated_fraction == pytest.approx(clipped / 600)
    assert o.representable_fraction == pytest.approx((2.0 + 2.56) / 6.0)
    assert o.quantized_range == pytest.approx((-2.56, 2.54)) and o.quantized_dtype == "int8"
    assert o.saturation_finding and not o.ok  # clipped by more than 4 steps: fails too
    assert any("are saturated: pinned at the int8 limits [-2.56, 2.54]" in n for n in report.notes)
    text = format_report(report)
    assert "SATURATED (finding)" in text and "covering 76% of the expected range" in text
    d = json.loads(json.dumps(report.as_dict()))
    assert d["outputs"][0]["saturated_fraction"] == pytest.approx(clipped / 600)
    assert d["outputs"][0]["saturation_finding"] is True
    assert "saturated at the int8 limits: y (" in verdict_line(dataclasses.replace(report, context={"samples": 60}))


def test_values_at_a_limit_that_the_limit_represents_are_not_saturated():
    # A sigmoid's uint8 output: probabilities near 0 quantize to the lowest integer, exactly
    # what it represents; nothing is clipped.
    q = QuantParams("uint8", (1 / 256,), (0,))
    expected = np.concatenate([np.full(500, 1e-4), np.linspace(0, 0.99, 500)]).astype(np.float32)
    report, _ = _report(expected, q)
    (o,) = report.outputs
    assert o.saturated == 0 and o.saturated_fraction == 0.0 and not o.saturation_finding
    assert o.at_limits_fraction is not None and o.at_limits_fraction > 0.5
    assert o.representable_fraction == 1.0
    assert "saturation: 0.0% of elements clipped" in format_report(report)
    assert not any("saturated" in n for n in report.notes)


def test_the_finding_starts_above_one_percent():
    base = np.linspace(-2.0, 2.0, 1000, dtype=np.float32)
    for beyond, finding in ((10, False), (11, True)):  # 1.0% is not above 1%; 1.1% is
        expected = base.copy()
        expected[:beyond] = -3.0
        report, _ = _report(expected)
        assert report.outputs[0].saturation_finding is finding


def test_masks_skip_non_finite_pairs():
    e = np.array([np.nan, -3.0, 0.0, np.inf])
    a = np.array([-2.56, -2.56, 0.0, 2.54])
    at_limit, saturated = saturation_masks(e, a, -2.56, 2.54, 0.02)
    assert at_limit.tolist() == [False, True, False, False]
    assert saturated.tolist() == [False, True, False, False]


def test_outputs_without_quantization_are_left_alone():
    e = {"y": np.ones((4, 2), np.float32)}
    report = compare(e, e)
    same = with_saturation(report, e, e, {})
    assert same is report and same.outputs[0].saturated_fraction is None
    assert "saturation" not in format_report(same)
