"""Layer-by-layer verification: where between the inputs and the outputs two models part ways.

``modelconv verify A B --layerwise`` (``tfmodelkit.verify(a, b, layerwise=True)``) runs both models
keeping every intermediate tensor and compares them layer by layer. A is a Keras model (``.h5``,
``.keras``, or a SavedModel that Keras wrote, revived with its layers); B is a TFLite model
converted from it (float or quantized; LiteRT keeps every tensor with
``experimental_preserve_all_tensors``) or another Keras-family artifact of the same model. The
library call for code that needs the layer errors (selective quantization picks the layers to
keep float from them)::

    from tfmodelkit.verify.layerwise import compare_layers
    report = compare_layers("model.h5", "model_int8.tflite", inputs={"x": samples})
    report.first_divergent_layer      # "outliers"
    for row in report.layers:         # graph order, the model inputs first
        print(row.layer, row.b_tensor, row.matched_by, row.max_abs, row.relative, row.scale)

How tensors are matched to layers (``matched_by``): ``input`` (a model input; on a quantized B the
tensor its QUANTIZE op writes, so the input's own rounding shows), ``name`` (the TFLite tensor
names the layer: converter names are scope paths such as ``model/dense_1/BiasAdd``, fused ops
join several with ``;`` and a tensor belongs to the last layer it names) and ``shape`` (an
unnamed tensor of the layer's shape, the first one after the tensor of the layer before it and
before that of the next layer matched by name). Layers left without a tensor (fused into the
next layer, or no op of their own, such as Dropout) are listed in ``unmatched``.

``relative`` is the error relative to the layer's output range, taken per channel (the last
axis): the worst channel's max |A - B| over that channel's range in A, each range at least a
tenth of the median non-constant channel's (so a dead channel does not divide by zero). Per
channel because TFLite quantizes an activation with one scale per tensor: a layer whose few
extreme channels set that scale keeps them exact and rounds the rest away, which only a
per-channel view shows. ``scale`` is B's quantization scale where B's tensor is quantized (its
values are dequantized before comparing). A layer diverges when ``relative`` exceeds the
tolerance (:data:`~tfmodelkit.verify.tolerances.LAYER_TOLERANCES`: by what B is, float, float16
or quantized); ``first_divergent_layer`` is the first in graph order that does,
``largest_growth_layer`` the one whose ``relative`` grows most (as a ratio) over that of the
layers feeding it (the largest of them; in a Sequential model, the row before).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..description import TensorSpec
from ..errors import UnsupportedError, UserError
from ..util import first_line, jsonable
from .core import match_inputs
from .inputs import DEFAULT_SAMPLES, generate_inputs, load_inputs
from .runners import KerasRunner, QuantParams, TFLiteRunner
from .runners.base import tf_dtype, tf_shape, to_numpy
from .runners.tflite import quant_params
from .tolerances import LAYER_TOLERANCES

#: Ratios of growth are taken over at least this relative error (float32 rounding).
GROWTH_FLOOR = 1e-7


@dataclasses.dataclass(frozen=True)
class LayerComparison:
    """One layer's output in A against the tensor of B matched to it."""

    layer: str
    #: A's tensor (``layer`` or ``layer:i`` for a layer with several outputs) and B's tensor name.
    a_tensor: str
    b_tensor: str
    #: "input", "name" or "shape" (see the module doc).
    matched_by: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    #: The worst channel's max |A - B| over that channel's range in A.
    relative: float
    #: The range of A's values over the whole tensor (max - min).
    range: float
    #: B's storage dtype, and its quantization scale/zero point when quantized (first entry of a
    #: per-channel one).
    b_dtype: str
    scale: float | None = None
    zero_point: int | None = None
    #: ``relative`` over the largest of the layers feeding this one (the row before in a Sequential
    #: model); None for the inputs.
    growth: float | None = None
    exceeds: bool = False

    def as_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "layer": self.layer, "a_tensor": self.a_tensor, "b_tensor": self.b_tensor,
                "matched_by": self.matched_by, "shape": list(self.shape), "max_abs": self.max_abs,
                "mean_abs": self.mean_abs, "relative": self.relative, "range": self.range,
                "b_dtype": self.b_dtype, "scale": self.scale, "zero_point": self.zero_point,
                "growth": self.growth, "exceeds": self.exceeds,
            }
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LayerwiseReport:
    """Per matched layer of A, in graph order, how far B's tensor is from it; see the module doc."""

    layers: tuple[LayerComparison, ...]
    #: The relative error a layer may reach before it counts as divergent.
    tolerance: float
    first_divergent_layer: str | None
    largest_growth_layer: str | None
    #: A's layers no tensor of B was matched to.
    unmatched: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: How many samples ran, what each side is.
    context: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def layer(self, name: str) -> LayerComparison:
        for row in self.layers:
            if row.layer == name or row.a_tensor == name:
                return row
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": [row.as_dict() for row in self.layers],
            "layer_tolerance": self.tolerance,
            "first_divergent_layer": self.first_divergent_layer,
            "largest_growth_layer": self.largest_growth_layer,
            "unmatched_layers": list(self.unmatched),
            "layer_notes": list(self.notes),
            "layer_context": jsonable(self.context),
        }


