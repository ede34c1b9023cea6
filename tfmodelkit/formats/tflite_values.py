"""Values of TFLite constant tensors: memory-mapped from the file, strings decoded,
int4/int2 unpacked, sparse constants densified; every length checked first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, NotFoundError, UnsupportedError
from . import stream
from .tflite_parse import Buffer, Sparsity

#: A sparse constant may densify to this many elements, or to this many per file byte.
_DENSE_MIN_ELEMENTS = 1 << 22
_DENSE_PER_BYTE = 64
SUB_BYTE = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def element_count(shape: tuple[int, ...]) -> int | None:
    """Elements of a tensor of ``shape``; None when a dimension is negative (dynamic)."""
    n = 1
    for d in shape:
        if d < 0:
            return None
        n *= d
    return n


def holds_data(b: Buffer) -> bool:
    """Whether a tensor over buffer ``b`` is a constant: the buffer has bytes.

    LiteRT's rule: a data vector that is present but empty makes a writable tensor, not a
    read-only one, zero-element tensors included (the converter writes such buffers for
    shape constants of shape (0,), as ``tf.signal.frame`` makes), so such a tensor is no weight.
    """
    span = b.span()
    return span is not None and span[1] > 0


def _map_bytes(path: Path, label: str, offset: int, nbytes: int) -> np.ndarray:
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
    if offset + nbytes > size:
        raise CorruptFileError(
            f"{label}: its {nbytes} bytes at {offset} run past the end of the file ({size} bytes)"
        )
    if nbytes == 0:
        return np.zeros(0, np.uint8)
    try:
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(nbytes,))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{label}: cannot map its bytes ({e})") from None


def _little(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("<") if dt.kind in "iufc" and dt.itemsize > 1 else dt


def _numpy_dtype(dtype: str, label: str) -> np.dtype:
    """The little-endian numpy dtype of a constant; an unknown type names the tensor."""
    try:
        return _little(numpy_dtype(dtype))
    except UnsupportedError as e:
        raise UnsupportedError(f"{label}: {e}") from None


def load_values(
    path: Path,
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    offset: int,
    nbytes: int,
    sparsity: Sparsity | None,
) -> np.ndarray:
    """A constant's values from its ``nbytes`` at ``offset`` of the file, checked and decoded."""
    label = f"{path}: tensor {name!r}"
    count = element_count(shape)
    if count is None:
        raise CorruptFileError(f"{label}: a constant cannot have a negative dimension {list(shape)}")
    raw = _map_bytes(path, label, offset, nbytes)
    if sparsity is not None:
        return _densify(raw, label, dtype, shape, count, sparsity, os.stat(path).st_size)
    if dtype == "string":
        return _decode_strings(raw, label, shape, count)
    if dtype in SUB_BYTE:
        return _unpack_sub_byte(raw, label, dtype, shape, count)
    dt = _numpy_dtype(dtype, label)
    if count * dt.itemsize != nbytes:
        raise CorruptFileError(
            f"{label}: holds {nbytes} bytes, but {dtype}{list(shape)} needs {count * dt.itemsize}"
        )
    return raw.view(dt).reshape(shape)


def value_chunks(
    path: Path,
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    offset: int,
    nbytes: int,
    sparsity: Sparsity | None,
    max_bytes: int,
    ordered: bool,
) -> Iterator[np.ndarray]:
    """A constant's values as flat chunks: dense numeric buffers (inline or external, past
    2 GB) are streamed from a memory map; sparse, string and sub-byte ones are decoded whole."""
    if sparsity is not None or dtype == "string" or dtype in SUB_BYTE:
        values = load_values(path, name, dtype, shape, offset, nbytes, sparsity)
        yield from stream.flat_chunks(values, max_bytes)
        return
    label = f"{path}: tensor {name!r}"
    count = element_count(shape)
    if count is None:
        raise CorruptFileError(f"{label}: a constant cannot have a negative dimension {list(shape)}")
    dt = _numpy_dtype(dtype, label)
    if count * dt.itemsize != nbytes:
        raise CorruptFileError(
            f"{label}: holds {nbytes} bytes, but {dtype}{list(shape)} needs {count * dt.itemsize}"
        )
    yield from stream.typed_chunks(path, offset, nbytes, dt, max_bytes, label)


def _decode_strings(raw: np.ndarray, label: str, shape: tuple[int, ...], count: int) -> np.ndarray:
    # TFLite strings: int32 n, int32 offsets[n + 1] (from the buffer's start), then the bytes.
    size = raw.size
    if size < 8:
        raise CorruptFileError(f"{label}: a string buffer of {size} bytes is too short")
    n = int.from_bytes(raw[:4].tobytes(), "little", signed=True)
    if n < 0 or 4 * (n + 2) > size:
        raise CorruptFileError(f"{label}: string count {n} does not fit in {size} bytes")
    offsets = np.frombuffer(raw[4 : 4 * (n + 2)].tobytes(), dtype="<i4").astype(np.int64)
    if offsets[0] < 4 * (n + 2) or offsets[-1] > size or np.any(np.diff(offsets) < 0):
        raise CorruptFileError(f"{label}: string offsets are out of order or outside the buffer")
    if n != count:
        raise CorruptFileError(f"{label}: holds {n} strings, but its shape {list(shape)} needs {count}")
    data = raw.tobytes()
    out = np.empty(n, dtype=object)
    for k in range(n):
        out[k] = data[offsets[k] : offsets[k + 1]]
    return out.reshape(shape)


