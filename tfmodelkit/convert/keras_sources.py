"""What ``to-keras`` converts, made live: a Keras file or SavedModel through the loader ladder, or
a TF2 checkpoint restored into the model its code or architecture rebuilds (the same
:mod:`tfmodelkit.loaders.checkpoint` steps ``ckpt-to-savedmodel`` runs).

Each source comes with the runner that computes the reference numbers by the original loader
(the restored model itself for a checkpoint) and with what the result's check needs to know.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..description import TensorSpec
from ..errors import TFModelKitError, UnsupportedError, UserError
from ..loaders.checkpoint import (
    RestoredModel,
    is_keras,
    open_checkpoint,
    rebuild,
    restore_matched,
    traced_outputs,
)
from ..loaders.keras import LoadedKeras, architecture_config, read_model_config
from ..loaders.keras_migrate import load_keras_savedmodel
from ..loaders.tf import import_keras, import_tensorflow, import_tf_keras
from ..verify.runners import KerasRunner
from ..verify.runners.checkpoint import CheckpointRunner
from .base import Progress
from .keras_classes import unknown_classes
from .keras_to_savedmodel import load_keras_model

#: The formats to-keras reads.
SOURCE_FORMATS = ("keras_h5", "keras_zip", "savedmodel", "checkpoint")
#: Options that apply to checkpoint sources only, and their command-line flags.
CHECKPOINT_OPTIONS = {
    "model": "--model", "root_key": "--root-key", "input_specs": "--input-spec", "allow_partial": "--allow-partial",
}  # fmt: skip


@dataclass
class KerasSource:
    """A live source model and the runner that computes its reference numbers."""

    reference: Any
    model: Any
    loader: str
    notes: list[str] = field(default_factory=list)
    #: How to feed the result when it declares no inputs of its own (a subclassed model):
    #: (feed kind, inputs, outputs) as :meth:`KerasProcessRunner.load` takes it.
    given: tuple[str, tuple[TensorSpec, ...], tuple[TensorSpec, ...]] | None = None
    #: The restored checkpoint (its optimizer values), for a checkpoint source.
    restored: RestoredModel | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _declares_inputs(model: Any) -> bool:
    with contextlib.suppress(Exception):  # subclassed models have none, or raise asking for them
        return bool(model.inputs)
    return False


def _checkpoint_source(
    src: Path,
    steps: Progress,
    *,
    model: str | None,
    architecture: str | None,
    root_key: str | None,
    input_specs: tuple[str, ...],
    allow_partial: bool,
    unsafe: bool,
    custom_objects: dict[str, Any],
) -> KerasSource:
    if (model is None) == (architecture is None):
        raise UserError(
            f"{src}: a checkpoint holds weights only; to-keras needs exactly one of --model MODULE:CALLABLE "
            "(code that builds the model) or --architecture FILE (a JSON, .h5 or .keras model config)"
        )
    source = open_checkpoint(src, input_specs=input_specs, root_key=root_key)
    tf = import_tensorflow("converting a checkpoint")
    built, match = rebuild(
        tf, source, model=model, architecture=architecture, unsafe=unsafe, custom_objects=custom_objects
    )
    if not is_keras(built.model):
        raise UnsupportedError(
            f"{built.detail}: built a {type(built.model).__name__}, not a Keras model; a .keras holds Keras "
            "models only (ckpt-to-savedmodel exports any tf.Module)"
        )
    with steps.stage("restore", f"restoring {source.prefix.name} ({match.kind})"):
        restored = restore_matched(tf, source, built, match, allow_partial=allow_partial)
    outputs = traced_outputs(tf, built)
    reference = CheckpointRunner.from_restored(restored, outputs)
    given = None
    if not _declares_inputs(built.model):
        kind = built.feed_kind if built.feed_kind in ("single", "dict") else "list"
        given = (kind, reference.inputs, reference.outputs)
    details = {"prefix": str(source.prefix), "model": built.detail, **match.details()}
    return KerasSource(reference, built.model, built.loader, restored.notes, given, restored, details)


def load_source(
    src: Path,
    fmt: str,
    steps: Progress,
    *,
    architecture: str | None,
    unsafe: bool,
    custom_objects: dict[str, Any],
    checkpoint: dict[str, Any],
) -> KerasSource:
    """The source at ``src`` live; ``checkpoint`` holds the checkpoint-only options
    (:data:`CHECKPOINT_OPTIONS`), refused for other sources."""
    if fmt == "checkpoint":
        return _checkpoint_source(
            src, steps, architecture=architecture, unsafe=unsafe, custom_objects=custom_objects, **checkpoint
        )
    given = [CHECKPOINT_OPTIONS[k] for k, v in checkpoint.items() if v]
    if given:
        raise UserError(f"{src}: {', '.join(given)} apply to checkpoint sources, not to a {fmt}")
    if fmt == "savedmodel":
        if architecture:
            raise UserError(
                f"{src}: --architecture applies to weights-only .h5 files and checkpoints, not to a SavedModel"
            )
        model = load_keras_savedmodel(src, unsafe=unsafe)
        runner = KerasRunner.from_loaded(LoadedKeras(model, "tf_keras", "savedmodel", not unsafe), src)
    else:
        try:
            runner = load_keras_model(
                src, unsafe=unsafe, custom_objects=custom_objects, architecture=architecture
            )
        except TFModelKitError:
            _refuse_custom_classes(src, fmt, architecture, custom_objects)
            raise
    return KerasSource(runner, runner.model, runner.loader, list(runner.notes))


def _refuse_custom_classes(
    src: Path, fmt: str, architecture: str | None, custom_objects: dict[str, Any]
) -> None:
    """When a Keras file did not load: if its config names classes no Keras defines that
    ``custom_objects`` does not give either, say which, and how to give them."""
    try:
        config = architecture_config(architecture) if architecture else read_model_config(src, fmt)
    except TFModelKitError:
        return
    if config is None:
        return
    names = unknown_classes(
        config, import_keras("reading a Keras config"), import_tf_keras("reading a Keras config")
    )
    given = set(custom_objects) | {k.split(">")[-1] for k in custom_objects}
    missing = [
        n for n in names if n.split(" ")[0] not in given and n.split(" ")[0].split(">")[-1] not in given
    ]
    if missing:
        raise UserError(
            f"{src}: the model uses {'a custom class' if len(missing) == 1 else 'custom classes'} no Keras defines: "
            f"{', '.join(missing[:8])}; give the module that defines (and registers) "
            f"{'it' if len(missing) == 1 else 'them'} with --custom-objects MODULE"
        ) from None
