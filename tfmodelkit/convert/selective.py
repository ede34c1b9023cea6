"""Selective int8 quantization: chosen layers stay float (``--keep-float LAYER,...``), or the
fewest layers that make the model verify are found (``--keep-float auto``).

TensorFlow's own mechanism is the QuantizationDebugger: the converter calibrates the model
once (``_experimental_calibrate_only``), then ``mlir_quantize`` quantizes the calibrated model
with ``denylisted_nodes`` (ops, named by their output tensors, left in float with
Quantize/Dequantize around them). Calibration is the slow part; every further selection is a
requantization of the same calibrated model, so ``auto`` can try several.

A layer kept float takes with it the ops of other layers that read its outputs (an int8 reader
would quantize the output again with the scale its extreme channels set), except an op writing
a model output. ``auto`` adds one layer at a time, verifying each attempt on the conversion's
own verification inputs: the first layer where the attempt diverges from the Keras model
(:func:`~tfmodelkit.verify.layerwise.compare_layers`), else the one losing the most signal by
the debugger's per-op statistics.

Layer names are Keras's; TFLite names ops after the graph's name scopes (``model_1/dense_1/MatMul``).
Keras 3 enters each scope a second time while tracing, so every scope carries a ``_1`` suffix
(a layer ``dense`` is ``dense_1``, a layer ``dense_1`` is ``dense_1_1``): the suffix that
explains the most known layer names is taken. An op whose output is a model output is named
after the output (``StatefulPartitionedCall:0``); it belongs to the layer of its weights.

This runs in the converter's child process (it calibrates, which can crash like the converter).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TFModelKitError, UserError
from ..loaders.tf import quiet_fds
from ..util import first_line
from ..verify import SavedModelRunner, TFLiteRunner, compare_runners, load_inputs
from ..verify.tolerances import route_tolerances
from .base import Progress, VerifyOptions

AUTO = "auto"
#: Share of the model's layers ``auto`` may keep float unless ``max_float_layers`` says.
DEFAULT_MAX_SHARE = 0.25
#: Samples of the calibration data the per-layer statistics run on.
STAT_SAMPLES = 32
_SUFFIXES = ("", "_1", "_2", "_3")


@dataclass
class KeepFloat:
    """What the user asked to keep float: ``layers``, or None for ``auto`` (at most ``max_layers``)."""

    layers: tuple[str, ...] | None
    max_layers: int | None = None
    #: The model's Keras layer names where known (the source's, or the SavedModel's Keras metadata).
    known_layers: tuple[str, ...] = ()
    #: The Keras model (file or Keras-written SavedModel) ``auto`` compares layer by layer.
    reference: str | None = None


def keep_float_request(value: str | Sequence[str] | None, max_float_layers: int | None,
                       known_layers: Iterable[str] = ()) -> KeepFloat | None:  # fmt: skip
    """``--keep-float`` as given (``"a,b"``, ``"auto"`` or a list of names) checked; None when unset."""
    if value is None or (not isinstance(value, str) and not value):
        if max_float_layers is not None:
            raise UserError("--max-float-layers is only used with --keep-float auto")
        return None
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    if not names:
        raise UserError("--keep-float: give layer names (comma-separated) or 'auto'")
    if max_float_layers is not None and max_float_layers < 1:
        raise UserError(f"--max-float-layers {max_float_layers}: give at least 1")
    known = tuple(known_layers)
    if names == [AUTO]:
        return KeepFloat(None, max_float_layers, known)
    if AUTO in names:
        raise UserError("--keep-float auto finds the layers itself; give either 'auto' or layer names")
    if max_float_layers is not None:
        raise UserError("--max-float-layers is only used with --keep-float auto")
    return KeepFloat(tuple(dict.fromkeys(names)), None, known)


def check_request(quantize: str, keep_float: str | Sequence[str] | None, max_float_layers: int | None,
                  known_layers: Sequence[str] | None) -> KeepFloat | None:  # fmt: skip
    """The request checked against ``quantize`` and, where known, the model's layer names
    (before any TensorFlow work: names only the converted graph knows are checked there)."""
    request = keep_float_request(keep_float, max_float_layers, known_layers or ())
    if request is None:
        return None
    if quantize != "int8":
        raise UserError("--keep-float is only used with --quantize int8")
    unknown = [n for n in request.layers or () if known_layers and n not in known_layers]
    if unknown:
        raise UserError(
            f"--keep-float {', '.join(unknown)}: no such layer; the model's layers are: {', '.join(known_layers or ())}"
        )
    return request


@dataclass
class GraphLayer:
    """A layer as the converted graph has it: its ops' output tensor names, in graph order."""

    name: str
    nodes: list[str] = field(default_factory=list)
    #: Ops of other layers that read this layer's outputs, and those layers: they stay float with
    #: it, or they would quantize its output again (with the scale its extreme channels set).
    readers: list[str] = field(default_factory=list)
    reader_layers: list[str] = field(default_factory=list)

    @property
    def float_nodes(self) -> list[str]:
        return list(dict.fromkeys(self.nodes + self.readers))


