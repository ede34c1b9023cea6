"""Keras ``.h5`` / ``.keras`` -> SavedModel whose ``serving_default`` uses the model's own names.

Keras 3's ``model.export`` names outputs ``output_0``, ``output_1``...; users serving the
model need the real output layer names, so we trace our own signature: one keyword input per
model input (its Keras name, dynamic batch) and a dict of outputs keyed by output layer name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..formats import detect
from ..loaders.keras import load_weights_into_architecture
from ..loaders.tf import import_tensorflow, quiet_fds
from ..loaders.user_code import load_custom_objects
from ..options import checked_options
from ..verify.runners import KerasRunner, SavedModelRunner
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output


def load_keras_model(
    src: Path, *, unsafe: bool, custom_objects: dict[str, Any], architecture: str | None
) -> KerasRunner:
    """A KerasRunner over the source: the file's own model, or ``architecture`` + its weights."""
    if architecture is None:
        return KerasRunner(src, safe_mode=not unsafe, custom_objects=custom_objects)
    loaded = load_weights_into_architecture(src, architecture, unsafe=unsafe, custom_objects=custom_objects)
    return KerasRunner.from_loaded(loaded, src)


def export_savedmodel(runner: KerasRunner, folder: Path, batch_size: int | None = None) -> dict[str, Any]:
    """Write the runner's Keras model as a SavedModel with a name-preserving serving_default,
    its batch dimension dynamic or fixed to ``batch_size``."""
    tf = import_tensorflow("exporting a SavedModel")
    model = runner.model
    in_names = [s.name for s in runner.inputs]
    out_names = [s.name for s in runner.outputs]
    specs = []
    for s in runner.inputs:
        # The batch stays dynamic unless asked; a batch the model itself declares (stateful
        # RNNs, batch_input_shape) is kept when a size is asked for.
        batch = None if batch_size is None else (s.shape[0] if s.shape and s.shape[0] is not None else batch_size)
        shape = None if s.shape is None else [batch, *s.shape[1:]] if len(s.shape) else []
        specs.append(tf.TensorSpec(shape=shape, dtype=tf.as_dtype(s.dtype), name=s.name))
    feed_kind = runner.feed_kind

    def serve(*args: Any) -> dict[str, Any]:
        if feed_kind == "dict":
            x: Any = dict(zip(in_names, args, strict=True))
        elif feed_kind == "single":
            x = args[0]
        else:
            x = list(args)
        y = model(x, training=False)
        if isinstance(y, Mapping):
            return {str(k): v for k, v in y.items()}
        if not isinstance(y, (list, tuple)):
            y = [y]
        return dict(zip(out_names, y, strict=True))

    function = tf.function(serve, input_signature=specs)
    root = tf.Module()
    root.model = model  # tracks the variables
    root.serve = function
    with quiet_fds():
        concrete = function.get_concrete_function()
        tf.saved_model.save(root, str(folder), signatures={"serving_default": concrete})
    return {"inputs": in_names, "outputs": out_names}


@checked_options
def keras_to_savedmodel(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    batch_size: int | None = None,
    source_format: str | None = None,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert a Keras model file to a SavedModel, verified against the Keras model.

    ``batch_size`` fixes the signature's batch dimension (dynamic by default): TFLite needs
    it for RNN layers. ``source_format`` ("keras_h5" or "keras_zip"), when given, is the kind of
    file the caller expects: another kind is refused, naming the command that takes it."""
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: give a positive size")
    src_path = Path(src)
    fmt = detect(src_path)
    if fmt not in ("keras_h5", "keras_zip"):
        raise UserError(f"{src}: a {fmt}, not a Keras .h5/.keras file")
    if source_format is not None and fmt != source_format:
        other = "keras-to-savedmodel" if fmt == "keras_zip" else "h5-to-savedmodel"
        mine = "h5-to-savedmodel" if source_format == "keras_h5" else "keras-to-savedmodel"
        raise UserError(f"{src}: a {fmt} file, not what {mine} converts; use `modelconv {other}`")
    options = verify or VerifyOptions()
    report = ConversionReport(str(src), fmt, str(dst), [fmt, "savedmodel"])
    steps = Progress(report, progress)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    with staged_output(dst, overwrite) as stage:
        with steps.stage("load", f"loading {src_path.name}"):
            runner = load_keras_model(src_path, unsafe=unsafe, custom_objects=objects, architecture=architecture)
        report.loader = runner.loader
        report.warnings.extend(runner.notes)
        steps.say(f"[load] loaded with {runner.loader}")
        with steps.stage("export", "writing the SavedModel"):
            report.details["signature"] = {"serving_default": export_savedmodel(runner, stage.path, batch_size)}
            if batch_size is not None:
                report.details["batch_size"] = batch_size
        if options.enabled:
            with steps.stage("verify", "loading the SavedModel back"):
                # Our own export of the model the reference runs: the same ops, nothing new.
                candidate = SavedModelRunner(stage.path, signature="serving_default", safe_mode=False)
                candidate.shown = str(stage.destination)
            result = run_verification(runner, candidate, options, "float32", steps, "Keras vs SavedModel")
            report.ok = result.ok
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report
