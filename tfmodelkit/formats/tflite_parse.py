"""The TFLite flatbuffer parsed into plain records, with LiteRT's generated schema.

The file is memory-mapped and walked once. The flatbuffers runtime verifies nothing, so
every vector length is checked against the file size before it is looped over, and every
runtime failure on damaged bytes becomes a :class:`CorruptFileError`.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..dtypes import tflite_dtype_name
from ..errors import CorruptFileError, NotFoundError

#: The file identifier at bytes 4-8 of every TFLite flatbuffer.
IDENTIFIER = b"TFL3"
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


def schema() -> Any:
    """LiteRT's generated flatbuffer schema module."""
    # Imported on first use: the generated module is large (~0.1 s).
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


@functools.lru_cache(maxsize=1)
def builtin_names() -> dict[int, str]:
    """Builtin operator code -> its name in the schema (``CONV_2D``)."""
    names: dict[int, str] = {}
    for key, value in vars(schema().BuiltinOperator).items():
        if not key.startswith("_") and isinstance(value, int):
            names.setdefault(value, key)
    return names


# ----------------------------------------------------------------------------------------
# Plain records of what the flatbuffer holds


@dataclass(frozen=True)
class Quant:
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
class Dim:
    dense: bool
    dense_size: int
    segments: np.ndarray | None = None
    indices: np.ndarray | None = None


@dataclass(frozen=True)
class Sparsity:
    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dims: tuple[Dim, ...]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    buffer: int
    quant: Quant | None
    sparsity: Sparsity | None
    is_variable: bool


@dataclass(frozen=True)
class Operator:
    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    large_options: tuple[int, int]


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]


@dataclass(frozen=True)
class Buffer:
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
class OpCode:
    builtin: int
    custom: str | None
    version: int


@dataclass(frozen=True)
class SigDef:
    key: str
    subgraph_index: int
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Model:
    path: Path
    file_size: int
    version: int
    description: str | None
    opcodes: tuple[OpCode, ...]
    subgraphs: tuple[Subgraph, ...]
    buffers: tuple[Buffer, ...]
    metadata: tuple[tuple[str, int], ...]
    signature_defs: tuple[SigDef, ...]
    external_buffers: int
    min_runtime_version: str | None

    def buffer(self, index: int) -> Buffer | None:
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

    def run(self) -> Model:
        try:
            return self._model()
        except CorruptFileError:
            raise
        except (struct.error, IndexError):
            self.fail("an offset points outside the file")
        except _PARSE_ERRORS as e:
            self.fail(f"{type(e).__name__}: {str(e)[:120]}")

    def _model(self) -> Model:
        s = schema()
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
                OpCode(
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
            buffers.append(Buffer(j, start, n, b.Offset(), b.Size()))

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
                SigDef(
                    _text(sd.SignatureKey()),
                    sd.SubgraphIndex(),
                    tuple((_text(x.Name()), x.TensorIndex()) for x in ins),
                    tuple((_text(x.Name()), x.TensorIndex()) for x in outs),
                )
            )

        self.where = "external buffers"
        external = self.tables(m.ExternalBuffersLength(), "external_buffers")
        return Model(
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

    def _subgraph(self, sg: Any, i: int) -> Subgraph:
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
                Operator(
                    op.OpcodeIndex(),
                    self.numbers(op.InputsLength, op.InputsAsNumpy, 4, "inputs"),
                    self.numbers(op.OutputsLength, op.OutputsAsNumpy, 4, "outputs"),
                    self.numbers(op.IntermediatesLength, op.IntermediatesAsNumpy, 4, "intermediates"),
                    (op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()),
                )
            )
        self.where = f"subgraph {i}"
        return Subgraph(_text(sg.Name()), tuple(tensors), inputs, outputs, tuple(operators))

    def _tensor(self, t: Any, i: int, k: int) -> Tensor:
        self.where = f"subgraph {i}, tensor {k}"
        shape = self.numbers(t.ShapeLength, t.ShapeAsNumpy, 4, "shape")
        signature = None
        if not t.ShapeSignatureIsNone():
            signature = self.numbers(t.ShapeSignatureLength, t.ShapeSignatureAsNumpy, 4, "shape_signature")
        q = t.Quantization()
        sp = t.Sparsity()
        return Tensor(
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

    def _quant(self, q: Any) -> Quant | None:
        scale = self.numbers(q.ScaleLength, q.ScaleAsNumpy, 4, "quantization scale")
        zero_point = self.numbers(q.ZeroPointLength, q.ZeroPointAsNumpy, 8, "quantization zero_point")
        lo = self.numbers(q.MinLength, q.MinAsNumpy, 4, "quantization min")
        hi = self.numbers(q.MaxLength, q.MaxAsNumpy, 4, "quantization max")
        details = q.DetailsType()
        if not (scale or zero_point or lo or hi or details):
            return None
        return Quant(scale, zero_point, q.QuantizedDimension(), lo, hi, details)

    def _sparsity(self, sp: Any) -> Sparsity:
        order = self.numbers(sp.TraversalOrderLength, sp.TraversalOrderAsNumpy, 4, "traversal_order")
        block_map = self.numbers(sp.BlockMapLength, sp.BlockMapAsNumpy, 4, "block_map")
        dims = []
        for j in range(self.tables(sp.DimMetadataLength(), "dim_metadata")):
            d = sp.DimMetadata(j)
            if d.Format() == schema().DimensionType.DENSE:
                dims.append(Dim(True, d.DenseSize()))
            else:
                segments = self._index_vector(d.ArraySegmentsType(), d.ArraySegments())
                indices = self._index_vector(d.ArrayIndicesType(), d.ArrayIndices())
                dims.append(Dim(False, d.DenseSize(), segments, indices))
        return Sparsity(order, block_map, tuple(dims))

    def _index_vector(self, kind: int, table: Any) -> np.ndarray | None:
        s = schema()
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

    def _min_runtime(self, metadata: list[tuple[str, int]], buffers: list[Buffer]) -> str | None:
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


def load_model(path: Path) -> Model:
    """The records of the ``.tflite`` file at ``path`` (the map is closed before returning)."""
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
        if head[4:8] != IDENTIFIER:
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
