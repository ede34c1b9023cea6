"""Keras ``.h5`` / ``.keras`` -> SavedModel whose ``serving_default`` uses the model's own names.

Keras 3's ``model.export`` names outputs ``output_0``, ``output_1``...; users serving the
model need the real output layer names, so we trace our own signature: one keyword input per
model input (its Keras name, dynamic batch) and a dict of outputs keyed by output layer name.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UserError
from ..formats import detect
from .base import ConversionReport, Progress, VerifyOptions, run_verification, staged_output


def load_custom_objects(spec: str | None) -> dict[str, Any]:
    """``--custom-objects module.path``: its ``custom_objects`` dict, else its public classes."""
    if not spec:
        return {}
    try:
        module = importlib.import_module(spec)
    except ImportError as e:
        raise UserError(f"--custom-objects {spec}: cannot import it ({e})") from None
    found = getattr(module, "custom_objects", None) or getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(found, Mapping):
        return dict(found)
    return {k: v for k, v in vars(module).items() if isinstance(v, type) and not k.startswith("_")}


def _architecture_config(architecture: str) -> dict[str, Any]:
    """A model config from ``arch.json``, a full-model ``.h5`` or a ``.keras`` file."""
    path = Path(architecture)
    if not path.exists():
        raise NotFoundError(f"--architecture {architecture}: no such file")
    if path.suffix.lower() == ".json":
        try:
            config = json.loads(path.read_text())
        except ValueError as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
    else:
        fmt = detect(path)
        if fmt == "keras_h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
            if raw is None:
                raise UserError(f"{path}: holds no model_config to take the architecture from")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        elif fmt == "keras_zip":
            import zipfile

            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
        else:
            raise UserError(f"--architecture {path}: expected .json, .h5 or .keras, got a {fmt}")
    if not isinstance(config, dict) or "class_name" not in config:
        raise UserError(f"{path}: not a Keras model config (no class_name)")
    return config


def load_keras_model(
    src: Path, *, unsafe: bool, custom_objects: dict[str, Any], architecture: str | None
) -> Any:
    """A KerasRunner over the source: the file's own model, or ``architecture`` + its weights."""
    from ..verify.runners import KerasRunner, code_layers, import_keras, import_tf_keras, quiet_fds

    if architecture is None:
        return KerasRunner(src, safe_mode=not unsafe, custom_objects=custom_objects)
    from .keras_legacy import is_keras1, load_legacy_model

    if detect(src) == "keras_h5" and is_keras1(src):
        # Keras 1 weights-only file + its architecture: rebuilt and loaded by layer on tf_keras.
        source = architecture if Path(architecture).suffix.lower() == ".json" else _architecture_config(architecture)
        legacy = load_legacy_model(src, unsafe=unsafe, architecture=source)
        return KerasRunner.from_model(legacy.model, src, legacy.loader, notes=[f"architecture from {architecture}", *legacy.notes])
    config = _architecture_config(architecture)
    risky = code_layers(config)
    if risky and not unsafe:
        raise UserError(
            f"{architecture}: refusing to build it: {', '.join(risky[:5])} carries Python code; "
            "pass --unsafe only if you trust this file"
        )
    errors = []
    for loader in ("keras", "tf_keras"):
        module = import_keras("building the architecture") if loader == "keras" else import_tf_keras("building a Keras 2 architecture")
        if module is None:
            continue
        try:
            with quiet_fds():
                if loader == "keras":
                    model = module.saving.deserialize_keras_object(
                        config, safe_mode=not unsafe, custom_objects=custom_objects or None
                    )
                else:
                    model = module.models.model_from_json(json.dumps(config), custom_objects=custom_objects or None)
                model.load_weights(str(src))
        except Exception as e:
            errors.append(f"{loader}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            continue
        return KerasRunner.from_model(model, src, loader, notes=[f"architecture from {architecture}"])
    raise UserError(f"{src}: cannot load these weights into the architecture ({'; '.join(errors)})")


def export_savedmodel(runner: Any, folder: Path, batch_size: int | None = None) -> dict[str, Any]:
    """Write the runner's Keras model as a SavedModel with a name-preserving serving_default,
    its batch dimension dynamic or fixed to ``batch_size``."""
    from ..verify.runners import import_tensorflow, quiet_fds

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


def keras_to_savedmodel(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    batch_size: int | None = None,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    quiet: bool = False,
) -> ConversionReport:
    """Convert a Keras model file to a SavedModel, verified against the Keras model.

    ``batch_size`` fixes the signature's batch dimension (dynamic by default): TFLite needs
    it for RNN layers."""
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: give a positive size")
    from ..verify.runners import SavedModelRunner

    src_path = Path(src)
    fmt = detect(src_path)
    if fmt not in ("keras_h5", "keras_zip"):
        raise UserError(f"{src}: a {fmt}, not a Keras .h5/.keras file")
    options = verify or VerifyOptions()
    report = ConversionReport(str(src), fmt, str(dst), [fmt, "savedmodel"])
    progress = Progress(report, quiet)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    with staged_output(dst, overwrite) as stage:
        with progress.stage("load", f"loading {src_path.name}"):
            runner = load_keras_model(src_path, unsafe=unsafe, custom_objects=objects, architecture=architecture)
        report.loader = runner.loader
        report.warnings.extend(runner.notes)
        progress.say(f"[load] loaded with {runner.loader}")
        with progress.stage("export", "writing the SavedModel"):
            report.details["signature"] = {"serving_default": export_savedmodel(runner, stage.path, batch_size)}
            if batch_size is not None:
                report.details["batch_size"] = batch_size
        if options.enabled:
            with progress.stage("verify", "loading the SavedModel back"):
                # Our own export of the model the reference runs: the same ops, nothing new.
                candidate = SavedModelRunner(stage.path, signature="serving_default", safe_mode=False)
                candidate.shown = str(stage.destination)
            result = run_verification(runner, candidate, options, "float32", progress, "Keras vs SavedModel")
            report.ok = result.ok
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report
