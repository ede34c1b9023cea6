"""Keras 0.x, 1 and 2 layouts of ``.h5`` files (also tf.keras and Keras 3's legacy writer).

- Full model: root attrs ``model_config``, ``training_config``; group ``model_weights``
  (attr ``layer_names``, one group per layer with attr ``weight_names``); optional
  ``optimizer_weights``.
- Weights-only (``save_weights``): the ``model_weights`` content at the root.
- Keras 0.x weights: root attr ``nb_layers``, groups ``layer_<k>`` with ``param_<j>``.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..description import ROLE_MODEL, ROLE_OPTIMIZER, Layer
from ..errors import CorruptFileError
from . import keras_config as kc
from .hdf5_inventory import H5Source, Inventory, dataset_weight
from .keras_h5_parts import (
    Assembled,
    Issue,
    datasets_under,
    element_count,
    join_path,
    list_attr,
    natural_key,
    str_attr,
)


def _short_name(weight_name: str, layer: str | None) -> str:
    """``dense/kernel:0`` -> ``dense/kernel``; Keras 1 ``dense_1_W:0`` -> ``dense_1/W``."""
    n = re.sub(r":\d+$", "", weight_name)
    if "/" not in n and layer:
        if n.startswith(layer + "_") and len(n) > len(layer) + 1:
            return f"{layer}/{n[len(layer) + 1 :]}"
        return f"{layer}/{n}"
    return n


def _find_dataset(inv: Inventory, group: str, weight_name: str) -> str | None:
    for cand in (weight_name, weight_name + ":0", re.sub(r":\d+$", "", weight_name)):
        p = join_path(group, cand)
        if p in inv.datasets:
            return p
    return None


def legacy_group_weights(
    inv: Inventory, source: H5Source, base: str, out: Assembled
) -> dict[str, list[tuple[str, int]]]:
    """Weights of a Keras 1/2 ``model_weights``-style group (or a weights-only root).

    Returns, per layer group, the (weight name, element count) pairs it holds.
    """
    attrs = inv.attrs.get(base, {})
    per_layer: dict[str, list[tuple[str, int]]] = {}
    taken: set[str] = set()
    names = list_attr(attrs, "layer_names")
    if names is None and "nb_layers" in attrs:
        return _keras0_weights(inv, source, base, out)
    names = names or []
    children = [
        g for g in inv.groups if g and g.rpartition("/")[0] == base and g != join_path(base, "optimizer_weights")
    ]
    # Groups Keras did not list (Keras >= 2.11 adds `top_level_model_weights`) come last.
    extra = [g.rpartition("/")[2] for g in children if g.rpartition("/")[2] not in names]
    for layer in [*names, *sorted(extra, key=natural_key)]:
        lpath = join_path(base, layer)
        if lpath not in inv.attrs:
            out.issues.append(
                Issue("error", lpath or layer, "listed in layer_names but there is no such group")
            )
            continue
        listed = list_attr(inv.attrs[lpath], "weight_names")
        if listed is None and layer in names:
            out.issues.append(Issue("warning", lpath, "layer group has no weight_names attribute"))
        entries: list[tuple[str, int]] = []
        for wn in listed or []:
            ds = _find_dataset(inv, lpath, wn)
            if ds is None:
                out.issues.append(
                    Issue("error", join_path(lpath, wn), "listed in weight_names but there is no such dataset")
                )
                continue
            if ds in taken:
                continue
            taken.add(ds)
            info = inv.datasets[ds]
            out.weights.append(dataset_weight(source, info, ROLE_MODEL, _short_name(wn, layer), layer))
            entries.append((wn, element_count(info)))
        unlisted = [d for d in datasets_under(inv, lpath) if d not in taken]
        for ds in sorted(unlisted, key=natural_key):
            taken.add(ds)
            info = inv.datasets[ds]
            rel = ds[len(lpath) + 1 :]
            out.weights.append(
                dataset_weight(source, info, ROLE_MODEL, _short_name(rel, layer), layer, {"unlisted": True})
            )
            entries.append((rel, element_count(info)))
        if unlisted:
            out.issues.append(
                Issue(
                    "warning",
                    lpath,
                    f"{len(unlisted)} dataset(s) not named in weight_names (Keras ignores them)",
                )
            )
        if entries or layer in names:
            per_layer[layer] = entries
    return per_layer


def _keras0_weights(
    inv: Inventory, source: H5Source, base: str, out: Assembled
) -> dict[str, list[tuple[str, int]]]:
    """Keras 0.x ``save_weights``: attr ``nb_layers``, groups ``layer_<k>`` of ``param_<j>``."""
    attrs = inv.attrs.get(base, {})
    per_layer: dict[str, list[tuple[str, int]]] = {}
    nb = attrs.get("nb_layers")
    nb = nb[0] if isinstance(nb, list) and nb else nb
    if not isinstance(nb, int) or nb < 0:
        out.issues.append(Issue("error", base or "/", f"nb_layers is not a count ({nb!r})"))
        return per_layer
    out.metadata["layout"] = "Keras 0.x nb_layers/layer_<k>"
    for k in range(min(nb, len(inv.groups) + 1)):
        layer = f"layer_{k}"
        lpath = join_path(base, layer)
        if lpath not in inv.attrs:
            out.issues.append(Issue("error", lpath, "counted by nb_layers but there is no such group"))
            continue
        np_attr = inv.attrs[lpath].get("nb_params")
        np_attr = np_attr[0] if isinstance(np_attr, list) and np_attr else np_attr
        params = [d for d in datasets_under(inv, lpath)]
        params.sort(key=natural_key)
        if isinstance(np_attr, int) and np_attr != len(params):
            out.issues.append(
                Issue("error", lpath, f"nb_params says {np_attr} but {len(params)} datasets found")
            )
        entries = []
        for ds in params:
            info = inv.datasets[ds]
            rel = ds[len(lpath) + 1 :]
            out.weights.append(dataset_weight(source, info, ROLE_MODEL, f"{layer}/{rel}", layer))
            entries.append((rel, element_count(info)))
        per_layer[layer] = entries
    if nb > len(inv.groups):
        out.issues.append(Issue("error", base or "/", f"nb_layers = {nb} but the file has far fewer groups"))
    return per_layer


def optimizer_weights(inv: Inventory, source: H5Source, out: Assembled) -> None:
    """The ``optimizer_weights`` group of a full model: listed names first, then the rest."""
    base = "optimizer_weights"
    if base not in inv.attrs:
        return
    taken: set[str] = set()
    for wn in list_attr(inv.attrs[base], "weight_names") or []:
        ds = _find_dataset(inv, base, wn)
        if ds is None:
            out.issues.append(
                Issue("error", join_path(base, wn), "listed in weight_names but there is no such dataset")
            )
            continue
        if ds not in taken:
            taken.add(ds)
            out.weights.append(
                dataset_weight(source, inv.datasets[ds], ROLE_OPTIMIZER, re.sub(r":\d+$", "", wn), None)
            )
    for ds in sorted((d for d in datasets_under(inv, base) if d not in taken), key=natural_key):
        rel = ds[len(base) + 1 :]
        out.weights.append(
            dataset_weight(
                source, inv.datasets[ds], ROLE_OPTIMIZER, re.sub(r":\d+$", "", rel), None, {"unlisted": True}
            )
        )


def layer_params(parsed: kc.ParsedModel, per_layer: dict[str, list[tuple[str, int]]]) -> list[Layer]:
    """Layer records with ``params``: top-level ones from their group, nested ones from the
    weight names of their top-level group that mention them."""
    out: list[Layer] = []
    params: list[int | None] = []
    for rec in parsed.layers:
        name = rec.layer.name
        p: int | None
        if rec.parent is None:
            entries = per_layer.get(name)
            p = None if entries is None else sum(n for _, n in entries)
        else:
            entries = per_layer.get(rec.top)
            if entries is None:
                p = None
            else:
                keys = {name, f"forward_{name}", f"backward_{name}"}
                hits = [n for wn, n in entries if keys & set(re.sub(r":\d+$", "", wn).split("/")[:-1])]
                p = sum(hits)
                siblings = [r for r in parsed.layers if r.parent == rec.parent]
                if not hits and rec.attached != "layers" and len(siblings) == 1:
                    p = params[rec.parent]  # a wrapper's only layer owns all its weights
        if p is None and rec.layer.class_name == "InputLayer":
            p = 0  # Keras keeps no group for a Sequential's implicit input layer
        params.append(p)
        out.append(replace(rec.layer, params=p))
    known = {r.layer.name for r in parsed.layers if r.parent is None}
    for name, entries in per_layer.items():
        if name not in known and (entries or not parsed.layers):
            out.append(Layer(name=name, class_name="unknown", params=sum(n for _, n in entries)))
    return out


def guess_generation(per_layer: dict[str, list[tuple[str, int]]]) -> int | None:
    """Keras 1 or 2, from how the weights are named, when no version was recorded."""
    names = [wn for entries in per_layer.values() for wn, _ in entries]
    if not names:
        return None
    # Keras 2 names weights `<layer>/kernel:0`; Keras 1 `<layer>_W` or `param_<j>`.
    return 2 if any("/" in n for n in names) else 1


def apply_config(inv: Inventory, out: Assembled, where: str) -> kc.ParsedModel | None:
    """The root's ``model_config`` (parsed) and ``training_config`` into ``out``'s metadata."""
    root = inv.attrs.get("", {})
    text = str_attr(root, "model_config")
    parsed = None
    if text is not None:
        try:
            model = kc.load_json(text, "model_config", where)
        except CorruptFileError as e:
            out.issues.append(Issue("error", "/@model_config", str(e).partition(": ")[2]))
            model = None
        if model is not None:
            parsed = kc.parse_model_config(model)
            out.metadata["class_name"] = parsed.class_name
            out.metadata["model_name"] = parsed.name
            out.notes.extend(parsed.warnings)
            out.signatures = parsed.signatures
    tc_text = str_attr(root, "training_config")
    if tc_text is not None:
        try:
            tc = kc.load_json(tc_text, "training_config", where)
        except CorruptFileError as e:
            out.issues.append(Issue("error", "/@training_config", str(e).partition(": ")[2]))
        else:
            out.metadata["training_config"] = tc
            opt = kc.optimizer_name(tc)
            if opt:
                out.metadata["optimizer"] = opt
    return parsed