def _scopes(tensor_name: str) -> list[str]:
    """The name scopes of every part of a (fused, ``;``-joined) tensor name, innermost last."""
    out: list[str] = []
    for part in tensor_name.split(";"):
        segs = part.split("/")[:-1]
        out += segs
    return out


def _suffix(segments: set[str], known: Sequence[str]) -> str:
    """The scope suffix under which the most ``known`` layer names appear among ``segments``."""
    best, count = "", -1
    for suffix in _SUFFIXES:
        n = sum(1 for k in known if k + suffix in segments)
        if n > count:
            best, count = suffix, n
    return best


def _op_tensors(interp: Any) -> list[tuple[list[str], list[str]]]:
    """(output tensor names, constant input tensor names) of each op, in execution order."""
    ops = interp._get_ops_details()  # noqa: SLF001 - LiteRT has no public op listing
    produced = {i for op in ops for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interp.get_input_details()}
    out = []
    for op in ops:
        names = [interp._get_tensor_details(i, 0)["name"] for i in op["outputs"]]  # noqa: SLF001
        consts = [
            interp._get_tensor_details(i, 0)["name"]  # noqa: SLF001
            for i in op["inputs"]
            if i >= 0 and i not in produced and i not in graph_inputs
        ]
        out.append((names, consts))
    return out


_SUFFIXED = re.compile(r"_1$")


def _keras3_suffixed(ops: Sequence[tuple[list[str], list[str]]]) -> bool:
    """Whether the layer scopes (``model/<layer>/op``) all carry Keras 3's ``_1``, the model's
    scope too, and stay distinct without it: then the layers are named without it."""
    roots, scopes = set(), set()
    for outs, consts in ops:
        for n in outs + consts:
            s = _scopes(n)
            if len(s) > 1:
                roots.add(s[0])
                scopes.add(s[1])
    if not scopes or not all(_SUFFIXED.search(x) for x in roots | scopes):
        return False
    return len({_SUFFIXED.sub("", x) for x in scopes}) == len(scopes)


