"""Keras 3 weights layout (``*.weights.h5``, and ``model.weights.h5`` inside a ``.keras``):
``layers/<snake_case class>[_N]/vars/0, 1, ...``, nested objects below their parents,
``optimizer/vars``.

Each ``<object>/vars`` group is matched to its entry in the model config (when there is
one) so that containers and variables get the names Keras gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..description import ROLE_MODEL, ROLE_OPTIMIZER, ROLE_OTHER, Layer, Weight
from . import keras_config as kc
from .hdf5_inventory import DatasetInfo, H5Source, Inventory, dataset_weight
from .keras_h5_parts import (
    Assembled,
    Issue,
    datasets_under,
    element_count,
    join_path,
    natural_key,
    str_attr,
)


def _object_paths(inv: Inventory) -> list[str]:
    objs = []
    for g in inv.groups:
        if g == "vars":
            objs.append("")
        elif g.endswith("/vars"):
            objs.append(g[: -len("/vars")])
    return objs


@dataclass
class _Obj:
    path: str
    name: str
    parent: str | None
    rel: str
    #: The name comes from the `name` attribute Keras >= 3.8 puts on `vars`.
    named: bool = False
    class_name: str | None = None
    config: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None
    order: tuple[int, list[Any]] = (1, [])


_REL_ORDER = {"layer": 0, "forward_layer": 0, "cell": 0, "backward_layer": 1}


def _objects(inv: Inventory) -> dict[str, _Obj]:
    """Every object that has a ``vars`` group, linked to the nearest object above it."""
    paths = _object_paths(inv)
    pset = set(paths)
    objs: dict[str, _Obj] = {}
    for p in sorted(paths, key=lambda s: s.count("/")):
        parent = None
        parts = p.split("/") if p else []
        for i in range(len(parts) - 1, -1, -1):
            q = "/".join(parts[:i])
            if q in pset and q != p:
                parent = q
                break
        vattrs = inv.attrs.get(join_path(p, "vars"), {})
        recorded = str_attr(vattrs, "name")
        rel = p[len(parent) + 1 :] if parent else p
        objs[p] = _Obj(p, recorded or (parts[-1] if parts else ""), parent, rel, named=recorded is not None)
    return objs


def _sort_key(o: _Obj) -> tuple[bool, tuple[int, list[Any]], list[Any]]:
    # Optimizer state after the model; then config order, then the path.
    return (o.path.split("/")[0] == "optimizer", o.order, natural_key(o.path))


class _Layout:
    """The objects of one weights file, matched to the model config, and what they hold."""

    def __init__(self, inv: Inventory, source: H5Source, model: Any | None, out: Assembled) -> None:
        self.inv = inv
        self.source = source
        self.out = out
        self.root_entry = model if isinstance(model, dict) else None
        self.objs = _objects(inv)
        #: id() of a config entry -> path of the object it was matched to.
        self.entry_to_path: dict[int, str] = {}
        #: Object path -> elements of the model weights it holds itself.
        self.sizes: dict[str, int] = {}
        self.weights: list[Weight] = []
        for p in sorted(self.objs, key=lambda s: (s.count("/"), s)):
            self._resolve(self.objs[p])
        self.children: dict[str | None, list[_Obj]] = {}
        for o in self.objs.values():
            self.children.setdefault(o.parent, []).append(o)
        for lst in self.children.values():
            lst.sort(key=lambda o: (o.rel.split("/")[0] == "optimizer", o.order, natural_key(o.path)))

    def _resolve(self, o: _Obj) -> None:
        """Find ``o``'s config entry under its parent's (parents are resolved first)."""
        root_entry = self.root_entry
        if o.parent is None and o.path == "":
            o.class_name = kc.entry_class(root_entry) if root_entry else None
            o.entry = root_entry
            o.config = kc.entry_config(root_entry) if root_entry else None
            return
        parent = self.objs.get(o.parent) if o.parent is not None else None
        p_entry = parent.entry if parent else root_entry
        p_class = parent.class_name if parent else (kc.entry_class(root_entry) if root_entry else None)
        p_cfg = (parent.config if parent else (kc.entry_config(root_entry) if root_entry else None)) or {}
        comps = o.rel.split("/")
        last = comps[-1]
        entry = None
        if len(comps) == 2 and comps[0] == "layers" and p_entry is not None:
            candidates = kc.model_layers(p_entry)
            entry, index = _match_container(candidates, last, o.name)
            if entry is not None:
                o.order = (0, [index])
        elif o.rel == "cell":
            cell = p_cfg.get("cell")
            if isinstance(cell, dict) and isinstance(cell.get("class_name"), str):
                entry = cell
            elif p_class in kc.CELL_CLASSES:
                o.class_name = kc.CELL_CLASSES[p_class]
                o.config = p_cfg if parent and parent.entry is not None else None
        elif o.rel in ("layer", "forward_layer", "backward_layer"):
            v = p_cfg.get("backward_layer") if o.rel == "backward_layer" else None
            v = v if isinstance(v, dict) else p_cfg.get("layer")
            if isinstance(v, dict) and isinstance(v.get("class_name"), str):
                entry = v
        if o.order == (1, []):
            o.order = (1, [_REL_ORDER.get(o.rel, 2), *natural_key(o.rel)])
        if entry is not None:
            o.entry = entry
            o.class_name = kc.entry_class(entry)
            o.config = kc.entry_config(entry)
            if not o.named:
                o.name = kc.entry_name(entry, o.name)
            self.entry_to_path[id(entry)] = o.path
        elif o.class_name is None:
            o.class_name = kc.class_from_container(last) or kc.class_from_container(o.name)

    def chain(self, o: _Obj) -> list[str]:
        """Names from the top-level object down to ``o`` (the root object not included)."""
        names = []
        cur: _Obj | None = o
        while cur is not None and cur.path != "":
            names.append(cur.name)
            cur = self.objs.get(cur.parent) if cur.parent is not None else None
        return names[::-1]

    def emit(self, o: _Obj) -> None:
        """The weights of ``o``'s ``vars``, then those of its children, in order."""
        inv, out = self.inv, self.out
        vpath = join_path(o.path, "vars")
        keys = [d[len(vpath) + 1 :] for d in datasets_under(inv, vpath)]
        keys = [k for k in keys if "/" not in k]
        keys.sort(key=natural_key)
        numeric = [k for k in keys if k.isdigit()]
        if numeric and [int(k) for k in numeric] != list(range(len(numeric))):
            out.issues.append(Issue("warning", vpath, "variable numbers are not 0..n-1: some may be missing"))
        first = o.path.split("/")[0] if o.path else ""
        role = ROLE_OPTIMIZER if first == "optimizer" else ROLE_MODEL
        if role == ROLE_MODEL and any(c.startswith("seed_generator") for c in o.path.split("/")):
            role = ROLE_OTHER  # random-seed state, not part of model.weights
        names = (
            kc.variable_names(o.class_name, o.config, len(numeric))
            if numeric == [str(i) for i in range(len(numeric))]
            else None
        )
        owner = self.chain(o)
        for k in keys:
            info = inv.datasets[join_path(vpath, k)]
            if role == ROLE_OPTIMIZER:
                label = _optimizer_label(k, info)
            elif k.isdigit() and names is not None:
                label = names[int(k)]
            else:
                label = k
            if not owner:
                short = f"{o.name}/{label}" if o.name else label
            else:
                short = "/".join([*owner, label])
            layer = owner[0] if owner and role != ROLE_OPTIMIZER else None
            self.weights.append(dataset_weight(self.source, info, role, short, layer, {"container": o.path}))
            if role == ROLE_MODEL:
                self.sizes[o.path] = self.sizes.get(o.path, 0) + element_count(info)
        for c in self.children.get(o.path, []):
            self.emit(c)

    def params_under(self, path: str) -> int:
        return sum(n for p, n in self.sizes.items() if p == path or p.startswith(path + "/"))

    def layers(self, parsed: kc.ParsedModel | None) -> None:
        """Layer records: the config's, with their parameter counts, else one per object."""
        out = self.out
        if parsed is not None and parsed.layers:
            for rec in parsed.layers:
                where = self.entry_to_path.get(id(rec.entry))
                count = None if where is None else self.params_under(where)
                if count is None and rec.layer.class_name == "InputLayer":
                    count = 0  # a Sequential's input layer gets no container
                out.layers.append(replace(rec.layer, params=count))
            out.notes.extend(parsed.warnings)
            return
        if parsed is not None:
            out.notes.extend(parsed.warnings)
        for o in sorted(self.objs.values(), key=lambda o: natural_key(o.path)):
            if o.path == "" or o.path.split("/")[0] == "optimizer":
                continue
            owner = self.chain(o)
            out.layers.append(
                Layer(
                    name=o.name,
                    class_name=o.class_name or "unknown",
                    config=o.config or {},
                    depth=max(0, len(owner) - 1),
                    params=self.params_under(o.path),
                )
            )


