"""Keras model configs (JSON) read as data: layer records, where Python code sits, variable names.

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

from ..description import Layer, Signature, TensorSpec
from ..errors import CorruptFileError
from .keras_entries import (
    MAX_DEPTH,
    as_dict,
    child_entries,
    entry_class,
    entry_name,
    model_layers,
    snake_case,
)
from .keras_entries import entry_config as entry_config
from .keras_shapes import ModelIO, Spec, model_io

#: The key of the one signature a Keras file has: the model's inputs and outputs.
SIGNATURE_KEY = "model"
#: The dtype of a tensor whose dtype the config does not settle.
UNKNOWN_DTYPE = "unknown"


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
    #: The model's inputs and outputs as one signature (:data:`SIGNATURE_KEY`), when the config
    #: names them; empty otherwise.
    signatures: tuple[Signature, ...] = ()


def load_json(text: str | bytes, what: str, where: str) -> Any:
    """Parse JSON text from a model file, or raise CorruptFileError naming ``where``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CorruptFileError(f"{where}: {what} is not valid JSON ({msg})") from None


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


#: ``detail`` of a site whose config nests too deeply to be followed to its end.
UNCHECKED = "<nested too deeply to check>"

#: The first warning of a config whose layers nest deeper than :data:`MAX_DEPTH`.
TOO_DEEP_WARNING = f"model config nests layers deeper than {MAX_DEPTH} levels: deeper ones not listed"


@dataclass(frozen=True)
class CodeSite:
    """One place in a Keras model config where loading the model would call Python code."""

    layer: str  # the layer's name ("<model>" when no layer holds it)
    class_name: str  # the layer's class ("Lambda", "Merge", "Dense", ...)
    #: the config field holding the code: "function", "output_shape", "mode", "output_mask", "activation", ...
    field: str
    #: True: marshalled bytecode stored in the file; False: a Python function named by the file, not stored in it
    bytecode: bool
    detail: str  # the function's name, or "<bytecode>"

    def __str__(self) -> str:
        return f"{self.layer} ({self.class_name}) {self.field}"


def _serialized_code(value: Any, kind: Any, module: Any, always: bool) -> tuple[bool, str] | None:
    """(bytecode, detail) of a function stored in a config field, None when ``value`` is data.

    ``kind`` is the field's ``*_type`` (Keras 1/2: "lambda", "function", "raw"); ``always``
    says the field holds a function whatever its type says (a Lambda's ``function``).
    """
    if isinstance(value, dict):  # Keras 3: a __lambda__ object or a function reference
        inner = value.get("config")
        if value.get("class_name") == "__lambda__":
            code = as_dict(inner).get("code")
            return True, (bytecode_function_name(code) if isinstance(code, str) else None) or "<bytecode>"
        if isinstance(inner, str):
            return False, inner
        return False, str(value.get("registered_name") or value.get("class_name") or "<function>")
    if not (always or kind in ("lambda", "function")):
        return None
    if isinstance(value, list | tuple) and value and isinstance(value[0], str):  # [code, defaults, closure]
        if always or kind == "lambda":
            return True, bytecode_function_name(value[0]) or "<bytecode>"
    elif isinstance(value, str):
        if kind == "lambda":  # Keras 1 sometimes stores the bytecode string alone
            return True, bytecode_function_name(value) or "<bytecode>"
        return False, f"{module}.{value}" if isinstance(module, str) and module else value
    elif kind == "lambda":
        return True, "<bytecode>"
    return None


def _typed_site(cfg: Mapping[str, Any], name: str, kinds: tuple[str, ...]) -> tuple[str, bool, str] | None:
    """The site of field ``name`` when its ``<name>_type`` (Keras 1/2) is one of ``kinds``."""
    kind = cfg.get(f"{name}_type")
    if kind not in kinds:
        return None
    found = _serialized_code(cfg.get(name), kind, cfg.get(f"{name}_module"), False)
    bytecode, detail = found or (kind == "lambda", "<bytecode>" if kind == "lambda" else "<function>")
    return name, bytecode, detail


