"""Runners: load a model with the framework that wrote it and run it on a feed of numpy arrays.

Every runner has ``inputs`` and ``outputs`` (:class:`~tfmodelkit.description.TensorSpec` tuples,
in the order the runner reports them), ``run(feed) -> {output name: array}`` and
``describe() -> dict`` (backend, loader, framework versions, signature). The models themselves
come from :mod:`tfmodelkit.loaders` (TensorFlow and Keras imported there, lazily); the TFLite
runner uses LiteRT (``ai_edge_litert``) and never imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import UnsupportedError, UserError
from .base import BaseRunner, QuantParams, Runner, spec_dict
from .checkpoint import CheckpointRunner
from .keras import KerasRunner
from .savedmodel import SavedModelRunner
from .tfjs import TFJSRunner
from .tflite import TFLiteRunner

__all__ = [
    "BaseRunner",
    "CheckpointRunner",
    "KerasRunner",
    "QuantParams",
    "Runner",
    "SavedModelRunner",
    "TFJSRunner",
    "TFLiteRunner",
    "runner_for",
    "spec_dict",
]


_OPTIONS = {
    "savedmodel": ("signature", "tags", "safe_mode"),
    "keras_h5": ("safe_mode", "loader"),
    "keras_zip": ("safe_mode", "loader"),
    "tflite": ("signature", "quantize_inputs", "dequantize_outputs", "num_threads"),
    "tfjs": (),
}


def runner_for(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> BaseRunner:
    """The runner for ``path``, chosen by :func:`tfmodelkit.detect` (or ``format``).

    Options that do not apply to the format are refused unless they are None (so a command can
    pass every flag through): ``signature``/``tags``/``safe_mode`` (SavedModel), ``safe_mode``/``loader``
    (Keras), ``signature``/``quantize_inputs``/``dequantize_outputs``/``num_threads`` (TFLite).
    """
    from ...formats import detect, normalize_format

    fmt = normalize_format(format) if format else detect(path)
    if fmt == "checkpoint":
        raise UnsupportedError(
            f"{path}: a checkpoint holds weights only, there is no graph to run; convert it first or verify the "
            "SavedModel or Keras file it belongs to"
        )
    allowed = _OPTIONS[fmt]
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UserError(
            f"{path}: option {', '.join(unknown)} does not apply to a {fmt} model (it takes: {', '.join(allowed)})"
        )
    if fmt == "savedmodel":
        given.setdefault("signature", None)
        return SavedModelRunner(path, **given)
    if fmt in ("keras_h5", "keras_zip"):
        return KerasRunner(path, **given)
    if fmt == "tfjs":
        return TFJSRunner(path)
    return TFLiteRunner(path, **given)