@dataclasses.dataclass
class _Tensor:
    """One tensor of a side: its name, the layers it belongs to, its values, where it came from."""

    name: str
    owners: tuple[str, ...]
    value: np.ndarray
    dtype: str
    quant: QuantParams | None = None
    #: TFLite: the tensor's index and, for a QUANTIZE op's output, the index of what it quantized.
    index: int = -1
    quantized_from: int | None = None


# ------------------------------------------------------------------------------------------ sides


def _keras_model(side: Any, unsafe: bool) -> tuple[Any, str]:
    """A live Keras model and its loader ("keras" or "tf_keras"), from a KerasRunner or a path;
    UnsupportedError for anything without Keras layers."""
    if isinstance(side, KerasRunner):
        return side.model, side.loader
    path = Path(getattr(side, "path", side))  # another runner: the model it was loaded from
    from ..formats import detect

    fmt = detect(path)
    if fmt in ("keras_h5", "keras_zip"):
        runner = KerasRunner(path, safe_mode=not unsafe)
        return runner.model, runner.loader
    if fmt == "savedmodel":
        from ..loaders.keras_migrate import load_keras_savedmodel

        try:
            return load_keras_savedmodel(path, unsafe=unsafe), "tf_keras"
        except UnsupportedError as e:
            raise UnsupportedError(
                f"{path}: layerwise verification needs the layers, and this SavedModel does not expose them "
                f"({first_line(e)})"
            ) from None
    raise UnsupportedError(f"{path}: a {fmt} model has no Keras layers to compare layer by layer")


def _layer_outputs(model: Any) -> tuple[list[tuple[str, str, Any]], list[str]]:
    """(layer, tensor label, symbolic output) for every layer after the inputs, in graph order;
    and the layers whose output cannot be taken (shared layers, subclassed models)."""
    rows: list[tuple[str, str, Any]] = []
    skipped: list[str] = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            out = layer.output  # raises for a layer called more than once, or never
        except (AttributeError, ValueError, RuntimeError):
            skipped.append(layer.name)
            continue
        if isinstance(out, Mapping):
            flat = list(out.values())
        else:
            flat = list(out) if isinstance(out, list | tuple) else [out]
        for i, t in enumerate(flat):
            rows.append((layer.name, layer.name if len(flat) == 1 else f"{layer.name}:{i}", t))
    return rows, skipped


def _probe(model: Any, outputs: list[Any]) -> Any:
    """A model over the same inputs that outputs every layer (a functional model sharing the layers),
    built by the Keras the model belongs to (tf_keras or Keras 3, whatever loader made it)."""
    from ..loaders.tf import import_keras, import_tf_keras

    legacy = type(model).__module__.split(".")[0] == "tf_keras"
    lib: Any = import_tf_keras("comparing Keras layers") if legacy else None
    lib = lib or import_keras("comparing Keras layers")
    try:
        return lib.Model(_symbolic_inputs(model), outputs)
    except Exception as e:
        raise UnsupportedError(
            f"{model.name}: cannot rebuild the model to output its layers ({first_line(e, with_type=True)})"
        ) from None


def _symbolic_inputs(model: Any) -> Any:
    """The model's symbolic inputs in its own structure. Keras 3's ``Sequential.input`` raises
    ("never been called") for a model read from a legacy .h5 even once built; ``.inputs`` works."""
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = list(model.inputs)
        return inputs[0] if len(inputs) == 1 else inputs


