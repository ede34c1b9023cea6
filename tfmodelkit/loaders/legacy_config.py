"""Keras 1 (and early Keras 2) model configs rewritten into the Keras 2 form tf_keras rebuilds.

Pure JSON work: layer and key renames, Keras 1 ``Merge`` rebuilt as Keras 2 merge layers, the
inbound-node format Keras 2 expects. Nothing here imports a framework or reads a file; the
notes it collects say what changed, for the user and for :mod:`.legacy`'s report.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CorruptFileError, UnsupportedError, UserError
from ..formats.keras_config import code_sites

__all__ = ["parse_json", "unwrap_model_config", "upgrade_config"]

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
_CONV1D = frozenset({"Convolution1D", "AtrousConvolution1D"})
_CONV2D = frozenset({"Convolution2D", "AtrousConvolution2D", "SeparableConvolution2D"})
_NOISE = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "GaussianNoise",
    }
)
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


def parse_json(text: str | bytes | None, what: str) -> Any:
    """JSON text (bytes decoded as UTF-8) parsed, or CorruptFileError naming ``what``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text or "")
    except ValueError as e:
        raise CorruptFileError(f"{what} is not valid JSON ({e})") from None


def _as_list(v: Any, n: int) -> list[Any]:
    if isinstance(v, list | tuple):
        return list(v)
    return [v] * n


def _code_layers(config: Any) -> list[str]:
    """The layers of ``config`` holding Python code, each named once as "name (Class)"."""
    return list(dict.fromkeys(f"{site.layer} ({site.class_name})" for site in code_sites(config)))


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
        family = _FAMILIES.get(cls)
        if family is not None:
            family(self, cls, ren)
        if ren.renamed:
            changed.insert(0, f"Keras 1 keys renamed: {', '.join(ren.renamed)}")
        if changed or new_cls != cls:
            arrow = f"{cls} -> {new_cls}" if new_cls != cls else cls
            self.notes.append(f"{name}: {arrow}" + (f" ({'; '.join(changed)})" if changed else ""))
        return {"class_name": new_cls, "config": cfg}

    # Layer families: each renames one kind of layer's Keras 1 keys in ``ren.cfg`` ---------

    def dense(self, cls: str, ren: _Renamer) -> None:
        ren.rename("output_dim", "units")
        ren.weights_common()
        ren.drop_input_dims()

    def conv(self, cls: str, ren: _Renamer) -> None:
        cfg = ren.cfg
        if cls in _CONV1D:
            ren.conv_common(1)
            ren.rename("filter_length", "kernel_size", lambda v: _as_list(v, 1))
            ren.rename("subsample_length", "strides", lambda v: _as_list(v, 1))
            ren.rename("atrous_rate", "dilation_rate", lambda v: _as_list(v, 1))
            ren.drop_input_dims()
        elif cls in _CONV2D:
            ren.conv_common(2)
            if "nb_row" in cfg or "nb_col" in cfg:
                cfg["kernel_size"] = [cfg.pop("nb_row", 1), cfg.pop("nb_col", 1)]
                ren.renamed.append("nb_row/nb_col")
            ren.rename("atrous_rate", "dilation_rate", lambda v: _as_list(v, 2))
            if cls == "SeparableConvolution2D" and "init" in cfg:
                init = _initializer(cfg.pop("init"))
                cfg["depthwise_initializer"] = cfg["pointwise_initializer"] = init
                ren.renamed.append("init")
        else:  # Convolution3D
            ren.conv_common(3)
            if "kernel_dim1" in cfg:
                cfg["kernel_size"] = [cfg.pop("kernel_dim1"), cfg.pop("kernel_dim2"), cfg.pop("kernel_dim3")]
                ren.renamed.append("kernel_dim1..3")

    def spatial(self, cls: str, ren: _Renamer) -> None:
        """Pooling, padding, cropping, upsampling and Flatten."""
        if cls in _POOL1D:
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
            ren.cfg["padding"] = _zero_padding_2d(ren.cfg.get("padding", (1, 1)), ren.name)
        elif cls == "UpSampling1D":
            ren.rename("length", "size")
        elif cls == "Flatten":
            # Keras 1 flattened in storage order; tf_keras's Flatten(channels_first) would transpose
            # to channels-last first, and its default comes from the local keras.json.
            if "data_format" not in ren.cfg:
                ren.cfg["data_format"] = "channels_last"

    def noise(self, cls: str, ren: _Renamer) -> None:
        """Dropout and noise layers (they act in training only)."""
        if cls == "GaussianNoise":
            ren.rename("sigma", "stddev")
            return
        ren.rename("p", "rate")
        if cls in ("SpatialDropout2D", "SpatialDropout3D"):
            ren.data_format()

    def embedding(self, cls: str, ren: _Renamer) -> None:
        ren.rename("init", "embeddings_initializer", _initializer)
        ren.rename("W_regularizer", "embeddings_regularizer", ren.regularizer)
        ren.rename("W_constraint", "embeddings_constraint", ren.constraint)
        ren.convert("activity_regularizer", ren.regularizer)
        if "dropout" in ren.cfg:
            if ren.cfg.pop("dropout"):
                ren.changed.append("dropped word dropout (acts in training only)")

    def recurrent(self, cls: str, ren: _Renamer) -> None:
        cfg = ren.cfg
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
            ren.changed.append("dropped consume_less (a speed setting)")
        if "forget_bias_init" in cfg:
            cfg["unit_forget_bias"] = cfg.pop("forget_bias_init") == "one"
            ren.renamed.append("forget_bias_init")
        if cls == "GRU" and "reset_after" not in cfg:
            # GRUs before Keras 2.1.5 applied the reset gate before the recurrent matmul.
            cfg["reset_after"] = False
            ren.changed.append("reset_after=False (the pre-2.1.5 GRU formula)")
        ren.drop_input_dims()

    def batch_norm(self, cls: str, ren: _Renamer) -> None:
        mode = ren.cfg.pop("mode", 0)
        if mode != 0:
            raise UnsupportedError(
                f"layer {ren.name!r}: Keras 1 BatchNormalization mode={mode} normalizes with per-batch or "
                "per-sample statistics at inference, which Keras 2 has no layer for"
            )
        ren.rename("gamma_init", "gamma_initializer", _initializer)
        ren.rename("beta_init", "beta_initializer", _initializer)
        ren.convert("gamma_regularizer", ren.regularizer)
        ren.convert("beta_regularizer", ren.regularizer)

    def prelu(self, cls: str, ren: _Renamer) -> None:
        ren.rename("init", "alpha_initializer", _initializer)

    def wrapper(self, cls: str, ren: _Renamer) -> None:
        """TimeDistributed and Bidirectional: the wrapped layer is upgraded too."""
        inner = ren.cfg.get("layer")
        if isinstance(inner, Mapping):
            ren.cfg["layer"] = self.layer(inner)

    def lambda_layer(self, cls: str, ren: _Renamer) -> None:
        ren.cfg.setdefault("arguments", {})
        ren.cfg.setdefault("output_shape_type", "raw")

    # Merge --------------------------------------------------------------------------------

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