def graph_layers(model: bytes, known: Sequence[str] = ()) -> list[GraphLayer]:
    """The layers of a converted (float or calibrated) TFLite model with the ops each owns, in
    graph order. With ``known`` Keras layer names, only those; else each op's scope below the
    model's own (``model/<layer>/op``)."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_fds():
        interp = Interpreter(model_content=model)
    ops = _op_tensors(interp)
    segments = {s for outs, consts in ops for n in outs + consts for s in _scopes(n)}
    suffix = _suffix(segments, known) if known else ""
    by_scope = {k + suffix: k for k in known}
    if suffix:
        by_scope.update({k: k for k in known if k not in by_scope})
    strip = not known and _keras3_suffixed(ops)
    layers: dict[str, GraphLayer] = {}
    owners: list[str | None] = []
    for outs, consts in ops:
        owner = None
        for names in (outs, consts):  # an output op is named after the output: see its weights
            for n in names:
                scopes = _scopes(n)
                if known:
                    owner = next((by_scope[s] for s in reversed(scopes) if s in by_scope), None)
                elif scopes:
                    owner = scopes[1] if len(scopes) > 1 else scopes[0]
                    owner = _SUFFIXED.sub("", owner) if strip else owner
                if owner:
                    break
            if owner:
                break
        owners.append(owner)
        if owner:
            layers.setdefault(owner, GraphLayer(owner)).nodes.extend(outs)
    _add_readers(interp, owners, layers)
    return list(layers.values())


def _add_readers(interp: Any, owners: Sequence[str | None], layers: Mapping[str, GraphLayer]) -> None:
    """Fill each layer's ``readers``: the ops of other layers whose inputs its ops produce. An op
    writing a model output is left out: it stays int8 so that the output keeps the quantization
    (and the int8 tolerance of so many output steps) full int8 gives it; name its layer to keep it
    float too."""
    ops = interp._get_ops_details()  # noqa: SLF001
    made_by = {i: owners[k] for k, op in enumerate(ops) for i in op["outputs"]}
    outputs = {d["index"] for d in interp.get_output_details()}
    for k, op in enumerate(ops):
        if outputs & set(op["outputs"]):
            continue
        sources = {made_by.get(i) for i in op["inputs"] if i >= 0} - {None, owners[k]}
        names = [interp._get_tensor_details(i, 0)["name"] for i in op["outputs"]]  # noqa: SLF001
        for source in sources:
            g = layers[str(source)]
            g.readers.extend(names)
            if owners[k] and owners[k] not in g.reader_layers:
                g.reader_layers.append(str(owners[k]))


def resolve(request: KeepFloat, layers: Sequence[GraphLayer]) -> list[GraphLayer]:
    """The graph layers the user named; an unknown name is an error listing the layers there are."""
    by_name = {g.name: g for g in layers}
    listed = ", ".join(g.name for g in layers) or "none"
    chosen = []
    for name in request.layers or ():
        if name in by_name:
            chosen.append(by_name[name])
        elif name in request.known_layers:
            raise UserError(
                f"--keep-float {name}: the converter made no ops of this layer (it holds no computation "
                f"TFLite keeps); layers with ops: {listed}"
            )
        else:
            raise UserError(f"--keep-float {name}: no such layer; the model's layers are: {listed}")
    return chosen


def positional(dataset: Callable[[], Iterable[Mapping[str, np.ndarray]]], order: Sequence[str],
               limit: int) -> Callable[[], Iterable[list[np.ndarray]]]:  # fmt: skip
    """The calibration dataset (dicts) as the debugger takes it: lists in the model's input order."""

    def gen() -> Iterable[list[np.ndarray]]:
        for i, batch in enumerate(dataset()):
            if i >= limit:
                return
            yield [np.asarray(batch[k]) for k in order]

    return gen


def _input_order(model: bytes, key: str) -> list[str]:
    """Signature input names of ``model`` in the order of its subgraph's inputs."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_fds():
        interp = Interpreter(model_content=model)
    sigs = interp.get_signature_list()
    if key not in sigs:
        key = next(iter(sigs))
    details = interp.get_signature_runner(key).get_input_details()
    index = {d["index"]: name for name, d in details.items()}
    return [index[d["index"]] for d in interp.get_input_details()]


def _lost_signal(float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int) -> float:
    """The share of each channel's signal that quantization lost, averaged over channels: about
    0.01 for a well-quantized tensor, near 1 where a few extreme channels set a scale that
    rounds every other channel to nothing."""
    f = np.asarray(float_values, dtype=np.float64)
    q = (np.asarray(quantized).astype(np.int64) - zero_point) * float(scale)
    if f.ndim == 0 or f.size == 0:
        return 0.0
    axes = tuple(range(f.ndim - 1))
    err = np.sqrt(np.mean((q - f) ** 2, axis=axes)) if axes else np.abs(q - f)
    ref = np.sqrt(np.mean(f**2, axis=axes)) if axes else np.abs(f)
    live = ref > 0
    if not live.any():
        return 0.0
    return float(np.mean(np.minimum(1.0, err[live] / ref[live])))


class _Remembered:
    """A reference runner that runs each feed once: every attempt of ``auto`` compares against
    the same reference outputs."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._seen: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import hashlib

        key = tuple(
            (k, a.dtype.str, a.shape, hashlib.sha1(a.tobytes()).hexdigest())
            for k, a in sorted((k, np.ascontiguousarray(v)) for k, v in feed.items())
        )
        if key not in self._seen:
            self._seen[key] = self._runner.run(feed)
        return self._seen[key]


