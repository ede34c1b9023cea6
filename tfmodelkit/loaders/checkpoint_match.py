"""Which checkpoint value goes into which variable of a live model.

Object-based (TF2) checkpoints are matched the way TensorFlow restores them: the object graph
is walked from the root key's node alongside the live model's trackable children
(``tf.train.TrackableView``), pairing nodes by local name. A checkpoint key is the *shortest*
path to a value, so a model variable may be keyed under another root object (``optimizer/
_trainable_variables/3/...`` when the optimizer reaches it in fewer steps); pairing is therefore
by node, never by key prefix. Name-based (TF1 ``Saver``) checkpoints have no object graph:
model variables are paired by name (``tf.Variable.name`` without ``:0``, or a Keras 3
variable's ``path``; each also without its first scope).

What a :class:`Match` calls what:

- ``restored``: checkpoint key -> model variable (its trackable path from the model);
- ``missing``: model variables that found no value (a problem unless ``allow_partial``);
- ``unused``: values of the model's part of the checkpoint that no model variable took (a problem
  unless ``allow_partial``);
- ``optimizer_unused``: optimizer state (slots, iterations, learning rate): expected, not a problem;
- ``ignored``: everything else outside the model: ``save_counter``, ``global_step``, other root
  objects the user did not choose; not a problem.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..description import ROLE_MODEL, ROLE_OPTIMIZER
from ..errors import NotFoundError, UserError
from ..formats import checkpoint as ckpt_format

#: ``root_key`` value meaning "the checkpoint's root object is the model itself"
#: (tf_keras ``model.save_weights(prefix)``, ``tf.train.Checkpoint(root=model)``).
ROOT_IS_MODEL = "/"
#: How many names an error message lists before "and N more".
LIST_LIMIT = 5

_OPTIMIZER_EDGE = re.compile(r"(^|_)(optimizer|opt)(_\d+)?$", re.IGNORECASE)
_OPTIMIZER_CHILDREN = frozenset({"_iterations", "iter", "iterations"})
_VARIABLE_VALUE = "VARIABLE_VALUE"
_SCOPE_SUFFIX = re.compile(r":\d+$")


# ----------------------------------------------------------------------------------------
# Small helpers (also used by the builder and the SavedModel writer)


def is_optimizer(obj: Any) -> bool:
    """A Keras 3, tf_keras or TensorFlow optimizer object."""
    return any(
        "Optimizer" in c.__name__ and c.__module__.startswith(("keras", "tf_keras", "tensorflow"))
        for c in type(obj).__mro__
    )


def is_variable(tf: Any, obj: Any) -> bool:
    """A ``tf.Variable``, or a Keras 3 variable (which is not one)."""
    if isinstance(obj, tf.Variable):
        return True
    keras = sys.modules.get("keras")
    variable_type = getattr(keras, "Variable", None) if keras is not None else None
    return isinstance(variable_type, type) and isinstance(obj, variable_type)


def dtype_name(dtype: Any) -> str:
    """``float32`` for a TF/Keras/numpy dtype object or a dtype name."""
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


def typed_shape(dtype: str, shape: Sequence[int | None] | None) -> str:
    """``float32[?,3]`` for messages (``?`` a dynamic dim, ``[?]`` an unknown rank)."""
    if shape is None:
        return f"{dtype}[?]"
    return f"{dtype}[{','.join('?' if d is None else str(d) for d in shape)}]"


def listing(items: Sequence[str], limit: int = LIST_LIMIT) -> str:
    """The first ``limit`` items, comma-separated, then "and N more"."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ----------------------------------------------------------------------------------------
# The match


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


class Children:
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


def model_variables(tf: Any, model: Any, children: Children) -> dict[int, tuple[str, Any]]:
    """Every variable the model tracks, by identity, with the first trackable path reaching it
    (breadth-first, as checkpoints name them); optimizers the model holds are skipped."""
    found: dict[int, tuple[str, Any]] = {}
    seen = {id(model)}
    queue: list[tuple[str, Any]] = [("", model)]
    while queue:
        base, obj = queue.pop(0)
        for name, child in children(obj).items():
            path = f"{base}/{name}" if base else name
            if id(child) in seen or is_optimizer(child):
                continue
            seen.add(id(child))
            if is_variable(tf, child):
                found[id(child)] = (path, child)
            else:
                queue.append((path, child))
    return found


