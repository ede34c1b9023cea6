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
from .keras_process import KerasProcessRunner
from .savedmodel import SavedModelRunner
from .tf1 import TF1Runner
from .tfjs import TFJSRunner
from .tflite import TFLiteRunner

__all__ = [
    "BaseRunner",
    "CheckpointRunner",
    "KerasProcessRunner",
    "KerasRunner",
    "QuantParams",
    "Runner",
    "SavedModelRunner",
    "TFJSRunner",
    "TF1Runner",
    "TFLiteRunner",
    "runner_for",
    "spec_dict",
]


_OPTIONS = {
    "savedmodel": ("signature", "tags", "safe_mode"),
    "keras_h5": ("safe_mode", "loader"),
    "keras_zip": ("safe_mode", "loader"),
    "tflite": ("signature", "quantize_inputs", "dequantize_outputs", "num_threads"),
}
#: TF1 graphs (a checkpoint runs through the ``.meta`` beside it, or the one ``meta`` names).
_TF1_OPTIONS = ("signature", "tags", "safe_mode", "input_tensors", "output_tensors", "meta")
_OPTIONS |= {
    "graphdef": _TF1_OPTIONS,
    "metagraph": _TF1_OPTIONS,
    "checkpoint_v1": _TF1_OPTIONS,
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
    if fmt in ("checkpoint", "checkpoint_v1") and not options.get("meta"):
        # A folder, an .index or a shard names the checkpoint too: its prefix, and P.meta beside it.
        from ...formats import read

        desc = read(path, format=fmt)
        if desc.metadata.get("graph"):
            path, options = desc.metadata["prefix"], {**options, "meta": desc.metadata["graph"]}
    if fmt in ("checkpoint", "checkpoint_v1") and options.get("meta"):
        fmt = "metagraph" if fmt == "checkpoint" else fmt  # the graph is in the .meta: a TF1 graph
    if fmt in ("graphdef", "metagraph", "checkpoint_v1"):
        return _tf1_runner(path, fmt, options)
    if fmt == "checkpoint":
        raise UnsupportedError(
            f"{path}: a checkpoint holds weights only, there is no graph to run; give the code that built it "
            "(--model/--architecture), its TF1 graph (--meta GRAPH.meta), or run the SavedModel or Keras file it belongs to"
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
        try:
            return SavedModelRunner(path, **given)
        except UserError as e:
            if not _tf1_savedmodel(path, e):
                raise
            runner = TF1Runner(path, **given)  # a TF1 SavedModel TF2's loader rejects: a session runs it
            runner.notes.append(f"tf.saved_model.load refused it ({e}); loaded by tf.compat.v1.saved_model")
            return runner
    if fmt in ("keras_h5", "keras_zip"):
        return KerasRunner(path, **given)
    if fmt == "tfjs":
        return TFJSRunner(path)
    return TFLiteRunner(path, **given)


def _tf1_runner(path: str | os.PathLike[str], fmt: str, options: dict[str, Any]) -> BaseRunner:
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_TF1_OPTIONS))
    if unknown:
        raise UserError(
            f"{path}: option {', '.join(unknown)} does not apply to a TF1 graph (it takes: {', '.join(_TF1_OPTIONS)})"
        )
    if fmt == "checkpoint_v1" and not given.get("meta") and not os.path.isfile(f"{path}.meta"):
        raise UnsupportedError(
            f"{path}: a V1 checkpoint holds weights only; run the graph it belongs to with --meta GRAPH.meta"
        )
    return TF1Runner(path, **given)


def _tf1_savedmodel(path: str | os.PathLike[str], error: UserError) -> bool:
    """Whether ``error`` is TF2's loader refusing a SavedModel with no object graph (TF1-era)."""
    if "TensorFlow cannot load this SavedModel" not in str(error):
        return False
    from ...formats import read

    meta_graphs = read(path, format="savedmodel").metadata.get("meta_graphs", [])
    return bool(meta_graphs) and all(mg.get("object_graph_nodes", 0) == 0 for mg in meta_graphs)