class Attempts:
    """Verifies candidate flatbuffers as the conversion's own verification will (same inputs,
    same tolerances), against reference outputs computed once."""

    def __init__(
        self, src_path: Path, key: str, options: VerifyOptions, held_out: Mapping[str, Any] | None
    ) -> None:
        self.reference = _Remembered(SavedModelRunner(src_path, signature=key, safe_mode=False))
        self.key, self.options = key, options
        # The final verification's inputs: --inputs, else the calibration samples held out of it.
        self.feed = load_inputs(options.inputs, self.reference.inputs) if options.inputs else held_out
        self.folder = Path(tempfile.mkdtemp(prefix="keep-float-"))
        self.count = 0

    def __call__(self, model: bytes) -> tuple[bool, float]:
        """(whether ``model`` verifies, how many times its worst output's error is over its
        tolerance: below 1 passes, inf when no tolerance passes)."""
        self.count += 1
        path = self.folder / f"attempt{self.count}.tflite"
        path.write_bytes(model)
        self.last = path
        candidate = TFLiteRunner(path, signature=self.key)
        o = self.options
        atol, rtol, steps = route_tolerances("int8", o.atol, o.rtol)
        report = compare_runners(
            self.reference, candidate, feed=self.feed, seed=o.seed, samples=o.samples, batch=o.batch,
            ranges=o.ranges, shapes=o.shapes, atol=atol, rtol=rtol, quantized_steps=steps,
        )  # fmt: skip
        worst = 0.0
        for out in report.outputs:
            if out.min_atol is None:
                worst = float("inf") if not out.ok else worst
            else:
                worst = max(
                    worst, out.min_atol / out.atol if out.atol > 0 else (0.0 if out.ok else float("inf"))
                )
        return report.ok, worst


def _prepared(tf: Any, converter: Any) -> Any:
    # The debugger calibrates only (_experimental_calibrate_only), and TF then still applies the
    # converter's integer I/O types to the float, calibrated model, which fails: the I/O types
    # are set on the quantized model afterwards (_io_types).
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    return converter


def calibrated_debugger(tf: Any, converter: Any, refreeze: Callable[[Any], Any], source: object,
                        dataset: Callable[[], Iterable[list[np.ndarray]]]) -> Any:  # fmt: skip
    """A QuantizationDebugger over ``converter``, calibrated. ``refreeze(converter)`` gives the
    same conversion over the loaded signatures, for a SavedModel whose variables
    ``from_saved_model`` leaves unfrozen (calibration then fails in READ_VARIABLE)."""
    make = tf.lite.experimental.QuantizationDebugger
    try:
        with quiet_fds(replay=False):
            return make(converter=_prepared(tf, converter), debug_dataset=dataset)
    except Exception as e:
        text = str(e)
        if "lift variables" in text:
            raise UserError(
                f"{source}: --keep-float needs a TF2 SavedModel; a TF1 graph model (reference variables) "
                "converts through TF1's converter, which has no selective quantization"
            ) from None
        if "read_variable" not in text.lower():
            raise UserError(
                f"{source}: calibrating for selective quantization failed: {first_line(e)}"
            ) from None
    try:
        with quiet_fds(replay=False):
            return make(converter=_prepared(tf, refreeze(converter)), debug_dataset=dataset)
    except Exception as e:
        raise UserError(f"{source}: calibrating for selective quantization failed: {first_line(e)}") from None


def requantized(tf: Any, debugger: Any, nodes: Sequence[str], io: tuple[Any, Any]) -> bytes:
    """The calibrated model quantized with ``nodes`` left in float, with the I/O types ``io``
    (ValueError when an integer type is asked for an input or output that stays float)."""
    from tensorflow.lite.python.util import modify_model_io_type

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(nodes) or None)
    with quiet_fds(replay=False):
        debugger.options = options
        model = bytes(debugger.get_nondebug_quantized_model())
        in_type, out_type = (t or tf.float32 for t in io)
        return bytes(modify_model_io_type(model, in_type, out_type))


def layer_errors(tf: Any, debugger: Any, layers: Sequence[GraphLayer],
                 dataset: Callable[[], Iterable[list[np.ndarray]]]) -> dict[str, float]:  # fmt: skip
    """Per layer, the worst share of signal its ops lose to quantization (:func:`_lost_signal`),
    each op measured from the same quantized input on both sides (the debugger's NumericVerify)."""
    make = tf.lite.experimental
    with quiet_fds(replay=False):
        debugger.options = make.QuantizationDebugOptions()
        instrumented = debugger.get_debug_quantized_model()
        # Built from the model's bytes so that the interpreter keeps every tensor: the float
        # side of each NumericVerify op is read after the run.
        stats = make.QuantizationDebugger(
            quant_debug_model_content=instrumented, debug_dataset=dataset,
            debug_options=make.QuantizationDebugOptions(layer_direct_compare_metrics={"lost": _lost_signal}),
        )  # fmt: skip
        stats.run()
    prefix = "NumericVerify/"
    errors = {g.name: 0.0 for g in layers}
    owner = sorted(((n, g.name) for g in layers for n in g.nodes), key=lambda p: -len(p[0]))
    for name, metrics in (stats.layer_statistics or {}).items():
        tensor = name[len(prefix) :] if name.startswith(prefix) else name
        layer = next((g for n, g in owner if tensor.startswith(n)), None)
        if layer is not None:
            value = float(metrics.get("lost", 0.0))
            errors[layer] = max(errors[layer], value if np.isfinite(value) else 1.0)
    return errors


