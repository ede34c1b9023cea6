"""Tensor statistics in one pass over fixed-size chunks (bounded memory, float64 sums).

Weights are streamed as they are stored (:meth:`Weight.iter_chunks` with ``ordered=False``:
memory-mapped chunks, slices of a partitioned tensor where they lie; ``stored=True``:
bfloat16 as its bits, widened here without ml_dtypes). Chunks are combined
with Chan et al.'s parallel variance update, so the result does not depend on the chunk
size or order, and large tensors never need a float64 copy of themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..description import Weight
from ..dtypes import ML_DTYPES

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


#: Elements per float64 block: each block is swept several times while it sits in the core's
#: cache. At most 10,000, because numpy's OpenBLAS computes a dot product that short on the
#: calling thread; a longer one goes to its thread pool, which in a loop costs more than it
#: gains (measured 3-5x slower on two cores).
_BLOCK = 8192
#: Elements per span of :meth:`_Accumulator._sweep`: min and max of a span, then its blocks,
#: while the span (1 MiB of float32) is in the cache.
_SPAN = 1 << 18
#: A chunk whose sum of squares exceeds its sum of squared deviations this many times has a
#: mean far from zero next to its spread: its moments are computed again around its mean,
#: as the plain sums would have cancelled more digits than float64 can spare.
_CANCELLATION = 64.0


class _Accumulator:
    """Count, min, max, mean and M2 (sum of squared deviations) over chunks, in float64.

    A chunk's min and max are two sweeps in its own dtype (NaN and Inf, found when they are
    not finite, are counted and left out); its sum and sum of squares are taken block by
    block in a cache-sized float64 buffer, and summed again around its mean when that mean is
    far from zero next to the spread, where the plain sums would cancel. Chunks are merged with Chan et al.'s parallel update, so the result does
    not depend on how the values were cut.
    """

    def __init__(self, stored: str | None = None) -> None:
        #: The dtype the chunks store, when they come as its storage integers
        #: (``Weight.iter_chunks(stored=True)``): bfloat16, float8, int4.
        self.stored = stored
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

    def _scratch(self, size: int, dtype: Any) -> Any:
        import numpy as np

        if self._wide is None or self._wide.nbytes < size * 4:
            self._wide = np.empty(size, dtype=np.float32)
        return self._wide[:size].view(dtype)

    def _widen(self, chunk: Any) -> Any:
        """The chunk as numbers numpy widens to float64 quickly and exactly (float32 holds every
        value of float16, bfloat16, float8 and int4); bool as uint8, complex as its modulus."""
        import numpy as np

        if self.stored == "bfloat16":
            # A bfloat16 is the upper half of a float32: shift its bits into place (exact,
            # and no ml_dtypes import).
            wide = self._scratch(chunk.size, np.uint32)
            np.left_shift(chunk.view(np.uint16), 16, out=wide, dtype=np.uint32)
            return wide.view(np.float32)
        if self.stored is not None:
            from ..dtypes import numpy_dtype

            chunk = chunk.view(numpy_dtype(self.stored))
        kind = chunk.dtype.kind
        if kind == "c":
            return np.abs(chunk)
        if kind == "b":
            return chunk.view(np.uint8)
        if kind not in "iuf" or (kind == "f" and chunk.dtype.itemsize < 4):
            # float16 and the ml_dtypes kinds have slow casts; float32 holds them exactly.
            wide = self._scratch(chunk.size, np.float32)
            np.copyto(wide, chunk, casting="unsafe")
            return wide
        return chunk

    def add(self, chunk: Any) -> None:
        import numpy as np

        chunk = np.asarray(chunk).reshape(-1)
        self.total += chunk.size
        if chunk.size == 0:
            return
        values = self._widen(chunk)
        swept = self._sweep(values)
        if swept is not None:  # every value finite: one pass gave everything
            lo, hi, mean, m2 = swept
            self._merge(lo, hi, mean, m2, values.size)
            return
        lo, hi = np.minimum.reduce(values), np.maximum.reduce(values)  # SIMD sweeps in its dtype
        if values.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(values)
            nans = int(np.count_nonzero(np.isnan(values)))
            kept = int(np.count_nonzero(finite))
            self.nan += nans
            self.inf += values.size - kept - nans
            if kept == 0:
                return
            values = values[finite]
            lo, hi = np.minimum.reduce(values), np.maximum.reduce(values)
        lo, hi = float(lo), float(hi)
        n = values.size
        if lo == hi:  # a constant chunk (zero biases, unit scales): no spread, exactly
            mean, m2 = lo, 0.0
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 limit: inf
                mean, m2 = self._moments(values, 0.0)
                if math.isfinite(m2) and n * mean * mean > _CANCELLATION * m2:
                    mean, m2 = self._moments(values, mean)
        self._merge(lo, hi, mean, m2, n)

    def _merge(self, lo: float, hi: float, mean: float, m2: float, n: int) -> None:
        self.lo = min(self.lo, lo)
        self.hi = max(self.hi, hi)
        if self.n == 0:
            self.mean, self.m2, self.n = mean, m2, n
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2 + delta * delta * (self.n * n / total)
        self.n = total

    def _sweep(self, values: Any) -> tuple[float, float, float, float] | None:
        """(min, max, mean, M2) of a chunk in one pass over memory: each cache-sized span's
        min and max, then its float64 blocks' sums while the span is still in the cache
        (sweeping the whole chunk for min and max first read it from memory three times:
        measured a third slower). None when a value is not finite (the caller counts them)
        or the plain sums would cancel (see :data:`_CANCELLATION`)."""
        import numpy as np

        if self._block is None:
            self._block = np.empty(_BLOCK, dtype=np.float64)
        buf, copyto, add, dot = self._block, np.copyto, np.add.reduce, np.dot
        minimum, maximum = np.minimum.reduce, np.maximum.reduce
        n = values.size
        lo, hi, s1, s2 = math.inf, -math.inf, 0.0, 0.0
        for first in range(0, n, _SPAN):
            span = values[first : first + _SPAN]
            low, high = float(minimum(span)), float(maximum(span))
            if not (math.isfinite(low) and math.isfinite(high)):
                return None
            lo, hi = min(lo, low), max(hi, high)
            if low == high:  # constant (zero biases, unit scales): no float64 work
                s1 += low * span.size
                s2 += low * low * span.size
                continue
            for start in range(0, span.size, _BLOCK):
                part = span[start : start + _BLOCK]
                d = buf[: part.size]
                copyto(d, part)
                s1 += float(add(d))
                s2 += float(dot(d, d))
        if lo == hi:
            return lo, hi, lo, 0.0
        if not math.isfinite(s2):  # squares past the float64 range: the exact path says inf
            return None
        mean, m2 = s1 / n, max(s2 - s1 * (s1 / n), 0.0)
        if n * mean * mean > _CANCELLATION * m2:
            return None
        return lo, hi, mean, m2

    def _moments(self, values: Any, shift: float) -> tuple[float, float]:
        """(mean, sum of squared deviations) of finite values, summed in float64 around ``shift``."""
        import numpy as np

        if self._block is None:
            self._block = np.empty(_BLOCK, dtype=np.float64)
        copyto, subtract, add, dot = np.copyto, np.subtract, np.add.reduce, np.dot
        buf = self._block
        n = values.size
        s1 = s2 = 0.0
        for start in range(0, n, _BLOCK):
            part = values[start : start + _BLOCK]
            d = buf[: part.size]
            if shift:
                subtract(part, shift, out=d, dtype=np.float64)  # widened before subtracting
            else:
                copyto(d, part)
            s1 += float(add(d))
            s2 += float(dot(d, d))
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
    # The dtypes numpy lacks come as their storage integers, widened here: bfloat16 needs no
    # ml_dtypes at all then, and importing it costs about a second.
    acc = _Accumulator(stored=weight.dtype if weight.dtype in ML_DTYPES else None)
    per_element = weight.nbytes / weight.size if weight.size else 0.0
    reported = 0
    seen = 0
    if chunk is None:
        parts = weight.iter_chunks(max_bytes=CHUNK_BYTES, ordered=False, stored=True)
    else:
        parts = weight.iter_chunks(chunk, ordered=False, stored=True)
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
