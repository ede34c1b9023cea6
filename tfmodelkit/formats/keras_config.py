"""Keras model configs (JSON) read as data: layer records, Lambda code names, variable names.

Shared by the ``.h5`` and ``.keras`` readers. Nothing here imports Keras or runs anything
found in a config: a ``Lambda`` layer's function is Python bytecode, and all we do with it
is look for its name among the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..description import Layer
from ..errors import CorruptFileError

#: Deeper nesting than this in a config is not followed (a real model is a few levels deep).
MAX_DEPTH = 64

#: Config keys under which a wrapper layer keeps the layer(s) it wraps.
_WRAPPED_KEYS = ("layer", "forward_layer", "backward_layer", "cell", "cells")


@dataclass(frozen=True)
class ParsedLayer:
    """A layer record plus where it sits in the config tree."""

    layer: Layer
    #: The raw config entry (``{"class_name", "config", ...}``) this record came from.
    entry: Mapping[str, Any]
    #: Index of the enclosing record in :attr:`ParsedModel.layers`, None at the top.
    parent: int | None
    #: Name of the top-level layer this one belongs to (itself at depth 0).
    top: str
    #: How it hangs off its parent: "layers" (a model's layer list) or a wrapper key.
    attached: str


@dataclass(frozen=True)
class ParsedModel:
    class_name: str | None
    name: str | None
    layers: tuple[ParsedLayer, ...]
    #: Layers of the top model's own list, in config order (the entries, for matching).
    top_entries: tuple[Mapping[str, Any], ...]
    warnings: tuple[str, ...]


def load_json(text: str | bytes, what: str, where: str) -> Any:
    """Parse JSON text from a model file, or raise CorruptFileError naming ``where``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CorruptFileError(f"{where}: {what} is not valid JSON ({msg})") from None


def snake_case(name: str) -> str:
    """Keras' snake_case of a class name (``Conv2D`` -> ``conv2d``, ``PReLU`` -> ``p_re_lu``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def entry_class(entry: Any) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("class_name"), str):
        return entry["class_name"]
    return "unknown"


def entry_config(entry: Any) -> dict[str, Any]:
    return _as_dict(entry.get("config")) if isinstance(entry, dict) else {}


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
    cfg = _as_dict(raw)
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


def inbound_names(entry: Any) -> tuple[str, ...]:
    """Names of the layers feeding a functional-model layer (Keras 1, 2 and 3 node formats)."""
    nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
    names: list[str] = []

    def walk(v: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        if isinstance(v, dict):
            hist = v.get("keras_history")  # Keras 3: {"class_name": "__keras_tensor__", ...}
            if isinstance(hist, list) and hist and isinstance(hist[0], str):
                names.append(hist[0])
                return
            for x in v.values():
                walk(x, depth + 1)
        elif isinstance(v, list):
            # Keras 1/2: [layer_name, node_index, tensor_index(, kwargs)]
            if len(v) >= 3 and isinstance(v[0], str) and isinstance(v[1], int):
                names.append(v[0])
                if len(v) > 3:
                    walk(v[3:], depth + 1)
                return
            for x in v:
                walk(x, depth + 1)

    walk(nodes, 0)
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------
# Python code in configs


def _decode_code(text: str) -> bytes:
    """The bytes of a serialized function: base64 (Keras >= 2.1) or a raw latin-1 string."""
    compact = re.sub(r"\s+", "", text)
    if compact and re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", compact) and len(compact) % 4 == 0:
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            pass
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


# A marshal string: a type byte (high bit = "remember this object") then either a one-byte
# length ('z', 'Z': short ASCII) or a four-byte little-endian length ('s', 't', 'u', 'a', 'A').
_SHORT_STR = re.compile(rb"[zZ\xfa\xda](.)", re.DOTALL)
_LONG_STR = re.compile(rb"[stuaA\xf3\xf4\xf5\xe1\xc1](....)", re.DOTALL)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|<[a-z]+>")


def _marshal_strings(data: bytes) -> list[tuple[int, str]]:
    """(offset, text) of printable strings framed as marshal strings. Nothing is unmarshalled."""
    found: dict[int, str] = {}
    for m in _SHORT_STR.finditer(data):
        n = m.group(1)[0]
        s = data[m.end() : m.end() + n]
        if n and len(s) == n and all(32 <= b < 127 for b in s):
            found[m.start()] = s.decode("ascii")
    for m in _LONG_STR.finditer(data):
        n = int.from_bytes(m.group(1), "little")
        if 0 < n <= 4096:
            s = data[m.end() : m.end() + n]
            if len(s) == n and all(32 <= b < 127 for b in s):
                found[m.start()] = s.decode("ascii")
    return sorted(found.items())


def _looks_like_filename(s: str) -> bool:
    if s.startswith("<") and s.endswith(">"):
        return s not in ("<lambda>", "<module>", "<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")
    return "/" in s or "\\" in s or s.endswith(".py")


def bytecode_function_name(text: str) -> str | None:
    """The name of the function serialized in ``text`` (marshalled bytecode), if visible.

    In a marshalled code object the file name is followed by the function name; the outer
    function comes last. The bytes are scanned, never unmarshalled.
    """
    strings = [s for _, s in _marshal_strings(_decode_code(text))]
    name = None
    for prev, cur in zip(strings, strings[1:], strict=False):
        if _looks_like_filename(prev) and _IDENT.fullmatch(cur):
            name = cur
    if name is None and "<lambda>" in strings:
        name = "<lambda>"
    return name


def _lambda_function_code(cfg: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(function name, is bytecode) of a Lambda layer's ``function`` entry."""
    fn = cfg.get("function")
    ftype = cfg.get("function_type")
    if isinstance(fn, dict):  # Keras 3
        inner = fn.get("config")
        if fn.get("class_name") == "__lambda__":
            code = _as_dict(inner).get("code")
            name = bytecode_function_name(code) if isinstance(code, str) else None
            return (name or "<bytecode>", True)
        if isinstance(inner, str):
            return (inner, False)
        return (str(fn.get("registered_name") or fn.get("class_name") or "<function>"), False)
    if isinstance(fn, list | tuple) and fn and isinstance(fn[0], str):  # Keras 2: [code, defaults, closure]
        return (bytecode_function_name(fn[0]) or "<bytecode>", True)
    if isinstance(fn, str):
        if ftype == "lambda":  # Keras 1 sometimes stores the bytecode string alone
            return (bytecode_function_name(fn) or "<bytecode>", True)
        module = cfg.get("module") or cfg.get("function_module")
        return (f"{module}.{fn}" if isinstance(module, str) and module else fn, False)
    return None


