"""Tolerances for TF.js models whose weights are quantized (float16, uint8, uint16).

Such a model cannot match its float32 source to 1e-5: what it may differ by follows from its
weights. When the source is the Keras model of a layers model, the tolerance is measured: the
Keras model is run again holding exactly the weights TF.js dequantizes (paired by tfjs-layers'
``<layer>/<weight>`` names), and the tolerance is 4x the largest change that makes in Keras's
own outputs (plus 1e-5). Otherwise (a graph model, whose constants are frozen node values, or
a SavedModel source) it is the route default of :mod:`.tolerances` for that quantization.
``to-tfjs`` and ``modelconv verify A model.json`` use the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .tolerances import ROUTE_TOLERANCES

#: Keras model classes whose layers are walked through (their layers keep their own names).
MODEL_CLASSES = ("Sequential", "Functional", "Model")
#: Route kinds (:data:`.tolerances.ROUTE_TOLERANCES`) of quantized TF.js weights.
ROUTE_KIND = {"none": "float32", "float16": "float16", "uint8": "dynamic", "uint16": "dynamic"}
#: How many times what the quantization changes in Keras's outputs the tolerance allows.
FACTOR = 4.0


def _short(name: str) -> str:
    return name.split("/")[-1].split(":")[0]


def layer_weight_names(layer: Any) -> list[str]:
    """The names tfjs-layers gives ``layer``'s weights, in Keras's order: ``<layer>/<weight>``;
    a Bidirectional's are ``<layer>/forward_<inner>/<weight>`` then ``.../backward_<inner>/...``."""
    if type(layer).__name__ == "Bidirectional":
        return [
            f"{layer.name}/{side.name}/{_short(w.name)}"
            for side in (layer.forward_layer, layer.backward_layer)
            for w in side.weights
        ]
    return [f"{layer.name}/{_short(w.name)}" for w in layer.weights]


def leaf_layers(model: Any) -> list[Any]:
    """The layers holding weights, nested models walked through."""
    out = []
    for layer in model.layers:
        if type(layer).__name__ in MODEL_CLASSES and hasattr(layer, "layers"):
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def model_weights(model: Any) -> list[tuple[str, np.ndarray]]:
    """``(tfjs name, value)`` of every weight of ``model``."""
    out: list[tuple[str, np.ndarray]] = []
    for layer in leaf_layers(model):
        out.extend((name, np.asarray(w.numpy())) for name, w in zip(layer_weight_names(layer), layer.weights, strict=True))
    names = [n for n, _ in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UnsupportedError(f"weights named twice in TF.js's scheme: {', '.join(repeated[:5])}")
    return out


def dequantized_runner(runner: Any, dequantized: Mapping[str, np.ndarray], src: Path) -> Any:
    """The Keras model of ``runner`` again, carrying the weights exactly as TF.js holds them;
    None when a name of ``dequantized`` is no weight of the model (not its conversion)."""
    import importlib

    from .runners import KerasRunner

    keras_module = importlib.import_module(type(runner.model).__module__.split(".")[0])
    clone = keras_module.models.clone_model(runner.model)
    clone.set_weights(runner.model.get_weights())
    by_name = dict(model_weights(clone))
    if not set(dequantized) <= set(by_name) or any(np.shape(v) != by_name[k].shape for k, v in dequantized.items()):
        return None
    for layer in leaf_layers(clone):
        names = layer_weight_names(layer)
        if any(n in dequantized for n in names):
            layer.set_weights([dequantized.get(n, by_name[n]) for n in names])
    return KerasRunner.from_model(clone, src, runner.loader, notes=["weights as dequantized from the TF.js model"])


def measured_tolerance(original: Any, dequantized: Any, *, feed: Any = None, seed: int = 0, samples: int | None = None,
                       batch: int | None = None) -> float:  # fmt: skip
    """``FACTOR`` x the largest change the dequantized weights make in the model's outputs, + 1e-5."""
    from .core import compare_runners

    result = compare_runners(original, dequantized, feed=feed, seed=seed, samples=samples, batch=batch, atol=math.inf, rtol=0.0)
    worst = max((o.max_abs_error or 0.0 for o in result.outputs), default=0.0)
    return max(1e-5, FACTOR * worst + 1e-5)


@dataclass(frozen=True)
class QuantizationTolerance:
    """The tolerance a quantized TF.js model is held to, and how it was found."""

    atol: float
    rtol: float
    quantization: tuple[str, ...]
    derived_from: str

    def note(self) -> str:
        return (f"tolerance from the TF.js model's {'/'.join(self.quantization)} weights: atol {self.atol:.3g}, "
                f"rtol {self.rtol:g} ({self.derived_from})")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "quantization": list(self.quantization), "derived_from": self.derived_from}

    def annotate(self, report: Any, rtol: float) -> Any:
        """``report`` (a VerificationReport made at this atol and ``rtol``) with the note and
        ``context.quantization_tolerance`` that show it."""
        given = replace(self, rtol=rtol)
        return replace(report, notes=(*report.notes, given.note()),
                       context={**report.context, "quantization_tolerance": given.as_dict()})  # fmt: skip


def tolerance_for(reference: Any, candidate: Any, *, feed: Any = None, seed: int = 0, samples: int | None = None,
                  batch: int | None = None) -> QuantizationTolerance | None:  # fmt: skip
    """The tolerance for comparing ``reference`` with ``candidate`` when either is a TF.js model
    with quantized weights (None otherwise): measured for a Keras source of a layers model, else
    the route default of the quantization."""
    from ..formats import tfjs as tfjs_format

    sides = [(r, o) for r, o in ((candidate, reference), (reference, candidate)) if getattr(r, "backend", None) == "tfjs"]
    for tfjs_side, other in sides:
        if not getattr(tfjs_side, "quantized", None):
            continue
        kinds = tuple(tfjs_side.quantized)
        d_atol, d_rtol = max(ROUTE_TOLERANCES[ROUTE_KIND[k]] for k in kinds)
        if tfjs_side.kind == tfjs_format.LAYERS and getattr(other, "backend", None) == "keras":
            desc = tfjs_format.read(tfjs_side.path)
            values = {w.name: w.read() for w in desc.weights if "quantization" in w.extra}
            same = dequantized_runner(other, values, Path(str(other.path)))
            if same is not None:
                atol = measured_tolerance(other, same, feed=feed, seed=seed, samples=samples, batch=batch)
                return QuantizationTolerance(atol, ROUTE_TOLERANCES["float32"][1], kinds,
                                             f"{FACTOR:g} x max |Keras(dequantized weights) - Keras| + 1e-5")  # fmt: skip
        return QuantizationTolerance(d_atol, d_rtol, kinds, f"the default for {'/'.join(kinds)} weights in verify.tolerances")
    return None
