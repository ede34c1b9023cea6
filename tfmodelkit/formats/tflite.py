"""TFLite models (``.tflite``): a flatbuffer read with LiteRT's generated schema, never TensorFlow.

The file is memory-mapped and parsed once into plain records. The flatbuffers runtime
verifies nothing, so every vector length is checked against the file size before it is
looped over, and every runtime failure on damaged bytes becomes a :class:`CorruptFileError`.
:func:`read` turns the records into a :class:`ModelDescription`; :func:`check` validates
them (buffer bounds, indices, constant sizes, quantization).

Constant tensors become weights whose values are memory-mapped from the file when read.
String tensors come back as an object array of ``bytes`` (TFLite's string layout
decoded), sparse constants are densified, and int4/int2 constants unpacked.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import struct
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..description import (
    CheckReport,
    Finding,
    ModelDescription,
    Producer,
    Quantization,
    Signature,
    TensorSpec,
    Weight,
)
from ..dtypes import numpy_dtype, packed_nbytes, tflite_dtype_name
from ..errors import CorruptFileError, NotFoundError, UnsupportedError
from . import stream

FORMAT = "tflite"
_IDENTIFIER = b"TFL3"
_CUSTOM = 32  # BuiltinOperator.CUSTOM
#: What the flatbuffers runtime raises when offsets or lengths in the file are garbage.
_PARSE_ERRORS = (
    IndexError,
    struct.error,
    ValueError,
    TypeError,
    UnicodeDecodeError,
    RecursionError,
    OverflowError,
)
#: Problems ``read`` repeats as warnings before it says "and N more".
_MAX_LISTED = 20
#: A sparse constant may densify to this many elements, or to this many per file byte.
_DENSE_MIN_ELEMENTS = 1 << 22
_DENSE_PER_BYTE = 64

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "uint8": (0, (1 << 8) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int2": (-2, 1),
    "uint2": (0, 3),
}
_SUB_BYTE = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2}


def _schema() -> Any:
    # Imported on first use: the generated module is large (~0.1 s).
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for key, value in vars(_schema().BuiltinOperator).items():
        if not key.startswith("_") and isinstance(value, int):
            names.setdefault(value, key)
    return names


# ----------------------------------------------------------------------------------------
# Plain records of what the flatbuffer holds


@dataclass(frozen=True)
class _Quant:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    min: tuple[float, ...]
    max: tuple[float, ...]
    details_type: int

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "quantized_dimension": self.quantized_dimension,
        }
        if self.min or self.max:
            out["min"], out["max"] = list(self.min), list(self.max)
        if self.details_type:
            out["details_type"] = self.details_type
        return out


@dataclass(frozen=True)
class _Dim:
    dense: bool
    dense_size: int
    segments: np.ndarray | None = None
    indices: np.ndarray | None = None


@dataclass(frozen=True)
class _Sparsity:
    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dims: tuple[_Dim, ...]


@dataclass(frozen=True)
class _Tensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    buffer: int
    quant: _Quant | None
    sparsity: _Sparsity | None
    is_variable: bool


@dataclass(frozen=True)
class _Operator:
    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    large_options: tuple[int, int]


@dataclass(frozen=True)
class _Subgraph:
    name: str
    tensors: tuple[_Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[_Operator, ...]


@dataclass(frozen=True)
class _Buffer:
    index: int
    #: Absolute file offset of the inline ``data`` vector; None when the field is absent.
    data_start: int | None
    data_len: int
    offset: int
    size: int

    @property
    def external(self) -> bool:
        # Models over 2 GB keep buffers after the flatbuffer: offset/size from the file's
        # start. 0 and 1 mean "inline" (1 is a placeholder the writer patches later).
        return self.offset > 1

    def span(self) -> tuple[int, int] | None:
        """(absolute offset, byte size) of the buffer's bytes, None when it has none."""
        if self.external:
            return self.offset, self.size
        if self.data_start is not None:
            return self.data_start, self.data_len
        return None


@dataclass(frozen=True)
class _OpCode:
    builtin: int
    custom: str | None
    version: int


