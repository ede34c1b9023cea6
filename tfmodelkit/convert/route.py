"""``convert SRC DST``: pick the route from the source format and the destination suffix.

A ``.tflite`` destination is a TFLite model, a ``.keras`` (or ``.weights.h5``) a native Keras 3
file (:mod:`.to_keras`), ``DST/model.json`` a TF.js model, a name without a model-file suffix a
SavedModel folder; a suffix no route writes (``.onnx``, ``.pb``...) is refused. Routes that
need a SavedModel on the way (``.h5``/``.keras``/checkpoint/TF1 graph -> ``.tflite``, TF1 graph ->
TF.js) go through a temporary one; every step verifies itself, and the report carries every
step's figures.

TF1 graphs (a frozen ``.pb``/``.pbtxt``, a ``.meta`` with its checkpoint, or a checkpoint with
``meta`` or with its ``P.meta`` beside it and no model code) take :mod:`.graph_to_savedmodel` as
their first step, with its tensor options (``input_tensors``, ``output_tensors``, ``input_names``,
``output_names``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import TFModelKitError, UnsupportedError, UserError
from ..formats import detect, read
from ..options import checked_options, given, keyword_names
from .base import ConversionReport, ProgressSink, VerifyOptions
from .calibration import check_options as check_calibration_options
from .savedmodel_to_tflite import QUANTIZE_MODES, TensorListError

#: What ``convert`` writes, by the destination's name (anything else names a SavedModel folder).
DESTINATIONS = {".tflite": "tflite", ".keras": "keras_zip", ".weights.h5": "keras_weights"}
#: Model-file suffixes no route writes: refused rather than taken as a SavedModel folder's name.
REFUSED_SUFFIXES = (
    ".onnx", ".pb", ".pbtxt", ".pt", ".pth", ".h5", ".hdf5", ".npz", ".npy", ".safetensors",
    ".mlmodel", ".mlpackage", ".ckpt", ".index", ".bin", ".zip", ".engine", ".plan", ".trt", ".caffemodel",
    ".params", ".pkl", ".joblib", ".gguf", ".lite", ".tfl",
)  # fmt: skip


def destination_format(dst: str | os.PathLike[str]) -> str:
    """"tflite", "keras_zip", "keras_weights" or "savedmodel" (a folder), from the destination's
    name; a model-file suffix that no route writes is refused with the list of destinations."""
    name = str(dst).lower().rstrip("/\\")
    for suffix, kind in DESTINATIONS.items():
        if name.endswith(suffix):
            return kind
    suffix = os.path.splitext(name)[1]
    if suffix in REFUSED_SUFFIXES:
        raise UserError(
            f"{dst}: no route writes a {suffix} file; destinations: "
            + ", ".join(f"{k} ({v})" for k, v in DESTINATIONS.items()) + ", a folder (savedmodel)"
        )
    return "savedmodel"


def _step_options(step: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``step`` (a conversion function) takes."""
    names = keyword_names(step)
    return {k: v for k, v in options.items() if k in names}


#: The TF.js writers' default shard size (``tfjs_write.DEFAULT_SHARD_SIZE``, 4 MiB as TF.js
#: writes them; a test keeps the two equal): ``convert`` passes it on only when changed.
TFJS_SHARD_SIZE = 4 * 1024 * 1024


def is_tfjs_destination(dst: str | os.PathLike[str]) -> bool:
    """A TF.js model is written as ``DST/model.json`` (:mod:`.to_tfjs`)."""
    return Path(str(dst)).name == "model.json"


