"""Validation of a parsed TFLite model, shared by ``read`` (its errors become warnings)
and ``check``: buffer bounds, indices, constant sizes, quantization, signatures.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from ..description import Finding
from ..dtypes import packed_nbytes
from ..errors import CorruptFileError, UnsupportedError
from .tflite_parse import Buffer, Model, Subgraph, Tensor
from .tflite_values import SUB_BYTE, element_count, holds_data, load_values

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


def _expected_nbytes(dtype: str, count: int) -> int | None:
    try:
        return packed_nbytes(dtype, count)
    except UnsupportedError:
        return None


def tensor_subject(i: int, t: Tensor) -> str:
    """How a finding names tensor ``t`` of subgraph ``i``."""
    return f"tensor {t.name or f'#{t.index}'!r} (subgraph {i}, index {t.index})"


def quant_problems(t: Tensor, constant: bool) -> list[tuple[str, str]]:
    """(severity, message) of each inconsistency in ``t``'s quantization parameters;
    ``constant``: ``t.shape`` is the real shape, so the per-channel scales must match it."""
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


def _constant_problem(model: Model, i: int, t: Tensor, b: Buffer, deep: bool) -> str | None:
    span = b.span()
    assert span is not None
    offset, nbytes = span
    count = element_count(t.shape)
    if count is None:
        return f"a constant cannot have a negative dimension {list(t.shape)}"
    if offset + nbytes > model.file_size:
        return None  # reported on the buffer
    if t.sparsity is None and t.dtype != "string":
        expected = _expected_nbytes(t.dtype, count)
        if expected is None:
            return None
        if nbytes != expected and not (t.dtype in SUB_BYTE and nbytes == count):
            return f"buffer {t.buffer} holds {nbytes} bytes, but {t.dtype}{list(t.shape)} needs {expected}"
        return None
    if deep:
        try:
            load_values(model.path, t.name, t.dtype, t.shape, offset, nbytes, t.sparsity)
        except (CorruptFileError, UnsupportedError) as e:
            return str(e).removeprefix(f"{model.path}: ")
    return None


#: ``add(severity, subject, message)`` records one finding.
_Add = Callable[[str, str, str], None]


def validate(model: Model, deep: bool) -> list[Finding]:
    """Every problem found in a parsed model, in file order; ``deep`` also decodes the
    constants whose size alone proves nothing (sparse and string ones)."""
    findings: list[Finding] = []

    def add(severity: str, subject: str, message: str) -> None:
        findings.append(Finding(severity, subject, message))

    _model_problems(model, add)
    for i, sg in enumerate(model.subgraphs):
        _subgraph_problems(model, i, sg, deep, add)
    _signature_problems(model, add)
    return findings


def _model_problems(model: Model, add: _Add) -> None:
    """No subgraphs, buffers past the end of the file, metadata naming no buffer."""
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


def _subgraph_problems(model: Model, i: int, sg: Subgraph, deep: bool, add: _Add) -> None:
    """Tensor and operator indices, constants, quantization and dangling inputs of subgraph ``i``."""
    size = model.file_size
    n = len(sg.tensors)
    for role, indices in (("input", sg.inputs), ("output", sg.outputs)):
        for ti in indices:
            if not -1 <= ti < n:
                add("error", f"subgraph {i}", f"{role} tensor index {ti} is out of range ({n} tensors)")
    constant = set()
    graph_inputs = set(sg.inputs)
    for tensor in sg.tensors:
        subject = tensor_subject(i, tensor)
        buf = model.buffer(tensor.buffer)
        if buf is None:
            add(
                "error",
                subject,
                f"buffer index {tensor.buffer} is out of range ({len(model.buffers)} buffers)",
            )
        elif holds_data(buf):
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
        for severity, message in quant_problems(tensor, tensor.index in constant):
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
            # A zero-element tensor has nothing to read (LiteRT allocates it empty).
            if 0 <= t < n and t not in available and not sg.tensors[t].is_variable:
                if element_count(sg.tensors[t].shape) != 0:
                    dangling[t] = None
    for t in dangling:
        add(
            "warning",
            tensor_subject(i, sg.tensors[t]),
            "is read by an operator but has no data, is no subgraph input and no operator produces it",
        )


def _signature_problems(model: Model, add: _Add) -> None:
    """Signature keys said twice, and signatures naming subgraphs or tensors that do not exist."""
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
