"""A Keras model config (Keras 3, or tf_keras / Keras 2) as the topology tfjs-layers accepts.

tfjs-layers reads Keras 2 style configs. What Keras 3 writes differently, and how it is said
to TF.js (each checked against tf.loadLayersModel in the tests):

- ``InputLayer``'s ``batch_shape`` is ``batch_input_shape``. A Sequential keeps its InputLayer
  (as tf_keras writes it): moving the shape onto the first layer instead, as TF.js saves its
  own Sequentials, breaks a Sequential nested in a functional model ("Graph disconnected").
- ``dtype`` is a ``DTypePolicy`` object: TF.js wants the dtype name.
- Every serialized object (layers, initializers, regularizers, constraints) carries
  ``module`` and ``registered_name``: TF.js wants ``{"class_name", "config"}`` only; Keras 3's
  ``L1``/``L2`` regularizers are TF.js's ``L1L2``; ``null`` config entries Keras 3 added
  (``input_axes`` of an initializer, ``quantization_config``) are dropped.
- ``inbound_nodes`` are ``[{"args": [...keras tensors...], "kwargs": {}}]`` with
  ``keras_history`` triples: TF.js wants ``[[[layer, node, tensor, {}], ...]]``; a single
  ``input_layers``/``output_layers`` triple becomes a list of one.
- A model nested in a functional model is referred to by node 1 in Keras 2 and TF.js (node 0
  is its own input's) but by node 0 in Keras 3.
- A constant (Masking's ``mask_value``) is a ``__tensor__`` object in Keras 3, a number in TF.js.
- SeparableConv2D configs of tf_keras carry ``kernel_*`` fields TF.js refuses for it.
- ``build_config`` / ``compile_config`` are Keras 3 bookkeeping TF.js does not read.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedError

#: Keys of a serialized Keras 3 object TF.js does not take.
_OBJECT_KEYS = ("module", "registered_name", "build_config", "compile_config", "shared_object_id")
#: Keys of Keras 3 layer configs tfjs-layers does not know (dropped when null or default).
_DROP_IF_DEFAULT = {"quantization_config": None, "lora_rank": None, "lora_alpha": None, "synchronized": False,
                    "optional": False, "ragged": False, "input_axes": None, "output_axes": None}  # fmt: skip
_CONTAINERS = ("Sequential", "Functional", "Model")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dtype(value: Any, where: str) -> Any:
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "Policy", "FloatDTypePolicy"):
        name = (value.get("config") or {}).get("name")
        if name not in (None, "float32", "int32", "bool"):
            raise UnsupportedError(f"{where}: dtype policy {name!r}; TF.js layers compute in float32 (use a float32 model)")
        return name or "float32"
    return value


def _object(value: dict[str, Any], where: str) -> dict[str, Any]:
    cls = value.get("class_name")
    cfg = value.get("config")
    if cls in ("L1", "L2") and isinstance(cfg, dict):
        return {"class_name": "L1L2", "config": {"l1": float(cfg.get("l1", 0.0)), "l2": float(cfg.get("l2", 0.0))}}
    if cls == "L1L2" and isinstance(cfg, dict):
        return {"class_name": "L1L2", "config": {"l1": float(cfg.get("l1") or 0.0), "l2": float(cfg.get("l2") or 0.0)}}
    return {"class_name": cls, "config": _value(cfg, where)}


def _value(value: Any, where: str) -> Any:
    if isinstance(value, dict) and value.get("class_name") in ("__tensor__", "__numpy__"):
        v = (value.get("config") or {}).get("value")  # Keras 3 stores Masking's mask_value so
        return v[0] if isinstance(v, list) and len(v) == 1 else v
    if isinstance(value, dict):
        if "class_name" in value and "config" in value and not ("inbound_nodes" in value or "name" in value):
            return _object(value, where)
        out = {}
        for k, v in value.items():
            if k in _OBJECT_KEYS or (k in _DROP_IF_DEFAULT and v == _DROP_IF_DEFAULT[k]):
                continue
            out[k] = _dtype(v, where) if k == "dtype" else _value(v, where)
        return out
    if isinstance(value, list):
        return [_value(v, where) for v in value]
    return value


def _tensors(value: Any, out: list[list[Any]]) -> None:
    """Every keras tensor reference in ``value`` (Keras 3 node args), in order."""
    if isinstance(value, dict):
        hist = (value.get("config") or {}).get("keras_history") if value.get("class_name") == "__keras_tensor__" else None
        if isinstance(hist, list) and len(hist) == 3:
            out.append([str(hist[0]), int(hist[1]), int(hist[2]), {}])
            return
        for v in value.values():
            _tensors(v, out)
    elif isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int) and isinstance(value[2], int):
            out.append([value[0], value[1], value[2], value[3] if len(value) > 3 and isinstance(value[3], dict) else {}])
            return
        for v in value:
            _tensors(v, out)


def _nodes(raw: Any) -> list[list[list[Any]]]:
    nodes = []
    for node in raw if isinstance(raw, list) else []:
        refs: list[list[Any]] = []
        _tensors(node.get("args", []) if isinstance(node, dict) else node, refs)
        if refs:
            nodes.append(refs)
    return nodes


def _triples(raw: Any) -> list[list[Any]]:
    if isinstance(raw, dict):  # Keras 3 dict inputs/outputs: TF.js takes them as a list, in order
        raw = list(raw.values())
    if isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str):
        raw = [raw]
    return [[str(r[0]), int(r[1]), int(r[2])] for r in raw or [] if isinstance(r, list) and len(r) >= 3]


def _layer(entry: dict[str, Any], functional: bool) -> dict[str, Any]:
    cls = str(entry.get("class_name"))
    cfg = _dict(entry.get("config"))
    name = str(cfg.get("name") or entry.get("name"))
    if cls in _CONTAINERS:
        inner = model_topology({"class_name": cls, "config": cfg})
        out: dict[str, Any] = {"class_name": inner["class_name"], "config": inner["config"], "name": name}
    else:
        config = _value(cfg, name)
        if cls.startswith("SeparableConv"):  # its kernels are depthwise_/pointwise_ ones in TF.js
            for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
                config.pop(key, None)
        if cls == "InputLayer" and "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
        out = {"class_name": cls, "config": config, "name": name}
    if functional:
        out["inbound_nodes"] = _nodes(entry.get("inbound_nodes"))
    return out


def model_topology(model_config: dict[str, Any]) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a Keras model, translated for tfjs-layers."""
    cls = model_config.get("class_name")
    cfg = _dict(model_config.get("config"))
    layers = [x for x in cfg.get("layers", []) if isinstance(x, dict)]
    if cls == "Sequential":
        out_layers = [_layer(x, False) for x in layers]
        return {"class_name": "Sequential", "config": {"name": cfg.get("name", "sequential"), "layers": out_layers}}
    if cls not in ("Functional", "Model"):
        raise UnsupportedError(
            f"a {cls} model (subclassed): TF.js layers models hold Sequential and functional models only"
        )
    out = [_layer(x, True) for x in layers]
    outputs = _triples(cfg.get("output_layers"))
    keras3 = any(isinstance(n, dict) for x in layers for n in x.get("inbound_nodes") or [])
    if keras3:
        # A model nested in a model has, in Keras 2 and TF.js, a node 0 of its own (its
        # InputLayer's); being called in the outer model is its node 1. Keras 3 counts only
        # the calls, so references to nested models move up by one.
        nested = {x["name"] for x in out if x["class_name"] in _CONTAINERS}
        for ref in [r for x in out for node in x["inbound_nodes"] for r in node] + outputs:
            if ref[0] in nested:
                ref[1] += 1
    return {
        "class_name": "Model",
        "config": {
            "name": cfg.get("name", "model"),
            "layers": out,
            "input_layers": _triples(cfg.get("input_layers")),
            "output_layers": outputs,
        },
    }
