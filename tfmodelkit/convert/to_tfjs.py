"""Keras ``.h5`` / ``.keras`` -> a TF.js layers model (``model.json`` + weight shards), proven in TF.js.

We write the format ourselves (no ``tensorflowjs`` converter): the Keras config translated for
tfjs-layers (:mod:`.tfjs_topology`), every weight named ``<layer>/<weight>`` as tfjs-layers
names them, in shards of ``shard_size`` bytes (4 MiB by default, as TF.js does), optionally
quantized (``float16``, or affine ``uint8``/``uint16`` with a zero that stays exact). The
result is loaded by ``tf.loadLayersModel`` in Node.js and run on the same inputs as the Keras
model; nothing is left at the destination unless it verified (or ``--no-verify``).

Quantized weights are proven twice: TF.js against the Keras model carrying the very same
dequantized weights (float32 tolerance: TF.js computes what it was given), then against the
original model, with a tolerance derived from what the quantization itself changes in Keras's
outputs (shown in the report).
"""

from __future__ import annotations

__all__ = ["DEFAULT_SHARD_SIZE", "destination_folder", "layer_weight_names", "model_weights", "quantize_array", "to_tfjs"]

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError, UserError
from ..formats import detect
from ..options import checked_options
from ..verify.inputs import load_inputs
from ..verify.runners import KerasRunner
from ..verify.runners.tfjs import TFJSRunner
from ..verify.tfjs_quantized import (
    FACTOR,
    MODEL_CLASSES,
    dequantized_runner,
    layer_weight_names,
    measured_tolerance,
    model_weights,
)
from ..version import __version__
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output
from .tfjs_topology import model_topology
from .tfjs_write import (
    DEFAULT_SHARD_SIZE,
    check_options,
    destination_folder,
    encode_weights,
    quantize_array,
    require_tfjs,
    write_model,
)

#: Keras model classes TF.js layers models hold.
_MODEL_CLASSES = MODEL_CLASSES


def _verify(
    runner: KerasRunner, stage_path: Path, shown: str, dequantized: dict[str, np.ndarray], quantize: str,
    options: VerifyOptions, steps: Progress, src: Path,
) -> bool:  # fmt: skip
    with steps.stage("verify", "loading the result with tf.loadLayersModel in Node.js"):
        candidate = TFJSRunner(stage_path)
        candidate.shown = shown
    if not dequantized:
        return bool(run_verification(runner, candidate, options, "float32", steps, "Keras vs TF.js").ok)
    same = dequantized_runner(runner, dequantized, src)
    if same is None:
        raise UnsupportedError(f"{src}: the quantized weights written do not pair with the Keras model's (a bug in the writer)")
    exact = run_verification(same, candidate, options, "float32", steps, f"Keras with the {quantize} weights vs TF.js")
    if not exact.ok:
        return False
    feed = load_inputs(options.inputs, runner.inputs) if options.inputs else None
    derived = measured_tolerance(runner, same, feed=feed, seed=options.seed, batch=options.batch)
    steps.say(f"[verify] tolerance from the {quantize} quantization: atol {derived:.3g} ({FACTOR:g}x what it changes in Keras's outputs)")
    given = VerifyOptions(**{**options.__dict__, "atol": options.atol if options.atol is not None else derived})
    steps.report.details["quantization_tolerance"] = {"atol": given.atol, "derived_from": f"{FACTOR:g} x max |Keras(dequantized) - Keras| + 1e-5"}
    return bool(run_verification(runner, candidate, given, "float32", steps, f"Keras vs TF.js ({quantize} weights)").ok)


