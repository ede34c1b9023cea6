"""A checkpoint made live: the model that wrote it, rebuilt and restored (nothing is written).

A checkpoint holds values, not a graph: the model is rebuilt from user code
(``pkg.module:fn`` or ``path/to/file.py:fn``) or from a Keras architecture, built once on
zeros (subclassed models create their variables on first call), paired with the checkpoint's
values (:mod:`tfmodelkit.loaders.checkpoint_match`) and restored. :func:`restore_model` does
all of it; a caller that reports each step runs :func:`open_checkpoint`, :func:`rebuild` and
:func:`restore_matched` itself.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..description import ModelDescription, TensorSpec
from ..errors import TFModelKitError, UnsupportedError, UserError
from ..formats import checkpoint as ckpt_format
from ..util import first_line
from .checkpoint_match import (
    ROOT_IS_MODEL,
    Match,
    dtype_name,
    match_name_based,
    match_object_based,
    problems,
    typed_shape,
)
from .keras import architecture_config, architecture_models, keras_io
from .tf import import_tensorflow, quiet_fds
from .user_code import load_custom_objects, load_model_factory, on_sys_path

INPUT_DTYPES = (
    "float16", "float32", "float64", "bfloat16",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string", "complex64", "complex128",
)  # fmt: skip
# TensorFlow's rule for op (and so signature input) names.
_NAME_RE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


def _error_line(e: BaseException) -> str:
    """``Type: message`` on one line, as every message of this module quotes an exception."""
    return first_line(e, 200, with_type=True)


# ----------------------------------------------------------------------------------------
# Input specs


@dataclass(frozen=True)
class InputSpec:
    """One serving input: ``NAME:DTYPE:DIMS`` (``None`` dims are dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def as_tensor_spec(self) -> TensorSpec:
        return TensorSpec(name=self.name, dtype=self.dtype, shape=self.shape)


def parse_input_spec(text: str) -> InputSpec:
    """``image:float32:-1,28,28,1`` -> InputSpec; ``-1`` is a dynamic dim, empty dims a scalar."""
    parts = text.split(":")
    if len(parts) != 3:
        raise UserError(
            f"--input-spec {text!r}: expected NAME:DTYPE:DIMS, e.g. image:float32:-1,28,28,1 "
            "(-1 = dynamic; empty DIMS for a scalar)"
        )
    name, dtype, dims_text = (p.strip() for p in parts)
    if not name or not _NAME_RE.match(name):
        raise UserError(
            f"--input-spec {text!r}: {name!r} is not a usable input name "
            "(letters, digits, _ . - /; not starting with _ - /)"
        )
    if dtype not in INPUT_DTYPES:
        raise UserError(
            f"--input-spec {text!r}: unknown dtype {dtype!r} (accepted: {', '.join(INPUT_DTYPES)})"
        )
    dims: list[int | None] = []
    if dims_text:
        for d in dims_text.split(","):
            d = d.strip()
            try:
                n = int(d)
            except ValueError:
                raise UserError(
                    f"--input-spec {text!r}: dimension {d!r} is not an integer (use -1 for a dynamic one)"
                ) from None
            if n < -1:
                raise UserError(
                    f"--input-spec {text!r}: dimension {n} is negative (use -1 for a dynamic one)"
                )
            dims.append(None if n == -1 else n)
    return InputSpec(name, dtype, tuple(dims))


def parse_input_specs(texts: Sequence[str]) -> tuple[InputSpec, ...]:
    """Every ``--input-spec`` given (one string is one spec); a name given twice is an error."""
    if isinstance(texts, str):
        texts = [texts]
    specs = tuple(parse_input_spec(t) for t in texts)
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise UserError(f"--input-spec: input {s.name!r} is given twice")
        seen.add(s.name)
    return specs


# ----------------------------------------------------------------------------------------
# The model, built and callable


def is_keras(obj: Any) -> bool:
    """A Keras 3 or tf_keras layer/model (they take ``training=``)."""
    return any(
        c.__name__ in ("Layer", "Model") and c.__module__.startswith(("keras", "tf_keras"))
        for c in type(obj).__mro__
    )


def shape_or_none(shape: Any) -> tuple[int | None, ...] | None:
    """A TensorShape (or a list of dims) as a tuple, None dims dynamic; None for an unknown rank."""
    if getattr(shape, "rank", 0) is None:
        return None
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(None if d is None else int(d) for d in dims)


@dataclass
class Built:
    """A model built on zeros, with how to call it and what it returns."""

    model: Any
    loader: str  # "model code" / "architecture"
    detail: str  # what built it, for messages: "--model file.py:build", "--architecture arch.json"
    inputs: tuple[InputSpec, ...]
    feed_kind: str  # "single", "list", "dict", "positional"
    output_names: tuple[str, ...]
    output_kind: str  # "single", "sequence", "dict"
    notes: list[str] = field(default_factory=list)

    def structure(self, values: Sequence[Any]) -> Any:
        if self.feed_kind == "dict":
            return dict(zip([s.name for s in self.inputs], values, strict=True))
        if self.feed_kind == "single":
            return values[0]
        return list(values)

    def call(self, x: Any) -> Any:
        if self.feed_kind == "positional":
            return self.model(*x)
        if is_keras(self.model):
            return self.model(x, training=False)
        return self.model(x)

    def named(self, y: Any) -> dict[str, Any]:
        """The model's result as {output name: tensor}."""
        if self.output_kind == "dict":
            return {str(k): v for k, v in y.items()}
        if self.output_kind == "single":
            return {self.output_names[0]: y}
        return dict(zip(self.output_names, y, strict=True))

    def serving_function(self, tf: Any) -> Any:
        """A ``tf.function`` over the inputs, returning {output name: tensor} (the serving signature)."""
        specs = [
            tf.TensorSpec(shape=list(s.shape), dtype=tf.as_dtype(s.dtype), name=s.name) for s in self.inputs
        ]

        def serve(*args: Any) -> dict[str, Any]:
            return self.named(self.call(self.structure(list(args))))

        return tf.function(serve, input_signature=specs)


def _own_inputs(model: Any, path: Path) -> tuple[tuple[InputSpec, ...], str, tuple[str, ...]] | None:
    """Inputs (and output names) the model declares itself: a functional Keras model's, or the
    ``input_signature`` of a ``tf.function`` ``__call__``."""
    declared = None
    with contextlib.suppress(Exception):  # subclassed models have none, or raise asking for them
        declared = model.inputs if is_keras(model) else None
    if declared:
        try:
            io = keras_io(model, path)
        except Exception:
            io = None
        if io is not None and all(s.shape is not None for s in io.inputs):
            specs = tuple(InputSpec(s.name, s.dtype, tuple(s.shape or ())) for s in io.inputs)
            return specs, io.feed_kind, tuple(s.name for s in io.outputs)
    call = getattr(model, "__call__", None)  # noqa: B004 (the tf.function itself, for its signature)
    signature = getattr(call, "input_signature", None)
    if signature:
        import inspect

        try:
            params = [p for p in inspect.signature(call.python_function).parameters if p != "self"]  # type: ignore[union-attr]
        except (TypeError, ValueError, AttributeError):
            params = []
        found: list[InputSpec] = []
        for i, s in enumerate(signature):
            if not hasattr(s, "dtype") or not hasattr(s, "shape"):
                return None  # nested signatures: let the user say what to feed
            name = getattr(s, "name", None) or (params[i] if i < len(params) else f"input_{i}")
            shape = shape_or_none(s.shape)
            if shape is None:
                return None
            found.append(InputSpec(str(name), dtype_name(s.dtype), shape))
        return tuple(found), "positional", ()
    return None


def _zeros(tf: Any, spec: InputSpec) -> Any:
    shape = [1 if d is None else d for d in spec.shape]
    return tf.zeros(shape, dtype=tf.as_dtype(spec.dtype))


def _is_tensor(tf: Any, value: Any) -> bool:
    return bool(tf.is_tensor(value)) or (hasattr(value, "dtype") and hasattr(value, "shape"))


def build_model(
    tf: Any,
    model: Any,
    *,
    loader: str,
    detail: str,
    path: Path,
    input_specs: tuple[InputSpec, ...],
) -> Built:
    """Decide the inputs, call the model once on zeros (creating lazy variables), name its outputs."""
    own = _own_inputs(model, path)
    own_outputs: tuple[str, ...] = ()
    if input_specs:
        specs = input_specs
        if own is not None and {s.name for s in own[0]} == {s.name for s in specs}:
            order = [s.name for s in own[0]]
            specs = tuple(sorted(specs, key=lambda s: order.index(s.name)))
            feed_kind, own_outputs = own[1], own[2]
        elif own is not None and own[1] == "positional" and len(own[0]) == len(specs):
            feed_kind = "positional"  # a tf.function signature: fed in the order given
        else:
            feed_kind = "single" if len(specs) == 1 else "dict"
    elif own is not None:
        specs, feed_kind, own_outputs = own
    else:
        raise UserError(
            f"{detail}: the model does not declare its inputs (a subclassed model); "
            "give them with --input-spec NAME:DTYPE:DIMS, e.g. --input-spec x:float32:-1,3"
        )
    built = Built(model, loader, detail, specs, feed_kind, (), "single")
    try:
        with quiet_fds(replay=False):
            y = built.call(built.structure([_zeros(tf, s) for s in specs]))
    except TFModelKitError:
        raise
    except Exception as e:
        shown = ", ".join(f"{s.name} {typed_shape(s.dtype, s.shape)}" for s in specs)
        raise UserError(
            f"{detail}: the model rejected zeros of its input specs ({shown}): {_error_line(e)}; "
            "check --input-spec"
        ) from None
    if isinstance(y, Mapping):
        names = tuple(str(k) for k in y)
        kind = "dict"
        values = list(y.values())
    elif isinstance(y, list | tuple):
        values = list(y)
        names = (
            own_outputs
            if len(own_outputs) == len(values)
            else tuple(f"output_{i}" for i in range(len(values)))
        )
        kind = "sequence"
    else:
        values = [y]
        names = own_outputs if len(own_outputs) == 1 else ("output_0",)
        kind = "single"
    if not values or not all(_is_tensor(tf, v) for v in values):
        raise UnsupportedError(
            f"{detail}: the model returned {type(y).__name__}; a SavedModel signature needs a tensor, "
            "a list/tuple of tensors or a dict of tensors"
        )
    if len(set(names)) != len(names):
        raise UnsupportedError(f"{detail}: the model's outputs have repeated names ({', '.join(names)})")
    built.output_names, built.output_kind = names, kind
    return built


def traced_outputs(tf: Any, built: Built) -> tuple[TensorSpec, ...]:
    """The model's outputs, from one trace of its serving function."""
    try:
        structured = built.serving_function(tf).get_concrete_function().structured_outputs
    except Exception as e:
        raise UserError(
            f"{built.detail}: the model cannot be traced with its inputs ({_error_line(e)})"
        ) from None
    return tuple(
        TensorSpec(
            name=name, dtype=dtype_name(structured[name].dtype), shape=shape_or_none(structured[name].shape)
        )
        for name in built.output_names
    )


def _build_from_code(tf: Any, spec: str, path: Path, input_specs: tuple[InputSpec, ...]) -> Built:
    factory, folder = load_model_factory(spec)
    with on_sys_path(folder):
        try:
            with quiet_fds(replay=False):
                model = factory()
        except TFModelKitError:
            raise
        except Exception as e:
            raise UserError(f"--model {spec}: calling it failed ({_error_line(e)})") from None
        if not isinstance(model, tf.__internal__.tracking.Trackable) or not callable(model):
            raise UserError(
                f"--model {spec}: returned a {type(model).__name__}, not a Keras model or a callable tf.Module"
            )
        return build_model(
            tf, model, loader="model code", detail=f"--model {spec}", path=path, input_specs=input_specs
        )


# ----------------------------------------------------------------------------------------
# The checkpoint, opened, and the model matched to it


@dataclass
class CheckpointSource:
    """What rebuilding and restoring need of a checkpoint, read once (no TensorFlow)."""

    #: The parsed ``--input-spec`` list.
    input_specs: tuple[InputSpec, ...]
    prefix: Path
    index: Any
    #: The object graph; None for a name-based (TF1) checkpoint.
    graph: Any
    desc: ModelDescription
    #: The checkpoint's weights by key.
    weights: dict[str, Any]
    #: The root object holding the model, as asked (None: found from the object graph).
    root_key: str | None

    @property
    def where(self) -> str:
        """How messages name the checkpoint."""
        return str(self.prefix)


def open_checkpoint(
    path: str | os.PathLike[str], *, input_specs: Sequence[str] = (), root_key: str | None = None
) -> CheckpointSource:
    """The checkpoint at ``path`` (a prefix, an index/data file, a state file or a folder), its
    ``input_specs`` parsed and ``root_key`` checked against its kind."""
    specs = parse_input_specs(input_specs)
    resolved = ckpt_format.resolve(path)
    prefix = resolved.prefix
    index = ckpt_format.guarded(prefix, lambda: ckpt_format.read_index(prefix))
    graph = ckpt_format.guarded(prefix, lambda: ckpt_format.object_graph(index))
    desc = ckpt_format.guarded(prefix, lambda: ckpt_format.describe_index(index, str(prefix), resolved.notes))
    if graph is None and root_key is not None:
        raise UserError(
            f"{prefix}: a name-based (TF1) checkpoint has no object graph and so no root key; "
            "drop --root-key (its variables are paired by name)"
        )
    return CheckpointSource(specs, prefix, index, graph, desc, {w.name: w for w in desc.weights}, root_key)


def _match(tf: Any, source: CheckpointSource, built: Built) -> Match:
    if source.graph is None:
        return match_name_based(tf, source.index, source.desc, built.model, source.where)
    return match_object_based(
        tf, source.index, source.graph, source.desc, built.model, source.root_key, source.where
    )


def rebuild(
    tf: Any,
    source: CheckpointSource,
    *,
    model: str | None = None,
    architecture: str | None = None,
    unsafe: bool = False,
    custom_objects: Mapping[str, Any] | None = None,
) -> tuple[Built, Match]:
    """The model built from ``model`` code or an ``architecture``, and how the checkpoint fits it.

    Either Keras may build an architecture (Keras 3 reads some Keras 2 configs, with other
    attribute names): the first model the checkpoint fits completely wins, else the one that
    takes the most values.
    """
    if model is not None:
        built = _build_from_code(tf, model, source.prefix, source.input_specs)
        return built, _match(tf, source, built)
    assert architecture is not None
    errors: list[str] = []
    best: tuple[Built, Match] | None = None
    config = architecture_config(architecture)
    for loader, keras_model, error in architecture_models(
        config, unsafe=unsafe, custom_objects=custom_objects, where=architecture
    ):
        if keras_model is None:
            errors.append(str(error))
            continue
        try:
            built = build_model(
                tf, keras_model, loader="architecture", detail=f"--architecture {architecture}",
                path=source.prefix, input_specs=source.input_specs,
            )  # fmt: skip
        except UserError as e:
            errors.append(f"{loader}: {e}")
            continue
        built.notes.append(f"architecture built with {loader}")
        found = _match(tf, source, built)  # errors here are about the checkpoint, whichever Keras built it
        if found.complete:
            return built, found
        if best is None or len(found.restored) > len(best[1].restored):
            best = (built, found)
    if best is not None:
        return best
    raise UserError(f"--architecture {architecture}: no Keras could build it ({'; '.join(errors)})")


# ----------------------------------------------------------------------------------------
# Restoring


def _reader(tf: Any, match: Match, model: Any, **siblings: Any) -> Any:
    """A ``tf.train.Checkpoint`` whose object graph puts ``model`` where the checkpoint has it
    (and ``siblings``, such as an optimizer, beside it under their keys)."""
    if match.root_key == ROOT_IS_MODEL:
        return tf.train.Checkpoint(root=model)
    # A holder object rather than Checkpoint(**{key: model}): keys such as "root" or
    # "save_counter" are Checkpoint's own and would not name a child there.
    holder = tf.__internal__.tracking.AutoTrackable()
    setattr(holder, str(match.root_key), model)
    for key, value in siblings.items():
        setattr(holder, key, value)
    return tf.train.Checkpoint(root=holder)


def restore_optimizer(tf: Any, restored: RestoredModel, optimizer: Any, key: str = "optimizer") -> str | None:
    """Read the checkpoint's optimizer state into ``optimizer`` (built for the restored model),
    found beside the model under ``key`` (or as the model's ``optimizer`` when the model is the
    root) by TensorFlow's object-graph matching. None when every optimizer variable found its
    value, else why not."""
    match = restored.match
    if match.kind == "name-based":
        return "a name-based (TF1) checkpoint's optimizer slots are not carried"
    checkpoint = _reader(
        tf, match, restored.built.model, **({} if match.root_key == ROOT_IS_MODEL else {key: optimizer})
    )
    try:
        with quiet_fds(replay=False):
            status = checkpoint.read(str(restored.prefix))
            status.expect_partial()
            status.assert_existing_objects_matched()
    except Exception as e:
        return f"its optimizer state does not fit the model's {type(optimizer).__name__} ({_error_line(e)})"
    return None


def restore(tf: Any, match: Match, prefix: Path, weights: Mapping[str, Any], model: Any, where: str) -> None:
    """Put the checkpoint's values into the model."""
    if match.kind == "name-based":
        for key, var in match.key_to_variable.items():
            var.assign(weights[key].read())
        return
    checkpoint = _reader(tf, match, model)
    try:
        with quiet_fds(replay=False):
            status = checkpoint.read(str(prefix))
            status.expect_partial()  # optimizer state and counters are left unread on purpose
    except Exception as e:
        raise UserError(
            f"{where}: TensorFlow could not restore the checkpoint into the model ({_error_line(e)})"
        ) from None


@dataclass
class RestoredModel:
    """The model that wrote a checkpoint, live, with the checkpoint's values in it."""

    source: CheckpointSource
    built: Built
    match: Match
    #: Partial-restore warnings (only with ``allow_partial``).
    warnings: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> Path:
        return self.source.prefix

    @property
    def notes(self) -> list[str]:
        """What a report should say of it: the checkpoint's warnings, the build's, the restore's."""
        return [*self.source.desc.warnings, *self.built.notes, *self.warnings]


def restore_matched(
    tf: Any, source: CheckpointSource, built: Built, match: Match, *, allow_partial: bool = False
) -> RestoredModel:
    """Restore ``source`` into the built model; missing or unused values are an error unless
    ``allow_partial`` (then warnings), values of the wrong shape always are."""
    warnings = problems(match, source.where, allow_partial)
    restore(tf, match, source.prefix, source.weights, built.model, source.where)
    return RestoredModel(source, built, match, warnings)


def restore_model(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    architecture: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    purpose: str = "running a checkpoint's model",
) -> RestoredModel:
    """The model that wrote the checkpoint at ``path``, rebuilt from ``model`` code
    (``pkg.module:fn`` or ``file.py:fn``) or an ``architecture`` file, and restored.

    ``root_key`` names the checkpoint's root object holding the model (found from the object
    graph by default; ``"/"`` = the root is the model). ``custom_objects`` is a dict or the
    module to take them from. ``purpose`` says what TensorFlow is needed for, should it be missing.
    """
    if (model is None) == (architecture is None):
        raise UserError(
            f"{path}: a checkpoint holds weights only; to run it, give the code that builds the model "
            "(--model MODULE:CALLABLE) or its architecture (--architecture FILE)"
        )
    source = open_checkpoint(path, input_specs=input_specs, root_key=root_key)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    tf = import_tensorflow(purpose)
    built, match = rebuild(
        tf, source, model=model, architecture=architecture, unsafe=unsafe, custom_objects=objects
    )
    return restore_matched(tf, source, built, match, allow_partial=allow_partial)
