"""What values a model's inputs expect, when the model says: generated inputs must fit the model.

Uniform floats in [-1, 1) are a fine default for a dense layer and useless for an ``Embedding``
(every id truncates to 0: one repeated token), for an image model that rescales [0, 255], or for a
quantized TFLite input whose scale covers [0, 6]. An :class:`InputHint` says, for one input, the
range to draw from, whether the values must be whole numbers (ids), and why.

Hints come from a Keras model config (an input feeding an ``Embedding``, a ``Rescaling`` or a
``Normalization`` layer) and from a TFLite input's quantization parameters; the user's
``--input-range`` wins over both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..formats.keras_config import entry_class, entry_config, entry_name, inbound_names, model_layers


@dataclass(frozen=True)
class InputHint:
    """Draw an input's values from ``[low, high)``; whole numbers when ``integer``; ``why`` says so."""

    low: float
    high: float
    integer: bool = False
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "integer": self.integer, "why": self.why}


def _first_number(v: Any) -> float | None:
    """A scalar config value, or the smallest/largest of a per-channel list (caller decides)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


def _numbers(v: Any) -> list[float]:
    if isinstance(v, bool):
        return []
    if isinstance(v, int | float):
        return [float(v)]
    if isinstance(v, list):
        out: list[float] = []
        for x in v:
            out += _numbers(x)
        return out
    return []


def layer_hint(entry: Mapping[str, Any]) -> InputHint | None:
    """The input range a layer implies for the tensor it is fed, or None."""
    cls, cfg = entry_class(entry), entry_config(entry)
    name = entry_name(entry, cls)
    if cls == "Embedding":
        n = cfg.get("input_dim")
        if isinstance(n, int) and n > 0:
            return InputHint(0, n, True, f"ids for Embedding {name!r} (input_dim {n})")
    if cls == "Rescaling":
        scale, offset = _first_number(cfg.get("scale")), _first_number(cfg.get("offset")) or 0.0
        if scale and scale > 0 and math.isfinite(scale):
            # x * scale + offset lands in [0, 1] (offset 0) or [-1, 1] (offset -1): x spans the source range.
            top = (1.0 - offset) / scale if offset in (0.0, -1.0) else 1.0 / scale
            return InputHint(0.0, top, False, f"the range Rescaling {name!r} maps to [{offset:g}, 1]")
    if cls == "Normalization":
        mean, var = _numbers(cfg.get("mean")), _numbers(cfg.get("variance"))
        if mean and var and len(mean) == len(var) and all(v >= 0 for v in var):
            lo = min(m - 2 * math.sqrt(v) for m, v in zip(mean, var, strict=True))
            hi = max(m + 2 * math.sqrt(v) for m, v in zip(mean, var, strict=True))
            if hi > lo:
                return InputHint(lo, hi, False, f"mean ± 2 std of Normalization {name!r}")
    return None


def keras_hints(config: Any) -> dict[str, InputHint]:
    """Hints for the inputs of a Keras model config (Keras 1/2/3; Sequential and functional), keyed
    by input name: an input consumed directly by a layer that implies a range gets that range."""
    if not isinstance(config, Mapping):
        return {}
    layers = model_layers(config)
    if not layers:
        return {}
    if config.get("class_name") == "Sequential":
        first = next((e for e in layers if entry_class(e) != "InputLayer"), None)
        hint = layer_hint(first) if first is not None else None
        if hint is None:
            return {}
        declared = [e for e in layers if entry_class(e) == "InputLayer"]
        name = entry_name(declared[0], "input") if declared else None
        return {name or "*": hint}  # "*": the model's only input, whatever the runner names it
    inputs = {entry_name(e, "") for e in layers if entry_class(e) == "InputLayer"}
    out: dict[str, InputHint] = {}
    for entry in layers:
        hint = layer_hint(entry)
        if hint is None:
            continue
        feeding = [n for n in inbound_names(entry) if n in inputs]
        if len(feeding) == 1:
            out.setdefault(feeding[0], hint)
    return out


def quantized_hint(scale: float, zero_point: int, dtype: str) -> InputHint | None:
    """The real range a quantized input covers: real = scale * (q - zero_point) over the dtype."""
    import numpy as np

    try:
        info = np.iinfo(np.dtype(dtype))
    except (TypeError, ValueError):
        return None
    if not scale or not math.isfinite(scale):
        return None
    lo, hi = scale * (info.min - zero_point), scale * (info.max - zero_point)
    return InputHint(min(lo, hi), max(lo, hi), False, f"the range its {dtype} quantization covers")