def _kept_text(kept: Sequence[str], readers: Mapping[str, Sequence[str]]) -> str:
    """``outliers (and the ops of mix reading it)``."""
    parts = []
    for name in kept:
        by = [r for r in readers.get(name, ()) if r not in kept]
        parts.append(name + (f" (and the ops of {', '.join(by)} reading it)" if by else ""))
    return ", ".join(parts) or "none"


def _bytes_text(model: int, full: int) -> str:
    extra = model - full
    share = f", {extra / full:+.0%}" if full else ""
    return f"{model:,} bytes against {full:,} for full int8 ({extra:+,} bytes{share})"


class _NextLayer:
    """Which layer ``auto`` keeps float next: the first layer where the current model diverges
    from the Keras reference (:func:`~tfmodelkit.verify.layerwise.compare_layers`), when there is
    a reference with layers; else, or when that layer is no candidate, the one that loses the
    most signal (:func:`layer_errors`)."""

    def __init__(self, request: KeepFloat, layers: Sequence[GraphLayer], errors: Mapping[str, float],
                 check: Attempts, progress: Progress) -> None:  # fmt: skip
        self.by_name = {g.name: g for g in layers}
        self.ranked = sorted(layers, key=lambda g: -errors[g.name])
        self.check, self.progress = check, progress
        self.reference: Any = None
        if request.reference:
            try:
                from ..verify import KerasRunner

                self.reference = KerasRunner(Path(request.reference))  # safe mode
            except TFModelKitError as e:
                progress.say(f"[keep-float] no layer-by-layer comparison ({first_line(e)})")

    def __call__(self, tried: Sequence[str], attempt: dict[str, Any]) -> GraphLayer | None:
        if self.reference is not None:
            from ..verify.layerwise import compare_layers

            try:
                report = compare_layers(
                    self.reference, self.check.last, inputs=self.check.feed, seed=self.check.options.seed
                )
            except TFModelKitError as e:
                self.progress.say(f"[keep-float] no layer-by-layer comparison ({first_line(e)})")
                self.reference = None
            else:
                first = report.first_divergent_layer
                attempt["first_divergent_layer"] = first
                if first in self.by_name and first not in tried:
                    return self.by_name[first]
        return next((g for g in self.ranked if g.name not in tried), None)


def _auto(tf: Any, debugger: Any, layers: Sequence[GraphLayer], request: KeepFloat, io: tuple[Any, Any],
          check: Attempts, dataset: Any, progress: Progress, details: dict[str, Any]) -> tuple[list[GraphLayer], bytes]:  # fmt: skip
    """Layers kept float one at a time until the model verifies (:class:`_NextLayer` picks each):
    (the layers, the model); the best attempt when none within the limit does."""
    errors = layer_errors(tf, debugger, layers, dataset)
    limit = request.max_layers or max(1, int(len(layers) * DEFAULT_MAX_SHARE))
    details["layer_errors"] = {
        g.name: round(errors[g.name], 4) for g in sorted(layers, key=lambda g: -errors[g.name])
    }
    details["max_float_layers"] = limit
    attempts: list[dict[str, Any]] = []
    kept: list[GraphLayer] = []
    tried: list[str] = []
    model = requantized(tf, debugger, [], io)
    ok, worst = check(model)
    best = (worst, list(kept), model)
    attempts.append({"kept_float": [], "ok": ok, "worst": worst, "bytes": len(model)})
    progress.say(
        f"[keep-float] full int8: {'verifies' if ok else f'fails (worst output {worst:.3g}x its tolerance)'}"
    )
    choose = _NextLayer(request, layers, errors, check, progress)
    while not ok and len(kept) < limit:
        layer = choose(tried, attempts[-1])
        if layer is None:
            break
        tried.append(layer.name)
        try:
            trial = requantized(tf, debugger, [n for g in [*kept, layer] for n in g.float_nodes], io)
        except ValueError as e:  # an output of this layer would stay float under integer I/O
            attempts.append(
                {"kept_float": [g.name for g in [*kept, layer]], "ok": False, "skipped": first_line(e)}
            )
            continue
        kept.append(layer)
        model = trial
        ok, worst = check(model)
        attempts.append({"kept_float": [g.name for g in kept], "ok": ok, "worst": worst, "bytes": len(model)})
        verdict = "verifies" if ok else f"fails (worst output {worst:.3g}x its tolerance)"
        progress.say(f"[keep-float] + {layer.name} (lost signal {errors[layer.name]:.2f}): {verdict}")
        if worst < best[0]:
            best = (worst, list(kept), model)
    details["keep_float_attempts"] = attempts
    if ok:
        return kept, model
    progress.warn(
        f"no set of at most {limit} float layers verifies (--max-float-layers); the best attempt keeps "
        f"{', '.join(g.name for g in best[1]) or 'none'} float (worst output {best[0]:.3g}x its tolerance)"
    )
    return best[1], best[2]


