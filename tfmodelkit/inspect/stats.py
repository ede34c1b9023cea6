"""Tensor statistics in one pass over fixed-size chunks (bounded memory, float64 sums).

Weights are streamed as they are stored (:meth:`Weight.iter_chunks` with ``ordered=False``:
memory-mapped chunks, slices of a partitioned tensor where they lie). Chunks are combined
with Chan et al.'s parallel variance update, so the result does not depend on the chunk
size or order, and large tensors never need a float64 copy of themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..description import Weight

CHUNK_ELEMENTS = 1 << 21
#: Bytes of stored values per chunk when streaming a weight.
CHUNK_BYTES = 16 << 20
#: dtypes without numeric values.
NON_NUMERIC = ("string", "resource", "variant", "invalid")


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


#: Elements per float64 block of the moments pass: the block is swept several times, so it
#: should stay in the core's cache (512 KiB); larger blocks pay less Python per element.
_BLOCK = 1 << 16


class _Accumulator:
    """Count, min, max, mean and M2 (sum of squared deviations) over chunks, in float64.

    A chunk without NaN or Inf (its min and max are finite: one fast sweep in its own
    dtype) needs one more sweep, in cache-sized float64 blocks, for the sum and the sum of
    squares around a shift taken from the chunk's first block (which keeps the subtraction
    from cancelling). Chunks are merged with Chan et al.'s parallel update, so the result
    does not depend on how the values were cut.
    """

    def __init__(self) -> None:
        self.n = 0  # finite values seen
        self.mean = 0.0
        self.m2 = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.nan = 0
        self.inf = 0
        self.total = 0
        self._block: Any = None  # float64 scratch, one block
        self._wide: Any = None  # float32 scratch for the narrow float kinds, one chunk

    def add(self, chunk: Any) -> None:
        import numpy as np

        chunk = np.asarray(chunk).reshape(-1)
        self.total += chunk.size
        if chunk.size == 0:
            return
        kind = chunk.dtype.kind
        if kind == "c":
            chunk = np.abs(chunk)
        elif kind == "b":
            chunk = chunk.view(np.uint8)
        elif kind not in "iuf" or (kind == "f" and chunk.dtype.itemsize < 4):
            # float16 and the ml_dtypes kinds (bfloat16, float8, int4) have slow reductions;
            # float32 holds each of their values exactly.
            if self._wide is None or self._wide.size < chunk.size:
                self._wide = np.empty(chunk.size, dtype=np.float32)
            wide = self._wide[: chunk.size]
            np.copyto(wide, chunk, casting="unsafe")
            chunk = wide
        values = chunk
        lo, hi = values.min(), values.max()
        if values.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(values)
            nans = int(np.count_nonzero(np.isnan(values)))
            kept = int(np.count_nonzero(finite))
            self.nan += nans
            self.inf += values.size - kept - nans
            if kept == 0:
                return
            values = values[finite]
            lo, hi = values.min(), values.max()
        n = values.size
        with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 limit: inf
            mean, m2 = self._moments(values)
        self.lo = min(self.lo, float(lo))
        self.hi = max(self.hi, float(hi))
        if self.n == 0:
            self.mean, self.m2, self.n = mean, m2, n
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2 + delta * delta * (self.n * n / total)
        self.n = total

    def _moments(self, values: Any) -> tuple[float, float]:
        """(mean, sum of squared deviations) of finite values, in float64."""
        import numpy as np

        if self._block is None:
            self._block = np.empty(_BLOCK, dtype=np.float64)
        n = values.size
        shift = float(np.add.reduce(values[:_BLOCK], dtype=np.float64)) / min(n, _BLOCK)
        s1 = 0.0
        s2 = 0.0
        for start in range(0, n, _BLOCK):
            block = values[start : start + _BLOCK]
            d = self._block[: block.size]
            np.copyto(d, block)  # widen first: float32 - float would be computed in float32
            d -= shift
            s1 += float(d.sum())
            # einsum, not dot: BLAS goes multi-threaded on long vectors, which costs more
            # than it gains when called in a loop.
            s2 += float(np.einsum("i,i->", d, d))
        if not math.isfinite(s2):  # squares past the float64 range: the spread is infinite
            return shift + s1 / n, math.inf
        return shift + s1 / n, max(s2 - s1 * (s1 / n), 0.0)

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


def is_numeric(weight: Weight) -> bool:
    """Whether a weight has values that statistics apply to."""
    return weight.dtype not in NON_NUMERIC and not weight.dtype.startswith("opaque")


def weight_stats(
    weight: Weight, chunk: int | None = None, advance: Callable[[int], None] | None = None
) -> TensorStats | None:
    """Stats of a stored tensor (None for strings and other non-numeric tensors).

    The values are streamed in chunks of ``chunk`` elements (default: :data:`CHUNK_BYTES`
    bytes) as they are stored, slices of a partitioned tensor where they lie; ``advance(n)``
    hears about each chunk's share of the stored bytes.
    """
    if not is_numeric(weight):
        return None
    acc = _Accumulator()
    per_element = weight.nbytes / weight.size if weight.size else 0.0
    reported = 0
    seen = 0
    if chunk is None:
        parts = weight.iter_chunks(max_bytes=CHUNK_BYTES, ordered=False)
    else:
        parts = weight.iter_chunks(chunk, ordered=False)
    for part in parts:
        acc.add(part)
        if advance is not None:
            seen += part.size
            now = min(weight.nbytes, round(seen * per_element))
            advance(now - reported)
            reported = now
    if advance is not None and reported < weight.nbytes:
        advance(weight.nbytes - reported)
    return acc.result()


def all_weight_stats(
    weights: list[Weight], progress: Callable[[int, int], None] | None = None
) -> list[TensorStats | None]:
    """:func:`weight_stats` of each weight; ``progress(bytes_done, bytes_total)`` follows.

    One thread: a second one (numpy releases the GIL in its loops) measured no faster on
    two cores, as the work is bound by page faults and memory bandwidth.
    """
    total = sum(w.nbytes for w in weights if is_numeric(w))
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    return [weight_stats(w, advance=advance) for w in weights]