@dataclass(frozen=True)
class _SigDef:
    key: str
    subgraph_index: int
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class _Model:
    path: Path
    file_size: int
    version: int
    description: str | None
    opcodes: tuple[_OpCode, ...]
    subgraphs: tuple[_Subgraph, ...]
    buffers: tuple[_Buffer, ...]
    metadata: tuple[tuple[str, int], ...]
    signature_defs: tuple[_SigDef, ...]
    external_buffers: int
    min_runtime_version: str | None

    def buffer(self, index: int) -> _Buffer | None:
        return self.buffers[index] if 0 <= index < len(self.buffers) else None


# ----------------------------------------------------------------------------------------
# Parsing


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", errors="replace")


class _Parser:
    """Walks the flatbuffer, checking each vector's length before touching its elements."""

    def __init__(self, path: Path, buf: mmap.mmap, size: int) -> None:
        self.path = path
        self.buf = buf
        self.size = size
        # Bytes the vectors may claim in total. In a sound file the vectors and the tables
        # they point at are disjoint, so their sum stays under the file size; a damaged one
        # can point every slot at the same large table and multiply the work instead.
        self.budget = 2 * size + 4096
        self.where = "the model"

    def fail(self, why: str) -> NoReturn:
        raise CorruptFileError(f"{self.path}: not a valid TFLite flatbuffer ({self.where}: {why})") from None

    def length(self, n: int, width: int, what: str) -> int:
        """``n``, once it is plausible for a vector of ``width``-byte elements."""
        if n < 0 or n * width > self.size:
            self.fail(f"{what} claims {n} entries, more than the {self.size}-byte file can hold")
        self.budget -= n * width
        if self.budget < 0:
            self.fail("its vectors claim more entries in total than the file can hold")
        return n

    def tables(self, n: int, what: str) -> int:
        """``n`` for a vector of tables: a 4-byte slot each, and at least 4 bytes of table."""
        return self.length(n, 8, what)

    def numbers(self, length: Any, as_numpy: Any, width: int, what: str) -> tuple[Any, ...]:
        n = self.length(length(), width, what)
        if n == 0:
            return ()
        return tuple(as_numpy().tolist())

    def run(self) -> _Model:
        try:
            return self._model()
        except CorruptFileError:
            raise
        except (struct.error, IndexError):
            self.fail("an offset points outside the file")
        except _PARSE_ERRORS as e:
            self.fail(f"{type(e).__name__}: {str(e)[:120]}")

    def _model(self) -> _Model:
        s = _schema()
        m = s.Model.GetRootAs(self.buf, 0)
        version = m.Version()
        raw_description = m.Description()

        self.where = "operator codes"
        opcodes = []
        for j in range(self.tables(m.OperatorCodesLength(), "operator_codes")):
            self.where = f"operator code {j}"
            oc = m.OperatorCodes(j)
            custom = oc.CustomCode()
            opcodes.append(
                _OpCode(
                    max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()),
                    None if custom is None else _text(custom),
                    oc.Version(),
                )
            )

        buffers = []
        for j in range(self.tables(m.BuffersLength(), "buffers")):
            self.where = f"buffer {j}"
            b = m.Buffers(j)
            tab = b._tab
            slot = tab.Offset(4)  # Buffer.data is field 0: vtable slot 4
            start, n = (tab.Vector(slot), tab.VectorLen(slot)) if slot else (None, 0)
            buffers.append(_Buffer(j, start, n, b.Offset(), b.Size()))

        subgraphs = []
        for i in range(self.tables(m.SubgraphsLength(), "subgraphs")):
            subgraphs.append(self._subgraph(m.Subgraphs(i), i))

        metadata = []
        for j in range(self.tables(m.MetadataLength(), "metadata")):
            self.where = f"metadata entry {j}"
            md = m.Metadata(j)
            metadata.append((_text(md.Name()), md.Buffer()))

        signature_defs = []
        for j in range(self.tables(m.SignatureDefsLength(), "signature_defs")):
            self.where = f"signature def {j}"
            sd = m.SignatureDefs(j)
            ins = [sd.Inputs(k) for k in range(self.tables(sd.InputsLength(), "inputs"))]
            outs = [sd.Outputs(k) for k in range(self.tables(sd.OutputsLength(), "outputs"))]
            signature_defs.append(
                _SigDef(
                    _text(sd.SignatureKey()),
                    sd.SubgraphIndex(),
                    tuple((_text(x.Name()), x.TensorIndex()) for x in ins),
                    tuple((_text(x.Name()), x.TensorIndex()) for x in outs),
                )
            )

        self.where = "external buffers"
        external = self.tables(m.ExternalBuffersLength(), "external_buffers")
        return _Model(
            path=self.path,
            file_size=self.size,
            version=version,
            description=None if raw_description is None else _text(raw_description),
            opcodes=tuple(opcodes),
            subgraphs=tuple(subgraphs),
            buffers=tuple(buffers),
            metadata=tuple(metadata),
            signature_defs=tuple(signature_defs),
            external_buffers=external,
            min_runtime_version=self._min_runtime(metadata, buffers),
        )

    def _subgraph(self, sg: Any, i: int) -> _Subgraph:
        self.where = f"subgraph {i}"
        tensors = [
            self._tensor(sg.Tensors(t), i, t) for t in range(self.tables(sg.TensorsLength(), "tensors"))
        ]
        self.where = f"subgraph {i}"
        inputs = self.numbers(sg.InputsLength, sg.InputsAsNumpy, 4, "inputs")
        outputs = self.numbers(sg.OutputsLength, sg.OutputsAsNumpy, 4, "outputs")
        operators = []
        for k in range(self.tables(sg.OperatorsLength(), "operators")):
            self.where = f"subgraph {i}, operator {k}"
            op = sg.Operators(k)
            operators.append(
                _Operator(
                    op.OpcodeIndex(),
                    self.numbers(op.InputsLength, op.InputsAsNumpy, 4, "inputs"),
                    self.numbers(op.OutputsLength, op.OutputsAsNumpy, 4, "outputs"),
                    self.numbers(op.IntermediatesLength, op.IntermediatesAsNumpy, 4, "intermediates"),
                    (op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()),
                )
            )
        self.where = f"subgraph {i}"
        return _Subgraph(_text(sg.Name()), tuple(tensors), inputs, outputs, tuple(operators))

    def _tensor(self, t: Any, i: int, k: int) -> _Tensor:
        self.where = f"subgraph {i}, tensor {k}"
        shape = self.numbers(t.ShapeLength, t.ShapeAsNumpy, 4, "shape")
        signature = None
        if not t.ShapeSignatureIsNone():
            signature = self.numbers(t.ShapeSignatureLength, t.ShapeSignatureAsNumpy, 4, "shape_signature")
        q = t.Quantization()
        sp = t.Sparsity()
        return _Tensor(
            index=k,
            name=_text(t.Name()),
            dtype=tflite_dtype_name(t.Type()),
            shape=shape,
            shape_signature=signature,
            buffer=t.Buffer(),
            quant=None if q is None else self._quant(q),
            sparsity=None if sp is None else self._sparsity(sp),
            is_variable=bool(t.IsVariable()),
        )

    def _quant(self, q: Any) -> _Quant | None:
        scale = self.numbers(q.ScaleLength, q.ScaleAsNumpy, 4, "quantization scale")
        zero_point = self.numbers(q.ZeroPointLength, q.ZeroPointAsNumpy, 8, "quantization zero_point")
        lo = self.numbers(q.MinLength, q.MinAsNumpy, 4, "quantization min")
        hi = self.numbers(q.MaxLength, q.MaxAsNumpy, 4, "quantization max")
        details = q.DetailsType()
        if not (scale or zero_point or lo or hi or details):
            return None
        return _Quant(scale, zero_point, q.QuantizedDimension(), lo, hi, details)

    def _sparsity(self, sp: Any) -> _Sparsity:
        order = self.numbers(sp.TraversalOrderLength, sp.TraversalOrderAsNumpy, 4, "traversal_order")
        block_map = self.numbers(sp.BlockMapLength, sp.BlockMapAsNumpy, 4, "block_map")
        dims = []
        for j in range(self.tables(sp.DimMetadataLength(), "dim_metadata")):
            d = sp.DimMetadata(j)
            if d.Format() == _schema().DimensionType.DENSE:
                dims.append(_Dim(True, d.DenseSize()))
            else:
                segments = self._index_vector(d.ArraySegmentsType(), d.ArraySegments())
                indices = self._index_vector(d.ArrayIndicesType(), d.ArrayIndices())
                dims.append(_Dim(False, d.DenseSize(), segments, indices))
        return _Sparsity(order, block_map, tuple(dims))

    def _index_vector(self, kind: int, table: Any) -> np.ndarray | None:
        s = _schema()
        classes = {
            s.SparseIndexVector.Int32Vector: (s.Int32Vector, 4),
            s.SparseIndexVector.Uint16Vector: (s.Uint16Vector, 2),
            s.SparseIndexVector.Uint8Vector: (s.Uint8Vector, 1),
        }
        if table is None or kind not in classes:
            return None
        cls, width = classes[kind]
        vec = cls()
        vec.Init(table.Bytes, table.Pos)
        n = self.length(vec.ValuesLength(), width, "sparse index vector")
        if n == 0:
            return np.zeros(0, np.int64)
        return np.array(vec.ValuesAsNumpy(), dtype=np.int64)  # a copy: the map gets closed

    def _min_runtime(self, metadata: list[tuple[str, int]], buffers: list[_Buffer]) -> str | None:
        for name, index in metadata:
            if name != "min_runtime_version" or not 0 <= index < len(buffers):
                continue
            span = buffers[index].span()
            if span is None or span[1] > 256 or span[0] + span[1] > self.size:
                return None
            # A short version string, NUL-padded to 16 bytes by current converters.
            # Converters that cannot tell leave it all NULs: no version then.
            raw = self.buf[span[0] : span[0] + span[1]]
            return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace") or None
        return None


