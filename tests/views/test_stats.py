"""Chunked one-pass statistics agree with numpy for every dtype and chunk size."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from tfmodelkit.description import Weight
from tfmodelkit.inspect.stats import array_stats, weight_stats

DTYPES = [np.float16, np.float32, np.float64, ml_dtypes.bfloat16, np.int8, np.uint8, np.int16, np.int32,
          np.int64, np.uint64, np.bool_, np.complex64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_chunked_stats_match_numpy(dtype, chunk):
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=1237) * 20
    if np.dtype(dtype).kind == "b":
        values = raw > 0
    elif np.dtype(dtype).kind == "c":
        values = (raw + 1j * raw[::-1]).astype(dtype)
    else:
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        values = np.clip(raw, info.min, info.max).astype(dtype) if info else raw.astype(dtype)
    s = array_stats(values, chunk=chunk)
    ref = np.abs(values).astype(np.float64) if values.dtype.kind == "c" else values.astype(np.float64)
    assert s.count == values.size and s.nan == 0 and s.inf == 0
    assert s.min == pytest.approx(ref.min()) and s.max == pytest.approx(ref.max())
    assert s.mean == pytest.approx(ref.mean(), rel=1e-9, abs=1e-9)
    assert s.std == pytest.approx(ref.std(), rel=1e-9, abs=1e-9)


def test_nan_and_inf_are_counted_and_excluded():
    values = np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 5.0], dtype=np.float32)
    s = array_stats(values, chunk=2)
    assert (s.nan, s.inf) == (1, 2)
    assert (s.min, s.max, s.mean) == (1.0, 5.0, 3.0)
    assert s.std == pytest.approx(np.std([1.0, 3.0, 5.0]))


def test_all_nan_and_empty():
    s = array_stats(np.full(5, np.nan))
    assert s.nan == 5 and s.mean is None and s.min is None
    s = array_stats(np.zeros((0, 3), np.float32))
    assert s.count == 0 and s.mean is None


def test_weight_stats_streams_chunks():
    values = np.arange(10_001, dtype=np.float32)
    w = Weight("w", "float32", (10_001,), values.nbytes, "memory", _loader=lambda: values)
    s = weight_stats(w, chunk=1000)
    assert s.mean == pytest.approx(5000.0) and math.isclose(s.std, values.astype(np.float64).std())
    assert weight_stats(Weight("s", "string", (1,), 3, "memory")) is None
