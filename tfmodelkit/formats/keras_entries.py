"""The entries of a Keras model config (parsed JSON): a layer's class, config and name, and the
layers nested in it. The ground every reading of a config stands on (:mod:`.keras_config`,
:mod:`.keras_shapes`)."""

from __future__ import annotations

import re
from typing import Any

#: Deeper nesting than this in a config is not followed (a real model is a few levels deep).
MAX_DEPTH = 64

#: Config keys under which a wrapper layer keeps the layer(s) it wraps.
_WRAPPED_KEYS = ("layer", "forward_layer", "backward_layer", "cell", "cells")


def snake_case(name: str) -> str:
    """Keras' snake_case of a class name (``Conv2D`` -> ``conv2d``, ``PReLU`` -> ``p_re_lu``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def entry_class(entry: Any) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("class_name"), str):
        return entry["class_name"]
    return "unknown"


def entry_config(entry: Any) -> dict[str, Any]:
    return as_dict(entry.get("config")) if isinstance(entry, dict) else {}


def entry_name(entry: Any, fallback: str) -> str:
    cfg = entry_config(entry)
    for v in (cfg.get("name"), entry.get("name") if isinstance(entry, dict) else None):
        if isinstance(v, str) and v:
            return v
    return fallback


def child_entries(entry: Any) -> list[tuple[str, dict[str, Any]]]:
    """Entries nested in ``entry``: a model's layer list or a wrapper's wrapped layer(s)."""
    if not isinstance(entry, dict):
        return []
    raw = entry.get("config")
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(raw, list):  # Keras 1 / early Keras 2 Sequential: config is the layer list
        return [("layers", e) for e in raw if isinstance(e, dict)]
    cfg = as_dict(raw)
    layers = cfg.get("layers")
    if isinstance(layers, list):
        out.extend(("layers", e) for e in layers if isinstance(e, dict) and "class_name" in e)
    for key in _WRAPPED_KEYS:
        v = cfg.get(key)
        if isinstance(v, dict) and isinstance(v.get("class_name"), str):
            out.append((key, v))
        elif key == "cells" and isinstance(v, list):
            out.extend((key, e) for e in v if isinstance(e, dict) and isinstance(e.get("class_name"), str))
    return out


def model_layers(model: Any) -> list[dict[str, Any]]:
    """The top model's own layer list."""
    return [e for key, e in child_entries(model) if key == "layers"]