def _families() -> dict[str, Callable[[_Upgrader, str, _Renamer], None]]:
    """Layer class -> the :class:`_Upgrader` method that renames its keys (absent: nothing to rename)."""
    groups: list[tuple[frozenset[str], Callable[[_Upgrader, str, _Renamer], None]]] = [
        (frozenset({"Dense"}), _Upgrader.dense),
        (_CONV1D | _CONV2D | {"Convolution3D"}, _Upgrader.conv),
        (
            _POOL1D | _POOL23D | _DIM_ORDERING_ONLY | {"ZeroPadding2D", "UpSampling1D", "Flatten"},
            _Upgrader.spatial,
        ),
        (_NOISE, _Upgrader.noise),
        (frozenset({"Embedding"}), _Upgrader.embedding),
        (_RECURRENT, _Upgrader.recurrent),
        (frozenset({"BatchNormalization"}), _Upgrader.batch_norm),
        (frozenset({"PReLU"}), _Upgrader.prelu),
        (frozenset({"TimeDistributed", "Bidirectional"}), _Upgrader.wrapper),
        (frozenset({"Lambda"}), _Upgrader.lambda_layer),
    ]
    return {cls: method for classes, method in groups for cls in classes}


_FAMILIES = _families()


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


def unwrap_model_config(model_config: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """The ``{"class_name", "config"}`` part of a model config, with the Keras version and backend
    it records (dl4j's JSON adds ``keras_version``/``backend`` beside them), None where absent."""
    if isinstance(model_config, bytes | str):
        model_config = parse_json(model_config, "the model config")
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
    node, _, _ = unwrap_model_config(model_config)
    risky = _code_layers(node)
    if risky and not unsafe:
        raise UserError(
            f"refusing to upgrade: {', '.join(risky[:5])} carr{'ies' if len(risky) == 1 else 'y'} Python "
            "bytecode that loading would execute; pass unsafe=True (--unsafe) only if you trust this file"
        )
    up = _Upgrader(unsafe)
    return up.model(node), up.notes