def _unpack_sub_byte(
    raw: np.ndarray, label: str, dtype: str, shape: tuple[int, ...], count: int
) -> np.ndarray:
    bits = SUB_BYTE[dtype]
    per_byte = 8 // bits
    signed = dtype.startswith("int")
    if raw.size == count and raw.size != (count + per_byte - 1) // per_byte:
        values = raw.view(np.int8 if signed else np.uint8).astype(np.int16)  # one value a byte
    elif raw.size == (count + per_byte - 1) // per_byte:
        # Packed, first element in the lowest bits of each byte.
        b = np.asarray(raw, dtype=np.uint8)
        mask = (1 << bits) - 1
        parts = [(b >> (bits * k)) & mask for k in range(per_byte)]
        values = np.stack(parts, axis=-1).reshape(-1)[:count].astype(np.int16)
        if signed:
            half = 1 << (bits - 1)
            values = (values ^ half) - half
    else:
        raise CorruptFileError(
            f"{label}: holds {raw.size} bytes, but {dtype}{list(shape)} needs {(count + per_byte - 1) // per_byte}"
        )
    return values.astype(numpy_dtype(dtype)).reshape(shape)


def _densify(
    raw: np.ndarray, label: str, dtype: str, shape: tuple[int, ...], count: int, sp: Sparsity, file_size: int
) -> np.ndarray:
    """The dense array of a sparse constant (TFLite's per-dimension dense/CSR format)."""

    def bad(why: str) -> NoReturn:
        raise CorruptFileError(f"{label}: invalid sparse tensor ({why})")

    if dtype == "string" or dtype in SUB_BYTE:
        raise UnsupportedError(f"{label}: sparse {dtype} tensors are not supported")
    dt = _numpy_dtype(dtype, label)
    limit = max(_DENSE_MIN_ELEMENTS, _DENSE_PER_BYTE * file_size)
    if count > limit:
        raise UnsupportedError(f"{label}: densifying would make {count} elements (limit {limit})")
    if raw.size % dt.itemsize:
        bad(f"{raw.size} bytes is not a whole number of {dtype} values")
    values = raw.view(dt)
    rank = len(shape)
    if rank == 0:
        bad("a scalar cannot be sparse")
    order, block_map = sp.traversal_order, sp.block_map
    levels = len(order)
    if sorted(order) != list(range(rank + len(block_map))) or len(sp.dims) != levels:
        bad(f"traversal order {list(order)} does not fit rank {rank} with {len(block_map)} block dimensions")
    if len(set(block_map)) != len(block_map) or any(not 0 <= d < rank for d in block_map):
        bad(f"block map {list(block_map)} does not fit rank {rank}")
    level_of = {d: level for level, d in enumerate(order)}
    block_size = {}
    for b, d in enumerate(block_map):
        dim = sp.dims[level_of[rank + b]]
        if not dim.dense or dim.dense_size <= 0 or shape[d] % dim.dense_size:
            bad(f"block dimension {b} must be dense and divide dimension {d}")
        block_size[d] = dim.dense_size
    sizes = [shape[d] // block_size.get(d, 1) for d in range(rank)] + [block_size[d] for d in block_map]

    pos = np.zeros(1, np.int64)
    cols: list[np.ndarray] = []
    for level, d in enumerate(order):
        dim = sp.dims[level]
        if dim.dense:
            if dim.dense_size != sizes[d]:
                bad(f"dense dimension {d} has size {dim.dense_size}, expected {sizes[d]}")
            n = dim.dense_size
            if pos.size * n > count:
                bad("more positions than the dense shape holds")
            cols = [c.repeat(n) for c in cols] + [np.tile(np.arange(n, dtype=np.int64), pos.size)]
            pos = (pos[:, None] * n + np.arange(n, dtype=np.int64)).reshape(-1)
            continue
        seg, idx = dim.segments, dim.indices
        if seg is None or idx is None:
            bad(f"compressed dimension {d} lacks its segments or indices")
        if pos.size and int(pos.max()) + 1 >= seg.size:
            bad(f"compressed dimension {d} has too few segments")
        starts, ends = seg[pos], seg[pos + 1]
        counts = ends - starts
        if np.any(counts < 0) or (ends.size and (int(ends.max()) > idx.size or int(starts.min()) < 0)):
            bad(f"segments of dimension {d} are out of order or out of range")
        total = int(counts.sum())
        if total > count:
            bad("more positions than the dense shape holds")
        # Concatenation of the ranges starts[k]..ends[k].
        pos = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)
        coord = idx[pos]
        if coord.size and (int(coord.min()) < 0 or int(coord.max()) >= sizes[d]):
            bad(f"an index of dimension {d} is outside its size {sizes[d]}")
        cols = [c.repeat(counts) for c in cols] + [coord]
    if pos.size != values.size or (pos.size and int(pos.max()) >= values.size):
        bad(f"the structure addresses {pos.size} values, the buffer holds {values.size}")
    coords = []
    for d in range(rank):
        c = cols[level_of[d]]
        if d in block_size:
            c = c * block_size[d] + cols[level_of[rank + block_map.index(d)]]
        coords.append(c)
    dense = np.zeros(shape, dtype=dt)
    dense[tuple(coords)] = values[pos]
    return dense