def _feed_value(io: Any, feed: Mapping[str, np.ndarray]) -> Any:
    """``feed`` in the form the model takes (a dict, a list, or its only input)."""
    values = [np.asarray(feed[s.name]) for s in io.inputs]
    if io.feed_kind == "dict":
        return dict(zip([s.name for s in io.inputs], values, strict=True))
    return values[0] if io.feed_kind == "single" else values


def _keras_side(
    model: Any, loader: str, where: object, feeds: Sequence[Mapping[str, np.ndarray]]
) -> tuple[list[_Tensor], list[str]]:
    """The model's inputs and every layer's output on ``feeds`` (joined), and the layers skipped."""
    from ..loaders.keras import keras_io

    io = keras_io(model, where)
    try:
        _symbolic_inputs(model)
    except (AttributeError, ValueError, TypeError):
        # Keras 3 builds a Sequential model read from a legacy .h5 (and its layers' symbolic
        # outputs) only when it is first called.
        try:
            model(_feed_value(io, feeds[0]), training=False)
        except Exception as e:
            raise UserError(f"{where}: the model rejected the feed ({first_line(e, with_type=True)})") from None
    rows, skipped = _layer_outputs(model)
    if not rows:
        raise UnsupportedError(f"{where}: a model without layers to compare (a subclassed model?)")
    probe = _probe(model, [t for _, _, t in rows])
    runs: list[list[np.ndarray]] = []
    for feed in feeds:
        x = _feed_value(io, feed)
        try:
            result = probe(x, training=False)
        except Exception as e:
            raise UserError(
                f"{where}: the model rejected the feed ({first_line(e, with_type=True)})"
            ) from None
        runs.append([to_numpy(r) for r in (result if isinstance(result, list | tuple) else [result])])
    tensors = [
        _Tensor(label, (layer,), _joined([r[i] for r in runs]), str(runs[0][i].dtype))
        for i, (layer, label, _) in enumerate(rows)
    ]
    inputs = [
        _Tensor(s.name, (), _joined([np.asarray(f[s.name]) for f in feeds]), s.dtype) for s in io.inputs
    ]
    return inputs + tensors, skipped