def _to_tfjs(src: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    from .to_tfjs import to_tfjs

    _refuse_unused(src, "TF.js", options, [to_tfjs])
    return to_tfjs(src, dst, **_step_options(to_tfjs, options))


def _refuse_unused(src: str, route: str, options: dict[str, Any], steps: list[Any]) -> None:
    """Options the caller set that no step of the route uses: refused, never dropped."""
    defaults = {k: p.default for k, p in inspect.signature(convert).parameters.items()}
    used = set().union(*(keyword_names(step) for step in steps))
    unused = sorted(k for k, v in given(options, defaults).items() if k not in used)
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise UserError(f"{src}: {flags} do{'es' if len(unused) == 1 else ''} not apply to a {route} conversion")


#: Formats that are TF1 graphs whatever the options (checkpoints are when given a graph).
GRAPH_FORMATS = ("graphdef", "metagraph")
#: ``P-00000-of-00002`` (or the ``?????`` pattern): its ``.meta`` is ``P.meta``.
_SHARD_SUFFIX = re.compile(r"-(\d{5}|\?{5})-of-\d{5}$")


def graph_source(src: str, fmt: str, options: dict[str, Any]) -> tuple[str, str | None] | None:
    """``(source, meta)`` when ``src`` converts as a TF1 graph (:mod:`.graph_to_savedmodel`), else None.

    A checkpoint is one when given ``meta``, or when no model code (``model``/``architecture``)
    is given and its ``P.meta`` sits beside it (``source`` is then its prefix); a V1 checkpoint
    without a graph is refused (no model code restores one)."""
    meta, code = options.get("meta"), options.get("model") or options.get("architecture")
    if fmt in GRAPH_FORMATS:
        if meta is not None:
            raise UserError(f"{src}: --meta applies to a checkpoint source; a {fmt} is its own graph")
        return src, None
    if fmt not in ("checkpoint", "checkpoint_v1"):
        return None
    if meta is not None and code:
        raise UserError(
            f"{src}: give --meta (the TF1 graph) or --model/--architecture (code that rebuilds the model), not both"
        )
    if code:
        return None
    prefix = str(read(src).metadata.get("prefix") or src)
    if meta is not None:
        return prefix, str(meta)
    beside = _SHARD_SUFFIX.sub("", prefix) + ".meta"
    if Path(beside).is_file():
        return prefix, beside
    if fmt == "checkpoint_v1":
        raise UserError(f"{src}: a V1 checkpoint converts with its graph: pass --meta GRAPH.meta")
    return None


def _first_step(src: str, fmt: str, options: dict[str, Any]) -> Callable[..., ConversionReport] | None:
    """The conversion that makes the SavedModel (None for a SavedModel source)."""
    if fmt == "savedmodel":
        return None
    if fmt in ("keras_h5", "keras_zip"):
        from .keras_to_savedmodel import keras_to_savedmodel

        return keras_to_savedmodel
    if graph_source(src, fmt, options) is not None:
        from .graph_to_savedmodel import graph_to_savedmodel

        return graph_to_savedmodel
    if fmt == "checkpoint":
        from .ckpt_to_savedmodel import ckpt_to_savedmodel

        return ckpt_to_savedmodel
    raise UnsupportedError(f"{src}: no route from a {fmt} to a SavedModel")


def _to_savedmodel(src: str, fmt: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    step = _first_step(src, fmt, options)
    if step is None:
        raise UnsupportedError(f"{src}: no route from a {fmt} to a SavedModel")
    graph = graph_source(src, fmt, options)
    if graph is not None:  # a checkpoint's prefix and its graph
        source, meta = graph
        return step(source, dst, **_step_options(step, {**options, "meta": meta}))
    return step(src, dst, **_step_options(step, options))


def _second_step(target: str) -> tuple[Callable[..., ConversionReport], Any]:
    """The step from the temporary SavedModel to ``target``, and the context to run both in."""
    if target == "tfjs":
        from .savedmodel_to_tfjs import savedmodel_to_tfjs

        return savedmodel_to_tfjs, contextlib.nullcontext()
    from .savedmodel_to_tflite import converter_standby, savedmodel_to_tflite

    # The converter's child process imports TensorFlow while the SavedModel is made.
    return savedmodel_to_tflite, converter_standby()


def _through_savedmodel(
    src: str, fmt: str, dst: str, options: dict[str, Any], target: str = "tflite"
) -> tuple[ConversionReport, ConversionReport]:
    """Two steps through a temporary SavedModel; the final step writes ``dst`` atomically.
    Errors of the second step name the source, not the temporary folder."""
    step, context = _second_step(target)
    layers = _layer_names(src)
    if target == "tflite":  # --keep-float said wrong before the first step runs (the second checks again)
        from .selective import check_request

        check_request(options["quantize"], options["keep_float"], options["max_float_layers"], layers)
    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-convert-"))
    temporary = str(work / "savedmodel")
    label = f"{src} (as a SavedModel)"
    try:
        with context:
            # A TF1 graph's temporary SavedModel holds its variables as constants: TF 2.21's TFLite
            # converter does not lift TF0.x/1.x ref variables (`Variable` ops) and fails with
            # "'tf.VariableV2' op is illegal in a TFLite pipeline"; TF.js freezes them anyway.
            freeze = {"freeze": True} if graph_source(src, fmt, options) else {}
            first = _to_savedmodel(
                src, fmt, temporary, {**options, "overwrite": False, "keep_failed": False, **freeze}
            )
            if not first.ok:
                return first, first
            extra: dict[str, Any] = {"source_label": label} if "source_label" in keyword_names(step) else {}
            if "source_model" in keyword_names(step):
                extra["source_model"] = src
            try:
                second = step(
                    temporary, dst, **_step_options(step, {**options, "signature": "serving_default"}), **extra
                )
            except TFModelKitError as e:
                if temporary not in str(e):
                    raise
                raise type(e)(str(e).replace(temporary, label)) from None
            if temporary in second.source:
                second.source = label
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for report in {id(first): first, id(second): second}.values():
        _relabel(report, str(work), label)
    return first, second


def _relabel(report: ConversionReport, work: str, label: str) -> None:
    """Paths inside the (deleted) temporary folder, in the report's figures, named as the source."""
    pattern = re.compile(re.escape(work) + r"[^\s'\",)]*")

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(label, value) if work in value else value
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(fix(v) for v in value)
        return value

    report.verification = fix(report.verification)
    report.details = fix(report.details)
    report.warnings = fix(report.warnings)


def _joined(src: str, fmt: str, dst: str, target: str, first: ConversionReport, second: ConversionReport) -> ConversionReport:
    """One report of the two steps (or of the first, when it failed verification)."""
    if first is second:  # the intermediate SavedModel failed verification
        first.destination = dst
        first.route.append(target)
        first.warnings.append(f"stopped before {_TARGET_NAMES[target]}: the intermediate SavedModel failed verification")
        return first
    return ConversionReport(
        source=src,
        source_format=fmt,
        destination=second.destination or dst,
        route=[fmt, "savedmodel", target],
        loader=first.loader,
        timings={**{f"savedmodel.{k}": v for k, v in first.timings.items()},
                 **{f"{target}.{k}": v for k, v in second.timings.items()}},
        verification=first.verification + second.verification,
        warnings=first.warnings + second.warnings,
        details={"savedmodel": first.details, target: second.details},
        ok=first.ok and second.ok,
        kept_failed=second.kept_failed,
        calibration=second.calibration,
    )  # fmt: skip


_TARGET_NAMES = {"tflite": "TFLite", "tfjs": "TF.js"}


def _convert_to_tfjs(src: str, fmt: str, dst: str, options: dict[str, Any], tf1_graph: bool) -> ConversionReport:
    from .tfjs_write import QUANTIZE as TFJS_QUANTIZE

    quantize = options["quantize"]
    if quantize not in TFJS_QUANTIZE:  # before any step runs
        raise UserError(f"--quantize {quantize!r}: a TF.js destination takes {', '.join(TFJS_QUANTIZE)}")
    return _graph_to_tfjs(src, fmt, dst, options) if tf1_graph else _to_tfjs(src, dst, options)


def _graph_to_tfjs(src: str, fmt: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    """A TF1 graph -> a temporary SavedModel -> a TF.js graph model."""
    from .graph_to_savedmodel import graph_to_savedmodel
    from .savedmodel_to_tfjs import savedmodel_to_tfjs

    _refuse_unused(src, f"{fmt} -> TF.js", options, [graph_to_savedmodel, savedmodel_to_tfjs])
    first, second = _through_savedmodel(src, fmt, dst, options, target="tfjs")
    return _joined(src, fmt, dst, "tfjs", first, second)


def _to_keras(src: str, route: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    from .to_keras import to_keras

    _refuse_unused(src, route, options, [to_keras])
    return to_keras(src, dst, **_step_options(to_keras, options))


def _layer_names(src: str) -> list[str] | None:
    """The source's layer names (what ``--keep-float`` takes), None when its description has none."""
    try:
        return [layer.name for layer in read(src).layers] or None
    except TFModelKitError:
        return None


def _has_rnn_layers(src: str) -> bool:
    from ..lint import RNN_LAYERS

    try:
        return any(layer.class_name in RNN_LAYERS for layer in read(src).layers)
    except TFModelKitError:
        return False  # the conversion itself will say what is wrong


@checked_options
def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    batch_size: int | None = None,
    custom_objects: str | dict[str, Any] | None = None,
    model: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    meta: str | os.PathLike[str] | None = None,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    input_names: str | Sequence[str] | None = None,
    output_names: str | Sequence[str] | None = None,
    include_optimizer: bool = False,
    signature: str | None = None,
    all_signatures: bool = False,
    quantize: str = "none",
    shard_size: int = TFJS_SHARD_SIZE,
    quantize_weights: Sequence[str] = (),
    graph: bool = False,
    calibration_data: str | None = None,
    allow_generated_calibration: bool = False,
    io_dtype: str = "float32",
    keep_float: str | Sequence[str] | None = None,
    max_float_layers: int | None = None,
    select_tf_ops: bool = False,
    tags: str | None = None,
    unsafe: bool = False,
    keras_backends: Sequence[str] = ("tensorflow",),
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert ``src`` to ``dst`` by the route its format and :func:`destination_format` pick, verified;
    the options are the steps' (keras_to_savedmodel, ckpt_to_savedmodel, graph_to_savedmodel,
    savedmodel_to_tflite, to_keras, ...): one no step of the route uses is refused."""
    options = {k: v for k, v in locals().items() if k not in ("src", "dst")}
    src, dst = str(src), str(dst)
    fmt = detect(src)
    if fmt == "tflite":
        raise UnsupportedError(f"{src}: a TFLite model cannot be converted back; keep its source model")
    tf1_graph = graph_source(src, fmt, options)  # (not ``graph``: that is the TF.js option)
    if is_tfjs_destination(dst):
        return _convert_to_tfjs(src, fmt, dst, options, tf1_graph is not None)
    target = destination_format(dst)
    if batch_size is not None and fmt not in ("keras_h5", "keras_zip"):
        raise UserError(
            f"{src}: --batch-size applies to Keras sources"
            + ("; fix a checkpoint model's batch in --input-spec" if fmt == "checkpoint" and not tf1_graph else "")
        )
    from .savedmodel_to_tflite import savedmodel_to_tflite

    if target in ("keras_zip", "keras_weights"):
        if tf1_graph:
            raise UnsupportedError(
                f"{src}: a TF1 graph has no Keras model to write; convert it to a SavedModel, .tflite or TF.js"
            )
        return _to_keras(src, f"{fmt} -> {target}", dst, options)
    first_step = _first_step(src, fmt, options)
    steps = [s for s in (first_step, savedmodel_to_tflite if target == "tflite" else None) if s is not None]
    _refuse_unused(src, f"{fmt} -> {target}", options, steps)
    if target == "tflite":  # int8 without calibration data is refused before TensorFlow loads
        if quantize not in QUANTIZE_MODES:
            raise UserError(f"--quantize {quantize!r}: a .tflite destination takes {', '.join(QUANTIZE_MODES)}")
        check_calibration_options(quantize, calibration_data, allow_generated_calibration, io_dtype)
    if target == "savedmodel":
        if fmt == "savedmodel":
            raise UnsupportedError(
                f"{src} is already a SavedModel; give a .tflite destination to convert it to TFLite"
            )
        return _to_savedmodel(src, fmt, dst, options)
    if fmt == "savedmodel":
        return savedmodel_to_tflite(src, dst, **_step_options(savedmodel_to_tflite, options))
    # RNN layers: TFLite builtins need a fixed batch, which the Keras model can be traced with.
    # Known recurrent layers get it at once; anything else that turns out to need it (a custom
    # recurrent layer) gets it on a second attempt, after the converter says so.
    fixed = (
        fmt in ("keras_h5", "keras_zip")
        and batch_size is None
        and not select_tf_ops
        and _has_rnn_layers(src)
    )
    try:
        first, second = _through_savedmodel(src, fmt, dst, {**options, "batch_size": 1} if fixed else options)
    except TensorListError:
        if fmt not in ("keras_h5", "keras_zip") or batch_size is not None or fixed:
            raise
        fixed = True
        first, second = _through_savedmodel(src, fmt, dst, {**options, "batch_size": 1})
    if fixed:
        first.warnings.insert(
            0,
            "the model's RNN layers need a fixed batch size in TFLite builtins: the .tflite takes "
            "batches of 1 (choose another with --batch-size N, or keep it dynamic with --select-tf-ops)",
        )
    return _joined(src, fmt, dst, "tflite", first, second)
