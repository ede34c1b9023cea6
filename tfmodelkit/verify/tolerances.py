"""Default tolerances, in one place: what a conversion's own verification and ``modelconv verify``
apply when the user gives none.

An element passes when ``|actual - expected| <= atol + rtol * |expected|``. Float32 routes must
match to 1e-5 (Polygraphy's default); quantized routes cannot, so their defaults are looser, and
dequantized int8/uint8 outputs get a number of output quantization steps instead.
"""

from __future__ import annotations

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5

#: (atol, rtol) per route kind.
ROUTE_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (DEFAULT_ATOL, DEFAULT_RTOL),
    "float16": (1e-2, 1e-2),
    "dynamic": (2e-2, 2e-2),
    "int8": (DEFAULT_ATOL, DEFAULT_RTOL),  # the outputs' own default is QUANTIZED_STEPS steps
}

#: Default atol of a dequantized (int8/uint8) output: this many of its quantization steps.
QUANTIZED_STEPS = 4.0


def route_tolerances(kind: str, atol: float | None = None, rtol: float | None = None) -> tuple[float, float, float | None]:
    """``(atol, rtol, quantized_steps)`` for a route ``kind``: the user's values where given.

    ``quantized_steps`` is None once the user sets ``atol`` (their number wins everywhere)."""
    d_atol, d_rtol = ROUTE_TOLERANCES.get(kind, ROUTE_TOLERANCES["float32"])
    steps = QUANTIZED_STEPS if atol is None else None
    return (d_atol if atol is None else atol, d_rtol if rtol is None else rtol, steps)

#: Layerwise verification (``--layerwise``): the relative error (the worst channel's max error over
#: its range) a layer may reach before it counts as divergent: for a float pair, for a candidate
#: with float16 weights (about 2^-11 per weight, a few times that through a layer), and for a
#: quantized one (int8 weights or activations: 1/255 of a tensor's range per rounding, a few
#: layers of that add up; a layer whose per-tensor scale rounds channels away is far above).
LAYER_TOLERANCES: dict[str, float] = {"float": 1e-3, "float16": 0.05, "quantized": 0.25}