def _load_model(path: Path) -> _Model:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except OSError as e:
        raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if size < 8:
            raise CorruptFileError(f"{path}: not a valid TFLite flatbuffer (only {size} bytes)")
        if head[4:8] != _IDENTIFIER:
            raise CorruptFileError(
                f"{path}: not a valid TFLite flatbuffer (no 'TFL3' identifier at bytes 4-8, found {head[4:8]!r})"
            )
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _Parser(path, buf, size).run()
    finally:
        try:
            buf.close()
        except BufferError:  # a numpy view still alive in a traceback; the GC closes it
            pass


# ----------------------------------------------------------------------------------------
# Values of constant tensors


def _count(shape: tuple[int, ...]) -> int | None:
    n = 1
    for d in shape:
        if d < 0:
            return None
        n *= d
    return n


def _expected_nbytes(dtype: str, count: int) -> int | None:
    try:
        return packed_nbytes(dtype, count)
    except UnsupportedError:
        return None


def _holds_data(t: _Tensor, b: _Buffer) -> bool:
    """Whether ``t`` is a constant: its buffer has bytes (LiteRT's rule), or ``t`` has zero
    elements and a data vector of its own, present but empty."""
    span = b.span()
    if span is None:
        return False
    if span[1] > 0:
        return True
    # A zero-element constant keeps a present-but-empty data vector (buffer 0 is the
    # shared empty sentinel, so it does not count).
    return t.buffer != 0 and _count(t.shape) == 0


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


