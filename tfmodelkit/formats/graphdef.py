"""Frozen GraphDefs: ``graph.pb`` (binary ``GraphDef``) and ``graph.pbtxt`` (text format).

A frozen graph holds its weights as ``Const`` nodes (values in the ``value`` attribute's
TensorProto, decoded only when asked for) and has no signature: one is inferred, with the
``Placeholder`` nodes as inputs and the tensors no node consumes as outputs.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..description import (
    ROLE_MODEL,
    ROLE_OTHER,
    CheckReport,
    Finding,
    ModelDescription,
    Producer,
    Signature,
    TensorSpec,
    Weight,
)
from ..dtypes import itemsize, tf_dtype_name
from ..errors import (
    CorruptFileError,
    FormatError,
    NotFoundError,
    TFModelKitError,
    UnsupportedError,
    UserError,
)
from .tensor_proto import element_count, to_array

if TYPE_CHECKING:
    import numpy as np

#: Graph files above this are refused before parsing (protobuf's own limit is 2 GiB).
MAX_PROTO_BYTES = 2 << 30
#: Ops whose outputs are not model outputs even when nothing consumes them.
_NOT_OUTPUTS = frozenset(
    {"NoOp", "Const", "Placeholder", "PlaceholderWithDefault", "Assign", "AssignVariableOp", "SaveV2", "Save",
     "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints", "VariableV2", "Variable",
     "VarHandleOp", "VarIsInitializedOp", "ShardedFilename", "StringJoin", "Assert", "ReadVariableOp",
     "AssignAddVariableOp", "AssignSubVariableOp", "AssignAdd", "AssignSub", "IsVariableInitialized"}
)  # fmt: skip
INFERRED_KEY = "serving_default"


#: First bytes a binary message can open with: the tag of a length-delimited field 1-7
#: (GraphDef: node 1, library 2, versions 4; MetaGraphDef: meta_info_def 1 ... object_graph_def 7).
_FIRST_TAGS = frozenset({0x0A, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A})


def parse(path: Path, message: Any, what: str) -> Any:
    """``message`` parsed from ``path``: text format for ``.pbtxt``, else binary.

    A file that does not parse is damaged (:class:`CorruptFileError`: read and found damaged,
    exit 1 under ``check``) when it opens as such a message does (a field tag, or for text a
    field name followed by ``:`` or ``{``), and otherwise not one at all (:class:`FormatError`,
    exit 2)."""
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_PROTO_BYTES:
        raise UnsupportedError(f"{path}: {size} bytes is over protobuf's 2 GiB limit")
    if path.suffix.lower() == ".pbtxt":
        try:
            text_format.Parse(
                path.read_text(errors="replace"),
                message,
                allow_unknown_field=True,
                allow_unknown_extension=True,
            )
        except (text_format.ParseError, RecursionError, ValueError) as e:
            kind = CorruptFileError if _opens_like_text(path) else FormatError
            raise kind(f"{path}: not a valid text-format {what} ({e})") from None
        return message
    data = path.read_bytes()
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as e:
        kind = CorruptFileError if data[:1] and data[0] in _FIRST_TAGS else FormatError
        raise kind(f"{path}: not a valid {what} protobuf ({e})") from None
    return message


def _opens_like_text(path: Path) -> bool:
    """The first line that is not a comment starts with ``name:`` or ``name {``."""
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    return re.match(r"\s*(#.*\n\s*)*[A-Za-z_][A-Za-z0-9_]*\s*[:{]", head) is not None


def load(path: Path) -> Any:
    from .protos import tfmodelkit_pb2 as pb

    return parse(path, pb.GraphDef(), "GraphDef")


def op_census(graph: Any) -> Counter[str]:
    """``NodeDef.op`` counted over the graph and every function body of its library."""
    counts: Counter[str] = Counter(node.op for node in graph.node)
    for fn in graph.library.function:
        counts.update(node.op for node in fn.node_def)
    return counts


def shape_of(proto: Any) -> tuple[int | None, ...] | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def node_dtype(node: Any) -> str:
    for key in ("dtype", "T", "out_type", "DstT"):
        if key in node.attr and node.attr[key].WhichOneof("value") == "type":
            return tf_dtype_name(node.attr[key].type)
    return "unknown"


def node_shape(node: Any) -> tuple[int | None, ...] | None:
    if "shape" in node.attr and node.attr["shape"].WhichOneof("value") == "shape":
        return shape_of(node.attr["shape"].shape)
    return None


def tensor_name(ref: str) -> str:
    """``name`` / ``name:k`` / ``^name`` -> ``name:k`` (``:0`` by default)."""
    ref = ref.lstrip("^")
    return ref if ":" in ref else f"{ref}:0"


def tensor_names(value: str | Sequence[str] | None) -> list[str]:
    """``"a,b:1"`` or ``["a", "b:1"]`` -> ``["a:0", "b:1"]`` (the ``--input-tensors`` spelling)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        name = item.strip()
        if not name:
            continue
        if ":" in name and not name.rsplit(":", 1)[1].isdigit():
            raise UserError(f"tensor name {name!r}: write NAME or NAME:INDEX (an integer output index)")
        out.append(name if ":" in name else f"{name}:0")
    return out


def key_of(tensor: str) -> str:
    """The signature key for a named tensor: its op name, with ``_k`` for outputs other than 0."""
    op, _, index = tensor.rpartition(":")
    return op if index == "0" else f"{op}_{index}"


def producer_of(graph: Any) -> int:
    return int(graph.versions.producer) if graph.HasField("versions") else 0


def placeholder_shape(node: Any, producer: int) -> tuple[int | None, ...] | None:
    """A Placeholder's shape as TensorFlow takes it. TF quirk: graphs of producer version <= 21
    cannot tell a scalar ``shape`` attribute from an unknown shape, and TF's shape function
    takes it as unknown (``Placeholder`` in core/ops/array_ops.cc); TF 0.x/1.0 graphs write it so."""
    shape = node_shape(node)
    return None if producer <= 21 and shape == () else shape


def inferred_signature(graph: Any) -> Signature:
    """Placeholders in; tensors of non-bookkeeping nodes that no node consumes out."""
    consumed: set[str] = set()
    for node in graph.node:
        for ref in node.input:
            if not ref.startswith("^"):
                consumed.add(tensor_name(ref))
    producer = producer_of(graph)
    inputs = [
        TensorSpec(n.name, node_dtype(n), placeholder_shape(n, producer), tensor=f"{n.name}:0")
        for n in graph.node
        if n.op == "Placeholder"
    ]
    outputs = [
        TensorSpec(n.name, node_dtype(n), None, tensor=f"{n.name}:0")
        for n in graph.node
        if n.op not in _NOT_OUTPUTS
        and f"{n.name}:0" not in consumed
        and not n.name.startswith(("save/", "init"))
    ]
    return Signature(INFERRED_KEY, tuple(inputs), tuple(outputs), method="inferred from the graph")


def named_signature(
    graph: Any,
    where: str,
    input_tensors: str | Sequence[str] | None,
    output_tensors: str | Sequence[str] | None,
    inferred: Signature | None = None,
) -> Signature:
    """``serving_default`` feeding ``input_tensors`` and fetching ``output_tensors`` (``NAME[:k]``),
    keyed as ``graph-to-savedmodel`` keys them (op name, ``_k`` for outputs other than 0); a side
    not given is the ``inferred`` signature's. Every name must be a node of the graph."""
    nodes = {n.name: n for n in graph.node}
    producer = producer_of(graph)

    def spec(tensor: str, flag: str) -> TensorSpec:
        op, _, index = tensor.rpartition(":")
        node = nodes.get(op)
        if node is None:
            close = difflib.get_close_matches(op, list(nodes), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise NotFoundError(f"{where}: {flag} {tensor}: no node {op!r} in the graph{hint}")
        if index == "0" and node.op == "Placeholder":
            shape = placeholder_shape(node, producer)
        else:
            shape = None
        return TensorSpec(key_of(tensor), node_dtype(node), shape, tensor=tensor)

    base = inferred or inferred_signature(graph)
    ins, outs = tensor_names(input_tensors), tensor_names(output_tensors)
    inputs = tuple(spec(t, "--input-tensors") for t in ins) if ins else base.inputs
    outputs = tuple(spec(t, "--output-tensors") for t in outs) if outs else base.outputs
    return Signature(INFERRED_KEY, inputs, outputs, method="named by the caller (--input-tensors/--output-tensors)")


def const_tensor(node: Any) -> Any | None:
    value = node.attr.get("value") if "value" in node.attr else None
    if value is None or value.WhichOneof("value") != "tensor":
        return None
    return value.tensor


def const_weights(graph: Any, where: str) -> tuple[Weight, ...]:
    """Every ``Const`` node of the graph as a weight; float ones are the model's, the rest
    (shapes, axes, strings) bookkeeping."""
    weights = []
    for node in graph.node:
        if node.op != "Const":
            continue
        tensor = const_tensor(node)
        if tensor is None:
            continue
        dtype = tf_dtype_name(tensor.dtype)
        shape = shape_of(tensor.tensor_shape)
        if shape is None or any(d is None for d in shape):
            continue
        dims = tuple(int(d) for d in shape if d is not None)

        def loader(
            t: Any = tensor, d: str = dtype, s: tuple[int, ...] = dims, n: str = node.name
        ) -> np.ndarray:
            try:
                return to_array(t, d, s, f"{where}: {n}")
            except (ValueError, OverflowError, MemoryError) as e:
                raise CorruptFileError(f"{where}: {n}: damaged constant ({e})") from None

        size = itemsize(dtype)
        nbytes = element_count(dims) * size if size else sum(len(v) for v in tensor.string_val)
        floating = dtype.startswith(("float", "bfloat", "complex"))
        weights.append(
            Weight(
                name=node.name,
                dtype=dtype,
                shape=dims,
                nbytes=nbytes,
                location=f"Const node {node.name}",
                role=ROLE_MODEL if floating and dims else ROLE_OTHER,
                _loader=loader,
            )
        )
    return tuple(weights)


def describe_graph(
    graph: Any,
    path: str,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
) -> ModelDescription:
    ops = op_census(graph)
    producer = {"graph_producer": str(graph.versions.producer)} if graph.HasField("versions") else {}
    defaults = [n.name for n in graph.node if n.op == "PlaceholderWithDefault"]
    metadata: dict[str, Any] = {
        "nodes": len(graph.node),
        "functions": len(graph.library.function),
        "signature": "inferred: Placeholder nodes in, unconsumed tensors out",
    }
    signature = inferred_signature(graph)
    if input_tensors or output_tensors:
        signature = named_signature(graph, path, input_tensors, output_tensors, signature)
        metadata["signature"] = "named by the caller (--input-tensors/--output-tensors)"
    if defaults:
        metadata["inputs_with_defaults"] = defaults
    variables = [n.name for n in graph.node if n.op in ("VariableV2", "Variable", "VarHandleOp")]
    warnings = []
    if variables:
        warnings.append(
            f"{len(variables)} variable node(s) remain (not a frozen graph): their values are not here"
        )
    return ModelDescription(
        format="graphdef",
        path=path,
        producer=Producer(other=producer),
        signatures=(signature,),
        weights=const_weights(graph, path),
        ops=dict(sorted(ops.items())),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def read(
    path: Path,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    **options: Any,
) -> ModelDescription:
    """The graph; ``input_tensors``/``output_tensors`` name its signature instead of inferring it."""
    graph = load(Path(path))
    try:
        return describe_graph(graph, str(path), input_tensors, output_tensors)
    except (ValueError, KeyError, IndexError, OverflowError) as e:
        raise CorruptFileError(f"{path}: damaged GraphDef ({type(e).__name__}: {e})") from None


def graph_findings(graph: Any, where: str) -> tuple[list[Finding], int]:
    """Dangling input references and constants whose values do not decode; (findings, consts)."""
    findings = []
    names = {n.name for n in graph.node}
    for node in graph.node:
        for ref in node.input:
            src = ref.lstrip("^").split(":")[0]
            if src not in names:
                findings.append(Finding("error", node.name, f"input {ref!r} names no node of the graph"))
    weights = const_weights(graph, where)
    for w in weights:
        try:
            w.read()
        except TFModelKitError as e:
            findings.append(Finding("error", w.name, str(e)))
    return findings, len(weights)


def check(path: Path, **options: Any) -> CheckReport:
    """The graph parses, every input names a node, every constant's value decodes."""
    try:
        graph = load(Path(path))
    except CorruptFileError as e:  # damaged: exit 1; not a GraphDef at all (FormatError): exit 2
        return CheckReport(str(path), "graphdef", {}, (Finding("error", "graph", str(e)),))
    findings, consts = graph_findings(graph, str(path))
    return CheckReport(
        str(path), "graphdef", {"nodes": len(graph.node), "constants": consts}, tuple(findings)
    )
