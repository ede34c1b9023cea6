"""dtype names and numpy dtypes for TensorFlow's DataType and TFLite's TensorType enums.

Names are numpy/ml_dtypes names (``float32``, ``bfloat16``, ``float8_e4m3fn``, ``int4``),
plus ``string``, ``resource`` and ``variant`` which have no numpy equivalent. TF1 reference
kinds (``DT_FLOAT_REF`` = 101) map to their base dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UnsupportedError

if TYPE_CHECKING:  # numpy is imported when a value is needed, not to list names
    import numpy as np

# TensorFlow types.proto DataType numbers -> our name.
_TF_NAMES: dict[int, str] = {
    0: "invalid",
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    14: "bfloat16",
    15: "qint16",
    16: "quint16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
    24: "float8_e5m2",
    25: "float8_e4m3fn",
    26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz",
    29: "int4",
    30: "uint4",
    31: "int2",
    32: "uint2",
}

# Quantized TF types are stored as their plain integer counterparts.
_STORAGE = {"qint8": "int8", "quint8": "uint8", "qint16": "int16", "quint16": "uint16", "qint32": "int32"}

# TFLite schema TensorType numbers -> our name.
_TFLITE_NAMES: dict[int, str] = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    8: "complex64",
    9: "int8",
    10: "float64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
    19: "int2",
    20: "uint4",
    21: "float8_e4m3fn",
    22: "float8_e5m2",
}

NON_NUMERIC = frozenset({"string", "resource", "variant", "invalid"})


def tf_dtype_name(enum_value: int) -> str:
    """Name of a TensorFlow DataType number; ``_REF`` kinds (+100) give their base type."""
    v = int(enum_value)
    if v > 100:
        v -= 100
    return _TF_NAMES.get(v, f"unknown_dtype_{enum_value}")


def tflite_dtype_name(enum_value: int) -> str:
    return _TFLITE_NAMES.get(int(enum_value), f"unknown_dtype_{enum_value}")


#: Bytes per element of each dtype's numpy array (ml_dtypes' sub-byte kinds take a byte each
#: unpacked), known without importing numpy or ml_dtypes. Importing ml_dtypes costs about a
#: second (it registers its ufunc loops and casts one by one), so sizes and checksums, which
#: only need these numbers, must not pay for it.
_ELEMENT_BYTES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
    "bfloat16": 2,
    "float8_e5m2": 1,
    "float8_e4m3fn": 1,
    "float8_e4m3fnuz": 1,
    "float8_e4m3b11fnuz": 1,
    "float8_e5m2fnuz": 1,
    "int4": 1,
    "uint4": 1,
    "int2": 1,
    "uint2": 1,
    "string": 8,  # an object pointer, as in numpy_dtype("string")
}


def _unsupported(name: str) -> UnsupportedError:
    return UnsupportedError(f"dtype {name} has no numpy equivalent")


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype holding values of ``name`` (ml_dtypes for bfloat16, float8, int4)."""
    import numpy as np

    name = _STORAGE.get(name, name)
    if name == "string":
        return np.dtype(object)
    try:
        return np.dtype(name)
    except TypeError:
        pass
    import ml_dtypes

    t = getattr(ml_dtypes, name, None)
    if t is None:
        raise _unsupported(name)
    return np.dtype(t)


#: dtypes numpy lacks, which ml_dtypes provides, and the integers each is stored in.
_STORED_AS: dict[str, str] = {
    "bfloat16": "uint16",
    "float8_e5m2": "uint8",
    "float8_e4m3fn": "uint8",
    "float8_e4m3fnuz": "uint8",
    "float8_e4m3b11fnuz": "uint8",
    "float8_e5m2fnuz": "uint8",
    "int4": "int8",
    "uint4": "uint8",
    "int2": "int8",
    "uint2": "uint8",
}
ML_DTYPES = frozenset(_STORED_AS)


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype of the integers that store ``name``'s elements when numpy lacks the
    type (``uint16`` for ``bfloat16``), else :func:`numpy_dtype`: what streaming, checksums
    and bit-level conversions can work in without importing ml_dtypes."""
    import numpy as np

    stored = _STORED_AS.get(name)
    return np.dtype(stored) if stored else numpy_dtype(name)


def element_bytes(name: str) -> int:
    """``numpy_dtype(name).itemsize``, without importing numpy or ml_dtypes.

    Raises :class:`UnsupportedError` for the dtypes :func:`numpy_dtype` refuses.
    """
    name = _STORAGE.get(name, name)
    size = _ELEMENT_BYTES.get(name)
    if size is None:
        raise _unsupported(name)
    return size


def itemsize(name: str) -> int | None:
    """Bytes per element, or None for variable-size and sub-byte types."""
    if name in NON_NUMERIC:
        return None
    if name in ("int4", "uint4", "int2", "uint2"):
        return None
    return element_bytes(name)


def packed_nbytes(name: str, count: int) -> int | None:
    """Bytes that ``count`` elements take on disk (sub-byte types packed two/four a byte)."""
    if name in ("int4", "uint4"):
        return (count + 1) // 2
    if name in ("int2", "uint2"):
        return (count + 3) // 4
    size = itemsize(name)
    return None if size is None else size * count