@checked_options
def to_tfjs(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    quantize: str = "none",
    quantize_weights: Sequence[str] = (),
    graph: bool = False,
    architecture: str | None = None,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert a Keras model file to a TF.js layers model at ``dst`` (``DST/model.json`` or ``DST``),
    or with ``graph`` to a graph model (through a temporary SavedModel), verified in TF.js
    (Node.js + ``@tensorflow/tfjs``) unless ``verify.enabled`` is False; a SavedModel becomes a
    graph model (:func:`.savedmodel_to_tfjs.savedmodel_to_tfjs`)."""
    from ..loaders.user_code import load_custom_objects
    from .keras_to_savedmodel import load_keras_model

    check_options(shard_size, quantize, quantize_weights)
    src_path = Path(src)
    fmt = detect(src_path)
    options = verify or VerifyOptions()
    if fmt == "savedmodel":
        if architecture is not None or custom_objects is not None:
            raise UserError(f"{src}: --architecture and --custom-objects are for Keras sources, not a SavedModel")
        from .savedmodel_to_tfjs import savedmodel_to_tfjs

        return savedmodel_to_tfjs(
            src, dst, shard_size=shard_size, quantize=quantize, quantize_weights=quantize_weights, unsafe=unsafe,
            verify=options, overwrite=overwrite, keep_failed=keep_failed, progress=progress,
        )  # fmt: skip
    if fmt not in ("keras_h5", "keras_zip"):
        raise UnsupportedError(f"{src}: a {fmt}; to-tfjs converts Keras .h5/.keras files (layers models) and SavedModels (graph models)")
    require_tfjs(options)
    if not graph:  # a graph model needs TF.js's ops, not its layer classes: freezing checks those
        _refuse_unsupported(Path(architecture) if architecture else src_path)
    folder = destination_folder(dst)
    if folder.is_dir() and not any(folder.iterdir()) and not overwrite:
        folder.rmdir()  # an empty folder made for the result is no result to protect
    report = ConversionReport(str(src), fmt, str(folder / "model.json"), [fmt, "savedmodel", "tfjs"] if graph else [fmt, "tfjs"])
    steps = Progress(report, progress)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    with staged_output(folder, overwrite) as stage:
        with steps.stage("load", f"loading {src_path.name}"):
            runner = load_keras_model(src_path, unsafe=unsafe, custom_objects=objects, architecture=architecture)
        report.loader = runner.loader
        report.warnings.extend(runner.notes)
        if graph:
            report.ok = _graph_model(runner, stage.path, folder, shard_size, quantize, quantize_weights, options, steps)
            if report.ok or keep_failed:
                stage.commit()
                report.kept_failed = not report.ok
            return report
        with steps.stage("write", "writing the TF.js layers model"):
            details = _write(runner, stage.path, shard_size, quantize, quantize_weights)
        report.details.update({k: v for k, v in details.items() if k != "dequantized"})
        if options.enabled:
            shown = str(folder / "model.json")
            report.ok = _verify(runner, stage.path, shown, details["dequantized"], quantize, options, steps, src_path)
        else:
            report.warnings.append("not verified (--no-verify): nothing proved that TF.js computes what the Keras model does")
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report




def _graph_model(
    runner: KerasRunner, out: Path, folder: Path, shard_size: int, quantize: str, patterns: Sequence[str],
    options: VerifyOptions, steps: Progress,
) -> bool:  # fmt: skip
    """The Keras model exported as a SavedModel (its own input and output names), frozen into a
    TF.js graph model, which tf.loadGraphModel runs against the Keras model itself."""
    from ..loaders.tf import import_tensorflow
    from .keras_to_savedmodel import export_savedmodel
    from .savedmodel_to_tfjs import verify_graph_model, write_graph_model

    tf = import_tensorflow("writing a TF.js graph model")
    with tempfile.TemporaryDirectory(prefix="tfmodelkit-tfjs-") as work:
        saved = Path(work) / "savedmodel"
        with steps.stage("export", "exporting the Keras model as a SavedModel"):
            export_savedmodel(runner, saved)
        details = write_graph_model(tf, saved, "serving_default", out, steps, shard_size=shard_size, quantize=quantize, patterns=patterns)
    if patterns and not details["quantized_weights"]:
        raise UserError(f"--quantize-weights {', '.join(patterns)}: no float32 constant of the graph matches")
    steps.report.details.update(details)
    if not options.enabled:
        steps.report.warnings.append("not verified (--no-verify): nothing proved that TF.js computes what the Keras model does")
        return True
    return verify_graph_model(runner, out, folder, quantize, options, steps, "Keras vs TF.js (graph model)")


def _write(runner: KerasRunner, folder: Path, shard_size: int, quantize: str, patterns: Sequence[str]) -> dict[str, Any]:
    model = runner.model
    cls = type(model).__name__
    config = {"class_name": "Sequential" if cls == "Sequential" else "Functional" if cls in _MODEL_CLASSES else cls,
              "config": model.get_config()}  # fmt: skip
    # get_config() holds tuples where the saved JSON has lists: compare like the file.
    topology = model_topology(json.loads(json.dumps(config)))
    weights = model_weights(model)
    entries, data, dequantized, quantized = encode_weights(weights, quantize, patterns)
    if patterns and not quantized:
        raise UserError(f"--quantize-weights {', '.join(patterns)}: no float32 weight matches (names look like {weights[0][0] if weights else 'dense/kernel'})")
    keras_version = _version(type(model).__module__.split(".")[0])
    doc = {
        "format": "layers-model",
        "generatedBy": f"keras v{keras_version}",
        "convertedBy": f"tfmodelkit {__version__}",
        "modelTopology": {**topology, "keras_version": keras_version, "backend": "tensor_flow.js"},
    }
    sizes = write_model(folder, doc, entries, data, shard_size)
    return {
        "tfjs_format": "layers-model", "shards": sizes, "weights": len(entries), "weight_bytes": len(data),
        "quantize": quantize, "quantized_weights": quantized, "dequantized": dequantized,
    }  # fmt: skip


def _version(module: str) -> str:
    from ..loaders.tf import version

    return version(module) or "unknown"


def _refuse_unsupported(src: Path) -> None:
    """Layers TF.js cannot run, named before anything loads (``check --target tfjs`` lists them)."""
    from ..lint import lint

    report = lint(src, ("tfjs",))
    errors = [f for f in report.findings if f.severity == "error"]
    if errors:
        listed = "; ".join(f"{f.subject}: {f.message.split(';')[0]}" for f in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise UnsupportedError(
            f"{src}: TF.js cannot run this model as a layers model: {listed}{more}; `modelinspect check {src} --target tfjs` "
            "lists them (--graph writes a graph model, which needs TF.js's ops instead)"
        )