def _field_sites(cls: str, cfg: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
    """(field, bytecode, detail) of the functions a layer's own config fields store."""
    out: list[tuple[str, bool, str] | None] = []
    if cls == "Lambda":  # its function always runs; Keras 3 serializes the others as objects
        module = cfg.get("module") or cfg.get("function_module")
        found = _serialized_code(cfg.get("function"), cfg.get("function_type"), module, True)
        out.append(("function", *(found or (False, "<function>"))))
        for name in ("output_shape", "mask"):
            value = cfg.get(name)
            if isinstance(value, dict) and value.get("class_name") is not None:
                found = _serialized_code(value, None, None, False)
                out.append((name, *found) if found else None)
            else:
                out.append(_typed_site(cfg, name, ("lambda", "function")))
    elif cls == "Merge":  # Keras 1: the merge function and its mask function
        out.append(_typed_site(cfg, "mode", ("lambda", "function")))
        out.append(_typed_site(cfg, "output_mask", ("lambda",)))
    # Any class: a lambda serialized the Keras 1/2 way (custom layers copy the Lambda layout).
    out.append(_typed_site(cfg, "function", ("lambda",)))
    out.append(_typed_site(cfg, "output_shape", ("lambda",)))
    return [site for site in out if site is not None]


def _nested_sites(
    value: Any, field: str, skip: set[int], depth: int, out: list[tuple[str, bool, str]]
) -> None:
    """Code anywhere inside ``value`` (one field of a layer's config), reported on ``field``:
    Keras 3 ``__lambda__`` objects, Keras 1/2 serialized lambdas, and Lambda or Merge layers
    held where no wrapper key says so. Entries in ``skip`` are layers of their own."""
    if depth > MAX_DEPTH:
        out.append((field, False, UNCHECKED))
        return
    if isinstance(value, dict):
        if id(value) in skip:
            return
        cls = value.get("class_name")
        if cls == "__lambda__":
            out.append((field, True, "<bytecode>"))
            return
        if isinstance(cls, str) and isinstance(value.get("config"), dict) and cls in ("Lambda", "Merge"):
            out.extend(
                (field, bytecode, detail) for _, bytecode, detail in _field_sites(cls, value["config"])
            )
        if value.get("function_type") == "lambda" or value.get("output_shape_type") == "lambda":
            out.append((field, True, "<bytecode>"))
        for v in value.values():
            _nested_sites(v, field, skip, depth + 1, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _nested_sites(v, field, skip, depth + 1, out)


def _own_sites(entry: Mapping[str, Any], layer: str, cls: str, fields: bool) -> list[CodeSite]:
    """Sites of one config entry, its child layers left out (each is an entry of its own)."""
    skip = {id(child) for _, child in child_entries(entry)}
    raw = entry.get("config")
    found = _field_sites(cls, raw) if fields and isinstance(raw, dict) else []
    for key, value in entry.items():
        if key == "class_name":
            continue
        if key == "config" and isinstance(raw, dict):
            for name, v in raw.items():
                _nested_sites(v, name, skip, 1, found)
        else:
            _nested_sites(value, key, skip, 1, found)
    first: dict[str, tuple[bool, str]] = {}
    for name, bytecode, detail in found:
        first.setdefault(name, (bytecode, detail))  # the field's own rule speaks before a scan
    return [CodeSite(layer, cls, name, bytecode, detail) for name, (bytecode, detail) in first.items()]


def entry_code_sites(entry: Any, name: str | None = None) -> list[CodeSite]:
    """The :func:`code_sites` of one layer entry (``{"class_name", "config"}``), leaving out
    the layers it contains; ``name`` overrides the entry's own."""
    if not isinstance(entry, dict):
        return []
    cls = entry_class(entry)
    return _own_sites(entry, name or entry_name(entry, snake_case(cls) or "layer"), cls, True)


@dataclass(frozen=True)
class _Node:
    entry: dict[str, Any]
    name: str
    depth: int
    parent: int | None
    top: str
    attached: str


def _layer_tree(model: dict[str, Any]) -> tuple[list[_Node], bool]:
    """Every layer entry of a model config, parents before children, and whether some
    nest deeper than :data:`MAX_DEPTH` (those are left out)."""
    nodes: list[_Node] = []
    too_deep = False

    def visit(entry: dict[str, Any], depth: int, parent: int | None, top: str | None, attached: str) -> None:
        nonlocal too_deep
        if depth > MAX_DEPTH:
            too_deep = True
            return
        name = entry_name(entry, f"{snake_case(entry_class(entry)) or 'layer'}_{len(nodes)}")
        index = len(nodes)
        nodes.append(_Node(entry, name, depth, parent, top or name, attached))
        for key, child in child_entries(entry):
            visit(child, depth + 1, index, top or name, key)

    for e in model_layers(model):
        visit(e, 0, None, None, "layers")
    return nodes, too_deep


def _model_sites(model: dict[str, Any], too_deep: bool) -> list[CodeSite]:
    """Sites outside every layer: the model's own fields (a .keras ``compile_config``...)."""
    cls = entry_class(model)
    sites = _own_sites(model, "<model>", cls, False)
    if too_deep:
        sites.append(CodeSite("<model>", cls, "layers", False, UNCHECKED))
    return sites


def code_sites(config: Any) -> list[CodeSite]:
    """Every place in a Keras model config (parsed JSON, {"class_name", "config"}; nested models and
    wrapped layers too) where loading the model would call Python code. Loaders refuse a file with any
    site unless the user passes --unsafe; `check --target safety` reports each site as an error."""
    if not isinstance(config, dict):
        return []
    nodes, too_deep = _layer_tree(config)
    sites = [site for node in nodes for site in entry_code_sites(node.entry, node.name)]
    return list(dict.fromkeys([*sites, *_model_sites(config, too_deep)]))


def _code_warnings(sites: list[CodeSite]) -> list[str]:
    bytecode = [f"{s.layer} ({s.detail})" for s in sites if s.bytecode]
    named = [f"{s.layer} ({s.detail})" for s in sites if not s.bytecode and s.detail != UNCHECKED]
    # (the layer tree nested too deeply has its own warning, TOO_DEEP_WARNING)
    unchecked = [
        str(s) for s in sites if s.detail == UNCHECKED and (s.layer, s.field) != ("<model>", "layers")
    ]
    warnings = []
    if bytecode:
        warnings.append(
            "this file contains Python code (marshalled bytecode) in "
            + ", ".join(dict.fromkeys(bytecode))
            + ": tfmodelkit never runs it; Keras runs it only when loading with safe_mode=False, "
            "so load it that way only if you trust where the file came from"
        )
    if named:
        warnings.append(
            "layers calling Python functions by name, not stored in the file: "
            + ", ".join(dict.fromkeys(named))
            + "; loading the model in Keras needs those functions"
        )
    if unchecked:
        warnings.append(
            f"config fields nested deeper than {MAX_DEPTH} levels, not checked for Python code: "
            + ", ".join(unchecked)
        )
    return warnings


# ---------------------------------------------------------------------------------------
# Layer records


def _strip_children(cfg: Any) -> Any:
    """A container's config without its layer list (each child is its own record)."""
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return {k: v for k, v in cfg.items() if k != "layers"}
    if isinstance(cfg, list):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _signature(io: ModelIO) -> tuple[Signature, ...]:
    """The model's inputs and outputs as a signature; none when the config names no input."""
    if not io.inputs:
        return ()

    def specs(named: tuple[tuple[str, Spec], ...]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(name, spec.dtype or UNKNOWN_DTYPE, spec.shape) for name, spec in named)

    return (Signature(SIGNATURE_KEY, specs(io.inputs), specs(io.outputs)),)


def parse_model_config(model: Any) -> ParsedModel:
    """Flatten a model config (``{"class_name", "config"}``) into layer records, nested ones
    (models inside models, wrapped layers) following their parent with a larger ``depth``;
    with each layer's output shapes and the model's inputs and outputs (:mod:`.keras_shapes`)."""
    if not isinstance(model, dict):
        return ParsedModel(None, None, (), (), ("model config is not a JSON object: layers not listed",))
    nodes, too_deep = _layer_tree(model)
    io = model_io(model)
    records: list[ParsedLayer] = []
    sites: list[CodeSite] = []
    for node in nodes:
        own = entry_code_sites(node.entry, node.name)
        sites.extend(own)
        code = next((s.detail for s in own if s.detail != UNCHECKED), None)
        outputs = io.layer_outputs.get(id(node.entry))
        layer = Layer(
            name=node.name,
            class_name=entry_class(node.entry),
            config=_strip_children(node.entry.get("config")),
            inbound=inbound_names(node.entry) if node.attached == "layers" else (),
            depth=node.depth,
            code=code,
            output_shapes=None if outputs is None else tuple(spec.shape for spec in outputs),
        )
        records.append(ParsedLayer(layer, node.entry, node.parent, node.top, node.attached))
    sites.extend(_model_sites(model, too_deep))
    warnings = [TOO_DEEP_WARNING] if too_deep else []
    warnings.extend(_code_warnings(list(dict.fromkeys(sites))))
    cfg = model.get("config")
    model_name = cfg.get("name") if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) else None
    cls = model.get("class_name") if isinstance(model.get("class_name"), str) else None
    return ParsedModel(
        cls, model_name, tuple(records), tuple(model_layers(model)), tuple(warnings), _signature(io)
    )


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
