"""What every runner shares: the protocol, quantization parameters, feed checks, descriptions."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...description import TensorSpec
from ...dtypes import numpy_dtype
from ...errors import UserError
from ...util import dtype_family
from ..hints import InputHint


@runtime_checkable
class Runner(Protocol):
    """What the verifier needs from a backend."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class QuantParams:
    """How a quantized TFLite input/output maps to real values: real = scale * (q - zero_point)."""

    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    #: The axis of per-channel parameters (meaningful only when there are several).
    axis: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "axis": self.axis,
        }

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.asarray(self.scale, dtype=np.float64)
        zero = np.asarray(self.zero_point, dtype=np.float64)
        if scale.size > 1 and ndim:
            shape = [1] * ndim
            shape[self.axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        elif scale.size == 1:
            scale, zero = scale.reshape(()), zero.reshape(())
        return scale, zero

    def quantize(self, real: np.ndarray) -> np.ndarray:
        """Round to nearest (half to even, as numpy does), then clip to the integer dtype's range."""
        dtype = np.dtype(self.dtype)
        info = np.iinfo(dtype)
        scale, zero = self._broadcast(real.ndim)
        q = np.round(np.asarray(real, dtype=np.float64) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zero = self._broadcast(q.ndim)
        return ((np.asarray(q, dtype=np.float64) - zero) * scale).astype(np.float32)



def fmt_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def spec_dict(spec: TensorSpec) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": spec.name,
        "dtype": spec.dtype,
        "shape": None if spec.shape is None else list(spec.shape),
    }
    if spec.tensor:
        d["tensor"] = spec.tensor
    if spec.quantization is not None and spec.quantization.scale:
        d["quantization"] = {
            "scale": list(spec.quantization.scale),
            "zero_point": list(spec.quantization.zero_point),
        }
    return d



def coerce(spec: TensorSpec, value: Any, who: str) -> np.ndarray:
    """``value`` as an array of ``spec``'s dtype and a shape ``spec`` allows, or a UserError."""
    a = np.asarray(value)
    if spec.shape is not None:
        if a.ndim != len(spec.shape):
            raise UserError(
                f"{who}: input {spec.name!r} has shape {list(a.shape)}, but the model expects {fmt_shape(spec.shape)}"
            )
        for dim, got in zip(spec.shape, a.shape, strict=True):
            if dim is not None and dim != got:
                raise UserError(
                    f"{who}: input {spec.name!r} has shape {list(a.shape)}, but the model expects "
                    f"{fmt_shape(spec.shape)}"
                )
    if spec.dtype == "string":
        if a.dtype.kind not in "SUO":
            raise UserError(f"{who}: input {spec.name!r} expects strings, got {a.dtype.name} values")
        flat = [x.encode("utf-8") if isinstance(x, str) else x for x in a.reshape(-1).tolist()]
        if not all(isinstance(x, bytes) for x in flat):
            raise UserError(f"{who}: input {spec.name!r} expects strings (bytes or str)")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(a.shape)
    want = numpy_dtype(spec.dtype)
    if a.dtype == want:
        return a
    fa, fw = dtype_family(a.dtype), dtype_family(want)
    if (
        a.dtype.kind in "SUO"
        or (fa == "float" and fw in ("int", "bool"))
        or (fa == "complex" and fw != "complex")
    ):
        raise UserError(f"{who}: input {spec.name!r} expects {spec.dtype}, got {a.dtype.name} values")
    if fw == "int" and fa in ("int", "bool") and a.size:
        info = np.iinfo(want)
        if a.min() < info.min or a.max() > info.max:
            raise UserError(
                f"{who}: input {spec.name!r} ({spec.dtype}) got values outside [{info.min}, {info.max}]"
            )
    return a.astype(want)


def check_feed(specs: Sequence[TensorSpec], feed: Mapping[str, Any], who: str) -> None:
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feed]
    if missing:
        raise UserError(
            f"{who}: no value for input {', '.join(repr(m) for m in missing)} "
            f"(the model's inputs: {', '.join(names)}; given: {', '.join(map(str, feed)) or 'nothing'})"
        )
    extra = [k for k in feed if k not in names]
    if extra:
        raise UserError(
            f"{who}: the model has no input {', '.join(repr(str(e)) for e in extra)} (its inputs: {', '.join(names)})"
        )


def to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


class BaseRunner:
    """Shared plumbing: feed checks, descriptions."""

    backend = "base"
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: How reports and messages name the model: a conversion checks its output while it
        #: is still staged under a temporary name, and shows it by its destination.
        self.shown = str(path)
        self.notes: list[str] = []

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.shown}"

    @property
    def dequantized_outputs(self) -> Mapping[str, QuantParams]:
        """Outputs the runner turned from quantized integers into float32 (none here)."""
        return {}

    @property
    def output_quantization(self) -> Mapping[str, QuantParams]:
        """Outputs whose values come from quantized integers, with their parameters (the
        dequantized ones, and float outputs a quantized model dequantizes itself)."""
        return self.dequantized_outputs

    def input_hints(self) -> dict[str, InputHint]:
        """What values the model's inputs expect, where it says (see :mod:`tfmodelkit.verify.hints`)."""
        return {}

    def prepare(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The feed checked against ``inputs`` (names, ranks, known dims) and cast to their dtypes."""
        check_feed(self.inputs, feed, self.shown)
        return {s.name: coerce(s, feed[s.name], self.shown) for s in self.inputs}

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The outputs for ``feed``, keyed by output name (each runner defines it)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str | None]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": self.shown,
            "versions": self.versions(),
            "inputs": [spec_dict(s) for s in self.inputs],
            "outputs": [spec_dict(s) for s in self.outputs],
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"




def tf_shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None or shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in shape.as_list())


def tf_dtype(dtype: Any) -> str:
    return "string" if dtype.name == "string" else str(dtype.name)