def keras3_assemble(inv: Inventory, source: H5Source, model: Any | None, out: Assembled) -> None:
    """Weights and layer records of a Keras 3 weights file, with ``model`` (the parsed
    ``config.json``) used to name containers and variables where it can."""
    parsed = kc.parse_model_config(model) if isinstance(model, dict) else None
    out.signatures = parsed.signatures if parsed is not None else ()
    layout = _Layout(inv, source, model, out)
    roots = [o for o in layout.objs.values() if o.parent is None]
    roots.sort(key=_sort_key)
    for o in roots:
        layout.emit(o)
    # Datasets that are not `<object>/vars/<key>` (unknown additions): listed as they are.
    weights = layout.weights
    seen = {w.name for w in weights}
    for ds in sorted((d for d in inv.datasets if d not in seen), key=natural_key):
        weights.append(dataset_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))
        out.issues.append(Issue("warning", ds, "dataset outside the Keras 3 `<object>/vars` layout"))
    out.weights.extend(weights)
    layout.layers(parsed)


def _match_container(
    candidates: list[dict[str, Any]], container: str, name: str
) -> tuple[dict[str, Any] | None, int]:
    """The config entry saved as ``layers/<container>``: by the layer name Keras 3 records
    on the ``vars`` group, else by Keras' per-class numbering (``dense``, ``dense_1``...)."""
    by_name = [(i, e) for i, e in enumerate(candidates) if kc.entry_name(e, "") == name]
    if len(by_name) == 1:
        return by_name[0][1], by_name[0][0]
    counts: dict[str, int] = {}
    for i, e in enumerate(candidates):
        snake = kc.snake_case(kc.entry_class(e))
        n = counts.get(snake, 0)
        counts[snake] = n + 1
        if (snake if n == 0 else f"{snake}_{n}") == container:
            return e, i
    return None, 0


def _optimizer_label(key: str, info: DatasetInfo) -> str:
    # Keras 3 optimizers save `iteration` then `learning_rate` first (unless it is a schedule).
    if key == "0" and info.shape == () and info.dtype.startswith("int"):
        return "iteration"
    if key == "1" and info.shape == () and info.dtype.startswith("float"):
        return "learning_rate"
    return key