def _load_values(
    path: Path,
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    offset: int,
    nbytes: int,
    sparsity: _Sparsity | None,
) -> np.ndarray:
    label = f"{path}: tensor {name!r}"
    count = _count(shape)
    if count is None:
        raise CorruptFileError(f"{label}: a constant cannot have a negative dimension {list(shape)}")
    raw = _map_bytes(path, label, offset, nbytes)
    if sparsity is not None:
        return _densify(raw, label, dtype, shape, count, sparsity, os.stat(path).st_size)
    if dtype == "string":
        return _decode_strings(raw, label, shape, count)
    if dtype in _SUB_BYTE:
        return _unpack_sub_byte(raw, label, dtype, shape, count)
    dt = _numpy_dtype(dtype, label)
    if count * dt.itemsize != nbytes:
        raise CorruptFileError(
            f"{label}: holds {nbytes} bytes, but {dtype}{list(shape)} needs {count * dt.itemsize}"
        )
    return raw.view(dt).reshape(shape)


def _value_chunks(
    path: Path,
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    offset: int,
    nbytes: int,
    sparsity: _Sparsity | None,
    max_bytes: int,
    ordered: bool,
) -> Iterator[np.ndarray]:
    """A constant's values as flat chunks: dense numeric buffers (inline or external, past
    2 GB) are streamed from a memory map; sparse, string and sub-byte ones are decoded whole."""
    if sparsity is not None or dtype == "string" or dtype in _SUB_BYTE:
        values = _load_values(path, name, dtype, shape, offset, nbytes, sparsity)
        yield from stream.flat_chunks(values, max_bytes)
        return
    label = f"{path}: tensor {name!r}"
    count = _count(shape)
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
    bits = _SUB_BYTE[dtype]
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
    raw: np.ndarray, label: str, dtype: str, shape: tuple[int, ...], count: int, sp: _Sparsity, file_size: int
) -> np.ndarray:
    """The dense array of a sparse constant (TFLite's per-dimension dense/CSR format)."""

    def bad(why: str) -> NoReturn:
        raise CorruptFileError(f"{label}: invalid sparse tensor ({why})")

    if dtype == "string" or dtype in _SUB_BYTE:
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


