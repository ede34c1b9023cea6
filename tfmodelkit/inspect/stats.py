"""Tensor statistics in one pass over fixed-size chunks (bounded memory, float64 sums).

Chunks are combined with Chan et al.'s parallel variance update, so the result does not
depend on the chunk size and large tensors never need a float64 copy of themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..description import Weight

CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class TensorStats:
    count: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Accumulator:
    def __init__(self) -> None:
        self.n = 0  # finite values seen
        self.mean = 0.0
        self.m2 = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.nan = 0
        self.inf = 0
        self.total = 0

    def add(self, chunk: Any) -> None:
        import numpy as np

        self.total += chunk.size
        if chunk.dtype.kind == "c":
            chunk = np.abs(chunk)
        if chunk.dtype.kind == "b":
            chunk = chunk.astype(np.uint8)
        values = chunk.astype(np.float64, copy=False)
        if chunk.dtype.kind == "f" or chunk.dtype.kind not in "iub":
            nan_mask = np.isnan(values)
            inf_mask = np.isinf(values)
            nans = int(nan_mask.sum())
            infs = int(inf_mask.sum())
            self.nan += nans
            self.inf += infs
            if nans or infs:
                values = values[~(nan_mask | inf_mask)]
        n = values.size
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def result(self) -> TensorStats:
        if self.n == 0:
            return TensorStats(self.total, None, None, None, None, self.nan, self.inf)
        return TensorStats(
            count=self.total,
            min=self.lo,
            max=self.hi,
            mean=self.mean,
            std=math.sqrt(self.m2 / self.n),
            nan=self.nan,
            inf=self.inf,
        )


def array_stats(array: Any, chunk: int = CHUNK_ELEMENTS) -> TensorStats:
    """Stats of a numeric numpy array, chunk by chunk."""
    acc = _Accumulator()
    flat = array.reshape(-1)
    for start in range(0, flat.size, chunk):
        acc.add(flat[start : start + chunk])
    return acc.result()


def weight_stats(weight: Weight, chunk: int = CHUNK_ELEMENTS) -> TensorStats | None:
    """Stats of a stored tensor (None for strings and other non-numeric tensors)."""
    if weight.dtype in ("string", "resource", "variant", "invalid"):
        return None
    acc = _Accumulator()
    for part in weight.iter_chunks(chunk):
        acc.add(part)
    return acc.result()
