"""Keras 1 (and old Keras 2) ``.h5`` models that today's Keras refuses: upgraded, rebuilt with tf_keras.

Keras 3 and tf_keras 2.21 both refuse Keras 1.x configs (``output_dim``, ``nb_filter``,
``border_mode``, ``Merge``...) and neither knows Keras 1's weight layouts. This module rewrites
the config into the Keras 2 form that tf_keras's ``from_config`` accepts, rebuilds the model
with **tf_keras** and loads the weights itself, layer by layer, converting what changed:

- Recurrent layers: Keras 1 stores one matrix per gate (``lstm_1_W_i``, ``lstm_1_U_i``,
  ``lstm_1_b_i``, then ``_c``, ``_f``, ``_o``: the order is i, c, f, o) unless it was built with
  ``consume_less="gpu"`` (fused ``W``, ``U``, ``b``, already in i, f, c, o order). Keras 2 fuses
  them into ``kernel``, ``recurrent_kernel``, ``bias`` in gate order i, f, c, o (GRU: z, r, h, with
  ``reset_after=False``, the Keras 1 formula).
- Theano backend: Theano's conv is a true convolution (the kernel is flipped), TensorFlow's a
  cross-correlation, so Theano kernels are rotated 180 degrees in their spatial axes. Keras 1
  ``dim_ordering="th"`` kernels are stored (out, in, rows, cols) and become (rows, cols, in, out).
  Keras 1 files do not record their backend; TensorFlow variable names end in ``:0`` and
  Theano's do not, which tells them apart (``backend=`` overrides).
- ``dim_ordering="th"`` layers stay ``data_format="channels_first"``: the rebuilt model takes the
  inputs the original took, and ``Flatten`` flattens in the same (channel-major) order, so a
  ``Dense`` after it needs no row permutation. The alternative (channels_last everywhere) would
  change the model's input contract and need permuted ``Dense`` rows. TensorFlow's CPU kernels
  for NCHW convolutions come from oneDNN (on by default on x86-64); where they are missing the
  loader says so instead of returning a model that cannot run.

Keras 2 files go through the same path (minimal config fixes, e.g. ``reset_after=False`` for
GRUs saved before it existed, and the Theano kernel flip that tf_keras's own loader skips).
Nothing from a model file is executed unless ``unsafe=True``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError, UserError

LOADER_KERAS1 = "keras1-upgrade"
LOADER_KERAS2 = "keras2-legacy"

__all__ = [
    "LOADER_KERAS1",
    "LOADER_KERAS2",
    "LegacyModel",
    "is_keras1",
    "legacy_reason",
    "load_legacy_model",
    "upgrade_config",
]


@dataclass
class LegacyModel:
    """A legacy Keras model rebuilt with tf_keras, and what was changed to get there."""

    model: Any
    notes: list[str] = field(default_factory=list)
    #: ``keras1-upgrade`` for Keras 1 files, ``keras2-legacy`` for Keras 2 files loaded this way.
    loader: str = LOADER_KERAS1
    keras_version: str | None = None
    #: The backend the weights were written with (recorded or inferred), None when unknown.
    backend: str | None = None


# ------------------------------------------------------------------------------------ HDF5 reading


def _first_line(e: BaseException, limit: int = 300) -> str:
    lines = str(e).strip().splitlines()
    msg = lines[0] if lines else type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _text(value: Any) -> str | None:
    """A scalar string attribute (bytes, str, numpy scalar or one-element array) as str."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _names_attr(obj: Any, name: str) -> list[str] | None:
    """A list-of-names attribute, joining ``name0``, ``name1``... chunks (attributes over 64 KB)."""
    attrs = obj.attrs
    if name in attrs:
        chunks = [attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in attrs:
            chunks.append(attrs[f"{name}{len(chunks)}"])
        if not chunks:
            return None
    out: list[str] = []
    for chunk in chunks:
        for v in np.asarray(chunk).reshape(-1).tolist():
            out.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    return out


@contextlib.contextmanager
def _open_h5(path: str | os.PathLike[str]) -> Iterator[Any]:
    import h5py

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise FormatError(f"{p}: a directory, not a Keras .h5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise FormatError(f"{p}: not an HDF5 file ({_first_line(e)})") from None
    try:
        yield f
    finally:
        f.close()


@dataclass
class _H5Info:
    keras_version: str | None
    backend: str | None
    config: dict[str, Any] | None
    weights_root: str | None  # "model_weights", "/" (weights-only file) or None (no weights)
    weight_names: list[str]


def _parse_json(raw: Any, what: str) -> Any:
    text = _text(raw) if not isinstance(raw, str) else raw
    try:
        return json.loads(text or "")
    except ValueError as e:
        raise CorruptFileError(f"{what} is not valid JSON ({e})") from None


def _inspect(f: Any, path: Path) -> _H5Info:
    import h5py

    if "nb_layers" in f.attrs:
        raise UnsupportedError(
            f"{path}: a Keras 0.x weights file (nb_layers/layer_<k> groups); only Keras 1 and later are supported"
        )
    raw = f.attrs.get("model_config")
    config = _parse_json(raw, f"{path}: its model_config") if raw is not None else None
    if config is not None and not isinstance(config, dict):
        raise CorruptFileError(f"{path}: its model_config is not a JSON object")
    root = None
    group = None
    mw = f.get("model_weights")
    if isinstance(mw, h5py.Group):
        root, group = "model_weights", mw
    elif _names_attr(f, "layer_names") is not None:
        root, group = "/", f
    version = _text(f.attrs.get("keras_version"))
    backend = _text(f.attrs.get("backend"))
    names: list[str] = []
    if group is not None:
        version = version or _text(group.attrs.get("keras_version"))
        backend = backend or _text(group.attrs.get("backend"))
        for lname in _names_attr(group, "layer_names") or []:
            g = group.get(lname)
            if isinstance(g, h5py.Group):
                names.extend(_names_attr(g, "weight_names") or [])
    return _H5Info(version, backend, config, root, names)


# Keys and classes only Keras 1 configs use (Keras 2 renamed all of them).
_K1_KEYS = frozenset(
    {
        "nb_filter",
        "nb_row",
        "nb_col",
        "filter_length",
        "init",
        "inner_init",
        "inner_activation",
        "W_regularizer",
        "b_regularizer",
        "U_regularizer",
        "W_constraint",
        "b_constraint",
        "border_mode",
        "dim_ordering",
        "subsample",
        "subsample_length",
        "pool_length",
        "input_dtype",
        "consume_less",
        "dropout_W",
        "dropout_U",
        "forget_bias_init",
        "gamma_init",
        "beta_init",
        "atrous_rate",
    }
)
_K1_CLASSES = frozenset(
    {
        "Convolution1D",
        "Convolution2D",
        "Convolution3D",
        "AtrousConvolution1D",
        "AtrousConvolution2D",
        "SeparableConvolution2D",
        "Deconvolution2D",
        "Merge",
        "TimeDistributedDense",
        "Highway",
        "MaxoutDense",
    }
)


def _walk_layers(config: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every ``{"class_name", "config"}`` node in a config, nested ones included."""
    if depth > 200:
        return
    if isinstance(config, Mapping):
        if isinstance(config.get("class_name"), str) and "config" in config:
            yield config
        for v in config.values():
            yield from _walk_layers(v, depth + 1)
    elif isinstance(config, list | tuple):
        for v in config:
            yield from _walk_layers(v, depth + 1)


def _has_keras1_markers(config: Any) -> bool:
    for node in _walk_layers(config):
        if node.get("class_name") in _K1_CLASSES:
            return True
        cfg = node.get("config")
        if isinstance(cfg, Mapping) and _K1_KEYS.intersection(cfg):
            return True
    return False


def _keras1_weight_names(names: list[str]) -> bool:
    """Keras 2 names weights ``layer/kernel:0``; Keras 1 ``layer_W:0`` (TF), ``layer_W`` (Theano), ``param_N``."""
    return bool(names) and not any("/" in n for n in names)


def _is_keras1_info(info: _H5Info) -> bool:
    if info.keras_version:
        return info.keras_version.startswith("1.") or info.keras_version == "1"
    if info.config is not None:
        return _has_keras1_markers(info.config) or (
            info.backend is None and _keras1_weight_names(info.weight_names)
        )
    # Keras 2 and later always record keras_version with the weights; Keras 1 never did.
    return info.weights_root is not None


def is_keras1(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Keras 1.x ``.h5`` (full model or weights only).

    True when its ``keras_version`` starts with "1.", or when it records no version and its config
    uses Keras 1 names (``output_dim`` + ``init``, ``nb_filter``, ``W_regularizer``...) or, without a
    config, it holds weights (Keras 2 always records its version). False for other HDF5 files and
    for files that are not HDF5 at all; a missing path raises NotFoundError.
    """
    try:
        with _open_h5(path) as f:
            info = _inspect(f, Path(path))
    except (FormatError, CorruptFileError, UnsupportedError):
        return False
    return _is_keras1_info(info)


def legacy_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` needs :func:`load_legacy_model` rather than Keras 3 or tf_keras, or None.

    Keras 1 files (neither can read them); Theano-backend files with convolutions (tf_keras loads
    their flipped kernels unchanged and computes other numbers); pre-Keras-3 files using
    ``hard_sigmoid`` (Keras 3 loads them, but redefined the function: see :func:`load_legacy_model`).
    Raises NotFoundError/FormatError for a missing or non-HDF5 path.
    """
    with _open_h5(path) as f:
        info = _inspect(f, Path(path))
    if _is_keras1_info(info):
        return "a Keras 1 file: neither Keras 3 nor tf_keras reads its config and weight layout"
    if info.config is None:
        return None
    classes = {str(n.get("class_name")) for n in _walk_layers(info.config)}
    if (info.backend or "").lower() == "theano" and classes & _FLIP_CLASSES:
        return (
            "written with the Theano backend: its convolution kernels are flipped (true convolution), "
            "which tf_keras's loader does not undo"
        )
    version = info.keras_version or ""
    if not version.startswith(("3.", "4.")) and "hard_sigmoid" in json.dumps(info.config):
        return (
            "uses hard_sigmoid, which Keras 3 redefined (x/6 + 0.5 instead of clip(0.2x + 0.5, 0, 1)); "
            "loading it with Keras 3 silently changes its outputs"
        )
    return None


# --------------------------------------------------------------------------------- config upgrade

_CLASS_RENAMES = {
    "Convolution1D": "Conv1D",
    "AtrousConvolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "AtrousConvolution2D": "Conv2D",
    "SeparableConvolution2D": "SeparableConv2D",
    "Convolution3D": "Conv3D",
}
_UNSUPPORTED = {
    "Highway": "it has no Keras 2 equivalent",
    "MaxoutDense": "it has no Keras 2 equivalent",
    "TimeDistributedDense": "a deprecated Keras 1.0 layer; it is not supported",
    "Deconvolution2D": "Keras 1 transposed convolutions (output_shape, kernel layout) are not supported yet",
    "SReLU": "an advanced activation Keras 2 removed",
    "ParametricSoftplus": "an advanced activation Keras 2 removed",
    "LocallyConnected1D": "Keras 1's locally-connected weight layout is not supported yet",
    "LocallyConnected2D": "Keras 1's locally-connected weight layout is not supported yet",
    "ConvLSTM2D": "Keras 1 ConvLSTM2D is not supported yet",
    "CuDNNLSTM": "a GPU-only Keras 2 layer tf_keras no longer has",
    "CuDNNGRU": "a GPU-only Keras 2 layer tf_keras no longer has",
}
_RECURRENT = frozenset({"SimpleRNN", "GRU", "LSTM"})
_POOL1D = frozenset({"MaxPooling1D", "AveragePooling1D"})
_POOL23D = frozenset({"MaxPooling2D", "AveragePooling2D", "MaxPooling3D", "AveragePooling3D"})
_DIM_ORDERING_ONLY = frozenset(
    {
        "GlobalMaxPooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling3D",
        "GlobalAveragePooling3D",
        "UpSampling2D",
        "UpSampling3D",
        "Cropping2D",
        "Cropping3D",
        "ZeroPadding3D",
    }
)
# Layers whose kernels Theano applied flipped (Keras's own list for cross-backend loading).
_FLIP_CLASSES = frozenset(
    {
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv2DTranspose",
        "ConvLSTM2D",
        "Convolution1D",
        "Convolution2D",
        "Convolution3D",
        "AtrousConvolution1D",
        "AtrousConvolution2D",
    }
)
_MERGE_MODES = {"concat": "Concatenate", "sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum"}
_KERAS1_INITS = {
    "zero": "zeros",
    "one": "ones",
    "uniform": {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05, "seed": None}},
    "normal": {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.05, "seed": None}},
}
_KNOWN_INITS = frozenset(
    {
        "zeros",
        "ones",
        "identity",
        "orthogonal",
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
    }
)


def _as_list(v: Any, n: int) -> list[Any]:
    if isinstance(v, list | tuple):
        return list(v)
    return [v] * n


def _code_in_config(config: Any) -> list[str]:
    """Layers carrying Python code: the runners' check plus Keras 1 ``Merge`` with a callable mode."""
    from ..verify.runners import code_layers

    found = list(code_layers(config))
    for node in _walk_layers(config):
        cfg = node.get("config")
        if node.get("class_name") == "Merge" and isinstance(cfg, Mapping):
            if cfg.get("mode_type") in ("lambda", "function") or cfg.get("output_mask_type") == "lambda":
                found.append(f"{cfg.get('name', '?')} (Merge)")
    return list(dict.fromkeys(found))


class _Upgrader:
    """Rewrites one model config; collects notes; remembers what the weight loader needs."""

    def __init__(self, unsafe: bool) -> None:
        self.unsafe = unsafe
        self.notes: list[str] = []

    # Models -------------------------------------------------------------------------------

    def model(self, node: Mapping[str, Any]) -> dict[str, Any]:
        cls = node.get("class_name")
        cfg = node.get("config")
        if cls == "Sequential":
            return self.sequential(cfg)
        if cls in ("Model", "Functional"):
            return self.functional(cfg)
        raise UnsupportedError(
            f"the model is a {cls!r}, not a Sequential or functional Model; cannot upgrade it"
        )

    def sequential(self, cfg: Any) -> dict[str, Any]:
        if isinstance(cfg, list):
            name, layers = None, cfg
        elif isinstance(cfg, Mapping) and isinstance(cfg.get("layers"), list):
            name, layers = cfg.get("name"), cfg["layers"]
        else:
            raise CorruptFileError("a Sequential config that is neither a list of layers nor has 'layers'")
        if not layers:
            raise UnsupportedError("an empty Sequential model: there is nothing to load")
        layers = [_check_node(n) for n in layers]
        if any(n["class_name"] == "Merge" for n in layers[1:]):
            raise UnsupportedError(
                "a Sequential model with a Merge layer after its first layer cannot be rebuilt"
            )
        if layers[0]["class_name"] == "Merge":
            return self.merge_sequential(name, layers)
        out: list[dict[str, Any]] = []
        entry = self.input_for(layers[0])
        if entry is not None:
            out.append(entry)
        for i, node in enumerate(layers):
            up = self.layer(node)
            if i == 0 and entry is not None:
                up["config"].pop("batch_input_shape", None)
            out.append(up)
        return {"class_name": "Sequential", "config": {"name": name or "sequential", "layers": out}}

    def functional(self, cfg: Any) -> dict[str, Any]:
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("layers"), list):
            raise CorruptFileError("a functional model config without a list of layers")
        layers = []
        for raw in cfg["layers"]:
            node = _check_node(raw)
            name = raw.get("name") or node["config"].get("name")
            if node["class_name"] == "Merge":
                up = self.merge(node["config"], name)
            else:
                up = self.layer(node)
            up["name"] = name
            up["config"]["name"] = name
            up["inbound_nodes"] = [_inbound(n) for n in raw.get("inbound_nodes") or []]
            layers.append(up)
        return {
            "class_name": "Model",
            "config": {
                "name": cfg.get("name") or "model",
                "layers": layers,
                "input_layers": _refs(cfg.get("input_layers")),
                "output_layers": _refs(cfg.get("output_layers")),
            },
        }

    def merge_sequential(self, name: str | None, layers: list[dict[str, Any]]) -> dict[str, Any]:
        """A Keras 1 Sequential starting with ``Merge([branch, ...])``, as a functional graph."""
        graph: list[dict[str, Any]] = []
        inputs: list[list[Any]] = []

        def add(up: dict[str, Any], inbound: list[list[Any]] | None) -> list[Any]:
            lname = up["config"]["name"]
            up["name"] = lname
            up["inbound_nodes"] = [[[*ref, {}] for ref in inbound]] if inbound else []
            graph.append(up)
            return [lname, 0, 0]

        def chain(nodes: list[dict[str, Any]]) -> list[Any]:
            first = nodes[0]
            if first["class_name"] == "Merge":
                branches = first["config"].get("layers") or []
                if not branches:
                    raise UnsupportedError("a Merge layer with no branches inside a Sequential model")
                refs = [branch(b) for b in branches]
                cur = add(self.merge(first["config"], first["config"].get("name", "merge")), refs)
            elif first["class_name"] == "InputLayer":
                cur = add(self.layer(first), None)
                inputs.append(cur)
            else:
                entry = self.input_for(first)
                if entry is None:
                    raise UnsupportedError(
                        f"branch starting with {first['config'].get('name')!r} has no input shape; cannot rebuild it"
                    )
                cur = add(entry, None)
                inputs.append(cur)
                up = self.layer(first)
                up["config"].pop("batch_input_shape", None)
                cur = add(up, [cur])
            for node in nodes[1:]:
                cur = add(self.layer(node), [cur])
            return cur

        def branch(b: Any) -> list[Any]:
            b = _check_node(b)
            if b["class_name"] == "Sequential":
                cfg = b["config"]
                sub = cfg if isinstance(cfg, list) else cfg.get("layers")
                if not isinstance(sub, list) or not sub:
                    raise UnsupportedError("an empty Sequential branch in a Merge layer")
                return chain([_check_node(n) for n in sub])
            if b["class_name"] in ("Model", "Functional"):
                raise UnsupportedError(
                    "a Merge of functional models inside a Sequential model is not supported"
                )
            return chain([b])

        out = chain(layers)
        self.notes.append("Sequential model starting with a Merge layer rebuilt as a functional model")
        return {
            "class_name": "Model",
            "config": {
                "name": name or "sequential",
                "layers": graph,
                "input_layers": inputs,
                "output_layers": [out],
            },
        }

    # Layers -------------------------------------------------------------------------------

    def input_for(self, node: Mapping[str, Any], nested: bool = False) -> dict[str, Any] | None:
        """An explicit InputLayer for a Keras 1 first layer (its ``input_dtype`` is the input's dtype,
        not the layer's: an Embedding's ``int32`` input must not make its weights int32)."""
        cls = node["class_name"]
        cfg = node["config"]
        if cls == "Sequential":  # a nested Sequential first: the outer model takes its input
            inner = cfg if isinstance(cfg, list) else cfg.get("layers") if isinstance(cfg, Mapping) else None
            if isinstance(inner, list) and inner:
                entry = self.input_for(_check_node(inner[0]), nested=True)
                if entry is None and inner[0].get("class_name") == "InputLayer":
                    entry = copy.deepcopy(_check_node(inner[0]))
                    entry["config"].setdefault("dtype", entry["config"].pop("input_dtype", "float32"))
                if entry is not None:
                    entry["config"]["name"] = f"{entry['config']['name']}_outer"
                return entry
            return None
        if cls in ("InputLayer", "Model", "Functional"):
            return None
        bis = cfg.get("batch_input_shape")
        if bis is None:
            dim, length = cfg.get("input_dim"), cfg.get("input_length")
            if cls == "Embedding":
                bis = [None, length] if "input_length" in cfg else None
            elif dim is not None and (cls in _RECURRENT or "Conv" in cls or cls in _POOL1D):
                bis = [None, length, dim]
            elif dim is not None:
                bis = [None, dim]
        elif "input_dtype" not in cfg and not nested:
            return None  # a Keras 2 layer: tf_keras reads its batch_input_shape itself
        if bis is None:
            return None
        return {
            "class_name": "InputLayer",
            "config": {
                "batch_input_shape": list(bis),
                "dtype": cfg.get("input_dtype") or cfg.get("dtype") or "float32",
                "sparse": False,
                "name": f"{cfg.get('name', cls.lower())}_input",
            },
        }

    def layer(self, node: Mapping[str, Any]) -> dict[str, Any]:
        node = _check_node(node)
        cls = node["class_name"]
        cfg = copy.deepcopy(dict(node["config"]))
        name = str(cfg.get("name", cls))
        if cls in ("Sequential", "Model", "Functional"):
            return self.model(node)
        if cls in _UNSUPPORTED:
            raise UnsupportedError(f"layer {name!r} ({cls}): {_UNSUPPORTED[cls]}")
        if cls == "Merge":
            return self.merge(cfg, name)
        changed: list[str] = []
        ren = _Renamer(cfg, changed, name)
        if "input_dtype" in cfg:
            input_dtype = cfg.pop("input_dtype")
            if cls == "InputLayer":  # elsewhere it was the input's dtype: see input_for
                cfg.setdefault("dtype", input_dtype)
        new_cls = _CLASS_RENAMES.get(cls, cls)

        if cls == "Dense":
            ren.rename("output_dim", "units")
            ren.weights_common()
            ren.drop_input_dims()
        elif cls in ("Convolution1D", "AtrousConvolution1D"):
            ren.conv_common(1)
            ren.rename("filter_length", "kernel_size", lambda v: _as_list(v, 1))
            ren.rename("subsample_length", "strides", lambda v: _as_list(v, 1))
            ren.rename("atrous_rate", "dilation_rate", lambda v: _as_list(v, 1))
            ren.drop_input_dims()
        elif cls in ("Convolution2D", "AtrousConvolution2D", "SeparableConvolution2D"):
            ren.conv_common(2)
            if "nb_row" in cfg or "nb_col" in cfg:
                cfg["kernel_size"] = [cfg.pop("nb_row", 1), cfg.pop("nb_col", 1)]
                ren.renamed.append("nb_row/nb_col")
            ren.rename("atrous_rate", "dilation_rate", lambda v: _as_list(v, 2))
            if cls == "SeparableConvolution2D" and "init" in cfg:
                init = _initializer(cfg.pop("init"))
                cfg["depthwise_initializer"] = cfg["pointwise_initializer"] = init
                ren.renamed.append("init")
        elif cls == "Convolution3D":
            ren.conv_common(3)
            if "kernel_dim1" in cfg:
                cfg["kernel_size"] = [cfg.pop("kernel_dim1"), cfg.pop("kernel_dim2"), cfg.pop("kernel_dim3")]
                ren.renamed.append("kernel_dim1..3")
        elif cls in _POOL1D:
            ren.rename("pool_length", "pool_size")
            ren.rename("stride", "strides")
            ren.padding()
        elif cls in _POOL23D:
            ren.padding()
            ren.data_format()
        elif cls in _DIM_ORDERING_ONLY:
            ren.data_format()
        elif cls == "ZeroPadding2D":
            ren.data_format()
            cfg["padding"] = _zero_padding_2d(cfg.get("padding", (1, 1)), name)
        elif cls == "UpSampling1D":
            ren.rename("length", "size")
        elif cls == "Flatten":
            # Keras 1 flattened in storage order; tf_keras's Flatten(channels_first) would transpose
            # to channels-last first, and its default comes from the local keras.json.
            if "data_format" not in cfg:
                cfg["data_format"] = "channels_last"
        elif cls in ("Dropout", "SpatialDropout1D", "GaussianDropout"):
            ren.rename("p", "rate")
        elif cls in ("SpatialDropout2D", "SpatialDropout3D"):
            ren.rename("p", "rate")
            ren.data_format()
        elif cls == "GaussianNoise":
            ren.rename("sigma", "stddev")
        elif cls == "Embedding":
            ren.rename("init", "embeddings_initializer", _initializer)
            ren.rename("W_regularizer", "embeddings_regularizer", ren.regularizer)
            ren.rename("W_constraint", "embeddings_constraint", ren.constraint)
            ren.convert("activity_regularizer", ren.regularizer)
            if "dropout" in cfg:
                if cfg.pop("dropout"):
                    changed.append("dropped word dropout (acts in training only)")
        elif cls in _RECURRENT:
            ren.rename("output_dim", "units")
            ren.rename("init", "kernel_initializer", _initializer)
            ren.rename("inner_init", "recurrent_initializer", _initializer)
            ren.rename("inner_activation", "recurrent_activation")
            ren.rename("W_regularizer", "kernel_regularizer", ren.regularizer)
            ren.rename("U_regularizer", "recurrent_regularizer", ren.regularizer)
            ren.rename("b_regularizer", "bias_regularizer", ren.regularizer)
            ren.rename("dropout_W", "dropout")
            ren.rename("dropout_U", "recurrent_dropout")
            ren.convert("activity_regularizer", ren.regularizer)
            if "consume_less" in cfg:
                cfg.pop("consume_less")
                changed.append("dropped consume_less (a speed setting)")
            if "forget_bias_init" in cfg:
                cfg["unit_forget_bias"] = cfg.pop("forget_bias_init") == "one"
                ren.renamed.append("forget_bias_init")
            if cls == "GRU" and "reset_after" not in cfg:
                # GRUs before Keras 2.1.5 applied the reset gate before the recurrent matmul.
                cfg["reset_after"] = False
                changed.append("reset_after=False (the pre-2.1.5 GRU formula)")
            ren.drop_input_dims()
        elif cls == "BatchNormalization":
            mode = cfg.pop("mode", 0)
            if mode != 0:
                raise UnsupportedError(
                    f"layer {name!r}: Keras 1 BatchNormalization mode={mode} normalizes with per-batch or "
                    "per-sample statistics at inference, which Keras 2 has no layer for"
                )
            ren.rename("gamma_init", "gamma_initializer", _initializer)
            ren.rename("beta_init", "beta_initializer", _initializer)
            ren.convert("gamma_regularizer", ren.regularizer)
            ren.convert("beta_regularizer", ren.regularizer)
        elif cls == "PReLU":
            ren.rename("init", "alpha_initializer", _initializer)
        elif cls == "InputLayer":
            pass
        elif cls in ("TimeDistributed", "Bidirectional"):
            inner = cfg.get("layer")
            if isinstance(inner, Mapping):
                cfg["layer"] = self.layer(inner)
        elif cls == "Lambda":
            cfg.setdefault("arguments", {})
            cfg.setdefault("output_shape_type", "raw")
        if ren.renamed:
            changed.insert(0, f"Keras 1 keys renamed: {', '.join(ren.renamed)}")
        if changed or new_cls != cls:
            arrow = f"{cls} -> {new_cls}" if new_cls != cls else cls
            self.notes.append(f"{name}: {arrow}" + (f" ({'; '.join(changed)})" if changed else ""))
        return {"class_name": new_cls, "config": cfg}

    def merge(self, cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
        mode = cfg.get("mode", "sum")
        if cfg.get("mode_type") not in (None, "raw") or not isinstance(mode, str):
            raise UnsupportedError(
                f"Merge layer {name!r} merges with a Python function; Keras 2 has no layer to rebuild it with"
            )
        out: dict[str, Any] = {"name": name, "trainable": cfg.get("trainable", True)}
        if mode == "concat":
            out["axis"] = cfg.get("concat_axis", -1)
        elif mode == "dot":
            axes = cfg.get("dot_axes", -1)
            out["axes"] = list(axes) if isinstance(axes, list | tuple) else axes
            out["normalize"] = False
            self.notes.append(f"{name}: Merge(mode='dot') -> Dot(axes={out['axes']})")
            return {"class_name": "Dot", "config": out}
        elif mode not in _MERGE_MODES:
            raise UnsupportedError(
                f"Merge layer {name!r}: mode {mode!r} is not supported (supported: "
                f"{', '.join([*_MERGE_MODES, 'dot'])})"
            )
        self.notes.append(f"{name}: Merge(mode={mode!r}) -> {_MERGE_MODES[mode]}")
        return {"class_name": _MERGE_MODES[mode], "config": out}


class _Renamer:
    """Key renames for one layer config, recording what changed."""

    def __init__(self, cfg: dict[str, Any], changed: list[str], name: str) -> None:
        self.cfg, self.changed, self.name = cfg, changed, name
        self.renamed: list[str] = []

    def rename(self, old: str, new: str, convert: Any = None) -> None:
        if old in self.cfg:
            v = self.cfg.pop(old)
            self.cfg[new] = convert(v) if convert else v
            self.renamed.append(old)

    def convert(self, key: str, convert: Any) -> None:
        if key in self.cfg:
            self.cfg[key] = convert(self.cfg[key])

    def drop_input_dims(self) -> None:
        for key in ("input_dim", "input_length"):
            self.cfg.pop(key, None)

    def weights_common(self) -> None:
        self.rename("init", "kernel_initializer", _initializer)
        self.rename("W_regularizer", "kernel_regularizer", self.regularizer)
        self.rename("b_regularizer", "bias_regularizer", self.regularizer)
        self.rename("W_constraint", "kernel_constraint", self.constraint)
        self.rename("b_constraint", "bias_constraint", self.constraint)
        self.rename("bias", "use_bias", bool)
        self.convert("activity_regularizer", self.regularizer)
        for key in ("depthwise_regularizer", "pointwise_regularizer"):
            self.convert(key, self.regularizer)
        for key in ("depthwise_constraint", "pointwise_constraint"):
            self.convert(key, self.constraint)

    def conv_common(self, rank: int) -> None:
        self.rename("nb_filter", "filters")
        self.rename("subsample", "strides", lambda v: _as_list(v, rank))
        self.padding()
        self.data_format()
        self.weights_common()

    def padding(self) -> None:
        if "border_mode" in self.cfg:
            mode = self.cfg.pop("border_mode")
            if mode not in ("valid", "same", "causal"):
                raise UnsupportedError(
                    f"layer {self.name!r}: border_mode={mode!r} (a Theano-only mode) has no Keras 2 equivalent"
                )
            self.cfg["padding"] = mode
            self.renamed.append("border_mode")

    def data_format(self) -> None:
        if "dim_ordering" not in self.cfg:
            return
        d = self.cfg.pop("dim_ordering")
        if d not in ("th", "tf"):
            raise UnsupportedError(
                f"layer {self.name!r}: dim_ordering={d!r}; expected 'th' or 'tf' (the saving machine's "
                "keras.json decided 'default', and the file does not say which it was)"
            )
        self.cfg["data_format"] = "channels_first" if d == "th" else "channels_last"
        self.changed.append(f"dim_ordering={d} -> data_format={self.cfg['data_format']}")

    def regularizer(self, v: Any) -> Any:
        if v is None or (isinstance(v, Mapping) and "class_name" in v) or isinstance(v, str):
            return v
        if isinstance(v, Mapping) and ("l1" in v or "l2" in v):
            return {
                "class_name": "L1L2",
                "config": {"l1": float(v.get("l1") or 0), "l2": float(v.get("l2") or 0)},
            }
        self.changed.append("dropped an unknown regularizer (acts in training only)")
        return None

    def constraint(self, v: Any) -> Any:
        if v is None or (isinstance(v, Mapping) and "class_name" in v) or isinstance(v, str):
            return v
        if isinstance(v, Mapping):
            kind = str(v.get("name", ""))
            if kind == "MaxNorm":
                return {
                    "class_name": "MaxNorm",
                    "config": {"max_value": v.get("m", 2), "axis": v.get("axis", 0)},
                }
            if kind == "NonNeg":
                return {"class_name": "NonNeg", "config": {}}
            if kind == "UnitNorm":
                return {"class_name": "UnitNorm", "config": {"axis": v.get("axis", 0)}}
        self.changed.append("dropped an unknown constraint (acts in training only)")
        return None


def _initializer(v: Any) -> Any:
    """Keras 1 initializer names as tf_keras ones (they only matter before weights are loaded)."""
    if isinstance(v, str):
        if v in _KERAS1_INITS:
            return copy.deepcopy(_KERAS1_INITS[v])
        return v if v in _KNOWN_INITS else "glorot_uniform"
    return v if isinstance(v, Mapping) else "glorot_uniform"


def _zero_padding_2d(p: Any, name: str) -> Any:
    if isinstance(p, Mapping):  # Keras 1.2: {"top_pad", "bottom_pad", "left_pad", "right_pad"}
        return [[p.get("top_pad", 0), p.get("bottom_pad", 0)], [p.get("left_pad", 0), p.get("right_pad", 0)]]
    if isinstance(p, list | tuple) and len(p) == 4:  # (top, bottom, left, right)
        return [[p[0], p[1]], [p[2], p[3]]]
    if isinstance(p, int | list | tuple):
        return p
    raise UnsupportedError(f"layer {name!r}: ZeroPadding2D padding {p!r} is not understood")


def _check_node(node: Any) -> dict[str, Any]:
    if not isinstance(node, Mapping) or not isinstance(node.get("class_name"), str):
        raise CorruptFileError(f"a layer entry without a class_name in the model config: {str(node)[:80]}")
    cfg = node.get("config")
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping | list):
        raise CorruptFileError(f"layer entry {node['class_name']!r} has a config that is not an object")
    return {**node, "config": cfg}


def _inbound(node: Any) -> list[Any]:
    """One inbound node: Keras 1 writes ``[layer, node_index, tensor_index]``, Keras 2 adds kwargs."""
    if not isinstance(node, list):
        raise UnsupportedError(f"inbound node {str(node)[:80]!r} is not in the Keras 1/2 list format")
    out = []
    for entry in node:
        if not isinstance(entry, list | tuple) or len(entry) < 3:
            raise CorruptFileError(f"inbound entry {entry!r} is not [layer, node_index, tensor_index]")
        out.append([entry[0], entry[1], entry[2], entry[3] if len(entry) > 3 else {}])
    return out


def _refs(refs: Any) -> list[Any]:
    if not isinstance(refs, list) or not refs:
        raise CorruptFileError("a functional model config without input_layers/output_layers")
    return [list(r[:3]) if isinstance(r, list | tuple) else r for r in refs]


def _unwrap_model_config(model_config: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """The ``{"class_name", "config"}`` part of a model config (dl4j's JSON adds keras_version/backend)."""
    if isinstance(model_config, bytes | str):
        model_config = _parse_json(model_config, "the model config")
    if (
        not isinstance(model_config, Mapping)
        or "class_name" not in model_config
        or "config" not in model_config
    ):
        raise UserError("not a Keras model config: expected a JSON object with class_name and config")
    version = model_config.get("keras_version")
    backend = model_config.get("backend")
    return (
        {"class_name": model_config["class_name"], "config": model_config["config"]},
        str(version) if version else None,
        str(backend) if backend else None,
    )


def upgrade_config(model_config: dict[str, Any], unsafe: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A Keras 1 (or early Keras 2) model config rewritten for tf_keras's ``from_config``, and notes.

    Renames layers and keys (``Convolution2D``->``Conv2D``, ``output_dim``->``units``,
    ``border_mode``->``padding``, ``dim_ordering``->``data_format``...), rebuilds Keras 1 ``Merge``
    layers as ``Concatenate``/``Add``/``Multiply``/``Average``/``Maximum``/``Dot`` (a Sequential that
    starts with a Merge becomes a functional model) and adds Keras 2's kwargs slot to inbound
    nodes. Keras 2 configs pass through with minimal fixes. Layers carrying Python bytecode
    (``Lambda``, Merge with a callable mode) raise UserError unless ``unsafe`` is true.
    """
    node, _, _ = _unwrap_model_config(model_config)
    risky = _code_in_config(node)
    if risky and not unsafe:
        raise UserError(
            f"refusing to upgrade: {', '.join(risky[:5])} carr{'ies' if len(risky) == 1 else 'y'} Python "
            "bytecode that loading would execute; pass unsafe=True (--unsafe) only if you trust this file"
        )
    up = _Upgrader(unsafe)
    return up.model(node), up.notes


# --------------------------------------------------------------------------------- weights


def _base(name: str) -> str:
    """``dense_1/kernel:0`` -> ``kernel``; ``lstm_1_W_i:0`` -> ``lstm_1_W_i``."""
    return re.sub(r":\d+$", "", name.split("/")[-1])


def _keyed(values: list[tuple[str, np.ndarray]], keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Keras 1 weights by role (``W_i``, ``gamma``...) from their names, or None if names do not say."""
    if len(values) != len(keys):
        return None
    out: dict[str, np.ndarray] = {}
    for wname, arr in values:
        base = _base(wname)
        match = sorted((k for k in keys if base == k or base.endswith("_" + k)), key=len, reverse=True)
        if not match or match[0] in out:
            return None
        out[match[0]] = arr
    return out


def _by_role(
    values: list[tuple[str, np.ndarray]], keys: tuple[str, ...], where: str, notes: list[str]
) -> dict[str, np.ndarray]:
    found = _keyed(values, keys)
    if found is not None:
        return found
    if len(values) != len(keys):
        raise CorruptFileError(
            f"{where}: {len(values)} weights in the file, Keras 1 stored {len(keys)} ({', '.join(keys)})"
        )
    notes.append(f"{where}: weight names not recognised; used Keras 1's storage order ({', '.join(keys)})")
    return {k: arr for k, (_, arr) in zip(keys, values, strict=True)}


_LSTM_GATES = ("W_i", "U_i", "b_i", "W_c", "U_c", "b_c", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o")
_GRU_GATES = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W_h", "U_h", "b_h")


def _flip(kernel: np.ndarray) -> np.ndarray:
    """Rotate a Keras 2 layout kernel (spatial..., in, out) 180 degrees in every spatial axis."""
    return np.ascontiguousarray(kernel[(slice(None, None, -1),) * (kernel.ndim - 2)])


class _WeightLoader:
    def __init__(self, path: Path, keras1: bool, backend: str | None, notes: list[str]) -> None:
        self.path, self.keras1, self.backend, self.notes = path, keras1, backend, notes

    def convert(self, layer: Any, values: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        cls = type(layer).__name__
        where = f"{self.path}: layer {layer.name!r} ({cls})"
        if cls in ("Bidirectional",):
            half = len(values) // 2
            if half * 2 != len(values):
                raise CorruptFileError(
                    f"{where}: an odd number of weights ({len(values)}) for two directions"
                )
            return self.convert(layer.forward_layer, values[:half]) + self.convert(
                layer.backward_layer, values[half:]
            )
        if cls == "TimeDistributed":
            return self.convert(layer.layer, values)
        if not self.keras1:
            arrays = [arr for _, arr in values]
            if self.backend == "theano" and cls in _FLIP_CLASSES and arrays:
                arrays[0] = _flip(arrays[0])
                self.notes.append(
                    f"{layer.name}: Theano kernel rotated 180 degrees (Theano convolves, TF correlates)"
                )
            return arrays
        return self.keras1_weights(layer, cls, values, where)

    def keras1_weights(
        self, layer: Any, cls: str, values: list[tuple[str, np.ndarray]], where: str
    ) -> list[np.ndarray]:
        use_bias = bool(getattr(layer, "use_bias", True))
        if cls == "Dense":
            w = _by_role(values, ("W", "b") if use_bias else ("W",), where, self.notes)
            return [w["W"], w["b"]] if use_bias else [w["W"]]
        if cls in ("Conv1D", "Conv2D", "Conv3D"):
            w = _by_role(values, ("W", "b") if use_bias else ("W",), where, self.notes)
            kernel = self.conv_kernel(layer, cls, w["W"], where)
            return [kernel, w["b"]] if use_bias else [kernel]
        if cls == "SeparableConv2D":
            keys = ("depthwise_kernel", "pointwise_kernel") + (("b",) if use_bias else ())
            w = _by_role(values, keys, where, self.notes)
            if self.backend == "theano":
                raise UnsupportedError(f"{where}: a Theano-backend separable convolution (Keras 1 had none)")
            dk, pk = w["depthwise_kernel"], w["pointwise_kernel"]
            if layer.data_format == "channels_first":  # (mult, in, r, c) and (out, mult*in, 1, 1)
                dk, pk = dk.transpose(2, 3, 1, 0), pk.transpose(2, 3, 1, 0)
            return [dk, pk, w["b"]] if use_bias else [dk, pk]
        if cls == "Embedding":
            return [_by_role(values, ("W",), where, self.notes)["W"]]
        if cls == "SimpleRNN":
            w = _by_role(values, ("W", "U", "b"), where, self.notes)
            return [w["W"], w["U"], w["b"]]
        if cls in ("LSTM", "GRU"):
            gates = _LSTM_GATES if cls == "LSTM" else _GRU_GATES
            if len(values) == 3:  # consume_less="gpu": already fused, in Keras 2 gate order
                w = _by_role(values, ("W", "U", "b"), where, self.notes)
                return [w["W"], w["U"], w["b"]]
            w = _by_role(values, gates, where, self.notes)
            order = "ifco" if cls == "LSTM" else "zrh"
            fused = [np.concatenate([w[f"{m}_{g}"] for g in order], axis=-1) for m in ("W", "U", "b")]
            stored = "i, c, f, o" if cls == "LSTM" else "z, r, h"
            self.notes.append(
                f"{layer.name}: Keras 1 per-gate weights (stored {stored}) fused into kernel/recurrent_kernel/bias "
                f"in gate order {', '.join(order)}"
            )
            return fused
        if cls == "BatchNormalization":
            w = _by_role(values, ("gamma", "beta", "running_mean", "running_std"), where, self.notes)
            # Despite its name, Keras 1.1+'s running_std holds the moving variance.
            out = []
            if layer.scale:
                out.append(w["gamma"])
            if layer.center:
                out.append(w["beta"])
            return [*out, w["running_mean"], w["running_std"]]
        if cls == "PReLU":
            return [_by_role(values, ("alphas",), where, self.notes)["alphas"]]
        return [arr for _, arr in values]

    def conv_kernel(self, layer: Any, cls: str, w: np.ndarray, where: str) -> np.ndarray:
        want = tuple(int(d) for d in layer.weights[0].shape)
        if cls == "Conv1D":
            if w.ndim == 4 and w.shape[1] == 1 and (w.shape[0], w.shape[2], w.shape[3]) == want:
                w = w[:, 0]  # Keras 1.2: (length, 1, in, out)
            elif w.ndim == 4 and w.shape[3] == 1 and (w.shape[2], w.shape[1], w.shape[0]) == want:
                w = w[:, :, :, 0].transpose(2, 1, 0)  # Keras 1.1: (out, in, length, 1)
        elif layer.data_format == "channels_first":
            # Keras 1 'th' kernels: (out, in, spatial...) -> (spatial..., in, out)
            rank = w.ndim - 2
            w = w.transpose(*range(2, 2 + rank), 1, 0)
            self.notes.append(
                f"{layer.name}: 'th' kernel (out, in, spatial...) transposed to (spatial..., in, out)"
            )
        if tuple(w.shape) != want:
            raise CorruptFileError(
                f"{where}: kernel has shape {list(w.shape)} in the file, the layer expects {list(want)}"
            )
        if self.backend == "theano":
            if cls == "Conv3D":
                raise UnsupportedError(f"{where}: Theano-backend 3D convolution kernels are not supported")
            w = _flip(w)
            self.notes.append(
                f"{layer.name}: Theano kernel rotated 180 degrees (Theano convolves, TF correlates)"
            )
        return w

    def assign(self, layer: Any, arrays: list[np.ndarray]) -> None:
        # Keras 2 saved trainable then non-trainable weights; the Keras 1 path builds layer.weights order.
        variables = (
            list(layer.weights) if self.keras1 else layer.trainable_weights + layer.non_trainable_weights
        )
        want = [tuple(int(d) for d in v.shape) for v in variables]
        got = [tuple(a.shape) for a in arrays]
        if len(want) != len(got):
            raise CorruptFileError(
                f"{self.path}: layer {layer.name!r} ({type(layer).__name__}) expects {len(want)} weights, "
                f"the file gives {len(got)}"
            )
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            if w != g:
                raise CorruptFileError(
                    f"{self.path}: layer {layer.name!r} weight {i} ({variables[i].name}) has shape {list(g)} "
                    f"in the file, the rebuilt layer expects {list(w)}"
                )
        for v, a in zip(variables, arrays, strict=True):
            v.assign(np.asarray(a, dtype=v.dtype.as_numpy_dtype))


_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _is_model(layer: Any) -> bool:
    return type(layer).__name__ in _MODEL_CLASSES


def _sublayers_with_weights(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        if not layer.weights:
            continue
        if _is_model(layer):
            yield from _sublayers_with_weights(layer)
        else:
            yield layer


def _owner(name: str, subs: list[Any]) -> Any | None:
    """The sublayer a nested model's weight belongs to: ``dense_1_W:0`` (Keras 1) or ``.../dense_1/kernel:0``."""
    segments = name.split("/")[:-1]
    hits = [s for s in subs if s.name in segments or name.split("/")[-1].startswith(f"{s.name}_")]
    return max(hits, key=lambda s: len(s.name)) if hits else None


def _read_group(group: Any, lname: str, path: Path) -> list[tuple[str, np.ndarray]]:
    import h5py

    g = group.get(lname)
    if not isinstance(g, h5py.Group):
        raise CorruptFileError(f"{path}: layer_names lists {lname!r} but the file has no group for it")
    values = []
    for wn in _names_attr(g, "weight_names") or []:
        ds = g.get(wn)
        if not isinstance(ds, h5py.Dataset):
            raise CorruptFileError(f"{path}: layer {lname!r} names weight {wn!r} but holds no such dataset")
        values.append((wn, np.asarray(ds[()])))
    return values


def _load_weights(model: Any, group: Any, loader: _WeightLoader) -> None:
    by_name = {layer.name: layer for layer in model.layers}
    loaded: set[str] = set()
    for lname in _names_attr(group, "layer_names") or []:
        values = _read_group(group, lname, loader.path)
        if not values:
            continue
        layer = by_name.get(lname)
        if layer is None:
            layer = _unnamed_nested_model(model, loaded, values)
            if layer is None:
                raise CorruptFileError(
                    f"{loader.path}: the file holds weights for layer {lname!r}, which the model config does not have"
                )
            loader.notes.append(
                f"weights of {lname!r} loaded into nested model {layer.name!r} (matched by weight names)"
            )
        if _is_model(layer):
            _load_nested(layer, values, loader)
        else:
            loader.assign(layer, loader.convert(layer, values))
        loaded.add(layer.name)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in loaded]
    if missing:
        raise CorruptFileError(f"{loader.path}: the file holds no weights for layer {', '.join(missing)}")


def _unnamed_nested_model(model: Any, loaded: set[str], values: list[tuple[str, np.ndarray]]) -> Any | None:
    """Keras 1 saved nested Sequential models' configs without their names: find the one these weights fit."""
    fits = []
    for layer in model.layers:
        if _is_model(layer) and layer.name not in loaded:
            subs = list(_sublayers_with_weights(layer))
            if subs and all(_owner(n, subs) is not None for n, _ in values):
                fits.append(layer)
    return fits[0] if len(fits) == 1 else None


def _load_nested(model: Any, values: list[tuple[str, np.ndarray]], loader: _WeightLoader) -> None:
    """A nested model's weights, stored flat in one group, handed to its layers by their names."""
    subs = list(_sublayers_with_weights(model))
    groups: dict[str, list[tuple[str, np.ndarray]]] = {s.name: [] for s in subs}
    for n, a in values:
        owner = _owner(n, subs)
        if owner is None:
            raise UnsupportedError(
                f"{loader.path}: cannot tell which layer of nested model {model.name!r} weight {n!r} belongs to"
            )
        groups[owner.name].append((n, a))
    for sub in subs:
        if not groups[sub.name]:
            raise CorruptFileError(
                f"{loader.path}: no weights for {sub.name!r} in nested model {model.name!r}"
            )
        loader.assign(sub, loader.convert(sub, groups[sub.name]))


def _detect_backend(
    info: _H5Info, override: str | None, conv: bool, th: bool, notes: list[str]
) -> str | None:
    if override:
        b = override.lower()
        if b not in ("tensorflow", "theano"):
            raise UserError(f"unknown backend {override!r}; choose tensorflow or theano")
        return b
    if info.backend:
        b = info.backend.lower()
        if b == "cntk" and conv:
            raise UnsupportedError(
                "CNTK-backend convolution kernels are not supported (their layout is unverified)"
            )
        return b
    named = [n for n in info.weight_names if not re.fullmatch(r"param_\d+", n)]
    if named and all(re.search(r":\d+$", n) for n in named):
        if conv:
            notes.append("backend inferred as tensorflow (its variable names end in ':0')")
        return "tensorflow"
    if named and not any(re.search(r":\d+$", n) for n in named):
        if conv:
            notes.append("backend inferred as theano (TensorFlow variable names end in ':0'; these do not)")
        return "theano"
    if conv:
        guess = "theano" if th else "tensorflow"
        notes.append(
            f"the file does not say which backend wrote it; assumed {guess} for its convolution kernels "
            "(pass backend= if that is wrong: Theano kernels are flipped)"
        )
        return guess
    return None


@contextlib.contextmanager
def _safe_mode(enabled: bool) -> Iterator[None]:
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # older or newer layouts: our own check already refused bytecode
        yield
        return
    with SafeModeScope(enabled):
        yield


def _read_architecture(architecture: Any) -> Any:
    if isinstance(architecture, Mapping):
        return dict(architecture)
    p = Path(architecture)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such architecture JSON file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{p}: not a readable JSON model config ({_first_line(e)})") from None


def load_legacy_model(
    path: str | os.PathLike[str],
    unsafe: bool = False,
    architecture: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    backend: str | None = None,
) -> LegacyModel:
    """A legacy Keras ``.h5`` (Keras 1, or Keras 2 with quirks) rebuilt with tf_keras, weights loaded.

    ``path`` is a full model file or a weights-only file; ``architecture`` (a JSON file or the
    parsed dict, as ``model.to_json()`` wrote it) supplies or replaces the model config.
    ``backend`` ("tensorflow"/"theano") overrides the backend the weights are taken to come from.
    """
    p = Path(path)
    with _open_h5(p) as f:
        info = _inspect(f, p)
        notes: list[str] = []
        config: Any = info.config
        arch_version = arch_backend = None
        if architecture is not None:
            if config is not None:
                notes.append("the model config comes from the architecture given, not from the file")
            config, arch_version, arch_backend = _unwrap_model_config(_read_architecture(architecture))
        if info.weights_root is None:
            raise FormatError(
                f"{p}: not a Keras model or weights file (no model_weights group, no layer_names attribute)"
            )
        if config is None:
            raise UserError(
                f"{p}: holds weights only (no model_config); pass the architecture JSON (architecture=...)"
            )
        info.keras_version = info.keras_version or arch_version
        info.backend = info.backend or arch_backend
        info.config = config
        keras1 = _is_keras1_info(info)
        try:
            upgraded, config_notes = upgrade_config(config, unsafe=unsafe)
        except UserError as e:
            raise type(e)(f"{p}: {e}") from None
        notes.extend(config_notes)
        classes = {str(n.get("class_name")) for n in _walk_layers(config)}
        if keras1 and (info.keras_version or "").startswith("1.0") and "BatchNormalization" in classes:
            raise UnsupportedError(
                f"{p}: Keras {info.keras_version} BatchNormalization stored a running std and normalized "
                "with (x - mean) / (std + epsilon); only Keras 1.1+ files are supported"
            )
        conv = bool(classes & _FLIP_CLASSES)
        th = any(
            isinstance(n.get("config"), Mapping) and n["config"].get("dim_ordering") == "th"
            for n in _walk_layers(config)
        )
        try:
            src_backend = _detect_backend(info, backend, conv, th, notes)
        except UserError as e:
            raise type(e)(f"{p}: {e}") from None
        if src_backend == "theano" and conv and '"same"' in json.dumps(config):
            notes.append(
                "Theano padded 'same' convolutions with even kernels and 'same' pooling differently from "
                "TensorFlow at the borders; check edge outputs"
            )

        model = _build(upgraded, unsafe, p)
        loader = _WeightLoader(p, keras1, src_backend, notes)
        group = f[info.weights_root]
        try:
            _load_weights(model, group, loader)
        except (ValueError, TypeError) as e:
            raise CorruptFileError(
                f"{p}: cannot load its weights ({type(e).__name__}: {_first_line(e)})"
            ) from None
    _smoke_run(model, p, _has_channels_first(upgraded))
    return LegacyModel(
        model=model,
        notes=list(dict.fromkeys(notes)),
        loader=LOADER_KERAS1 if keras1 else LOADER_KERAS2,
        keras_version=info.keras_version,
        backend=src_backend,
    )


def _has_channels_first(upgraded: Mapping[str, Any]) -> bool:
    return any(
        isinstance(n.get("config"), Mapping) and n["config"].get("data_format") == "channels_first"
        for n in _walk_layers(upgraded)
    )


def _build(upgraded: dict[str, Any], unsafe: bool, path: Path) -> Any:
    from ..verify.runners import import_tf_keras, quiet_fds

    # tf_keras, not Keras 3, on purpose: tf_keras's hard_sigmoid is clip(0.2x + 0.5, 0, 1), the
    # Keras 1/2 definition legacy LSTM/GRU inner activations were trained with. Keras 3 redefined
    # it as relu6(x + 3) / 6 = x/6 + 0.5, so a legacy LSTM rebuilt on Keras 3 silently computes
    # other numbers. _check_hard_sigmoid below guards against tf_keras ever changing it too.
    tf_keras = import_tf_keras("loading a legacy Keras model")
    if tf_keras is None:
        raise UserError(
            f"{path}: loading a legacy Keras model needs tf_keras (Keras 2): pip install --no-deps 'tf_keras==2.21.*'"
        )
    try:
        with quiet_fds(), _safe_mode(not unsafe):
            if upgraded["class_name"] == "Sequential":
                model = tf_keras.Sequential.from_config(upgraded["config"])
            else:
                model = tf_keras.Model.from_config(upgraded["config"])
    except Exception as e:
        msg = _first_line(e)
        if "marshal" in msg:
            raise UnsupportedError(
                f"{path}: its Lambda bytecode was written by another Python version and cannot be loaded here "
                f"({msg}); rebuild the model in code and load only its weights"
            ) from None
        raise UnsupportedError(
            f"{path}: tf_keras cannot rebuild the upgraded model ({type(e).__name__}: {msg})"
        ) from None
    if "hard_sigmoid" in json.dumps(upgraded, default=str):
        _check_hard_sigmoid(tf_keras, path)
    return model


def _check_hard_sigmoid(tf_keras: Any, path: Path) -> None:
    from ..verify.runners import import_tensorflow

    tf = import_tensorflow("loading a legacy Keras model")
    got = np.asarray(tf_keras.activations.hard_sigmoid(tf.constant([-1.0, 1.0], dtype=tf.float32)))
    if not np.allclose(got, [0.3, 0.7], atol=1e-6):
        raise UnsupportedError(
            f"{path}: this tf_keras's hard_sigmoid is not clip(0.2x + 0.5, 0, 1) (got {got.tolist()} at -1, 1); "
            "the legacy model would compute other numbers"
        )


def _smoke_run(model: Any, path: Path, channels_first: bool) -> None:
    """Run channels_first models once: TF's CPU NCHW convolutions need oneDNN, and fail only when run."""
    if not channels_first:
        return
    from ..verify.runners import quiet_fds

    feeds = []
    for t in model.inputs:
        dims = list(t.shape)[1:]
        if any(d is None for d in dims):
            return
        feeds.append(np.zeros([t.shape[0] or 1, *dims], dtype=t.dtype.as_numpy_dtype))
    try:
        with quiet_fds():
            model(feeds if len(feeds) > 1 else feeds[0], training=False)
    except Exception as e:
        raise UnsupportedError(
            f"{path}: its channels_first (Theano 'th' ordering) layers cannot run on this TensorFlow build "
            f"({_first_line(e, 200)}); TensorFlow's CPU kernels for NCHW need oneDNN (TF_ENABLE_ONEDNN_OPTS=1, x86-64)"
        ) from None