# ----------------------------------------------------------------------------------------
# Validation shared by read() (errors become warnings) and check()


def _tensor_subject(i: int, t: _Tensor) -> str:
    return f"tensor {t.name or f'#{t.index}'!r} (subgraph {i}, index {t.index})"


def _quant_problems(t: _Tensor, constant: bool) -> list[tuple[str, str]]:
    q = t.quant
    if q is None:
        return []
    found = []
    integer = t.dtype in _INT_RANGES
    severity = "error" if integer else "warning"
    for k, s in enumerate(q.scale):
        if not (math.isfinite(s) and s > 0):
            found.append((severity, f"quantization scale {s} (channel {k}) is not a positive finite number"))
            break
    if q.scale and q.zero_point and len(q.scale) != len(q.zero_point):
        found.append(("error", f"{len(q.scale)} quantization scales but {len(q.zero_point)} zero points"))
    if integer:
        lo, hi = _INT_RANGES[t.dtype]
        for z in q.zero_point:
            if not lo <= z <= hi:
                found.append(("error", f"zero point {z} is outside the {t.dtype} range [{lo}, {hi}]"))
                break
    if len(q.scale) > 1:
        qd = q.quantized_dimension
        if not 0 <= qd < len(t.shape):
            found.append(
                ("error", f"per-channel quantization along dimension {qd} of a rank-{len(t.shape)} tensor")
            )
        elif constant and t.shape[qd] != len(q.scale):
            found.append(
                (
                    "error",
                    f"{len(q.scale)} per-channel scales for dimension {qd}, which has size {t.shape[qd]}",
                )
            )
    return found


def _constant_problem(model: _Model, i: int, t: _Tensor, b: _Buffer, deep: bool) -> str | None:
    span = b.span()
    assert span is not None
    offset, nbytes = span
    count = _count(t.shape)
    if count is None:
        return f"a constant cannot have a negative dimension {list(t.shape)}"
    if offset + nbytes > model.file_size:
        return None  # reported on the buffer
    if t.sparsity is None and t.dtype != "string":
        expected = _expected_nbytes(t.dtype, count)
        if expected is None:
            return None
        if nbytes != expected and not (t.dtype in _SUB_BYTE and nbytes == count):
            return f"buffer {t.buffer} holds {nbytes} bytes, but {t.dtype}{list(t.shape)} needs {expected}"
        return None
    if deep:
        try:
            _load_values(model.path, t.name, t.dtype, t.shape, offset, nbytes, t.sparsity)
        except (CorruptFileError, UnsupportedError) as e:
            return str(e).removeprefix(f"{model.path}: ")
    return None


