"""Legacy Keras weights converted to the layouts of a rebuilt tf_keras model and assigned to it.

- Recurrent layers: Keras 1 stores one matrix per gate (``lstm_1_W_i``, ``lstm_1_U_i``,
  ``lstm_1_b_i``, then ``_c``, ``_f``, ``_o``: the order is i, c, f, o) unless it was built with
  ``consume_less="gpu"`` (fused ``W``, ``U``, ``b``, already in i, f, c, o order). Keras 2 fuses
  them into ``kernel``, ``recurrent_kernel``, ``bias`` in gate order i, f, c, o (GRU: z, r, h).
- Theano backend: Theano's conv is a true convolution (the kernel is flipped), TensorFlow's a
  cross-correlation, so Theano kernels are rotated 180 degrees in their spatial axes. Keras 1
  ``dim_ordering="th"`` kernels are stored (out, in, rows, cols) and become (rows, cols, in, out).

The arrays come in already read (see :mod:`.legacy`); nothing here opens a file or imports a
framework: the layers are the rebuilt model's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, UnsupportedError

__all__ = ["FLIP_CLASSES", "StoredWeights", "WeightLoader", "load_weights"]

#: One layer's stored weights: (weight name as the file records it, array), in file order.
StoredWeights = list[tuple[str, np.ndarray]]

# Layers whose kernels Theano applied flipped (Keras's own list for cross-backend loading).
FLIP_CLASSES = frozenset(
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

_LSTM_GATES = ("W_i", "U_i", "b_i", "W_c", "U_c", "b_c", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o")
_GRU_GATES = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W_h", "U_h", "b_h")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _base(name: str) -> str:
    """``dense_1/kernel:0`` -> ``kernel``; ``lstm_1_W_i:0`` -> ``lstm_1_W_i``."""
    return re.sub(r":\d+$", "", name.split("/")[-1])


def _keyed(values: StoredWeights, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
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
    values: StoredWeights, keys: tuple[str, ...], where: str, notes: list[str]
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


def _flip(kernel: np.ndarray) -> np.ndarray:
    """Rotate a Keras 2 layout kernel (spatial..., in, out) 180 degrees in every spatial axis."""
    return np.ascontiguousarray(kernel[(slice(None, None, -1),) * (kernel.ndim - 2)])


class WeightLoader:
    """Turns one layer's stored weights into the arrays its rebuilt tf_keras layer takes, and assigns
    them; ``notes`` collects every conversion made."""

    def __init__(self, path: Path, keras1: bool, backend: str | None, notes: list[str]) -> None:
        self.path, self.keras1, self.backend, self.notes = path, keras1, backend, notes

    def convert(self, layer: Any, values: StoredWeights) -> list[np.ndarray]:
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
            if self.backend == "theano" and cls in FLIP_CLASSES and arrays:
                arrays[0] = _flip(arrays[0])
                self.notes.append(
                    f"{layer.name}: Theano kernel rotated 180 degrees (Theano convolves, TF correlates)"
                )
            return arrays
        return self.keras1_weights(layer, cls, values, where)

    def keras1_weights(self, layer: Any, cls: str, values: StoredWeights, where: str) -> list[np.ndarray]:
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
            return self.gates(layer, cls, values, where)
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

    def gates(self, layer: Any, cls: str, values: StoredWeights, where: str) -> list[np.ndarray]:
        """An LSTM's or GRU's per-gate matrices fused into Keras 2's three, in its gate order."""
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


def load_weights(model: Any, stored: Iterable[tuple[str, StoredWeights]], loader: WeightLoader) -> None:
    """Assign every stored layer's weights (``(layer name, weights)`` in the file's layer order, read
    as they are consumed) to ``model``; a layer of the model the file has no weights for is an error."""
    by_name = {layer.name: layer for layer in model.layers}
    loaded: set[str] = set()
    for lname, values in stored:
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


def _unnamed_nested_model(model: Any, loaded: set[str], values: StoredWeights) -> Any | None:
    """Keras 1 saved nested Sequential models' configs without their names: find the one these weights fit."""
    fits = []
    for layer in model.layers:
        if _is_model(layer) and layer.name not in loaded:
            subs = list(_sublayers_with_weights(layer))
            if subs and all(_owner(n, subs) is not None for n, _ in values):
                fits.append(layer)
    return fits[0] if len(fits) == 1 else None


def _load_nested(model: Any, values: StoredWeights, loader: WeightLoader) -> None:
    """A nested model's weights, stored flat in one group, handed to its layers by their names."""
    subs = list(_sublayers_with_weights(model))
    groups: dict[str, StoredWeights] = {s.name: [] for s in subs}
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