def quantize_selectively(
    tf: Any, converter: Any, refreeze: Callable[[Any], Any], request: KeepFloat, *, source: object,
    src_path: Path, key: str, verify: VerifyOptions, progress: Progress, details: dict[str, Any],
    held_out: Mapping[str, Any] | None = None,
) -> bytes:  # fmt: skip
    """The int8 flatbuffer of ``converter`` (set up for int8, with its representative dataset)
    with ``request``'s layers left in float; ``details`` gets ``kept_float`` and the bytes
    against full int8 (and for ``auto`` every attempt and the per-layer errors). ``auto``'s attempts
    are verified on what the conversion's verification runs: ``verify.inputs``, else ``held_out``
    (calibration samples kept out of calibration), else generated inputs."""
    io = (converter.inference_input_type, converter.inference_output_type)
    calibration = converter.representative_dataset
    order: list[str] = []
    dataset = positional(lambda: calibration(), order, STAT_SAMPLES)
    debugger = calibrated_debugger(tf, converter, refreeze, source, dataset)
    order += _input_order(debugger.calibrated_model, key)
    layers = graph_layers(debugger.calibrated_model, request.known_layers)
    if request.layers is None:
        check = Attempts(src_path, key, verify, held_out)
        kept, model = _auto(tf, debugger, layers, request, io, check, dataset, progress, details)
        full = next(a["bytes"] for a in details["keep_float_attempts"] if not a["kept_float"])
    else:
        kept = resolve(request, layers)
        try:
            model = requantized(tf, debugger, [n for g in kept for n in g.float_nodes], io)
        except ValueError as e:
            raise UserError(
                f"--keep-float {','.join(request.layers)}: a model input or output would stay float, "
                f"which the integer I/O types asked for cannot be ({first_line(e)})"
            ) from None
        full = len(requantized(tf, debugger, [], io))
    details.update(
        keep_float=AUTO if request.layers is None else list(request.layers), kept_float=[g.name for g in kept],
        kept_float_nodes=list(dict.fromkeys(n for g in kept for n in g.float_nodes)),
        float_readers={g.name: g.reader_layers for g in kept if g.reader_layers}, full_int8_bytes=full, kept_float_bytes=len(model),
    )  # fmt: skip
    text = _kept_text(details["kept_float"], details["float_readers"])
    progress.say(f"[keep-float] kept float: {text}; {_bytes_text(len(model), full)}")
    return model


def kept_float_line(details: Mapping[str, Any]) -> str | None:
    """``kept float: a, b (N bytes against M for full int8 ...)`` from a conversion's details
    (a route's TFLite step included), or None when nothing was asked to stay float."""
    step = details.get("tflite", details)
    if not isinstance(step, Mapping) or "kept_float" not in step:
        return None
    return f"kept float: {_kept_text(step['kept_float'], step.get('float_readers', {}))} ({_bytes_text(int(step['kept_float_bytes']), int(step['full_int8_bytes']))})"


__all__ = [
    "AUTO",
    "DEFAULT_MAX_SHARE",
    "GraphLayer",
    "KeepFloat",
    "graph_layers",
    "check_request",
    "keep_float_request",
    "kept_float_line",
    "quantize_selectively",
    "resolve",
]