def _joined(parts: Sequence[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    try:
        return np.concatenate(parts) if parts[0].ndim else np.stack(parts)
    except ValueError:
        return np.stack(parts)


_SUFFIX = re.compile(r"^(.*)_\d+$")


def _owners(name: str, layers: Sequence[str], model: str = "") -> tuple[str, ...]:
    """The layers a converter's tensor name speaks of, by its scope components.

    Keras 3's ``model.export`` (and anything that traces a Keras 3 model) suffixes every scope
    with ``_N`` to keep it unique: model ``sequential`` becomes ``sequential_1``, its layer
    ``dense`` ``dense_1`` and its layer ``dense_1`` ``dense_1_2``. Below a model scope so
    suffixed, a component names the layer it is with one ``_N`` taken off; below the model's own
    name (tf_keras), the layer it equals; with neither in sight, the layer it equals, else the one
    it is with ``_N`` taken off."""
    known = set(layers)
    suffixed_model = re.compile(re.escape(model) + r"_\d+$") if model else None
    found = []
    for part in name.split(";"):
        pieces = part.split("/")
        pieces = pieces[:-1] if len(pieces) > 1 else pieces  # the last is the op
        mode = "either"
        for piece in pieces:
            if mode == "either" and model and piece == model:
                mode = "exact"
                continue
            if mode == "either" and suffixed_model is not None and suffixed_model.match(piece):
                mode = "suffixed"
                continue
            m = _SUFFIX.match(piece)
            stripped = m.group(1) if m else None
            if mode != "suffixed" and piece in known:
                found.append(piece)
            elif mode != "exact" and stripped in known:
                found.append(str(stripped))
    return tuple(dict.fromkeys(found))


def _tflite_side(
    runner: TFLiteRunner, feeds: Sequence[Mapping[str, np.ndarray]], layers: Sequence[str], model: str
) -> list[_Tensor]:
    """Every tensor ``runner`` (made with ``preserve_all_tensors``) writes on ``feeds``, joined over
    the runs, in execution order."""
    per_run = []
    for feed in feeds:
        runner.run(feed)
        per_run.append(runner.intermediate_tensors())
    tensors = []
    for i, (detail, _, op) in enumerate(per_run[0]):
        parts = [run[i][1] for run in per_run if i < len(run)]
        if len(parts) != len(per_run):
            continue
        name = str(detail.get("name", ""))
        source = None
        if op is not None and op.get("op_name") == "QUANTIZE" and len(op["inputs"]):
            source = int(op["inputs"][0])
        tensors.append(
            _Tensor(
                name, _owners(name, layers, model), _joined(parts), np.dtype(detail["dtype"]).name, quant_params(detail),
                index=int(detail["index"]), quantized_from=source,
            )
        )  # fmt: skip
    return tensors


def _graph_side(
    folder: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    layers: Sequence[str],
    signature: str | None,
    a_inputs: Sequence[TensorSpec],
    model: str,
) -> list[_Tensor]:
    """Every float tensor a SavedModel's signature computes on ``feeds``, in graph order, its inputs
    first. The signature's graph is frozen (``convert_variables_to_constants_v2`` inlines the
    function calls, so the ops keep the Keras scope names: ``StatefulPartitionedCall/model/dense/
    BiasAdd``) and pruned to fetch them all: this is the graph the SavedModel serves, whatever
    Keras (or no Keras) wrote it."""
    from ..loaders.savedmodel import load_savedmodel
    from ..loaders.tf import import_tensorflow, quiet_fds

    tf = import_tensorflow("comparing SavedModel tensors")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = load_savedmodel(folder, purpose="comparing a SavedModel layer by layer")
    sigs = dict(loaded.signatures)
    key = signature or ("serving_default" if "serving_default" in sigs else next(iter(sigs), None))
    if key not in sigs:
        raise UnsupportedError(f"{folder}: no signature {key!r} to compare (signatures: {', '.join(sigs) or 'none'})")
    with quiet_fds():
        frozen = convert_variables_to_constants_v2(sigs[key])
    graph_def = frozen.graph.as_graph_def()
    names = {t.name.split(":")[0]: t.name for t in frozen.inputs}
    _, kwargs = sigs[key].structured_input_signature
    order = [str(spec.name or k) for k, spec in sorted(kwargs.items())]
    fetch = [
        out.name
        for op in frozen.graph.get_operations()
        if op.type not in ("Const", "Placeholder", "NoOp")
        for out in op.outputs
        if out.dtype.is_floating
    ]
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    feeds_in = [graph.get_tensor_by_name(names.get(n, f"{n}:0")) for n in order]
    pruned = wrapped.prune(feeds_in, [graph.get_tensor_by_name(n) for n in fetch])
    input_names = [k for k, _ in sorted(kwargs.items())]
    specs = [TensorSpec(k, tf_dtype(spec.dtype), tf_shape(spec.shape)) for k, spec in sorted(kwargs.items())]
    match = match_inputs(a_inputs, specs)
    if match.problem:
        raise UserError(f"{folder}: {match.problem}")
    a_of = {b: a for a, b in match.pairs}
    runs = []
    for feed in feeds:
        values = [tf.constant(np.asarray(feed[a_of[k]])) for k in input_names]
        runs.append([np.asarray(v) for v in pruned(*values)])
    inputs = [_Tensor(a_of[k], (), _joined([np.asarray(f[a_of[k]]) for f in feeds]), "float32") for k in input_names]
    tensors = [
        _Tensor(n, _owners(n, layers, model), _joined([r[i] for r in runs]), str(runs[0][i].dtype))
        for i, n in enumerate(fetch)
    ]
    return inputs + tensors


# --------------------------------------------------------------------------------------- matching


def _fits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``b`` can stand for ``a``: as many elements, the same shape past the batch."""
    return a.size == b.size and (a.shape[1:] == b.shape[1:] or a.ndim == 0 or b.ndim == 0)


def _match(
    a_rows: Sequence[_Tensor], b_tensors: Sequence[_Tensor], inputs: Mapping[str, int]
) -> list[tuple[_Tensor, int, str]]:
    """(A row, index into ``b_tensors``, matched_by) in A's order; see the module doc. ``inputs``
    maps A's input names to the B tensor standing for each."""
    matched: dict[int, tuple[int, str]] = {}
    for k, row in enumerate(a_rows):
        if not row.owners and row.name in inputs:
            matched[k] = (inputs[row.name], "input")
    order = {row.owners[0]: k for k, row in enumerate(a_rows) if row.owners}
    claims: dict[str, list[int]] = {}
    for j, t in enumerate(b_tensors):
        if t.owners:  # a fused op's tensor is the output of the last layer it names
            claims.setdefault(max(t.owners, key=lambda n: order.get(n, -1)), []).append(j)
    used = {j for j, _ in matched.values()}
    by_layer: dict[str, list[int]] = {}
    for k, row in enumerate(a_rows):
        if row.owners:
            by_layer.setdefault(row.owners[0], []).append(k)
    for layer, ks in by_layer.items():
        for k in ks:
            fits = [
                j
                for j in claims.get(layer, [])
                if j not in used and _fits(a_rows[k].value, b_tensors[j].value)
            ]
            if fits:  # one output: the layer's last tensor; several: its tensors in order
                j = fits[-1] if len(ks) == 1 else fits[0]
                matched[k] = (j, "name")
                used.add(j)
    named = sorted((k, j) for k, (j, how) in matched.items() if how == "name")
    for k, row in enumerate(a_rows):
        if k in matched or not row.owners:
            continue
        lo = max((j for kk, (j, _) in matched.items() if kk < k), default=-1)
        hi = min((j for kk, j in named if kk > k), default=len(b_tensors))
        for j in range(lo + 1, hi):
            if j not in used and not b_tensors[j].owners and _fits(row.value, b_tensors[j].value):
                matched[k] = (j, "shape")
                used.add(j)
                break
    return [(a_rows[k], j, how) for k, (j, how) in sorted(matched.items())]


# ---------------------------------------------------------------------------------------- figures


def _relative(a: np.ndarray, err: np.ndarray) -> float:
    """The worst channel's max error over its range in ``a`` (see the module doc)."""
    if a.size == 0:
        return 0.0
    if a.ndim >= 2 and a.shape[-1] > 1:
        a2, e2 = a.reshape(-1, a.shape[-1]), err.reshape(-1, a.shape[-1])
    else:
        a2, e2 = a.reshape(-1, 1), err.reshape(-1, 1)
    ranges = np.nanmax(a2, axis=0) - np.nanmin(a2, axis=0)
    worst = np.nanmax(e2, axis=0)
    # Constant channels (dead ReLUs, a single sample) do not set the floor; a constant tensor
    # is measured against its magnitude (at least 1).
    live = ranges[ranges > 0]
    floor = 0.1 * float(np.median(live)) if live.size else max(float(np.nanmax(np.abs(a2))), 1.0)
    return float(np.max(worst / np.maximum(ranges, floor)))


def _row(a: _Tensor, b: _Tensor, matched_by: str) -> LayerComparison:
    av = np.asarray(a.value, dtype=np.float64)
    bv = b.quant.dequantize(b.value) if b.quant is not None else b.value
    bv = np.asarray(bv, dtype=np.float64).reshape(av.shape)
    err = np.abs(av - bv)
    both_finite = np.isfinite(av) & np.isfinite(bv)
    same_nonfinite = ~both_finite & ((av == bv) | (np.isnan(av) & np.isnan(bv)))
    err = np.where(both_finite, err, np.where(same_nonfinite, 0.0, np.inf))
    finite_a = av[np.isfinite(av)]
    span = float(finite_a.max() - finite_a.min()) if finite_a.size else 0.0
    return LayerComparison(
        layer=a.owners[0] if a.owners else a.name,
        a_tensor=a.name,
        b_tensor=b.name,
        matched_by=matched_by,
        shape=tuple(int(d) for d in av.shape),
        max_abs=float(err.max()) if err.size else 0.0,
        mean_abs=float(err.mean()) if err.size else 0.0,
        relative=_relative(np.where(np.isfinite(av), av, 0.0), err),
        range=span,
        b_dtype=b.dtype,
        scale=float(b.quant.scale[0]) if b.quant is not None else None,
        zero_point=int(b.quant.zero_point[0]) if b.quant is not None else None,
    )


def _inbound(model: Any) -> dict[str, tuple[str, ...]]:
    """Layer name -> the layers feeding it, from a functional model's config (empty for
    Sequential models and anything whose config cannot be had: the row before then stands in)."""
    from ..formats.keras_config import inbound_names

    try:
        entries = model.get_config().get("layers", [])
    except Exception:  # a subclassed model's get_config may raise anything
        return {}
    return {str(e["name"]): inbound_names(e) for e in entries if isinstance(e, dict) and "name" in e}


def _before(layer: str, seen: Mapping[str, float], inbound: Mapping[str, tuple[str, ...]], depth: int = 0) -> float | None:
    """The largest relative error among the compared layers feeding ``layer`` (through layers with
    no tensor of their own), or None when none is known."""
    if depth > 64:
        return None
    values = []
    for name in inbound.get(layer, ()):
        value = seen.get(name, None)
        if value is None:
            value = _before(name, seen, inbound, depth + 1)
        if value is not None:
            values.append(value)
    return max(values) if values else None


def _verdicts(
    rows: list[LayerComparison], tolerance: float, inbound: Mapping[str, tuple[str, ...]]
) -> tuple[list[LayerComparison], str | None, str | None]:
    """Rows with ``growth`` (over the layers feeding each, else the row before) and ``exceeds``;
    the first divergent and the largest-growth layer."""
    out: list[LayerComparison] = []
    seen: dict[str, float] = {}
    best: tuple[float, str] | None = None
    for i, row in enumerate(rows):
        growth = None
        prev = _before(row.layer, seen, inbound) if row.matched_by != "input" else None
        if prev is None and i and row.matched_by != "input":
            prev = out[-1].relative
        if prev is not None:
            growth = row.relative / max(prev, GROWTH_FLOOR) if math.isfinite(row.relative) else math.inf
            if row.relative > GROWTH_FLOOR and (best is None or growth > best[0]):
                best = (growth, row.layer)
        seen[row.layer] = max(seen.get(row.layer, 0.0), row.relative)
        out.append(dataclasses.replace(row, growth=growth, exceeds=not row.relative <= tolerance))
    first = next((r.layer for r in out if r.exceeds), None)
    return out, first, best[1] if best else None


# ------------------------------------------------------------------------------------------ entry


def _feeds(
    inputs: Any, specs: Sequence[Any], samples: int | None, seed: int,
    ranges: Mapping[str, tuple[float, float]] | None, hints: Mapping[str, Any], batch: int | None,
) -> list[dict[str, np.ndarray]]:  # fmt: skip
    if inputs is None:
        n = DEFAULT_SAMPLES if samples is None else int(samples)
        if n < 1:
            raise UserError(f"samples must be at least 1, not {n}")
        feed = generate_inputs(specs, seed=seed, batch=n, ranges=ranges, hints=dict(hints))
    elif isinstance(inputs, str | os.PathLike):
        feed = load_inputs(inputs, specs)
    else:
        feed = {k: np.asarray(v) for k, v in inputs.items()}
    sizes = {int(np.shape(v)[0]) for v in feed.values() if np.ndim(v)}
    if not batch or len(sizes) != 1:
        return [feed]
    (n,) = sizes
    return [{k: v[i : i + batch] for k, v in feed.items()} for i in range(0, n, batch)]


def _fixed_batch(runner: TFLiteRunner | None) -> int | None:
    if runner is None:
        return None
    fixed = {s.shape[0] for s in runner.inputs if s.shape and s.shape[0] is not None}
    return int(fixed.pop()) if len(fixed) == 1 else None


def compare_layers(
    reference: Any,
    candidate: Any,
    inputs: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    tolerance: float | None = None,
    samples: int | None = None,
    seed: int = 0,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    signature: str | None = None,
    unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> LayerwiseReport:
    """Compare ``reference`` (A: a Keras model file, a SavedModel Keras wrote, or a KerasRunner) with
    ``candidate`` (B: a ``.tflite`` converted from it, or another Keras-family artifact of it),
    layer by layer, on ``inputs`` (arrays by A's input names, or an ``.npz``; by default
    ``samples`` generated ones, seeded, in ``ranges``). ``tolerance`` is the relative error a layer
    may reach (default :data:`~tfmodelkit.verify.tolerances.LAYER_TOLERANCES`: "quantized" when B
    has quantized activations or int8 weights, "float16" for float16 weights, else "float"). A
    pair without layers on both sides is an UnsupportedError (exit code 2). See the module doc for the figures and how layers match.
    """
    say = progress or (lambda _msg: None)
    b_path = Path(getattr(candidate, "path", candidate))
    b_fmt = check_pair(getattr(reference, "path", reference), b_path)
    say("loading the reference's layers")
    a_where = Path(getattr(reference, "path", reference))
    model, loader = _keras_model(reference, unsafe)
    from ..loaders.keras import keras_io

    a_inputs = keras_io(model, a_where).inputs
    hints: dict[str, Any] = {}
    b_runner = None
    if b_fmt == "tflite":
        if not unsafe:
            from ..lint import require_safe

            require_safe(b_path)
        b_runner = TFLiteRunner(b_path, signature=signature, preserve_all_tensors=True)
        hints.update(b_runner.input_hints())
    if isinstance(reference, KerasRunner):
        hints.update(reference.input_hints())
    feeds = _feeds(inputs, a_inputs, samples, seed, ranges, hints, _fixed_batch(b_runner))
    say(f"running {a_where} with every layer as an output, then {b_path} keeping every tensor")
    a_rows, skipped = _keras_side(model, loader, a_where, feeds)
    notes = [f"layer {n} has no single output (shared or never called); not compared" for n in skipped]
    names = [layer.name for layer in model.layers]
    b_tensors, b_inputs, b_notes = _b_side(
        candidate, b_path, b_fmt, b_runner, feeds, names, str(model.name), a_inputs, signature, unsafe
    )
    notes += [n for n in b_notes if n not in notes]
    triples = _match(a_rows, b_tensors, b_inputs)
    kind = _kind(b_fmt, b_path, b_tensors)
    tol = float(tolerance) if tolerance is not None else LAYER_TOLERANCES[kind]
    rows, first, growth = _verdicts([_row(a, b_tensors[j], how) for a, j, how in triples], tol, _inbound(model))
    notes += _clipped_inputs(rows, a_rows)
    done = {a.name for a, _, _ in triples}
    unmatched = tuple(r.name for r in a_rows if r.owners and r.name not in done)
    if unmatched:
        shown = ", ".join(unmatched[:12]) + (" ..." if len(unmatched) > 12 else "")
        notes.append(
            f"{len(unmatched)} layer(s) without a tensor of their own in B (fused into the next, or no op): {shown}"
        )
    context = {
        "reference": str(a_where),
        "candidate": str(b_path),
        "samples": sum(_count(f) for f in feeds),
        "runs": len(feeds),
        "inputs_source": "generated" if inputs is None else "given",
        "quantized": kind == "quantized",
        "candidate_kind": kind,
    }
    return LayerwiseReport(tuple(rows), tol, first, growth, unmatched, tuple(notes), context)


def _b_side(
    candidate: Any, b_path: Path, b_fmt: str, b_runner: TFLiteRunner | None, feeds: Sequence[Mapping[str, np.ndarray]],
    names: Sequence[str], model: str, a_inputs: Sequence[TensorSpec], signature: str | None, unsafe: bool,
) -> tuple[list[_Tensor], dict[str, int], list[str]]:  # fmt: skip
    """B's tensors on ``feeds``, A's input name -> the B tensor standing for it, and notes."""
    if b_runner is not None:
        match = match_inputs(a_inputs, b_runner.inputs)
        if match.problem:
            raise UserError(f"{b_path}: {match.problem}")
        pairs = dict(match.pairs)
        tensors = _tflite_side(b_runner, [{pairs[k]: v for k, v in f.items() if k in pairs} for f in feeds], names, model)
        return tensors, _tflite_inputs(b_runner, tensors, pairs), []
    if b_fmt == "savedmodel":
        if not unsafe:
            from ..lint import require_safe

            require_safe(b_path)
        tensors = _graph_side(b_path, feeds, names, signature, a_inputs, model)
        wanted = {s.name for s in a_inputs}
        return tensors, {t.name: j for j, t in enumerate(tensors) if not t.owners and t.name in wanted}, []
    b_model, b_loader = _keras_model(candidate if isinstance(candidate, KerasRunner) else b_path, unsafe)
    from ..loaders.keras import keras_io

    match = match_inputs(a_inputs, keras_io(b_model, b_path).inputs)
    if match.problem:
        raise UserError(f"{b_path}: {match.problem}")
    pairs = dict(match.pairs)
    tensors, skipped = _keras_side(b_model, b_loader, b_path, [{pairs[k]: v for k, v in f.items() if k in pairs} for f in feeds])
    back = {b: a for a, b in pairs.items()}
    for t in tensors:
        if not t.owners:
            t.name = back.get(t.name, t.name)
    notes = [f"B's layer {n} has no single output (shared or never called); not compared" for n in skipped]
    return tensors, {t.name: j for j, t in enumerate(tensors) if not t.owners}, notes


#: What each side of a layerwise comparison may be.
A_FORMATS = ("keras_h5", "keras_zip", "savedmodel")
B_FORMATS = ("keras_h5", "keras_zip", "savedmodel", "tflite")


def check_pair(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> str:
    """Refuse a pair that cannot be compared layer by layer (UnsupportedError, exit code 2), without
    loading either model; return B's format. A must be a Keras model (a file, or a SavedModel with
    Keras metadata), B a TFLite model or another Keras-family artifact."""
    from ..formats import detect, read

    where = {"a": Path(a), "b": Path(b)}
    if where["b"].suffix.lower() == ".npz" and where["b"].is_file():
        raise UnsupportedError(f"{b}: golden outputs hold no layers; --layerwise needs the model itself as B")
    formats = {side: detect(path) for side, path in where.items()}
    if formats["a"] not in A_FORMATS:
        raise UnsupportedError(
            f"{a}: --layerwise compares a Keras model's layers (A: .h5, .keras or a SavedModel Keras wrote) "
            f"with its conversion; a {formats['a']} model has no Keras layers"
        )
    if formats["b"] not in B_FORMATS:
        raise UnsupportedError(
            f"{b}: --layerwise compares with a .tflite or a Keras-family model, not a {formats['b']}"
        )
    if formats["a"] == "savedmodel" and not read(where["a"], format="savedmodel").layers:
        raise UnsupportedError(
            f"{a}: a SavedModel without Keras metadata does not expose its layers; as A, --layerwise needs the "
            "Keras file it came from (or a SavedModel saved by tf_keras); it can be B"
        )
    return formats["b"]


def _clipped_inputs(rows: Sequence[LayerComparison], a_rows: Sequence[_Tensor]) -> list[str]:
    """A note per quantized input of B fed values outside what its quantization holds (they are
    clipped: the input itself is then the first divergent layer)."""
    values = {t.name: t.value for t in a_rows if not t.owners}
    out = []
    for r in rows:
        if r.matched_by != "input" or r.scale is None or r.zero_point is None or r.layer not in values:
            continue
        try:
            info = np.iinfo(np.dtype(r.b_dtype))
        except (TypeError, ValueError):
            continue
        lo, hi = (info.min - r.zero_point) * r.scale, (info.max - r.zero_point) * r.scale
        fed = np.asarray(values[r.layer], dtype=np.float64)
        if fed.size and (fed.min() < lo - r.scale / 2 or fed.max() > hi + r.scale / 2):
            out.append(
                f"input {r.layer}: the values fed span {fed.min():.4g} .. {fed.max():.4g}, B's {r.b_dtype} "
                f"quantization of it holds {lo:.4g} .. {hi:.4g} (its calibration range) and clips the rest; "
                "verify on inputs from the model's real range (--inputs, --input-range)"
            )
    return out


def _kind(b_fmt: str, b_path: Path, tensors: Sequence[_Tensor]) -> str:
    """Which :data:`LAYER_TOLERANCES` entry B calls for: "quantized" (quantized activations, or
    int8 weights: dynamic-range models quantize activations on the fly), "float16" (float16
    weights) or "float"."""
    if any(t.quant is not None for t in tensors):
        return "quantized"
    if b_fmt == "tflite":
        from ..formats import read

        dtypes = {w.dtype for w in read(b_path, format="tflite").weights}
        if dtypes & {"int8", "uint8", "int16", "int4"}:
            return "quantized"
        if "float16" in dtypes:
            return "float16"
    return "float"


def _count(feed: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feed.values()), None)
    return int(np.shape(first)[0]) if first is not None and np.ndim(first) else 1


def _tflite_inputs(
    runner: TFLiteRunner, tensors: Sequence[_Tensor], pairs: Mapping[str, str]
) -> dict[str, int]:
    """A's input name -> the B tensor standing for it: what a QUANTIZE op makes of the input (its
    rounding is the first error a quantized model adds), else the input tensor itself."""
    index_of = {t.index: j for j, t in enumerate(tensors)}
    quantized = {t.quantized_from: j for j, t in enumerate(tensors) if t.quantized_from is not None}
    tensor_of = {s.name: s.tensor for s in runner.inputs}
    by_name = {t.name: t.index for t in tensors}
    out = {}
    for a_name, b_name in pairs.items():
        index = by_name.get(tensor_of.get(b_name) or b_name)
        if index is None:
            continue
        out[a_name] = quantized.get(index, index_of[index])
    return out
