"""Checkpoint + the code (or architecture) that wrote it -> a verified SavedModel.

A checkpoint holds values, not a graph: the model is rebuilt from user code
(``pkg.module:fn`` or ``path/to/file.py:fn``) or from a Keras architecture, built once on
zeros (subclassed models create their variables on first call), restored, exported with a
``serving_default`` named after the inputs, and proved twice: every exported variable is
byte-identical to its checkpoint value, and the SavedModel computes what the restored model
computes.

Matching. Object-based (TF2) checkpoints are matched the way TensorFlow restores them: the
object graph is walked from the root key's node alongside the live model's trackable children
(``tf.train.TrackableView``), pairing nodes by local name. A checkpoint key is the *shortest*
path to a value, so a model variable may be keyed under another root object (``optimizer/
_trainable_variables/3/...`` when the optimizer reaches it in fewer steps); pairing is therefore
by node, never by key prefix. Name-based (TF1 ``Saver``) checkpoints have no object graph:
model variables are paired by name (``tf.Variable.name`` without ``:0``, or a Keras 3
variable's ``path``; each also without its first scope) and assigned from tfmodelkit's own reader.

What the report calls what (``report.details``):

- ``restored``: checkpoint key -> model variable (its trackable path from the model);
- ``missing``: model variables that found no value (a problem unless ``allow_partial``);
- ``unused``: values of the model's part of the checkpoint that no model variable took (a problem
  unless ``allow_partial``);
- ``optimizer_unused``: optimizer state (slots, iterations, learning rate): expected, not a problem;
- ``ignored``: everything else outside the model: ``save_counter``, ``global_step``, other root
  objects the user did not choose; not a problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..description import ROLE_MODEL, ROLE_OPTIMIZER, TensorSpec
from ..errors import NotFoundError, TFModelKitError, UnsupportedError, UserError
from ..formats import checkpoint as ckpt_format
from .base import ConversionReport, Progress, VerifyOptions, run_verification, staged_output

#: ``root_key`` value meaning "the checkpoint's root object is the model itself"
#: (tf_keras ``model.save_weights(prefix)``, ``tf.train.Checkpoint(root=model)``).
ROOT_IS_MODEL = "/"
#: How many names an error message lists before "and N more".
LIST_LIMIT = 5

INPUT_DTYPES = (
    "float16", "float32", "float64", "bfloat16",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string", "complex64", "complex128",
)  # fmt: skip
# TensorFlow's rule for op (and so signature input) names.
_NAME_RE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")
_OPTIMIZER_EDGE = re.compile(r"(^|_)(optimizer|opt)(_\d+)?$", re.IGNORECASE)
_OPTIMIZER_CHILDREN = frozenset({"_iterations", "iter", "iterations"})
_VARIABLE_VALUE = "VARIABLE_VALUE"


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
# Model code


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(e: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line; Keras 3's "Exception encountered when calling X.call()."
    preamble is skipped for the line that says what went wrong."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _on_sys_path(folder: Path | None) -> Iterator[None]:
    """``folder`` at the front of sys.path for the block only (sibling imports of a model file)."""
    if folder is None:
        yield
        return
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise NotFoundError(f"--model {spec}: no such file {path}")
    resolved = path.resolve()
    name = (
        f"_tfmodelkit_model_{re.sub(r'[^0-9A-Za-z_]', '_', resolved.stem)}_"
        + hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    )
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"--model {spec}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses, pickling and autograph look modules up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise UserError(f"--model {spec}: importing {path} failed ({_first_line(e)})") from None
    return module


def load_model_factory(spec: str) -> tuple[Callable[[], Any], Path | None]:
    """The callable named by ``pkg.module:fn`` or ``path/to/file.py:fn`` (dotted attributes allowed),
    and the folder to keep on sys.path while it runs (for a file)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UserError(f"--model {spec}: expected pkg.module:callable or path/to/file.py:callable")
    folder = None
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = Path(target)
        folder = path.resolve().parent
        with _on_sys_path(folder):
            module = _import_file(path, spec)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise UserError(f"--model {spec}: cannot import {target} ({e}); is it on PYTHONPATH?") from None
        except Exception as e:
            raise UserError(f"--model {spec}: importing {target} failed ({_first_line(e)})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NotFoundError(f"--model {spec}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(
            f"--model {spec}: {attr} is a {type(obj).__name__}, not a callable that returns the model"
        )
    return obj, folder


def _is_keras(obj: Any) -> bool:
    """A Keras 3 or tf_keras layer/model (they take ``training=``)."""
    return any(
        c.__name__ in ("Layer", "Model") and c.__module__.startswith(("keras", "tf_keras"))
        for c in type(obj).__mro__
    )


def _is_optimizer(obj: Any) -> bool:
    return any(
        "Optimizer" in c.__name__ and c.__module__.startswith(("keras", "tf_keras", "tensorflow"))
        for c in type(obj).__mro__
    )


def _is_variable(tf: Any, obj: Any) -> bool:
    if isinstance(obj, tf.Variable):
        return True
    keras = sys.modules.get("keras")
    variable_type = getattr(keras, "Variable", None) if keras is not None else None
    return isinstance(variable_type, type) and isinstance(obj, variable_type)


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _shape_of(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    if hasattr(shape, "as_list"):
        if shape.rank is None:
            return None
        shape = shape.as_list()
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        return None


def _fmt(dtype: str, shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return f"{dtype}[?]"
    return f"{dtype}[{','.join('?' if d is None else str(d) for d in shape)}]"


def _listing(items: Sequence[str], limit: int = LIST_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ----------------------------------------------------------------------------------------
# The model, built and callable


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
        if _is_keras(self.model):
            return self.model(x, training=False)
        return self.model(x)

    def named(self, y: Any) -> dict[str, Any]:
        """The model's result as {output name: tensor}."""
        if self.output_kind == "dict":
            return {str(k): v for k, v in y.items()}
        if self.output_kind == "single":
            return {self.output_names[0]: y}
        return dict(zip(self.output_names, y, strict=True))


def _own_inputs(model: Any, path: Path) -> tuple[tuple[InputSpec, ...], str, tuple[str, ...]] | None:
    """Inputs (and output names) the model declares itself: a functional Keras model's, or the
    ``input_signature`` of a ``tf.function`` ``__call__``."""
    declared = None
    with contextlib.suppress(Exception):  # subclassed models have none, or raise asking for them
        declared = model.inputs if _is_keras(model) else None
    if declared:
        from ..verify.runners import KerasRunner

        try:
            runner = KerasRunner.from_model(model, path, "model")
        except Exception:
            runner = None
        if runner is not None and all(s.shape is not None for s in runner.inputs):
            specs = tuple(InputSpec(s.name, s.dtype, tuple(s.shape or ())) for s in runner.inputs)
            return specs, runner.feed_kind, tuple(s.name for s in runner.outputs)
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
            shape = _shape_or_none(s.shape)
            if shape is None:
                return None
            found.append(InputSpec(str(name), _dtype_name(s.dtype), shape))
        return tuple(found), "positional", ()
    return None


def _shape_or_none(shape: Any) -> tuple[int | None, ...] | None:
    if getattr(shape, "rank", 0) is None:
        return None
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(None if d is None else int(d) for d in dims)


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
        from ..verify.runners import quiet_fds

        with quiet_fds(replay=False):
            y = built.call(built.structure([_zeros(tf, s) for s in specs]))
    except TFModelKitError:
        raise
    except Exception as e:
        shown = ", ".join(f"{s.name} {_fmt(s.dtype, s.shape)}" for s in specs)
        raise UserError(
            f"{detail}: the model rejected zeros of its input specs ({shown}): {_first_line(e)}; "
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


def _build_from_code(tf: Any, spec: str, path: Path, input_specs: tuple[InputSpec, ...]) -> Built:
    factory, folder = load_model_factory(spec)
    with _on_sys_path(folder):
        try:
            from ..verify.runners import quiet_fds

            with quiet_fds(replay=False):
                model = factory()
        except TFModelKitError:
            raise
        except Exception as e:
            raise UserError(f"--model {spec}: calling it failed ({_first_line(e)})") from None
        if not isinstance(model, tf.__internal__.tracking.Trackable) or not callable(model):
            raise UserError(
                f"--model {spec}: returned a {type(model).__name__}, not a Keras model or a callable tf.Module"
            )
        return build_model(
            tf, model, loader="model code", detail=f"--model {spec}", path=path, input_specs=input_specs
        )


def _architecture_models(
    architecture: str, *, unsafe: bool, custom_objects: dict[str, Any]
) -> Iterator[tuple[str, Any | None, str | None]]:
    """(loader, model or None, error) for each Keras that may build the architecture, likeliest first."""
    from ..verify.runners import code_layers, import_keras, import_tf_keras, quiet_fds
    from .keras_to_savedmodel import _architecture_config

    config = _architecture_config(architecture)
    risky = code_layers(config)
    if risky and not unsafe:
        raise UserError(
            f"{architecture}: refusing to build it: {', '.join(risky[:5])} carries Python code; "
            "pass --unsafe only if you trust this file"
        )
    # tf_keras's to_json() records keras_version 2.x; Keras 3 configs are tried with Keras 3 first.
    order = (
        ("tf_keras", "keras")
        if str(config.get("keras_version", "")).startswith("2.")
        else ("keras", "tf_keras")
    )
    for loader in order:
        module = (
            import_keras("building the architecture")
            if loader == "keras"
            else import_tf_keras("building a Keras 2 architecture")
        )
        if module is None:
            continue
        try:
            with quiet_fds(replay=False):
                if loader == "keras":
                    model = module.saving.deserialize_keras_object(
                        config, safe_mode=not unsafe, custom_objects=custom_objects or None
                    )
                else:
                    model = module.models.model_from_json(
                        json.dumps(config), custom_objects=custom_objects or None
                    )
        except Exception as e:
            yield loader, None, f"{loader}: {_first_line(e)}"
            continue
        yield loader, model, None


# ----------------------------------------------------------------------------------------
# Matching the checkpoint to the model


@dataclass
class Match:
    """How the checkpoint's values pair with the model's variables."""

    kind: str  # "object-based" / "name-based"
    root_key: str | None
    restored: dict[str, str]  # checkpoint key -> model variable path
    missing: list[str]
    unused: list[str]
    optimizer_unused: list[str]
    ignored: list[str]
    #: checkpoint key -> the live variable restored from it.
    key_to_variable: dict[str, Any]
    #: id(live variable) -> (path, variable) for every model variable.
    variables: dict[int, tuple[str, Any]]
    mismatched: list[str] = field(default_factory=list)  # shape/dtype disagreements

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unused and not self.mismatched

    def details(self) -> dict[str, Any]:
        return {
            "checkpoint_kind": self.kind,
            "root_key": self.root_key,
            "restored": dict(self.restored),
            "unused": list(self.unused),
            "missing": list(self.missing),
            "optimizer_unused": list(self.optimizer_unused),
            "ignored": list(self.ignored),
        }


class _Children:
    """``tf.train.TrackableView.children`` cached per object (keeps the objects alive)."""

    def __init__(self, tf: Any) -> None:
        self.tf = tf
        self._cache: dict[int, tuple[Any, dict[str, Any]]] = {}

    def __call__(self, obj: Any) -> dict[str, Any]:
        key = id(obj)
        if key not in self._cache:
            try:
                children = dict(self.tf.train.TrackableView.children(obj))
            except Exception:
                children = {}
            self._cache[key] = (obj, children)
        return self._cache[key][1]


def model_variables(tf: Any, model: Any, children: _Children) -> dict[int, tuple[str, Any]]:
    """Every variable the model tracks, by identity, with the first trackable path reaching it
    (breadth-first, as checkpoints name them); optimizers the model holds are skipped."""
    found: dict[int, tuple[str, Any]] = {}
    seen = {id(model)}
    queue: list[tuple[str, Any]] = [("", model)]
    while queue:
        base, obj = queue.pop(0)
        for name, child in children(obj).items():
            path = f"{base}/{name}" if base else name
            if id(child) in seen or _is_optimizer(child):
                continue
            seen.add(id(child))
            if _is_variable(tf, child):
                found[id(child)] = (path, child)
            else:
                queue.append((path, child))
    return found


def _match_nodes(
    tf: Any, graph: Any, start: int, live: Any, children: _Children, paths: dict[int, str] | None = None
) -> dict[int, Any]:
    """Object-graph node id -> live object, walking both graphs by local name from ``start``
    (as TensorFlow's restore does); ``paths`` receives each node's path from ``live``."""
    nodes = graph.nodes
    matched = {start: live}
    where = {start: ""}
    queue = [start]
    while queue:
        nid = queue.pop(0)
        obj = matched[nid]
        if _is_variable(tf, obj):
            continue
        live_children = children(obj)
        for ref in nodes[nid].children:
            cid = ref.node_id
            if cid in matched or not 0 <= cid < len(nodes):
                continue
            child = live_children.get(ref.local_name)
            if child is None or _is_optimizer(child):
                continue
            matched[cid] = child
            where[cid] = f"{where[nid]}/{ref.local_name}" if where[nid] else ref.local_name
            queue.append(cid)
    if paths is not None:
        paths.update(where)
    return matched


def _variable_keys(tf: Any, graph: Any, matched: Mapping[int, Any]) -> dict[str, Any]:
    """Checkpoint key -> live variable for matched nodes holding a variable value."""
    out: dict[str, Any] = {}
    taken: set[int] = set()
    for nid, obj in matched.items():
        if not _is_variable(tf, obj) or id(obj) in taken:
            continue
        for attr in graph.nodes[nid].attributes:
            if attr.name == _VARIABLE_VALUE:
                out[attr.checkpoint_key] = obj
                taken.add(id(obj))
                break
    return out


def _optimizer_like(graph: Any, nid: int, edge: str) -> bool:
    node = graph.nodes[nid]
    if _OPTIMIZER_EDGE.search(edge) or len(node.slot_variables):
        return True
    return bool({c.local_name for c in node.children} & _OPTIMIZER_CHILDREN)


def _reach(graph: Any, starts: Sequence[int], stop: Callable[[int, str], bool]) -> set[int]:
    """Nodes reachable from ``starts`` through children, not entering nodes ``stop`` says to skip."""
    nodes = graph.nodes
    seen = set(starts)
    queue = list(starts)
    while queue:
        nid = queue.pop(0)
        for ref in nodes[nid].children:
            cid = ref.node_id
            if cid in seen or not 0 <= cid < len(nodes) or stop(cid, ref.local_name):
                continue
            seen.add(cid)
            queue.append(cid)
    return seen


def _holds_value(node: Any) -> bool:
    return any(a.name == _VARIABLE_VALUE for a in node.attributes)


def _root_candidates(graph: Any) -> tuple[list[str], list[str]]:
    """(root children that may be the model, all root children).

    One node may hang under several names (tf_keras tracks each layer as ``layer-N`` and
    ``layer_with_weights-M``) and tf_keras's ``save_weights`` adds a ``root`` child that is the
    root itself: candidates are distinct nodes other than the root, under their first name.
    """
    nodes = graph.nodes
    all_names = [c.local_name for c in nodes[0].children]
    out = []
    seen: set[int] = set()
    for ref in nodes[0].children:
        cid = ref.node_id
        if cid == 0 or cid in seen or not 0 <= cid < len(nodes):
            continue
        seen.add(cid)
        if _optimizer_like(graph, cid, ref.local_name) or _holds_value(nodes[cid]):
            continue  # the optimizer; save_counter, step and other bare counters
        sub = _reach(graph, [cid], lambda n, e: _optimizer_like(graph, n, e))
        if any(_holds_value(nodes[n]) for n in sub):
            out.append(ref.local_name)
    return out, all_names


def _choose_root(
    tf: Any, graph: Any, model: Any, root_key: str | None, children: _Children, where: str
) -> tuple[str, int]:
    """(root key, its node id); ROOT_IS_MODEL when the checkpoint's root is the model itself."""
    nodes = graph.nodes
    by_name = {c.local_name: c.node_id for c in nodes[0].children}
    if root_key == ROOT_IS_MODEL:
        return ROOT_IS_MODEL, 0
    if root_key is not None:
        if root_key not in by_name:
            raise NotFoundError(
                f"{where}: the checkpoint has no root object {root_key!r} (its root objects: "
                f"{', '.join(by_name) or 'none'}; {ROOT_IS_MODEL!r} means the root is the model itself)"
            )
        if by_name[root_key] == 0:  # tf_keras's self-referencing "root" child
            return ROOT_IS_MODEL, 0
        if _optimizer_like(graph, by_name[root_key], root_key):
            raise UserError(
                f"{where}: root object {root_key!r} is optimizer state, not a model; choose another root key"
            )
        return root_key, by_name[root_key]
    candidates, all_names = _root_candidates(graph)

    def hits(start: int) -> int:
        return len(_variable_keys(tf, graph, _match_nodes(tf, graph, start, model, children)))

    # tf_keras save_weights(prefix) and Checkpoint(root=model) make the model the root itself.
    root_hits = hits(0)
    best = max((hits(by_name[c]) for c in candidates), default=0)
    if root_hits and root_hits > best:
        return ROOT_IS_MODEL, 0
    if len(candidates) == 1:
        return candidates[0], by_name[candidates[0]]
    if not candidates:
        raise UserError(
            f"{where}: no root object of the checkpoint holds model variables (root objects: "
            f"{', '.join(all_names) or 'none'}); name the model's with root_key (--root-key)"
        )
    raise UserError(
        f"{where}: several root objects could hold the model ({', '.join(candidates)}); "
        "choose one with root_key (--root-key)"
    )


def match_object_based(
    tf: Any, index: Any, graph: Any, desc: Any, model: Any, root_key: str | None, where: str
) -> Match:
    children = _Children(tf)
    variables = model_variables(tf, model, children)
    key, start = _choose_root(tf, graph, model, root_key, children, where)
    node_paths: dict[int, str] = {}
    matched = _match_nodes(tf, graph, start, model, children, node_paths)
    key_to_var = _variable_keys(tf, graph, matched)
    nodes = graph.nodes

    def stop(nid: int, edge: str) -> bool:
        return _optimizer_like(graph, nid, edge)

    if start == 0:  # the root is the model: its optimizer-like children are not
        model_nodes = _reach(graph, [0], stop)
    else:
        model_nodes = _reach(graph, [start], stop)
    optimizer_starts = [
        ref.node_id
        for nid in range(len(nodes))
        for ref in nodes[nid].children
        if 0 <= ref.node_id < len(nodes) and _optimizer_like(graph, ref.node_id, ref.local_name)
    ]
    optimizer_nodes = _reach(graph, optimizer_starts, lambda n, e: False)
    _, optimizer_keys, _ = ckpt_format.object_paths(graph)

    key_node: dict[str, tuple[int | None, str]] = {}
    for node_id, node in enumerate(nodes):
        for attr in node.attributes:
            key_node.setdefault(attr.checkpoint_key, (node_id, attr.name))
    paths = {id(v): p for p, v in variables.values()}
    restored: dict[str, str] = {}
    unused: list[str] = []
    optimizer_unused: list[str] = []
    ignored: list[str] = []
    for name in sorted(index.entries):
        if name == ckpt_format.OBJECT_GRAPH_KEY:
            continue
        var = key_to_var.get(name)
        if var is not None and id(var) in paths:
            restored[name] = paths[id(var)]
            continue
        nid, attr = key_node.get(name, (None, ""))
        if (
            nid is not None
            and nid in matched
            and attr != _VARIABLE_VALUE
            and not _is_variable(tf, matched[nid])
        ):
            # Object state other than a variable (a lookup table, Python state): TF restores it
            # through the object itself; it is not a variable to compare.
            restored[name] = f"{node_paths.get(nid, '?')} ({attr})"
        elif nid is not None and nid in model_nodes:
            unused.append(name)
        elif (
            name in optimizer_keys
            or "/.OPTIMIZER_SLOT/" in name
            or (nid is not None and nid in optimizer_nodes)
        ):
            optimizer_unused.append(name)
        else:
            ignored.append(name)
    restored_ids = {id(key_to_var[k]) for k in restored if k in key_to_var}
    missing = [p for vid, (p, _) in variables.items() if vid not in restored_ids]
    match = Match(
        kind="object-based",
        root_key=key,
        restored=restored,
        missing=sorted(missing),
        unused=unused,
        optimizer_unused=optimizer_unused,
        ignored=ignored,
        key_to_variable={k: v for k, v in key_to_var.items() if k in restored},
        variables=variables,
    )
    _check_shapes(match, index)
    return match


_SCOPE_SUFFIX = re.compile(r":\d+$")


def _variable_names(var: Any) -> list[str]:
    """Names a name-based checkpoint may know ``var`` by: a Keras 3 variable's ``path``
    (its ``name`` is unscoped), a tf.Variable's ``name`` without ``:0``; each also without
    its first scope (the model's name)."""
    path = getattr(var, "path", None)
    name = getattr(var, "name", None)
    if isinstance(path, str) and path:
        full = path
    elif isinstance(name, str) and name:
        full = _SCOPE_SUFFIX.sub("", name)
    else:
        return []
    return [full, full.split("/", 1)[1]] if "/" in full else [full]


def match_name_based(tf: Any, index: Any, desc: Any, model: Any, where: str) -> Match:
    children = _Children(tf)
    variables = model_variables(tf, model, children)
    roles = {w.name: w.role for w in desc.weights}
    key_to_var: dict[str, Any] = {}
    restored: dict[str, str] = {}
    for path, var in variables.values():
        for name in _variable_names(var):
            if name in index.entries:
                if name in key_to_var:
                    other = restored[name]
                    raise UserError(
                        f"{where}: model variables {other} and {path} both match checkpoint value {name!r} "
                        "(name-based checkpoints pair variables by name); give them distinct names"
                    )
                key_to_var[name] = var
                restored[name] = path
                break
    taken = {id(v) for v in key_to_var.values()}
    missing = sorted(p for vid, (p, _) in variables.items() if vid not in taken)
    unused: list[str] = []
    optimizer_unused: list[str] = []
    ignored: list[str] = []
    for name in sorted(index.entries):
        if name in restored:
            continue
        role = roles.get(name)
        (unused if role == ROLE_MODEL else optimizer_unused if role == ROLE_OPTIMIZER else ignored).append(
            name
        )
    match = Match(
        kind="name-based",
        root_key=None,
        restored=dict(sorted(restored.items())),
        missing=missing,
        unused=unused,
        optimizer_unused=optimizer_unused,
        ignored=ignored,
        key_to_variable=key_to_var,
        variables=variables,
    )
    _check_shapes(match, index)
    return match


def _check_shapes(match: Match, index: Any) -> None:
    for key, var in match.key_to_variable.items():
        entry = index.entries[key]
        shape, dtype = _shape_of(var), _dtype_name(var.dtype)
        if shape != tuple(entry.shape) or dtype != entry.dtype:
            match.mismatched.append(
                f"{key} is {_fmt(entry.dtype, entry.shape)}, model variable {match.restored[key]} is "
                f"{_fmt(dtype, shape)}"
            )


def _problems(match: Match, where: str, allow_partial: bool) -> list[str]:
    """Raise on shape disagreements (always) and, unless ``allow_partial``, on missing/unused values;
    return the warnings to record otherwise."""
    if match.mismatched:
        raise UserError(
            f"{where}: {len(match.mismatched)} checkpoint value(s) do not fit the model: "
            f"{_listing(match.mismatched, 3)}; the model built is not the one that wrote this checkpoint (or --input-spec is wrong)"
        )
    parts = []
    if match.missing:
        parts.append(f"{len(match.missing)} model variable(s) found no value ({_listing(match.missing)})")
    if match.unused:
        parts.append(f"{len(match.unused)} checkpoint value(s) went unused ({_listing(match.unused)})")
    if not parts:
        return []
    hint = ""
    if match.kind == "name-based":
        hint = (
            " (a name-based checkpoint: variables are paired by name, e.g. tf.Variable(name='dense/kernel'))"
        )
    elif match.root_key is not None:
        hint = f" (root key {match.root_key!r})"
    if not allow_partial:
        raise UserError(
            f"{where}: the checkpoint does not fit the model{hint}: {'; '.join(parts)}; "
            "pass allow_partial=True (--allow-partial) to convert anyway"
        )
    return [f"partial restore{hint}: {p}" for p in parts]


# ----------------------------------------------------------------------------------------
# Restore, export, the reference runner


def restore(tf: Any, match: Match, prefix: Path, weights: Mapping[str, Any], model: Any, where: str) -> None:
    """Put the checkpoint's values into the model."""
    from ..verify.runners import quiet_fds

    if match.kind == "name-based":
        for key, var in match.key_to_variable.items():
            var.assign(weights[key].read())
        return
    if match.root_key == ROOT_IS_MODEL:
        checkpoint = tf.train.Checkpoint(root=model)
    else:
        # A holder object rather than Checkpoint(**{key: model}): keys such as "root" or
        # "save_counter" are Checkpoint's own and would not name a child there.
        holder = tf.__internal__.tracking.AutoTrackable()
        setattr(holder, str(match.root_key), model)
        checkpoint = tf.train.Checkpoint(root=holder)
    try:
        with quiet_fds(replay=False):
            status = checkpoint.read(str(prefix))
            status.expect_partial()  # optimizer state and counters are left unread on purpose
    except Exception as e:
        raise UserError(
            f"{where}: TensorFlow could not restore the checkpoint into the model ({_first_line(e)})"
        ) from None


def _output_specs(tf: Any, built: Built) -> tuple[TensorSpec, ...]:
    """The restored model's outputs, from one trace of its serving function."""
    specs = [tf.TensorSpec(shape=list(s.shape), dtype=tf.as_dtype(s.dtype), name=s.name) for s in built.inputs]
    function = tf.function(lambda *args: built.named(built.call(built.structure(list(args)))), input_signature=specs)
    try:
        structured = function.get_concrete_function().structured_outputs
    except Exception as e:
        raise UserError(f"{built.detail}: the model cannot be traced with its inputs ({_first_line(e)})") from None
    return tuple(
        TensorSpec(name=name, dtype=_dtype_name(structured[name].dtype), shape=_shape_or_none(structured[name].shape))
        for name in built.output_names
    )


class RestoredModelRunner:
    """The restored in-memory model as a verification runner (the reference)."""

    backend = "checkpoint"

    def __init__(
        self, built: Built, prefix: Path, outputs: tuple[TensorSpec, ...], root_key: str | None
    ) -> None:
        from ..verify.runners import BaseRunner

        self._base = BaseRunner(prefix)
        self.path = Path(prefix)
        self.built = built
        self.inputs = tuple(s.as_tensor_spec() for s in built.inputs)
        self.outputs = outputs
        self.root_key = root_key
        self._base.inputs = self.inputs
        self._base.outputs = outputs
        self.notes = self._base.notes

    @property
    def dequantized_outputs(self) -> Mapping[str, Any]:
        return {}

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._base.prepare(feed)
        x = self.built.structure([values[s.name] for s in self.inputs])
        try:
            y = self.built.call(x)
        except Exception as e:
            raise UserError(f"{self.path}: the restored model rejected the feed ({_first_line(e)})") from None
        return {
            k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in self.built.named(y).items()
        }

    def describe(self) -> dict[str, Any]:
        from ..verify.runners import _version

        d = self._base.describe()
        d.update(
            backend=self.backend,
            loader=self.built.loader,
            model=self.built.detail,
            model_class=type(self.built.model).__name__,
            root_key=self.root_key,
        )
        d["versions"] = {"tensorflow": _version("tensorflow")}
        return d


def export(tf: Any, built: Built, folder: Path) -> tuple[Any, tuple[TensorSpec, ...]]:
    """Write the SavedModel; returns the exported root (for pairing variables) and the output specs."""
    from ..verify.runners import quiet_fds

    specs = [
        tf.TensorSpec(shape=list(s.shape), dtype=tf.as_dtype(s.dtype), name=s.name) for s in built.inputs
    ]

    def serve(*args: Any) -> dict[str, Any]:
        return built.named(built.call(built.structure(list(args))))

    function = tf.function(serve, input_signature=specs)
    root = tf.Module()
    root.model = built.model  # tracks the variables
    root.serve = function
    try:
        with quiet_fds(replay=False):
            concrete = function.get_concrete_function()
            tf.saved_model.save(root, str(folder), signatures={"serving_default": concrete})
    except Exception as e:
        raise UserError(f"{built.detail}: exporting the SavedModel failed ({_first_line(e)})") from None
    outputs = []
    structured = concrete.structured_outputs
    for name in built.output_names:
        t = structured[name]
        outputs.append(TensorSpec(name=name, dtype=_dtype_name(t.dtype), shape=_shape_or_none(t.shape)))
    return root, tuple(outputs)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return a.tobytes() == b.tobytes()


def check_exported_variables(
    tf: Any, folder: Path, root: Any, match: Match, weights: Mapping[str, Any]
) -> dict[str, Any]:
    """Pair every variable of the SavedModel with its checkpoint value (through the live variables)
    and compare them byte for byte."""
    prefix = folder / "variables" / "variables"
    index = ckpt_format.read_index(prefix)
    graph = ckpt_format.object_graph(index)
    exported = {w.name: w for w in ckpt_format.describe_index(index, str(prefix)).weights}
    result: dict[str, Any] = {
        "compared": 0,
        "identical": 0,
        "mismatched": [],
        "unpaired": [],
        "not_from_checkpoint": [],
    }
    if graph is None:
        result["unpaired"].append(f"{prefix}: no object graph to pair the variables by")
        result["ok"] = False
        return result
    children = _Children(tf)
    exported_vars = _variable_keys(tf, graph, _match_nodes(tf, graph, 0, root, children))
    source_of = {id(v): k for k, v in match.key_to_variable.items()}
    path_of = {vid: p for vid, (p, _) in match.variables.items()}
    seen_sources = set()
    for key in sorted(exported):
        if key == ckpt_format.OBJECT_GRAPH_KEY:
            continue
        var = exported_vars.get(key)
        if var is None:
            result["unpaired"].append(key)
            continue
        source = source_of.get(id(var))
        if source is None:
            result["not_from_checkpoint" if id(var) in path_of else "unpaired"].append(key)
            continue
        seen_sources.add(source)
        result["compared"] += 1
        if _same(exported[key].read(), weights[source].read()):
            result["identical"] += 1
        else:
            result["mismatched"].append(
                {"exported": key, "checkpoint": source, "variable": match.restored[source]}
            )
    for source in match.key_to_variable:
        if source not in seen_sources:
            result["unpaired"].append(f"{source} (restored, but not found in the SavedModel)")
    result["ok"] = not result["mismatched"] and not result["unpaired"]
    return result


# ----------------------------------------------------------------------------------------
# The restored model, for verification


def _open(
    ckpt: str | os.PathLike[str], input_specs: Sequence[str], root_key: str | None
) -> tuple[tuple[InputSpec, ...], Path, Any, Any, Any, dict[str, Any], str]:
    """What rebuilding and restoring need of a checkpoint: the parsed ``--input-spec`` list,
    its prefix, index, object graph (None for a name-based one), description, weights by key
    and how messages name it."""
    specs = parse_input_specs(input_specs)
    resolved = ckpt_format.resolve(ckpt)
    prefix = resolved.prefix
    index = ckpt_format._guarded(prefix, lambda: ckpt_format.read_index(prefix))
    graph = ckpt_format._guarded(prefix, lambda: ckpt_format.object_graph(index))
    desc = ckpt_format._guarded(prefix, lambda: ckpt_format.describe_index(index, str(prefix), resolved.notes))
    where = str(prefix)
    if graph is None and root_key is not None:
        raise UserError(
            f"{where}: a name-based (TF1) checkpoint has no object graph and so no root key; "
            "drop --root-key (its variables are paired by name)"
        )
    return specs, prefix, index, graph, desc, {w.name: w for w in desc.weights}, where


def restored_runner(
    ckpt: str | os.PathLike[str],
    *,
    model: str | None = None,
    architecture: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
) -> RestoredModelRunner:
    """The model that wrote ``ckpt``, rebuilt and restored as ckpt-to-savedmodel does, as a
    verification runner (``modelconv verify CKPT B --model ...``)."""
    from ..verify.runners import import_tensorflow
    from .keras_to_savedmodel import load_custom_objects

    if (model is None) == (architecture is None):
        raise UserError(
            f"{ckpt}: a checkpoint holds weights only; to run it, give the code that builds the model "
            "(--model MODULE:CALLABLE) or its architecture (--architecture FILE)"
        )
    specs, prefix, index, graph, desc, weights, where = _open(ckpt, input_specs, root_key)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    tf = import_tensorflow("running a checkpoint's model")
    built, match = _load_and_match(
        tf, model, architecture, specs, unsafe, objects, index, graph, desc, root_key, prefix, where
    )
    warnings = _problems(match, where, allow_partial)
    restore(tf, match, prefix, weights, built.model, where)
    outputs = _output_specs(tf, built)
    runner = RestoredModelRunner(built, prefix, outputs, match.root_key)
    runner.notes.extend([*desc.warnings, *built.notes, *warnings])
    return runner


# ----------------------------------------------------------------------------------------
# The conversion


def ckpt_to_savedmodel(
    ckpt: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model: str | None = None,
    architecture: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    quiet: bool = False,
) -> ConversionReport:
    """Rebuild the model that wrote ``ckpt`` (``model`` code or an ``architecture``), restore it and
    export a SavedModel whose variables are proved identical to the checkpoint's and whose
    ``serving_default`` is verified against the restored model.

    ``root_key`` names the checkpoint's root object holding the model (found from the object graph
    by default; ``"/"`` = the root is the model). Missing or unused model values are an error unless
    ``allow_partial``. Name-based (TF1) checkpoints pair variables by name.
    """
    from .keras_to_savedmodel import load_custom_objects

    if (model is None) == (architecture is None):
        raise UserError(
            "ckpt-to-savedmodel needs exactly one of --model MODULE:CALLABLE (code that builds the model) "
            "or --architecture FILE (a JSON, .h5 or .keras model config)"
        )
    specs, prefix, index, graph, desc, weights, where = _open(ckpt, input_specs, root_key)
    options = verify or VerifyOptions()
    report = ConversionReport(str(ckpt), "checkpoint", str(dst), ["checkpoint", "savedmodel"])
    report.warnings.extend(desc.warnings)
    report.details["prefix"] = str(prefix)
    progress = Progress(report, quiet)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)

    with staged_output(dst, overwrite) as stage:
        from ..verify.runners import SavedModelRunner, import_tensorflow

        with progress.stage("load", f"building the model ({'model code' if model else 'architecture'})"):
            tf = import_tensorflow("converting a checkpoint")
            built, match = _load_and_match(
                tf, model, architecture, specs, unsafe, objects, index, graph, desc, root_key, prefix, where
            )
        report.loader = built.loader
        report.details["model"] = built.detail
        report.warnings.extend(built.notes)
        progress.say(f"[load] {built.loader}: {built.detail}")
        with progress.stage("restore", f"restoring {prefix.name} ({match.kind})"):
            warnings = _problems(match, where, allow_partial)
            restore(tf, match, prefix, weights, built.model, where)
        report.details.update(match.details())
        for w in warnings:
            report.warnings.append(w)
            progress.say(f"[restore] warning: {w}")
        progress.say(
            f"[restore] {len(match.restored)} values restored"
            + (f" (root key {match.root_key!r})" if match.root_key else "")
            + f"; {len(match.optimizer_unused)} optimizer values left unused as expected"
        )
        with progress.stage("export", "writing the SavedModel"):
            root, outputs = export(tf, built, stage.path)
        report.details["signature"] = {
            "serving_default": {"inputs": [s.name for s in built.inputs], "outputs": list(built.output_names)}
        }
        with progress.stage("verify", "comparing exported variables with the checkpoint"):
            check = check_exported_variables(tf, stage.path, root, match, weights)
        report.details["variable_check"] = check
        report.verification.append({"label": "exported variables vs checkpoint (exact)", **check})
        if check["ok"]:
            progress.say(f"[verify] {check['identical']} exported variables are identical to the checkpoint")
        else:
            bad = [f"{m['variable']} ({m['checkpoint']})" for m in check["mismatched"]] + check["unpaired"]
            text = f"exported variables differ from the checkpoint: {_listing(bad)}"
            report.warnings.append(text)
            progress.say(f"[verify] FAILED: {text}")
        report.ok = check["ok"]
        if options.enabled:
            with progress.stage("verify", "loading the SavedModel back"):
                # Our own export of the model the reference runs: the same ops, nothing new.
                candidate = SavedModelRunner(stage.path, signature="serving_default", safe_mode=False)
                candidate.shown = str(stage.destination)
            reference = RestoredModelRunner(built, prefix, outputs, match.root_key)
            result = run_verification(
                reference, candidate, options, "float32", progress, "restored model vs SavedModel"
            )
            report.ok = report.ok and result.ok
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report


def _load_and_match(
    tf: Any,
    model: str | None,
    architecture: str | None,
    specs: tuple[InputSpec, ...],
    unsafe: bool,
    objects: dict[str, Any],
    index: Any,
    graph: Any,
    desc: Any,
    root_key: str | None,
    prefix: Path,
    where: str,
) -> tuple[Built, Match]:
    def match_for(built: Built) -> Match:
        if graph is None:
            return match_name_based(tf, index, desc, built.model, where)
        return match_object_based(tf, index, graph, desc, built.model, root_key, where)

    if model is not None:
        built = _build_from_code(tf, model, prefix, specs)
        return built, match_for(built)
    assert architecture is not None
    errors: list[str] = []
    best: tuple[Built, Match] | None = None
    # Either Keras may build a config (Keras 3 reads some Keras 2 configs, with other attribute
    # names); keep the model whose variables fit the checkpoint.
    for loader, keras_model, error in _architecture_models(
        architecture, unsafe=unsafe, custom_objects=objects
    ):
        if keras_model is None:
            errors.append(str(error))
            continue
        try:
            built = build_model(
                tf, keras_model, loader="architecture", detail=f"--architecture {architecture}", path=prefix,
                input_specs=specs,
            )  # fmt: skip
        except UserError as e:
            errors.append(f"{loader}: {e}")
            continue
        built.notes.append(f"architecture built with {loader}")
        found = match_for(built)  # errors here are about the checkpoint, whichever Keras built it
        if found.complete:
            return built, found
        if best is None or len(found.restored) > len(best[1].restored):
            best = (built, found)
    if best is not None:
        return best
    raise UserError(f"--architecture {architecture}: no Keras could build it ({'; '.join(errors)})")