def _validate(model: _Model, deep: bool) -> list[Finding]:
    findings: list[Finding] = []

    def add(severity: str, subject: str, message: str) -> None:
        findings.append(Finding(severity, subject, message))

    size = model.file_size
    if not model.subgraphs:
        add("error", "model", "has no subgraphs: LiteRT cannot run it")
    for b in model.buffers:
        subject = f"buffer {b.index}"
        if b.data_start is not None and b.data_start + b.data_len > size:
            add(
                "error",
                subject,
                f"its {b.data_len} bytes at {b.data_start} run past the end of the file ({size} bytes)",
            )
        if b.external:
            if b.offset + b.size > size:
                add(
                    "error",
                    subject,
                    f"stored after the flatbuffer at {b.offset} with {b.size} bytes, past the end of the file ({size} bytes)",
                )
            if b.data_len:
                add("warning", subject, "has inline data and an external offset; LiteRT uses the offset")
    if model.buffers and (model.buffers[0].span() or (0, 0))[1] > 0:
        add(
            "warning",
            "buffer 0",
            "should be the empty sentinel every non-constant tensor points at, but holds data",
        )
    for name, index in model.metadata:
        if model.buffer(index) is None:
            add(
                "error",
                f"metadata {name!r}",
                f"buffer index {index} is out of range ({len(model.buffers)} buffers)",
            )

    for i, sg in enumerate(model.subgraphs):
        n = len(sg.tensors)
        for role, indices in (("input", sg.inputs), ("output", sg.outputs)):
            for ti in indices:
                if not -1 <= ti < n:
                    add("error", f"subgraph {i}", f"{role} tensor index {ti} is out of range ({n} tensors)")
        constant = set()
        graph_inputs = set(sg.inputs)
        for tensor in sg.tensors:
            subject = _tensor_subject(i, tensor)
            buf = model.buffer(tensor.buffer)
            if buf is None:
                add(
                    "error",
                    subject,
                    f"buffer index {tensor.buffer} is out of range ({len(model.buffers)} buffers)",
                )
            elif _holds_data(tensor, buf):
                constant.add(tensor.index)
                problem = _constant_problem(model, i, tensor, buf, deep)
                if problem:
                    add("error", subject, problem)
                if tensor.index in graph_inputs:
                    add(
                        "warning",
                        subject,
                        "is a subgraph input but holds constant data; LiteRT makes it read-only",
                    )
            for severity, message in _quant_problems(tensor, tensor.index in constant):
                add(severity, subject, message)
            sig = tensor.shape_signature
            if sig and len(sig) != len(tensor.shape):
                add(
                    "warning",
                    subject,
                    f"shape_signature {list(sig)} and shape {list(tensor.shape)} differ in rank",
                )
        produced: set[int] = set()
        for k, op in enumerate(sg.operators):
            subject = f"operator {k} (subgraph {i})"
            if not 0 <= op.opcode_index < len(model.opcodes):
                add(
                    "error",
                    subject,
                    f"opcode index {op.opcode_index} is out of range ({len(model.opcodes)} operator codes)",
                )
            for role, indices in (
                ("input", op.inputs),
                ("output", op.outputs),
                ("intermediate", op.intermediates),
            ):
                bad = [t for t in indices if not -1 <= t < n]
                if bad:
                    add("error", subject, f"{role} tensor index {bad[0]} is out of range ({n} tensors)")
            produced.update(op.outputs)
            produced.update(op.intermediates)
            offset, length = op.large_options
            if offset > 1 and offset + length > size:
                add(
                    "error",
                    subject,
                    f"custom options at {offset} with {length} bytes run past the end of the file",
                )
        available = produced | constant | graph_inputs
        dangling: dict[int, None] = {}
        for op in sg.operators:
            for t in op.inputs:
                if 0 <= t < n and t not in available and not sg.tensors[t].is_variable:
                    dangling[t] = None
        for t in dangling:
            add(
                "warning",
                _tensor_subject(i, sg.tensors[t]),
                "is read by an operator but has no data, is no subgraph input and no operator produces it",
            )

    keys = Counter(sd.key for sd in model.signature_defs)
    for sd in model.signature_defs:
        subject = f"signature {sd.key!r}"
        if keys[sd.key] > 1:
            add("warning", subject, "this signature key appears more than once")
            keys[sd.key] = 1
        if not 0 <= sd.subgraph_index < len(model.subgraphs):
            add(
                "error",
                subject,
                f"subgraph index {sd.subgraph_index} is out of range ({len(model.subgraphs)} subgraphs)",
            )
            continue
        n = len(model.subgraphs[sd.subgraph_index].tensors)
        for role, maps in (("input", sd.inputs), ("output", sd.outputs)):
            for name, t in maps:
                if not 0 <= t < n:
                    add("error", subject, f"{role} {name!r} maps to tensor {t}, out of range ({n} tensors)")
    return findings


