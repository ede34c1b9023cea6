"""Turning tensor values into text, JSON and ``.npy``-compatible arrays."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from typing import Any

from ..description import Weight
from ..errors import CorruptFileError
from ..text import plural
from ..util import atomic_write
from .stats import CHUNK_BYTES, NON_NUMERIC

#: Tensors larger than this are summarized in text and refused in JSON (use --out).
MAX_PRINT_ELEMENTS = 100_000

# ml_dtypes types have no .npy representation numpy can load back on its own; widen them
# losslessly to the nearest standard type.
_WIDEN = {
    "bfloat16": "float32",
    "float8_e5m2": "float32",
    "float8_e4m3fn": "float32",
    "float8_e4m3fnuz": "float32",
    "float8_e4m3b11fnuz": "float32",
    "float8_e5m2fnuz": "float32",
    "int4": "int8",
    "uint4": "uint8",
    "int2": "int8",
    "uint2": "uint8",
}


def savable(values: Any) -> tuple[Any, str | None]:
    """An array ``np.save`` can write without pickling, and a note when it was converted."""
    import numpy as np

    if values.dtype == object:
        items = [bytes(v) if not isinstance(v, bytes) else v for v in values.reshape(-1)]
        return np.array(items, dtype=np.bytes_).reshape(values.shape), "strings saved as fixed-width bytes"
    target = _WIDEN.get(values.dtype.name)
    if target:
        return values.astype(target), f"{values.dtype.name} values saved as {target} (exact)"
    return np.asarray(values), None


def write_npy(
    weight: Weight, path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None
) -> str | None:
    """Write a weight's values to ``path`` as ``.npy``; a note when they were converted.

    Numeric values are streamed: the header first, then chunk by chunk, so a tensor larger
    than memory is written holding one chunk. ``progress(bytes_done, bytes_total)`` follows.
    """
    import numpy as np

    chunks = weight.iter_chunks(max_bytes=CHUNK_BYTES)
    first = next(chunks, None) if weight.dtype not in NON_NUMERIC else None
    if first is None or first.dtype == object:  # strings and empty tensors: small, or no choice
        array, note = savable(weight.read())
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
        return note
    target = np.dtype(_WIDEN.get(first.dtype.name, first.dtype))
    note = f"{first.dtype.name} values saved as {target.name} (exact)" if target != first.dtype else None
    shape = tuple(int(d) for d in weight.shape)
    header = {"descr": np.lib.format.dtype_to_descr(target), "fortran_order": False, "shape": shape}
    expected = math.prod(shape)
    written = 0
    with open(path, "wb") as f:
        try:
            np.lib.format.write_array_header_1_0(f, header)
        except ValueError:  # a header over 64 KiB (absurdly many dimensions)
            np.lib.format.write_array_header_2_0(f, header)
        for chunk in itertools.chain([first], chunks):
            out = np.ascontiguousarray(chunk.astype(target, copy=False))
            if written + out.size > expected:
                break
            f.write(out.data)
            written += out.size
            if progress is not None:
                progress(round(written * weight.nbytes / expected), weight.nbytes)
    if written != expected:
        raise CorruptFileError(
            f"{weight.name}: {plural(written, 'value')} read, but its shape {list(shape)} holds {expected}"
        )
    return note


def save_npy(
    weight: Weight, path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None
) -> str | None:
    """:func:`write_npy` into ``path`` atomically; a note when the values were converted."""
    notes: list[str | None] = []
    atomic_write(path, lambda tmp: notes.append(write_npy(weight, tmp, progress=progress)))
    return notes[0] if notes else None


def printable(values: Any) -> tuple[Any, str]:
    """(JSON-ready nested lists, numpy's summarized text) of the values."""
    import numpy as np

    if values.dtype == object:
        listed = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]
        as_list: Any = np.array(listed, dtype=object).reshape(values.shape).tolist()
    elif values.dtype.kind == "c":
        as_list = [[float(v.real), float(v.imag)] for v in values.reshape(-1)]
    else:
        wide = values.astype(_WIDEN.get(values.dtype.name, values.dtype))
        as_list = wide.tolist() if values.size <= MAX_PRINT_ELEMENTS else None
    text = np.array2string(np.asarray(values), threshold=1000, edgeitems=4, max_line_width=110)
    return as_list, text
