"""Saturation of quantized outputs: how much of the float output an int8/uint8 tensor cannot hold.

An int8 output with scale ``s`` and zero point ``z`` represents ``[(-128 - z) s, (127 - z) s]``
and nothing beyond: calibration on inputs that do not look like real data leaves that range too
narrow, and every value outside it comes out pinned at a limit. Per output:

- ``saturated_fraction``: elements whose candidate value sits at an integer limit while the
  reference value lies beyond what that limit represents (by more than half a step): clipped.
  Elements merely *at* a limit (a probability of 0 on a sigmoid's int8 output, say) are not
  saturated; ``at_limits_fraction`` counts those too;
- ``representable_fraction``: the share of the reference values' range ``[min, max]`` that the
  quantized range covers.

More than :data:`~tfmodelkit.verify.compare.SATURATION_FINDING` (1%) saturated is a finding: the
reports say so, whatever the tolerance verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from .compare import OutputComparison, VerificationReport
from .runners.base import QuantParams


def quantized_range(q: QuantParams) -> tuple[float, float, float] | None:
    """``(low, high, step)``: the real values of the integer limits of a per-tensor ``q``, or None
    for per-channel parameters or a dtype other than int8/uint8."""
    if len(q.scale) != 1 or q.dtype not in ("int8", "uint8") or not q.scale[0]:
        return None
    info = np.iinfo(np.dtype(q.dtype))
    scale, zero = float(q.scale[0]), float(q.zero_point[0])
    return (info.min - zero) * scale, (info.max - zero) * scale, abs(scale)


def saturation_masks(
    expected: np.ndarray, actual: np.ndarray, low: float, high: float, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(at_limit, saturated)`` per element (same shape as the inputs), both false where a side is
    not finite."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    half = step / 2
    with np.errstate(invalid="ignore"):
        at_low, at_high = np.abs(a - low) <= half, np.abs(a - high) <= half
        saturated = (at_low & (e < low - half)) | (at_high & (e > high + half))
    finite = np.isfinite(e) & np.isfinite(a)
    return (at_low | at_high) & finite, saturated & finite


def _covered(e: np.ndarray, low: float, high: float) -> float | None:
    finite = e[np.isfinite(e)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        return 1.0 if low <= lo <= high else 0.0
    return max(0.0, min(hi, high) - max(lo, low)) / (hi - lo)


def output_saturation(o: OutputComparison, expected: Any, actual: Any, q: QuantParams) -> OutputComparison:
    """``o`` with its saturation figures, when ``q`` is per-tensor int8/uint8 and the shapes pair."""
    limits = quantized_range(q)
    e, a = np.asarray(expected), np.asarray(actual)
    if limits is None or o.problem or e.shape != a.shape or e.dtype.kind != "f" or a.dtype.kind != "f":
        return o
    low, high, step = limits
    at_limit, saturated = saturation_masks(e, a, low, high, step)
    n = max(int(e.size), 1)
    return dataclasses.replace(
        o, quantized_dtype=q.dtype, quantized_range=(low, high), quantized_step=step,
        saturated=int(np.count_nonzero(saturated)), saturated_fraction=float(np.count_nonzero(saturated)) / n,
        at_limits_fraction=float(np.count_nonzero(at_limit)) / n,
        representable_fraction=_covered(e.astype(np.float64), low, high),
    )  # fmt: skip


def finding_text(o: OutputComparison) -> str:
    """The finding for an output over the threshold, in one sentence."""
    low, high = o.quantized_range or (0.0, 0.0)
    covered = "" if o.representable_fraction is None else f"; its range covers {o.representable_fraction:.0%} of the expected values' range"
    return (
        f"output {o.name}: {o.saturated_fraction:.1%} of its elements ({o.saturated} of {o.size}) are saturated: "
        f"pinned at the {o.quantized_dtype} limits [{low:.4g}, {high:.4g}] while the reference lies beyond{covered}; "
        "calibrate on representative inputs (--calibration-data)"
    )


def with_saturation(
    report: VerificationReport,
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    quantized: Mapping[str, QuantParams],
) -> VerificationReport:
    """``report`` with the saturation of every output in ``quantized`` (candidate names), and a
    note per finding."""
    if not quantized:
        return report
    outputs = []
    for o in report.outputs:
        q = quantized.get(o.actual_name)
        if q is not None and o.name in expected and o.actual_name in actual:
            o = output_saturation(o, expected[o.name], actual[o.actual_name], q)
        outputs.append(o)
    notes = [finding_text(o) for o in outputs if o.saturation_finding]
    return dataclasses.replace(report, outputs=tuple(outputs), notes=(*report.notes, *notes))