# ----------------------------------------------------------------------------------------
# The description


def _shape(t: _Tensor) -> tuple[int | None, ...]:
    # shape_signature carries -1 for dynamic dims; some writers store it empty, and
    # LiteRT then falls back to `shape`, as we do.
    dims = t.shape_signature if t.shape_signature and len(t.shape_signature) == len(t.shape) else t.shape
    return tuple(None if d < 0 else d for d in dims)


def _quantization(q: _Quant | None) -> Quantization | None:
    if q is None:
        return None
    return Quantization(
        scale=tuple(q.scale),
        zero_point=tuple(q.zero_point),
        quantized_dimension=q.quantized_dimension,
        min=tuple(q.min),
        max=tuple(q.max),
    )


def _spec(name: str, t: _Tensor) -> TensorSpec:
    return TensorSpec(
        name=name, dtype=t.dtype, shape=_shape(t), tensor=t.name, quantization=_quantization(t.quant)
    )


def _specs(sg: _Subgraph, maps: tuple[tuple[str, int], ...]) -> tuple[TensorSpec, ...]:
    return tuple(_spec(name, sg.tensors[t]) for name, t in maps if 0 <= t < len(sg.tensors))


def _signatures(model: _Model) -> tuple[tuple[Signature, ...], str]:
    if model.signature_defs:
        sigs = []
        for sd in model.signature_defs:
            if not 0 <= sd.subgraph_index < len(model.subgraphs):
                continue
            sg = model.subgraphs[sd.subgraph_index]
            sigs.append(Signature(sd.key, _specs(sg, sd.inputs), _specs(sg, sd.outputs)))
        return tuple(sigs), "signature_defs"
    if not model.subgraphs:
        return (), "none"
    sg = model.subgraphs[0]
    ins = tuple((sg.tensors[t].name, t) for t in sg.inputs if 0 <= t < len(sg.tensors))
    outs = tuple((sg.tensors[t].name, t) for t in sg.outputs if 0 <= t < len(sg.tensors))
    return (Signature("subgraph_0", _specs(sg, ins), _specs(sg, outs)),), "subgraph"


def _op_name(model: _Model, index: int) -> str | None:
    if not 0 <= index < len(model.opcodes):
        return None
    oc = model.opcodes[index]
    if oc.builtin == _CUSTOM:
        return oc.custom or "CUSTOM"
    return _builtin_names().get(oc.builtin, f"BUILTIN_{oc.builtin}")


def _weights(model: _Model) -> tuple[Weight, ...]:
    found = []
    for i, sg in enumerate(model.subgraphs):
        for t in sg.tensors:
            b = model.buffer(t.buffer)
            if b is not None and _holds_data(t, b):
                found.append((i, t, b))
    names = [t.name or f"tensor_{t.index}" for _, t, _ in found]
    subgraphs_of: dict[str, set[int]] = defaultdict(set)
    for (i, _, _), name in zip(found, names, strict=True):
        subgraphs_of[name].add(i)
    names = [
        f"subgraph_{i}/{name}" if len(subgraphs_of[name]) > 1 else name
        for (i, _, _), name in zip(found, names, strict=True)
    ]
    repeats = Counter(names)
    weights = []
    for (i, t, b), name in zip(found, names, strict=True):
        if repeats[name] > 1:  # the same name twice in one subgraph
            name = f"{name}#{t.index}"
        span = b.span()
        assert span is not None
        offset, nbytes = span
        extra: dict[str, Any] = {"buffer": t.buffer, "subgraph": i, "tensor_index": t.index}
        if t.quant is not None:
            extra["quantization"] = t.quant.as_dict()
        if t.sparsity is not None:
            extra["sparse"] = True
        if b.external:
            extra["external"] = True
        if t.is_variable:
            extra["variable"] = True
        weights.append(
            Weight(
                name=name,
                dtype=t.dtype,
                shape=tuple(t.shape),
                nbytes=nbytes,
                location=f"buffer {t.buffer} @ {offset}",
                extra=extra,
                _loader=functools.partial(
                    _load_values,
                    model.path,
                    t.name or name,
                    t.dtype,
                    tuple(t.shape),
                    offset,
                    nbytes,
                    t.sparsity,
                ),
                _chunker=functools.partial(
                    _value_chunks,
                    model.path,
                    t.name or name,
                    t.dtype,
                    tuple(t.shape),
                    offset,
                    nbytes,
                    t.sparsity,
                ),
            )
        )
    return tuple(weights)


