"""``convert SRC DST``: pick the route from the source format and the destination suffix.

A ``.tflite`` destination is a TFLite model, a ``.keras`` (or ``.weights.h5``) a native Keras 3
file (:mod:`.to_keras`), a name without a model-file suffix a SavedModel folder; a suffix no
route writes (``.onnx``, ``.pb``...) is refused. Routes that
need a SavedModel on the way (``.h5``/``.keras``/checkpoint -> ``.tflite``) go through a
temporary one; every step verifies itself, and the report carries every step's figures.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import TFModelKitError, UnsupportedError, UserError
from ..formats import detect, read
from ..options import checked_options, given, keyword_names
from .base import ConversionReport, ProgressSink, VerifyOptions
from .savedmodel_to_tflite import TensorListError

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


def _to_savedmodel(src: str, fmt: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    if fmt in ("keras_h5", "keras_zip"):
        from .keras_to_savedmodel import keras_to_savedmodel

        return keras_to_savedmodel(src, dst, **_step_options(keras_to_savedmodel, options))
    if fmt == "checkpoint":
        from .ckpt_to_savedmodel import ckpt_to_savedmodel

        return ckpt_to_savedmodel(src, dst, **_step_options(ckpt_to_savedmodel, options))
    raise UnsupportedError(f"{src}: no route from a {fmt} to a SavedModel")


def _through_savedmodel(
    src: str, fmt: str, dst: str, options: dict[str, Any]
) -> tuple[ConversionReport, ConversionReport]:
    """Two steps through a temporary SavedModel; the final step writes ``dst`` atomically.
    Errors of the second step name the source, not the temporary folder."""
    from .savedmodel_to_tflite import converter_standby, savedmodel_to_tflite

    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-convert-"))
    temporary = str(work / "savedmodel")
    try:
        # The converter's child process imports TensorFlow while the SavedModel is made.
        with converter_standby():
            first = _to_savedmodel(src, fmt, temporary, {**options, "overwrite": False, "keep_failed": False})
            if not first.ok:
                return first, first
            try:
                second = savedmodel_to_tflite(
                    temporary, dst, **_step_options(savedmodel_to_tflite, {**options, "signature": "serving_default"}),
                    source_label=f"{src} (as a SavedModel)",
                )
            except TFModelKitError as e:
                if temporary not in str(e):
                    raise
                raise type(e)(str(e).replace(temporary, f"{src} (as a SavedModel)")) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return first, second


def _to_keras(src: str, route: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    from .to_keras import to_keras

    _refuse_unused(src, route, options, [to_keras])
    return to_keras(src, dst, **_step_options(to_keras, options))


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
    signature: str | None = None,
    all_signatures: bool = False,
    quantize: str = "none",
    calibration_data: str | None = None,
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
    the options are the steps' (keras_to_savedmodel, ckpt_to_savedmodel, savedmodel_to_tflite, to_keras,
    ...): one no step of the route uses is refused."""
    options = {k: v for k, v in locals().items() if k not in ("src", "dst")}
    src, dst = str(src), str(dst)
    fmt = detect(src)
    if is_tfjs_destination(dst):
        return _to_tfjs(src, dst, options)
    target = destination_format(dst)
    if fmt == "tflite":
        raise UnsupportedError(f"{src}: a TFLite model cannot be converted back; keep its source model")
    if batch_size is not None and fmt not in ("keras_h5", "keras_zip"):
        raise UserError(
            f"{src}: --batch-size applies to Keras sources"
            + ("; fix a checkpoint model's batch in --input-spec" if fmt == "checkpoint" else "")
        )
    from .ckpt_to_savedmodel import ckpt_to_savedmodel
    from .keras_to_savedmodel import keras_to_savedmodel
    from .savedmodel_to_tflite import savedmodel_to_tflite

    if target in ("keras_zip", "keras_weights"):
        return _to_keras(src, f"{fmt} -> {target}", dst, options)
    first_step = {"checkpoint": ckpt_to_savedmodel, "savedmodel": None}.get(fmt, keras_to_savedmodel)
    steps = [s for s in (first_step, savedmodel_to_tflite if target == "tflite" else None) if s is not None]
    _refuse_unused(src, f"{fmt} -> {target}", options, steps)
    if target == "savedmodel":
        if fmt == "savedmodel":
            raise UnsupportedError(
                f"{src} is already a SavedModel; give a .tflite destination to convert it to TFLite"
            )
        return _to_savedmodel(src, fmt, dst, options)
    from .savedmodel_to_tflite import savedmodel_to_tflite

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
    if first is second:  # the intermediate SavedModel failed verification
        first.destination = dst
        first.route.append("tflite")
        first.warnings.append("stopped before TFLite: the intermediate SavedModel failed verification")
        return first
    return ConversionReport(
        source=src,
        source_format=fmt,
        destination=dst,
        route=[fmt, "savedmodel", "tflite"],
        loader=first.loader,
        timings={**{f"savedmodel.{k}": v for k, v in first.timings.items()},
                 **{f"tflite.{k}": v for k, v in second.timings.items()}},
        verification=first.verification + second.verification,
        warnings=first.warnings + second.warnings,
        details={"savedmodel": first.details, "tflite": second.details},
        ok=first.ok and second.ok,
        kept_failed=second.kept_failed,
    )
