"""``TensorProto`` values as numpy arrays (V1 checkpoint slices, GraphDef ``Const`` nodes).

A TensorProto holds its values either as raw little-endian ``tensor_content`` or in the typed
repeated field of its dtype (``float_val``, ``int_val``, ...). In the typed fields fewer values
than the shape holds mean "repeat the last one" (a single value fills the tensor) and none
mean zeros, as TensorFlow reads them. ``max_elements`` bounds what a fill may allocate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, UnsupportedError

if TYPE_CHECKING:
    import numpy as np

#: dtype name -> the TensorProto field holding its values.
_FIELDS = {
    "float32": "float_val",
    "float64": "double_val",
    "int32": "int_val",
    "int16": "int_val",
    "int8": "int_val",
    "uint8": "int_val",
    "uint16": "int_val",
    "qint8": "int_val",
    "quint8": "int_val",
    "qint16": "int_val",
    "quint16": "int_val",
    "qint32": "int_val",
    "int64": "int64_val",
    "bool": "bool_val",
    "string": "string_val",
    "float16": "half_val",
    "bfloat16": "half_val",
    "complex64": "scomplex_val",
    "complex128": "dcomplex_val",
    "uint32": "uint32_val",
    "uint64": "uint64_val",
}
#: The most elements a fill (fewer stored values than the shape holds) may allocate.
MAX_FILL_ELEMENTS = 1 << 28


def element_count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def to_array(
    proto: Any, dtype: str, shape: tuple[int, ...], where: str, max_elements: int | None = None
) -> np.ndarray:
    """The values of ``proto`` as an array of ``dtype`` and ``shape`` (``where`` names it in errors)."""
    import numpy as np

    count = element_count(shape)
    limit = MAX_FILL_ELEMENTS if max_elements is None else max_elements
    field = _FIELDS.get(dtype)
    if field is None:
        raise UnsupportedError(f"{where}: values of dtype {dtype} cannot be read")
    npdt = numpy_dtype(dtype)
    if proto.tensor_content:
        if dtype == "string":
            raise CorruptFileError(f"{where}: a string tensor with raw tensor_content")
        stored = npdt.newbyteorder("<")
        if len(proto.tensor_content) != count * stored.itemsize:
            raise CorruptFileError(
                f"{where}: {len(proto.tensor_content)} bytes of values for shape {list(shape)} of {dtype}"
            )
        return np.frombuffer(proto.tensor_content, dtype=stored).astype(npdt).reshape(shape)
    values = getattr(proto, field)
    per = 2 if field in ("scomplex_val", "dcomplex_val") else 1
    n = len(values) // per
    if n > count or len(values) % per:
        raise CorruptFileError(f"{where}: {len(values)} values for shape {list(shape)}")
    if n < count and count > limit:
        raise CorruptFileError(f"{where}: {n} stored values would fill {count} elements")
    if dtype == "string":
        flat = np.empty(count, dtype=object)
        items = list(values)
        flat[:n] = items
        flat[n:] = items[-1] if items else b""
        return flat.reshape(shape)
    if field == "half_val":  # the 16 bits of each value, carried in an int32
        raw = np.array(values, dtype=np.uint32).astype(np.uint16).view(npdt)
    elif per == 2:
        parts = np.array(values, dtype=np.float32 if dtype == "complex64" else np.float64)
        raw = np.empty(n, dtype=npdt)
        raw.real, raw.imag = parts[0::2], parts[1::2]
    else:
        raw = np.array(values).astype(npdt) if n else np.zeros(0, npdt)
    if n == count:
        return raw.reshape(shape)
    out = np.zeros(count, dtype=npdt)
    out[:n] = raw
    if n:
        out[n:] = raw[-1]
    return out.reshape(shape)