def _describe(model: _Model, problems: list[Finding]) -> ModelDescription:
    path = model.path
    warnings = []
    if not model.subgraphs:
        warnings.append(f"{path} has no subgraphs: LiteRT cannot run it")
    signatures, source = _signatures(model)
    metadata_names = [name for name, _ in model.metadata]
    if source == "subgraph":
        legacy = (
            " (its legacy 'signature_defs_metadata' entry is ignored by LiteRT)"
            if "signature_defs_metadata" in metadata_names
            else ""
        )
        warnings.append(
            f"{path} has no signatures{legacy}: subgraph 0's inputs and outputs are listed as 'subgraph_0'"
        )

    ops: Counter[str] = Counter()
    for sg in model.subgraphs:
        for op in sg.operators:
            name = _op_name(model, op.opcode_index)
            if name is not None:
                ops[name] += 1
    custom = sorted({oc.custom for oc in model.opcodes if oc.builtin == _CUSTOM and oc.custom})
    flex = [c for c in custom if c.startswith("Flex")]
    if flex:
        warnings.append(
            f"uses TensorFlow (Flex) ops {', '.join(flex)}: running it needs LiteRT's Flex delegate"
        )
    others = [c for c in custom if not c.startswith("Flex")]
    if others:
        warnings.append(f"uses custom ops {', '.join(others)}: running it needs their kernels registered")
    if model.external_buffers:
        warnings.append(
            f"keeps {model.external_buffers} tensors in external weight files, which tfmodelkit does not read"
        )

    errors = [f for f in problems if f.severity == "error" and f.subject != "model"]
    warnings.extend(f"{f.subject}: {f.message}" for f in errors[:_MAX_LISTED])
    if len(errors) > _MAX_LISTED:
        warnings.append(
            f"... and {len(errors) - _MAX_LISTED} more problems; `modelinspect check` lists them all"
        )

    other = {"schema_version": str(model.version)}
    if model.description is not None:
        other["description"] = model.description
    if model.min_runtime_version is not None:
        other["min_runtime_version"] = model.min_runtime_version
    metadata = {
        "subgraphs": len(model.subgraphs),
        "subgraph_names": [sg.name for sg in model.subgraphs],
        "tensors": len(model.subgraphs[0].tensors) if model.subgraphs else 0,
        "operators": sum(len(sg.operators) for sg in model.subgraphs),
        "buffers": len(model.buffers),
        "metadata_names": metadata_names,
        "signature_source": source,
        "custom_ops": custom,
        "flex_ops": flex,
    }
    return ModelDescription(
        format=FORMAT,
        path=str(path),
        producer=Producer(other=other),
        signatures=signatures,
        weights=_weights(model),
        ops=dict(sorted(ops.items())),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def read(path: Path, **options: Any) -> ModelDescription:
    """Describe the ``.tflite`` file at ``path`` (signatures, constants, op census)."""
    path = Path(path)
    model = _load_model(path)
    return _describe(model, _validate(model, deep=False))


def check(path: Path, **options: Any) -> CheckReport:
    """Integrity of a ``.tflite`` file: buffer bounds, indices, constant sizes, quantization."""
    path = Path(path)
    try:
        model = _load_model(path)
    except CorruptFileError as e:
        # The subject names the file; the message need not repeat its path.
        message = str(e).removeprefix(f"{path}: ")
        return CheckReport(str(path), FORMAT, {}, (Finding("error", path.name, message),))
    findings = _validate(model, deep=True)
    checked = {
        "subgraphs": len(model.subgraphs),
        "tensors": sum(len(sg.tensors) for sg in model.subgraphs),
        "buffers": len(model.buffers),
        "operators": sum(len(sg.operators) for sg in model.subgraphs),
    }
    return CheckReport(str(path), FORMAT, checked, tuple(findings))
