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


# The accumulator works in float64 blocks of 8192 values inside each chunk: sizes around
# that block and around the chunk, offsets far from zero and values near the float64 limit.
BLOCK_SIZES = [1, 8191, 8192, 8193, 3 * 8192 + 77, 100_003]
WIDE_DTYPES = [np.float32, np.float64, ml_dtypes.bfloat16, np.float16, ml_dtypes.float8_e4m3fn, np.int64,
               np.uint8, ml_dtypes.int4]


@pytest.mark.parametrize("dtype", WIDE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", BLOCK_SIZES)
def test_block_and_chunk_boundaries(dtype, size):
    rng = np.random.default_rng(size)
    raw = rng.normal(1.5, 2.0, size=size)
    kind = np.dtype(dtype).kind
    if np.dtype(dtype).name in ("int4", "uint8", "int64"):
        lo, hi = (-8, 7) if np.dtype(dtype).name == "int4" else (0, 255) if kind == "u" else (-(2**40), 2**40)
        values = np.clip(np.round(raw * (hi - lo) / 8), lo, hi).astype(dtype)
    else:
        values = raw.astype(dtype)
    ref = values.astype(np.float64)
    for chunk in (size, 10_000, 4099):
        s = array_stats(values, chunk=chunk)
        assert s.count == size and (s.nan, s.inf) == (0, 0)
        assert (s.min, s.max) == (ref.min(), ref.max())
        assert s.mean == pytest.approx(ref.mean(), rel=1e-12, abs=1e-12)
        assert s.std == pytest.approx(ref.std(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_large_offset_does_not_cancel_the_spread(dtype):
    # mean 1e4, std 1e-2: a naive sum-of-squares formula loses every digit of the variance.
    values = (1e4 + np.random.default_rng(3).normal(0, 1e-2, size=50_000)).astype(dtype)
    ref = values.astype(np.float64)
    s = array_stats(values, chunk=7919)
    assert s.std == pytest.approx(ref.std(), rel=1e-6)
    assert s.mean == pytest.approx(ref.mean(), rel=1e-12)


def test_nan_and_inf_split_across_chunks_and_blocks():
    values = np.random.default_rng(5).normal(size=30_000).astype(np.float32)
    values[[0, 8191, 8192, 29_999]] = [np.nan, np.inf, -np.inf, np.nan]
    finite = values[np.isfinite(values)].astype(np.float64)
    for chunk in (8192, 8193, 30_000):
        s = array_stats(values, chunk=chunk)
        assert (s.nan, s.inf, s.count) == (2, 2, 30_000)
        assert (s.min, s.max) == (finite.min(), finite.max())
        assert s.std == pytest.approx(finite.std(), rel=1e-9)


def test_overflowing_spread_is_infinite_not_nan():
    s = array_stats(np.array([-1.0, 1e300, 0.0, 5.0]), chunk=1 << 20)
    assert s.std == math.inf and s.mean == pytest.approx(2.5e299)


def test_weight_stats_prefers_the_streaming_path_and_reports_bytes():
    values = np.linspace(0, 1, 10_007, dtype=np.float32)
    asked = []

    def chunker(max_bytes, ordered):
        asked.append((max_bytes, ordered))
        step = max_bytes // 4
        for i in range(0, values.size, step):
            yield values[i : i + step]

    def loader():
        raise AssertionError("the whole tensor was read")

    w = Weight("w", "float32", values.shape, values.nbytes, "memory", _loader=loader, _chunker=chunker)
    seen = []
    s = weight_stats(w, advance=seen.append)
    assert asked == [(16 << 20, False)]
    assert sum(seen) == values.nbytes
    assert s.mean == pytest.approx(values.astype(np.float64).mean())
    s = weight_stats(w, chunk=1000)
    assert asked[-1] == (4000, False)


def _bf16_values(size: int) -> np.ndarray:
    values = np.random.default_rng(size).normal(0.5, 3.0, size=size).astype(ml_dtypes.bfloat16)
    values[[0, size // 2]] = [np.nan, np.inf]
    return values


@pytest.mark.parametrize("streamed_as", ["storage", "bfloat16"])
def test_bfloat16_streamed_as_its_bits_matches_its_values(streamed_as):
    # Readers may stream bfloat16 as the uint16 holding it (no ml_dtypes needed) or typed.
    values = _bf16_values(70_001)
    chunks = values.view(np.uint16) if streamed_as == "storage" else values

    def chunker(max_bytes, ordered):
        step = max_bytes // 2
        for i in range(0, chunks.size, step):
            yield chunks[i : i + step]

    w = Weight("w", "bfloat16", values.shape, values.nbytes, "memory", _chunker=chunker)
    ref = array_stats(values)
    for chunk in (None, 1000, 65_537):
        s = weight_stats(w, chunk=chunk)
        assert (s.count, s.nan, s.inf, s.min, s.max) == (ref.count, 1, 1, ref.min, ref.max)
        assert s.mean == pytest.approx(ref.mean, rel=1e-12) and s.std == pytest.approx(ref.std, rel=1e-9)
    assert all(c.dtype == np.uint16 for c in w.iter_chunks(max_bytes=1 << 12, stored=True))
    assert all(c.dtype == ml_dtypes.bfloat16 for c in w.iter_chunks(max_bytes=1 << 12))
    assert np.array_equal(np.concatenate(list(w.iter_chunks(max_bytes=999))).view(np.uint16), values.view(np.uint16))


def test_stored_chunks_of_the_other_ml_dtypes_are_widened_through_ml_dtypes():
    values = np.array([-8, -1, 0, 3, 7], dtype=ml_dtypes.int4)
    w = Weight("w", "int4", values.shape, values.nbytes, "memory", _loader=lambda: values)
    s = weight_stats(w)
    assert (s.min, s.max, s.mean) == (-8.0, 7.0, pytest.approx(0.2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_mean_far_from_zero_is_summed_again_around_it(dtype):
    # A chunk whose mean dwarfs its spread: the plain sums would cancel the variance.
    rng = np.random.default_rng(11)
    if np.dtype(dtype).kind == "i":
        values = (10**12 + rng.integers(-3, 4, size=40_000)).astype(dtype)
    else:
        values = (5e3 + rng.normal(0, 1e-3, size=40_000)).astype(dtype)
    ref = values.astype(np.float64)
    s = array_stats(values, chunk=9_999)
    assert s.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert s.std == pytest.approx(ref.std(), rel=1e-6)


def test_constant_chunks_have_no_spread():
    s = array_stats(np.full(100_000, 0.1, np.float32), chunk=30_000)
    assert (s.min, s.max, s.mean, s.std) == (np.float32(0.1), np.float32(0.1), pytest.approx(0.1), 0.0)