def match_nodes(
    tf: Any, graph: Any, start: int, live: Any, children: Children, paths: dict[int, str] | None = None
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
        if is_variable(tf, obj):
            continue
        live_children = children(obj)
        for ref in nodes[nid].children:
            cid = ref.node_id
            if cid in matched or not 0 <= cid < len(nodes):
                continue
            child = live_children.get(ref.local_name)
            if child is None or is_optimizer(child):
                continue
            matched[cid] = child
            where[cid] = f"{where[nid]}/{ref.local_name}" if where[nid] else ref.local_name
            queue.append(cid)
    if paths is not None:
        paths.update(where)
    return matched


def variable_keys(tf: Any, graph: Any, matched: Mapping[int, Any]) -> dict[str, Any]:
    """Checkpoint key -> live variable for matched nodes holding a variable value."""
    out: dict[str, Any] = {}
    taken: set[int] = set()
    for nid, obj in matched.items():
        if not is_variable(tf, obj) or id(obj) in taken:
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
    tf: Any, graph: Any, model: Any, root_key: str | None, children: Children, where: str
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
        return len(variable_keys(tf, graph, match_nodes(tf, graph, start, model, children)))

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


def _optimizer_nodes(graph: Any) -> set[int]:
    """Nodes reachable from any optimizer-like edge of the object graph."""
    nodes = graph.nodes
    starts = [
        ref.node_id
        for nid in range(len(nodes))
        for ref in nodes[nid].children
        if 0 <= ref.node_id < len(nodes) and _optimizer_like(graph, ref.node_id, ref.local_name)
    ]
    return _reach(graph, starts, lambda n, e: False)


def match_object_based(
    tf: Any, index: Any, graph: Any, desc: Any, model: Any, root_key: str | None, where: str
) -> Match:
    """Pair an object-based checkpoint with ``model`` through the object graph (see the module doc)."""
    children = Children(tf)
    variables = model_variables(tf, model, children)
    key, start = _choose_root(tf, graph, model, root_key, children, where)
    node_paths: dict[int, str] = {}
    matched = match_nodes(tf, graph, start, model, children, node_paths)
    key_to_var = variable_keys(tf, graph, matched)
    nodes = graph.nodes
    # From the root (start 0) too, the model's optimizer-like children are not the model's.
    model_nodes = _reach(graph, [start], lambda nid, edge: _optimizer_like(graph, nid, edge))
    optimizer_nodes = _optimizer_nodes(graph)
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
            and not is_variable(tf, matched[nid])
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
    """Pair a name-based (TF1) checkpoint with ``model`` by variable name."""
    children = Children(tf)
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
        shape, dtype = _shape_of(var), dtype_name(var.dtype)
        if shape != tuple(entry.shape) or dtype != entry.dtype:
            match.mismatched.append(
                f"{key} is {typed_shape(entry.dtype, entry.shape)}, model variable {match.restored[key]} is "
                f"{typed_shape(dtype, shape)}"
            )


def problems(match: Match, where: str, allow_partial: bool) -> list[str]:
    """Raise on shape disagreements (always) and, unless ``allow_partial``, on missing/unused values;
    return the warnings to record otherwise."""
    if match.mismatched:
        raise UserError(
            f"{where}: {len(match.mismatched)} checkpoint value(s) do not fit the model: "
            f"{listing(match.mismatched, 3)}; the model built is not the one that wrote this checkpoint (or --input-spec is wrong)"
        )
    parts = []
    if match.missing:
        parts.append(f"{len(match.missing)} model variable(s) found no value ({listing(match.missing)})")
    if match.unused:
        parts.append(f"{len(match.unused)} checkpoint value(s) went unused ({listing(match.unused)})")
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
