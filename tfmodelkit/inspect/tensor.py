"""Turning tensor values into text, JSON and ``.npy``-compatible arrays."""

from __future__ import annotations

from typing import Any

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
