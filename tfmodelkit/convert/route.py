"""``convert SRC DST``: pick the route from the source format and the destination suffix.

A ``.tflite`` destination is a TFLite model, anything else a SavedModel folder. Routes that
need a SavedModel on the way (``.h5``/``.keras``/checkpoint -> ``.tflite``) go through a
temporary one; every step verifies itself, and the report carries every step's figures.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import TFModelKitError, UnsupportedError, UserError
from ..formats import detect
from .base import ConversionReport
from .savedmodel_to_tflite import TensorListError

SAVEDMODEL_OPTIONS = {"architecture", "unsafe", "custom_objects", "batch_size"}
CKPT_OPTIONS = {"model", "architecture", "root_key", "input_specs", "allow_partial", "unsafe", "custom_objects"}
TFLITE_OPTIONS = {"signature", "all_signatures", "quantize", "calibration_data", "select_tf_ops", "tags", "unsafe"}
COMMON = {"verify", "overwrite", "keep_failed", "quiet"}


def destination_format(dst: str | os.PathLike[str]) -> str:
    return "tflite" if str(dst).lower().endswith(".tflite") else "savedmodel"


def _pick(options: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names | COMMON and v is not None}


def _to_savedmodel(src: str, fmt: str, dst: str, options: dict[str, Any]) -> ConversionReport:
    if fmt in ("keras_h5", "keras_zip"):
        from .keras_to_savedmodel import keras_to_savedmodel

        return keras_to_savedmodel(src, dst, **_pick(options, SAVEDMODEL_OPTIONS))
    if fmt == "checkpoint":
        from .ckpt_to_savedmodel import ckpt_to_savedmodel

        return ckpt_to_savedmodel(src, dst, **_pick(options, CKPT_OPTIONS))
    raise UnsupportedError(f"{src}: no route from a {fmt} to a SavedModel")


def _through_savedmodel(
    src: str, fmt: str, dst: str, options: dict[str, Any]
) -> tuple[ConversionReport, ConversionReport]:
    """Two steps through a temporary SavedModel; the final step writes ``dst`` atomically.
    Errors of the second step name the source, not the temporary folder."""
    from .savedmodel_to_tflite import savedmodel_to_tflite

    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-convert-"))
    temporary = str(work / "savedmodel")
    try:
        first = _to_savedmodel(src, fmt, temporary, {**options, "overwrite": False, "keep_failed": False})
        if not first.ok:
            return first, first
        try:
            second = savedmodel_to_tflite(
                temporary, dst, **_pick({**options, "signature": "serving_default"}, TFLITE_OPTIONS),
                source_label=f"{src} (as a SavedModel)",
            )
        except TFModelKitError as e:
            if temporary not in str(e):
                raise
            raise type(e)(str(e).replace(temporary, f"{src} (as a SavedModel)")) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return first, second


def _has_rnn_layers(src: str) -> bool:
    import tfmodelkit

    from ..inspect.lint import RNN_LAYERS

    try:
        return any(layer.class_name in RNN_LAYERS for layer in tfmodelkit.read(src).layers)
    except TFModelKitError:
        return False  # the conversion itself will say what is wrong


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], **options: Any) -> ConversionReport:
    """Convert ``src`` to ``dst``, choosing the route; options are those of the single steps."""
    src, dst = str(src), str(dst)
    fmt = detect(src)
    target = destination_format(dst)
    if fmt == "tflite":
        raise UnsupportedError(f"{src}: a TFLite model cannot be converted back; keep its source model")
    if options.get("batch_size") is not None and fmt not in ("keras_h5", "keras_zip"):
        raise UserError(
            f"{src}: --batch-size applies to Keras sources"
            + ("; fix a checkpoint model's batch in --input-spec" if fmt == "checkpoint" else "")
        )
    if target == "savedmodel":
        if fmt == "savedmodel":
            raise UnsupportedError(
                f"{src} is already a SavedModel; give a .tflite destination to convert it to TFLite"
            )
        return _to_savedmodel(src, fmt, dst, options)
    from .savedmodel_to_tflite import savedmodel_to_tflite

    if fmt == "savedmodel":
        return savedmodel_to_tflite(src, dst, **_pick(options, TFLITE_OPTIONS))
    # RNN layers: TFLite builtins need a fixed batch, which the Keras model can be traced with.
    # Known recurrent layers get it at once; anything else that turns out to need it (a custom
    # recurrent layer) gets it on a second attempt, after the converter says so.
    fixed = (
        fmt in ("keras_h5", "keras_zip")
        and options.get("batch_size") is None
        and not options.get("select_tf_ops")
        and _has_rnn_layers(src)
    )
    try:
        first, second = _through_savedmodel(src, fmt, dst, {**options, "batch_size": 1} if fixed else options)
    except TensorListError:
        if fmt not in ("keras_h5", "keras_zip") or options.get("batch_size") is not None or fixed:
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
