"""Keras' output-shape rules for standard layers, over configs read as data (Keras 1, 2 and 3).

``apply_rule(class_name, config, inputs, call_kwargs)`` gives a layer's output tensors, or None
when the layer is not one whose output follows from its config and input shapes alone (custom
layers, ``Lambda``, a call returning attention scores...). The formulas are Keras' own
(``compute_output_shape``): convolution and pooling lengths, transposed-convolution lengths,
broadcasting merges, recurrent outputs and states.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

from .keras_entries import as_dict

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class Spec:
    """A tensor: its shape (None = unknown) and dtype (None = unknown)."""

    shape: Shape | None
    dtype: str | None


UNKNOWN = Spec(None, None)

_FLOAT = ("float16", "bfloat16", "float32", "float64")


def shape_of(v: Any) -> Shape | None:
    """A shape from JSON (a list of ints and nulls), or None."""
    if not isinstance(v, list) or not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in v
    ):
        return None
    return tuple(None if d is None or d < 0 else d for d in v)


def compute_dtype(cfg: Mapping[str, Any]) -> str:
    """The dtype a layer computes in: its dtype policy (``mixed_float16`` computes in float16;
    Keras 3's ``int8_from_float32`` in float32). A config without one is Keras' default float32."""
    d = cfg.get("dtype")
    if isinstance(d, dict):  # Keras 3 DTypePolicy, Keras 2 mixed-precision Policy
        inner = as_dict(d.get("config"))
        d = inner.get("name")
    if not isinstance(d, str) or not d:
        return "float32"
    d = d.split("_from_")[-1]
    return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(d, d)


def _ints(v: Any, n: int, default: int | None = None) -> tuple[int, ...] | None:
    """``v`` as ``n`` ints (one int is repeated), or None."""
    if v is None and default is not None:
        return (default,) * n
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    if isinstance(v, list) and len(v) == n and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return tuple(v)
    return None


def _pairs(v: Any, n: int) -> tuple[tuple[int, int], ...] | None:
    """Padding or cropping amounts per dimension: an int, one int per dimension, or pairs."""
    if isinstance(v, int) and not isinstance(v, bool):
        return ((v, v),) * n
    if n == 1 and isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return ((v[0], v[1]),)
    if isinstance(v, list) and len(v) == n:
        out = []
        for x in v:
            if isinstance(x, int) and not isinstance(x, bool):
                out.append((x, x))
            elif isinstance(x, list) and len(x) == 2 and all(isinstance(y, int) for y in x):
                out.append((x[0], x[1]))
            else:
                return None
        return tuple(out)
    return None


def _channels_last(cfg: Mapping[str, Any]) -> bool:
    if cfg.get("data_format") == "channels_first" or cfg.get("dim_ordering") == "th":  # Keras 1: "th"
        return False
    return True


def _split(x: Shape, n: int, last: bool) -> tuple[int | None, tuple[int | None, ...], int | None] | None:
    """(batch, spatial dims, channels) of a rank ``n + 2`` shape."""
    if len(x) != n + 2:
        return None
    return (x[0], x[1:-1], x[-1]) if last else (x[0], x[2:], x[1])


def _join(batch: int | None, spatial: tuple[int | None, ...], channels: int | None, last: bool) -> Shape:
    return (batch, *spatial, channels) if last else (batch, channels, *spatial)


def _conv_length(size: int | None, kernel: int, padding: str, stride: int, dilation: int) -> int | None:
    if size is None:
        return None
    span = kernel + (kernel - 1) * (dilation - 1)
    if padding in ("same", "causal"):
        out = size
    elif padding == "valid":
        out = size - span + 1
    elif padding == "full":
        out = size + span - 1
    else:
        return None
    return (out + stride - 1) // stride if out > 0 else -1  # no room for the kernel: Keras refuses it


def _deconv_length(
    size: int | None, kernel: int, padding: str, stride: int, dilation: int, extra: int | None
) -> int | None:
    if size is None:
        return None
    span = kernel + (kernel - 1) * (dilation - 1)
    if extra is None:
        lengths = {"valid": size * stride + max(span - stride, 0), "same": size * stride}
        return lengths.get(padding)
    pad = {"same": span // 2, "valid": 0}.get(padding)
    return None if pad is None else (size - 1) * stride + span - 2 * pad + extra


def _conv(cfg: Mapping[str, Any], x: Shape, n: int, kind: str) -> Shape | None:
    last = _channels_last(cfg)
    parts = _split(x, n, last)
    kernel = _ints(cfg.get("kernel_size"), n)
    if kernel is None:  # Keras 1 names
        keys = {
            1: ("filter_length",),
            2: ("nb_row", "nb_col"),
            3: ("kernel_dim1", "kernel_dim2", "kernel_dim3"),
        }[n]
        raw = [cfg.get(k) for k in keys]
        kernel = tuple(raw) if all(isinstance(k, int) for k in raw) else None  # type: ignore[arg-type]
    strides = _ints(cfg.get("strides", cfg.get("subsample", cfg.get("subsample_length"))), n, 1)
    dilation = _ints(cfg.get("dilation_rate", cfg.get("atrous_rate")), n, 1)
    padding = cfg.get("padding", cfg.get("border_mode", "valid"))
    if parts is None or kernel is None or strides is None or dilation is None or not isinstance(padding, str):
        return None
    batch, spatial, channels = parts
    if kind == "transpose":
        extra = _ints(cfg.get("output_padding"), n) if cfg.get("output_padding") is not None else None
        out = tuple(
            _deconv_length(
                spatial[i], kernel[i], padding, strides[i], dilation[i], extra[i] if extra else None
            )
            for i in range(n)
        )
    else:
        out = tuple(_conv_length(spatial[i], kernel[i], padding, strides[i], dilation[i]) for i in range(n))
    if kind == "depthwise":
        multiplier = cfg.get("depth_multiplier", 1)
        filters = None if channels is None or not isinstance(multiplier, int) else channels * multiplier
    else:
        filters = cfg.get("filters", cfg.get("nb_filter"))
        if not isinstance(filters, int):
            return None
    return _join(batch, out, filters, last)


def _pool(cfg: Mapping[str, Any], x: Shape, n: int) -> Shape | None:
    last = _channels_last(cfg)
    parts = _split(x, n, last)
    size = _ints(cfg.get("pool_size", cfg.get("pool_length")), n)
    raw = cfg.get("strides", cfg.get("stride"))
    strides = size if raw is None else _ints(raw, n)
    padding = cfg.get("padding", cfg.get("border_mode", "valid"))
    if parts is None or size is None or strides is None or padding not in ("valid", "same"):
        return None
    batch, spatial, channels = parts
    out = tuple(_conv_length(spatial[i], size[i], padding, strides[i], 1) for i in range(n))
    return _join(batch, out, channels, last)


def _global_pool(cfg: Mapping[str, Any], x: Shape, n: int) -> Shape | None:
    last = _channels_last(cfg)
    parts = _split(x, n, last)
    if parts is None:
        return None
    batch, _, channels = parts
    if cfg.get("keepdims"):
        return _join(batch, (1,) * n, channels, last)
    return (batch, channels)


def _resample(cfg: Mapping[str, Any], x: Shape, n: int, kind: str) -> Shape | None:
    """Zero padding, cropping and upsampling along the ``n`` spatial dimensions."""
    last = _channels_last(cfg) if n > 1 else True
    parts = _split(x, n, last)
    if parts is None:
        return None
    batch, spatial, channels = parts
    if kind == "upsample":
        factor = _ints(cfg.get("size", cfg.get("length")), n)
        if factor is None:
            return None
        out = tuple(None if d is None else d * f for d, f in zip(spatial, factor, strict=True))
    else:
        amounts = _pairs(cfg.get("padding" if kind == "pad" else "cropping"), n)
        if amounts is None:
            return None
        sign = 1 if kind == "pad" else -1
        out = tuple(
            None if d is None else d + sign * (a + b) for d, (a, b) in zip(spatial, amounts, strict=True)
        )
    return _join(batch, out, channels, last)


def _dense(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    units = cfg.get("units", cfg.get("output_dim"))
    return (*x[:-1], units) if isinstance(units, int) and len(x) >= 2 else None


def _flatten(x: Shape) -> Shape:
    rest = x[1:]
    return (x[0], None if any(d is None for d in rest) else prod(d for d in rest if d is not None))


def _reshape(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    target = cfg.get("target_shape", cfg.get("dims"))
    if not isinstance(target, list) or not all(isinstance(d, int) for d in target):
        return None
    if target.count(-1) == 1:
        known = prod(d for d in target if d != -1)
        total = None if any(d is None for d in x[1:]) else prod(d for d in x[1:] if d is not None)
        fill = total // known if total is not None and known and total % known == 0 else None
        return (x[0], *(fill if d == -1 else d for d in target))
    return (x[0], *target)


def _permute(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    dims = cfg.get("dims")
    if not isinstance(dims, list) or sorted(dims) != list(range(1, len(x))):
        return None
    return (x[0], *(x[d] for d in dims))


def _broadcast(shapes: list[Shape]) -> Shape | None:
    """Keras' element-wise merge shape: batch sizes agree or are unknown, the rest broadcasts."""
    batches = {s[0] for s in shapes if s} - {None}
    rest: Shape | None = shapes[0][1:]
    for s in shapes[1:]:
        a, b = (rest, s[1:]) if len(rest or ()) >= len(s) - 1 else (s[1:], rest)
        if a is None or b is None:
            return None
        out = list(a[: len(a) - len(b)])
        for i, j in zip(a[len(a) - len(b) :], b, strict=True):
            out.append(None if i is None or j is None else j if i == 1 else i if j == 1 or i == j else -1)
        if -1 in out:
            return None
        rest = tuple(out)
    return (batches.pop() if len(batches) == 1 else None, *(rest or ()))


def _concatenate(cfg: Mapping[str, Any], shapes: list[Shape]) -> Shape | None:
    axis = cfg.get("axis", cfg.get("concat_axis", -1))
    rank = len(shapes[0])
    if not isinstance(axis, int) or any(len(s) != rank for s in shapes) or not -rank <= axis < rank:
        return None
    axis %= rank
    out = []
    for i in range(rank):
        dims = [s[i] for s in shapes]
        if i == axis:
            out.append(None if None in dims else sum(d for d in dims if d is not None))
        else:
            out.append(next((d for d in dims if d is not None), None))
    return tuple(out)


def _recurrent(cfg: Mapping[str, Any], x: Shape, states: int) -> list[Shape] | None:
    units = cfg.get("units", cfg.get("output_dim"))
    if not isinstance(units, int) or len(x) != 3:
        return None
    time_major = bool(cfg.get("time_major"))
    batch, steps = (x[1], x[0]) if time_major else (x[0], x[1])
    if cfg.get("return_sequences"):
        out: Shape = (steps, batch, units) if time_major else (batch, steps, units)
    else:
        out = (batch, units)
    return [out, *[(batch, units)] * states] if cfg.get("return_state") else [out]


#: Recurrent layers, and the cells a generic RNN runs: how many state tensors they return
#: besides their output.
_STATES = {"LSTM": 2, "CuDNNLSTM": 2, "GRU": 1, "CuDNNGRU": 1, "SimpleRNN": 1}
_CELL_STATES = {"LSTMCell": 2, "GRUCell": 1, "SimpleRNNCell": 1}


def _rnn(cls: str, cfg: Mapping[str, Any], x: Shape) -> list[Shape] | None:
    if cls == "RNN":  # a generic RNN over one standard cell
        cell = cfg.get("cell")
        if not isinstance(cell, dict) or cell.get("class_name") not in _CELL_STATES:
            return None
        cell_cfg = as_dict(cell.get("config"))
        return _recurrent({**cfg, "units": cell_cfg.get("units")}, x, _CELL_STATES[cell["class_name"]])
    return _recurrent(cfg, x, _STATES[cls])


def _bidirectional(cfg: Mapping[str, Any], x: Shape) -> list[Shape] | None:
    layers = [cfg.get("layer"), cfg.get("backward_layer") or cfg.get("layer")]
    results = []
    for inner in layers:
        if not isinstance(inner, dict) or inner.get("class_name") not in (*_STATES, "RNN"):
            return None
        inner_cfg = as_dict(inner.get("config"))
        result = _rnn(inner["class_name"], inner_cfg, x)
        if result is None:
            return None
        results.append(result)
    (fw, *fw_states), (bw, *bw_states) = results
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat":
        merged = [(*fw[:-1], None if fw[-1] is None or bw[-1] is None else fw[-1] + bw[-1])]
    elif mode in ("sum", "mul", "ave"):
        merged = [fw]
    elif mode is None:
        merged = [fw, bw]
    else:
        return None
    return [*merged, *fw_states, *bw_states]


def _attention(
    cls: str, cfg: Mapping[str, Any], shapes: list[Shape], kwargs: Mapping[str, Any]
) -> Shape | None:
    if kwargs.get("return_attention_scores") or cfg.get("return_attention_scores"):
        return None
    query = shapes[0]
    if cls == "MultiHeadAttention":
        out = cfg.get("output_shape")
        if out is None:
            return query
        tail = (out,) if isinstance(out, int) else tuple(out) if isinstance(out, list) else None
        return None if tail is None else (*query[:-1], *tail)
    return (*query[:-1], shapes[1][-1]) if len(shapes) >= 2 else None


_SAME_SHAPE = frozenset(
    "Activation ReLU LeakyReLU PReLU ELU ThresholdedReLU Softmax Dropout SpatialDropout1D SpatialDropout2D "
    "SpatialDropout3D GaussianNoise GaussianDropout AlphaDropout BatchNormalization LayerNormalization "
    "GroupNormalization UnitNormalization Masking Rescaling Normalization ActivityRegularization Identity "
    "RandomFlip RandomRotation RandomZoom RandomTranslation RandomContrast RandomBrightness".split()
)
_MERGES = frozenset("Add Subtract Multiply Average Maximum Minimum".split())
#: Layers that move values without computing new ones: an integer input stays integer.
_KEEP_DTYPE = frozenset(
    "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D Masking Identity Flatten Reshape Permute "
    "RepeatVector ZeroPadding1D ZeroPadding2D ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D "
    "UpSampling2D UpSampling3D ActivityRegularization".split()
)
_CONV = {
    "Conv1D": (1, "conv"), "Conv2D": (2, "conv"), "Conv3D": (3, "conv"), "Convolution1D": (1, "conv"),
    "Convolution2D": (2, "conv"), "Convolution3D": (3, "conv"), "AtrousConvolution1D": (1, "conv"),
    "AtrousConvolution2D": (2, "conv"), "SeparableConv1D": (1, "conv"), "SeparableConv2D": (2, "conv"),
    "Conv1DTranspose": (1, "transpose"), "Conv2DTranspose": (2, "transpose"), "Conv3DTranspose": (3, "transpose"),
    "DepthwiseConv1D": (1, "depthwise"), "DepthwiseConv2D": (2, "depthwise"),
}  # fmt: skip
_POOL = {f"{kind}Pooling{n}D": n for kind in ("Max", "Average") for n in (1, 2, 3)}
_GLOBAL_POOL = {f"Global{kind}Pooling{n}D": n for kind in ("Max", "Average") for n in (1, 2, 3)}
_RESAMPLE = {f"{name}{n}D": (n, kind) for name, kind in (("ZeroPadding", "pad"), ("Cropping", "crop"),
             ("UpSampling", "upsample")) for n in (1, 2, 3)}  # fmt: skip


def _single(cls: str, cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    """The output shape of a one-input, one-output standard layer, or None."""
    if cls in _SAME_SHAPE:
        return x
    if cls in _CONV:
        return _conv(cfg, x, *_CONV[cls])
    if cls in _POOL:
        return _pool(cfg, x, _POOL[cls])
    if cls in _GLOBAL_POOL:
        return _global_pool(cfg, x, _GLOBAL_POOL[cls])
    if cls in _RESAMPLE:
        return _resample(cfg, x, *_RESAMPLE[cls])
    rule = _OTHER_RULES.get(cls)
    return rule(cfg, x) if rule else None


def _repeat(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    n = cfg.get("n")
    return (x[0], n, *x[1:]) if isinstance(n, int) and len(x) == 2 else None


def _embedding(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    dim = cfg.get("output_dim")
    return (*x, dim) if isinstance(dim, int) else None


def _resized(cfg: Mapping[str, Any], x: Shape) -> Shape | None:
    h, w = cfg.get("height"), cfg.get("width")
    if not (isinstance(h, int) and isinstance(w, int) and len(x) == 4):
        return None
    return (x[0], h, w, x[3]) if _channels_last(cfg) else (x[0], x[1], h, w)


_OTHER_RULES: dict[str, Callable[[Mapping[str, Any], Shape], Shape | None]] = {
    "Dense": _dense,
    "Flatten": lambda cfg, x: _flatten(x),
    "Reshape": _reshape,
    "Permute": _permute,
    "RepeatVector": _repeat,
    "Embedding": _embedding,
    "Resizing": _resized,
    "CenterCrop": _resized,
    "RandomCrop": _resized,
}


def _shapes(
    cls: str, cfg: Mapping[str, Any], shapes: list[Shape], kwargs: Mapping[str, Any]
) -> list[Shape] | None:
    if cls in _STATES or cls == "RNN":
        return _rnn(cls, cfg, shapes[0])
    if cls == "Bidirectional":
        return _bidirectional(cfg, shapes[0])
    if cls in _MERGES or (cls == "Merge" and cfg.get("mode") in ("sum", "mul", "ave", "max")):
        out = _broadcast(shapes) if len(shapes) >= 2 else None
    elif cls == "Concatenate" or (cls == "Merge" and cfg.get("mode") == "concat"):
        out = _concatenate(cfg, shapes) if len(shapes) >= 2 else None
    elif cls in ("MultiHeadAttention", "Attention", "AdditiveAttention"):
        out = _attention(cls, cfg, shapes, kwargs)
    else:
        out = _single(cls, cfg, shapes[0]) if len(shapes) == 1 else None
    return None if out is None else [out]


def _valid(shape: Any) -> bool:
    """A shape the rules may hand out: a tuple of unknown or non-negative int dims."""
    return isinstance(shape, tuple) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape
    )


def apply_rule(
    cls: str, cfg: Mapping[str, Any], ins: list[Spec], kwargs: Mapping[str, Any]
) -> tuple[Spec, ...] | None:
    """The output tensors of a standard layer called on ``ins``, or None when unknown."""
    if not ins or any(s.shape is None for s in ins):
        return None
    shapes = [s.shape for s in ins if s.shape is not None]
    try:
        out = _shapes(cls, cfg, shapes, kwargs)
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):  # a config that makes no sense
        return None
    if out is None or not all(_valid(shape) for shape in out):
        return None
    dtype = compute_dtype(cfg)
    source = ins[0].dtype
    if cls in _KEEP_DTYPE and source is not None and source not in _FLOAT:
        dtype = source
    return tuple(Spec(shape, dtype) for shape in out)