def _holds_lambda_object(v: Any, depth: int = 0) -> bool:
    """True if a Keras 3 ``__lambda__`` object (serialized bytecode) sits anywhere in ``v``."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(v, dict):
        if v.get("class_name") == "__lambda__":
            return True
        return any(_holds_lambda_object(x, depth + 1) for x in v.values())
    if isinstance(v, list):
        return any(_holds_lambda_object(x, depth + 1) for x in v)
    return False


def layer_code(entry: Any) -> tuple[str, bool] | None:
    """(function name, is bytecode) for a layer that carries Python code, else None."""
    cls = entry_class(entry)
    cfg = entry_config(entry)
    if cls == "Lambda":
        found = _lambda_function_code(cfg)
        if found is not None:
            return found
    # Other layers: bytecode in a Keras 3 ``__lambda__`` object (a lambda activation, say).
    own = {k: v for k, v in cfg.items() if k not in ("layers", *_WRAPPED_KEYS)}
    if _holds_lambda_object(own):
        return ("<bytecode>", True)
    return None


# ---------------------------------------------------------------------------------------
# The layer tree


def _strip_children(cfg: Any) -> Any:
    """A container's config without its layer list (each child is its own record)."""
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return {k: v for k, v in cfg.items() if k != "layers"}
    if isinstance(cfg, list):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def parse_model_config(model: Any) -> ParsedModel:
    """Flatten a model config (``{"class_name", "config"}``) into layer records, nested ones
    (models inside models, wrapped layers) following their parent with a larger ``depth``."""
    if not isinstance(model, dict):
        return ParsedModel(None, None, (), (), ("model config is not a JSON object: layers not listed",))
    records: list[ParsedLayer] = []
    warnings: list[str] = []
    bytecode: list[str] = []
    named: list[str] = []
    too_deep = False

    def visit(entry: dict[str, Any], depth: int, parent: int | None, top: str | None, attached: str) -> None:
        nonlocal too_deep
        if depth > MAX_DEPTH:
            too_deep = True
            return
        name = entry_name(entry, f"{snake_case(entry_class(entry)) or 'layer'}_{len(records)}")
        code = layer_code(entry)
        if code is not None:
            (bytecode if code[1] else named).append(f"{name} ({code[0]})")
        inbound = inbound_names(entry) if attached == "layers" else ()
        layer = Layer(
            name=name,
            class_name=entry_class(entry),
            config=_strip_children(entry.get("config")),
            inbound=inbound,
            depth=depth,
            code=code[0] if code else None,
        )
        index = len(records)
        records.append(ParsedLayer(layer, entry, parent, top or name, attached))
        for key, child in child_entries(entry):
            visit(child, depth + 1, index, top or name, key)

    top_entries = model_layers(model)
    for e in top_entries:
        visit(e, 0, None, None, "layers")
    if too_deep:
        warnings.append(f"model config nests layers deeper than {MAX_DEPTH} levels: deeper ones not listed")
    if bytecode:
        warnings.append(
            "this file contains Python code (marshalled bytecode) in "
            + ", ".join(bytecode)
            + ": tfmodelkit never runs it; Keras runs it only when loading with safe_mode=False, "
            "so load it that way only if you trust where the file came from"
        )
    if named:
        warnings.append(
            "layers calling Python functions by name, not stored in the file: "
            + ", ".join(named)
            + "; loading the model in Keras needs those functions"
        )
    cfg = model.get("config")
    model_name = cfg.get("name") if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) else None
    cls = model.get("class_name") if isinstance(model.get("class_name"), str) else None
    return ParsedModel(cls, model_name, tuple(records), tuple(top_entries), tuple(warnings))


def optimizer_name(training_config: Any) -> str | None:
    """Class name of the optimizer in a ``training_config`` / ``compile_config``."""
    if not isinstance(training_config, dict):
        return None
    for key in ("optimizer_config", "optimizer"):
        opt = training_config.get(key)
        if isinstance(opt, dict) and isinstance(opt.get("class_name"), str):
            return opt["class_name"]
        if isinstance(opt, str):
            return opt
    return None


# ---------------------------------------------------------------------------------------
# Keras 3 variable order: `<object>/vars/0, 1, ...` are unnamed in the file.

# (variable, config flag that must be truthy for it to exist, or None)
_KERNEL_BIAS = (("kernel", None), ("bias", "use_bias"))
_RECURRENT = (("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias"))
_SEPARABLE = (("depthwise_kernel", None), ("pointwise_kernel", None), ("bias", "use_bias"))
_NORM = (("gamma", "scale"), ("beta", "center"))

_VARIABLES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Dense": _KERNEL_BIAS,
    "EinsumDense": (("kernel", None), ("bias", "bias_axes")),
    "Conv1D": _KERNEL_BIAS,
    "Conv2D": _KERNEL_BIAS,
    "Conv3D": _KERNEL_BIAS,
    "Conv1DTranspose": _KERNEL_BIAS,
    "Conv2DTranspose": _KERNEL_BIAS,
    "Conv3DTranspose": _KERNEL_BIAS,
    "DepthwiseConv1D": _KERNEL_BIAS,
    "DepthwiseConv2D": _KERNEL_BIAS,
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
    "LSTMCell": _RECURRENT,
    "GRUCell": _RECURRENT,
    "SimpleRNNCell": _RECURRENT,
    "ConvLSTMCell": _RECURRENT,
    "BatchNormalization": (*_NORM, ("moving_mean", None), ("moving_variance", None)),
    "LayerNormalization": _NORM,
    "GroupNormalization": _NORM,
    "Embedding": (("embeddings", None),),
    "PReLU": (("alpha", None),),
    "Normalization": (("mean", None), ("variance", None), ("count", None)),
}

#: Keras 3 keeps a recurrent layer's variables in its cell (`layers/lstm/cell/vars`).
CELL_CLASSES = {
    "LSTM": "LSTMCell",
    "GRU": "GRUCell",
    "SimpleRNN": "SimpleRNNCell",
    "ConvLSTM1D": "ConvLSTMCell",
    "ConvLSTM2D": "ConvLSTMCell",
    "ConvLSTM3D": "ConvLSTMCell",
}

# Classes without variables of their own, known only to put a name on a container.
_OTHER_CLASSES = (
    "InputLayer Dropout SpatialDropout1D SpatialDropout2D GaussianNoise Lambda Bidirectional "
    "TimeDistributed RNN Sequential Functional Flatten Reshape Permute RepeatVector Activation "
    "ReLU LeakyReLU Softmax ELU Masking Concatenate Add Subtract Multiply Average Maximum Minimum "
    "Dot Attention AdditiveAttention MultiHeadAttention MaxPooling1D MaxPooling2D MaxPooling3D "
    "AveragePooling1D AveragePooling2D AveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D "
    "GlobalAveragePooling1D GlobalAveragePooling2D ZeroPadding1D ZeroPadding2D Cropping2D "
    "UpSampling1D UpSampling2D Rescaling Resizing"
).split()

_SNAKE_TO_CLASS = {snake_case(c): c for c in (*_VARIABLES, *CELL_CLASSES, *_OTHER_CLASSES)}


def class_from_container(container: str) -> str | None:
    """The layer class a Keras 3 container or layer name (``conv2d_3``, ``forward_lstm``)
    stands for, if we know it."""
    for name in (container, re.sub(r"^(forward|backward)_", "", container)):
        base = re.sub(r"_\d+$", "", name)
        found = _SNAKE_TO_CLASS.get(base) or _SNAKE_TO_CLASS.get(name)
        if found:
            return found
    return None


def _flag(cfg: Mapping[str, Any], key: str) -> bool:
    v = cfg.get(key, True)
    return bool(v) if not isinstance(v, str) else v != ""


def variable_names(class_name: str | None, config: Mapping[str, Any] | None, count: int) -> list[str] | None:
    """Names of the ``count`` unnamed variables of a Keras 3 object, or None if unknown.

    With a config the optional variables follow its flags (``use_bias``, ``center``...);
    without one, the only flag combination giving ``count`` variables is taken.
    """
    table = _VARIABLES.get(class_name or "")
    if table is None:
        return None
    if config is not None:
        names = [n for n, flag in table if flag is None or _flag(config, flag)]
        return names if len(names) == count else None
    optional = [i for i, (_, flag) in enumerate(table) if flag is not None]
    fits = []
    for mask in range(1 << len(optional)):
        drop = {optional[b] for b in range(len(optional)) if mask >> b & 1}
        names = [n for i, (n, _) in enumerate(table) if i not in drop]
        if len(names) == count:
            fits.append(names)
    return fits[0] if len(fits) == 1 else None
