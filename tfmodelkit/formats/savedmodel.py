"""SavedModel folders: ``saved_model.pb`` (or ``.pbtxt``), ``variables/``, ``assets/``.

Parsed with the project's own proto subset; no TensorFlow. A TF Serving base folder
(``<base>/<integer version>/``) resolves to its highest version.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..description import (
    Asset,
    CheckReport,
    Finding,
    Function,
    Layer,
    ModelDescription,
    Producer,
    Signature,
    TensorSpec,
)
from ..dtypes import tf_dtype_name
from ..errors import CorruptFileError, FormatError, NotFoundError, TFModelKitError, UnsupportedError
from . import checkpoint

INIT_OP_KEY = "__saved_model_init_op"
#: saved_model.pb files above this are refused before parsing (protobuf's own limit is 2 GiB).
MAX_PROTO_BYTES = 2 << 30


@dataclass(frozen=True)
class Resolved:
    folder: Path
    notes: tuple[str, ...] = ()


def _has_model(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt", "saved_model.cpb"))


def resolve(path: str | os.PathLike[str]) -> Resolved:
    """The SavedModel folder meant by ``path`` (a folder, its saved_model.pb, a serving base)."""
    p = Path(path)
    if p.is_file() and p.name.startswith("saved_model."):
        p = p.parent
    if not p.is_dir():
        raise NotFoundError(f"{path}: no such SavedModel folder")
    if _has_model(p):
        return Resolved(p)
    versions = sorted(
        (int(c.name), c) for c in p.iterdir() if c.is_dir() and c.name.isdigit() and _has_model(c)
    )
    if versions:
        number, folder = versions[-1]
        listed = ", ".join(str(v) for v, _ in versions)
        note = f"TF Serving base folder: using its highest version {folder.name} (versions: {listed})"
        return Resolved(folder, (note,))
    raise FormatError(f"{p}: no saved_model.pb or saved_model.pbtxt in this folder")


def load_proto(folder: Path) -> Any:
    """The parsed ``SavedModel`` message of a folder."""
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    if (folder / "saved_model.cpb").is_file() and not (folder / "saved_model.pb").is_file():
        raise UnsupportedError(
            f"{folder}: chunked SavedModel (saved_model.cpb, written for models over 2 GB) is not "
            "supported; re-export the model without chunking or inspect its variables/ checkpoint"
        )
    msg = pb.SavedModel()
    binary = folder / "saved_model.pb"
    if binary.is_file():
        size = binary.stat().st_size
        if size > MAX_PROTO_BYTES:
            raise UnsupportedError(f"{binary}: {size} bytes is over protobuf's 2 GiB limit")
        data = binary.read_bytes()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as e:
            if not _opens_like_savedmodel(data):
                raise FormatError(f"{binary}: not a SavedModel protobuf ({e})") from None
            raise CorruptFileError(f"{binary}: damaged SavedModel protobuf ({e}){_truncation(data)}") from None
        return msg
    text = folder / "saved_model.pbtxt"
    content = text.read_text(errors="replace")
    try:
        text_format.Parse(content, msg, allow_unknown_field=True, allow_unknown_extension=True)
    except (text_format.ParseError, RecursionError, ValueError) as e:
        if not re.match(r"\s*(#.*\n\s*)*(saved_model_schema_version|meta_graphs)\b", content):
            raise FormatError(f"{text}: not a text-format SavedModel ({e})") from None
        raise CorruptFileError(f"{text}: damaged text-format SavedModel ({e})") from None
    return msg


def _opens_like_savedmodel(data: bytes) -> bool:
    """Whether ``data`` starts as TensorFlow writes a SavedModel: ``saved_model_schema_version
    = 1`` (bytes 08 01), or straight away a ``meta_graphs`` field (tag 0x12). Garbage, or another
    file under the name, does not; a damaged or cut-short SavedModel does."""
    return data.startswith(b"\x08\x01\x12") or data.startswith(b"\x12")


def _truncation(data: bytes) -> str:
    """``"; the file is truncated ..."`` when a top-level field runs past the end of ``data``."""
    from .wire import LENGTH_DELIMITED, VARINT, read_varint

    pos = 0
    try:
        while pos < len(data):
            key, pos = read_varint(data, pos)
            if key & 7 == VARINT:
                _, pos = read_varint(data, pos)
            elif key & 7 == LENGTH_DELIMITED:
                n, pos = read_varint(data, pos)
                if pos + n > len(data):
                    return f"; the file is truncated: field {key >> 3} needs {pos + n} bytes, the file has {len(data)}"
                pos += n
            else:
                return ""
    except CorruptFileError:
        return f"; the file is truncated ({len(data)} bytes)"
    return ""


def _shape(proto: Any) -> tuple[int | None, ...] | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def _tensor_info(key: str, info: Any) -> TensorSpec:
    encoding = info.WhichOneof("encoding")
    if encoding == "coo_sparse":
        tensor = f"sparse({info.coo_sparse.values_tensor_name})"
    elif encoding == "name":
        tensor = info.name
    else:
        tensor = None
    # An absent tensor_shape is the default message, i.e. a scalar; TensorFlow reads it so too.
    shape = _shape(info.tensor_shape)
    return TensorSpec(name=key, dtype=tf_dtype_name(info.dtype), shape=shape, tensor=tensor)


def op_census(meta_graph: Any) -> Counter[str]:
    """Count ``NodeDef.op`` over the graph and every function body in its library."""
    counts: Counter[str] = Counter(node.op for node in meta_graph.graph_def.node)
    for fn in meta_graph.graph_def.library.function:
        counts.update(node.op for node in fn.node_def)
    return counts


def graph_problems(meta_graph: Any, limit: int = 20) -> list[tuple[str, str]]:
    """(subject, problem) for constants TensorFlow refuses to load: a ``Const`` node
    without a ``value`` attribute, or whose value has an unknown or negative dimension."""
    found: list[tuple[str, str]] = []
    library = meta_graph.graph_def.library.function
    bodies = [("", meta_graph.graph_def.node)]
    bodies += [(f"function {f.signature.name}: ", f.node_def) for f in library]
    for where, nodes in bodies:
        for node in nodes:
            if node.op != "Const":
                continue
            subject = f"{where}node {node.name}"
            if "value" not in node.attr or node.attr["value"].WhichOneof("value") != "tensor":
                have = ", ".join(sorted(node.attr)) or "none"
                found.append((subject, f"Const without a tensor 'value' attribute (attributes: {have})"))
            else:
                shape = node.attr["value"].tensor.tensor_shape
                dims = [int(d.size) for d in shape.dim]
                if shape.unknown_rank or any(d < 0 for d in dims):
                    shown = "unknown rank" if shape.unknown_rank else f"shape {dims}"
                    problem = f"Const whose value has {shown}; a constant's shape must be known"
                    found.append((subject, problem))
            if len(found) > limit:
                return found
    return found


def _structured_specs(value: Any, out: list[TensorSpec], prefix: str = "") -> None:
    """Flatten the TensorSpecs inside a StructuredValue (an input signature)."""
    kind = value.WhichOneof("kind")
    if kind == "tensor_spec_value":
        spec = value.tensor_spec_value
        name = spec.name or prefix or f"arg{len(out)}"
        shape = _shape(spec.shape) if spec.HasField("shape") else None
        out.append(TensorSpec(name=name, dtype=tf_dtype_name(spec.dtype), shape=shape))
    elif kind in ("list_value", "tuple_value"):
        items = value.list_value.values if kind == "list_value" else value.tuple_value.values
        for i, item in enumerate(items):
            _structured_specs(item, out, f"{prefix}[{i}]" if prefix else f"arg{i}")
    elif kind == "dict_value":
        for key in sorted(value.dict_value.fields):
            _structured_specs(value.dict_value.fields[key], out, key)
    elif kind == "named_tuple_value":
        for pair in value.named_tuple_value.values:
            _structured_specs(pair.value, out, pair.key)


def node_paths(graph: Any) -> dict[int, str]:
    """Breadth-first object paths (``root.serve``) of a SavedObjectGraph's nodes."""
    paths = {0: "root"} if len(graph.nodes) else {}
    queue = [0] if paths else []
    head = 0
    while head < len(queue):
        nid = queue[head]
        head += 1
        for child in graph.nodes[nid].children:
            cid = child.node_id
            if 0 <= cid < len(graph.nodes) and cid not in paths:
                paths[cid] = f"{paths[nid]}.{child.local_name}"
                queue.append(cid)
    return paths


def functions(meta_graph: Any) -> tuple[Function, ...]:
    """The object graph's functions with the input signature of each concrete function."""
    graph = meta_graph.object_graph_def
    paths = node_paths(graph)
    out = []
    for nid, node in enumerate(graph.nodes):
        kind = node.WhichOneof("kind")
        if kind == "function":
            names = list(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names = [node.bare_concrete_function.concrete_function_name]
        else:
            continue
        for name in names:
            specs: list[TensorSpec] = []
            concrete = graph.concrete_functions.get(name)
            if concrete is not None and concrete.HasField("canonicalized_input_signature"):
                sig = concrete.canonicalized_input_signature
                # (args, kwargs): args is a tuple whose items are the positional inputs.
                if sig.WhichOneof("kind") == "tuple_value" and len(sig.tuple_value.values) == 2:
                    _structured_specs(sig.tuple_value.values[0], specs)
                    _structured_specs(sig.tuple_value.values[1], specs)
                else:
                    _structured_specs(sig, specs)
            out.append(Function(name=name, inputs=tuple(specs), path=paths.get(nid)))
    return tuple(out)


def _keras_nodes(folder: Path, meta_graph: Any, warnings: list[str]) -> list[tuple[str, str, str]]:
    """(object path, identifier, metadata JSON) of the Keras objects in a SavedModel.

    tf.keras >= 2.5 writes them to ``keras_metadata.pb``; older versions kept the same JSON
    in each ``SavedUserObject.metadata`` of the object graph.
    """
    path = folder / "keras_metadata.pb"
    if path.is_file():
        from google.protobuf.message import DecodeError

        from .protos import tfmodelkit_pb2 as pb

        try:
            meta = pb.KerasMetadata.FromString(path.read_bytes())
        except DecodeError:
            warnings.append(f"{path.name} is damaged; Keras architecture not shown")
            return []
        return [(n.node_path, n.identifier, n.metadata) for n in meta.nodes]
    graph = meta_graph.object_graph_def
    paths = node_paths(graph)
    out = []
    for nid, node in enumerate(graph.nodes):
        if node.WhichOneof("kind") == "user_object" and node.user_object.identifier.startswith("_tf_keras"):
            if node.user_object.metadata and nid in paths:
                out.append((paths[nid], node.user_object.identifier, node.user_object.metadata))
    return out


def _keras_layers(folder: Path, meta_graph: Any, warnings: list[str]) -> tuple[tuple[Layer, ...], dict[str, Any]]:
    """Layers and producer facts from the Keras metadata of a tf.keras 2 SavedModel."""
    layers = []
    facts: dict[str, Any] = {}
    for node_path, identifier, metadata in _keras_nodes(folder, meta_graph, warnings):
        try:
            info = json.loads(metadata) if metadata else {}
        except ValueError:
            continue
        if not isinstance(info, dict):
            continue
        if node_path == "root":
            facts["class_name"] = info.get("class_name")
            facts["keras_version"] = info.get("keras_version")
            continue
        segments = node_path.split(".")
        # A layer is reachable as root.layer-N and root.layer_with_weights-N; each node is
        # listed once under whichever path reached it first.
        if not all(s.startswith(("layer-", "layer_with_weights-")) for s in segments[1:]):
            continue
        raw = info.get("config")
        config: dict[str, Any] = raw if isinstance(raw, dict) else {}
        layers.append(
            Layer(
                name=str(info.get("name", segments[-1])),
                class_name=str(info.get("class_name", identifier)),
                config=config,
                depth=len(segments) - 2,
            )
        )
    return tuple(layers), facts


def _fingerprint(folder: Path) -> dict[str, Any] | None:
    path = folder / "fingerprint.pb"
    if not path.is_file():
        return None
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    try:
        fp = pb.FingerprintDef.FromString(path.read_bytes())
    except DecodeError:
        return {"error": "fingerprint.pb is damaged"}
    return {
        "saved_model_checksum": fp.saved_model_checksum,
        "graph_def_program_hash": fp.graph_def_program_hash,
        "signature_def_hash": fp.signature_def_hash,
        "saved_object_graph_hash": fp.saved_object_graph_hash,
        "checkpoint_hash": fp.checkpoint_hash,
        **({"uuid": fp.uuid} if fp.uuid else {}),
    }


def _assets(folder: Path, meta_graph: Any) -> tuple[Asset, ...]:
    out = []
    seen = set()
    for sub in ("assets", "assets.extra"):
        base = folder / sub
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*")):
            if f.is_file():
                rel = f.relative_to(folder).as_posix()
                seen.add(rel)
                out.append(Asset(name=f.relative_to(base).as_posix(), path=rel, nbytes=f.stat().st_size))
    for asset_def in meta_graph.asset_file_def if meta_graph is not None else ():
        rel = f"assets/{asset_def.filename}"
        if rel not in seen:
            out.append(Asset(name=asset_def.filename, path=rel, nbytes=None))
    return tuple(out)


def select_meta_graph(model: Any, tags: str | None) -> Any:
    """The meta graph with tag set ``tags`` ("serve" or "serve,gpu"); default: "serve" or the first."""
    return model.meta_graphs[selected_index(model, tags)]


def selected_index(model: Any, tags: str | None) -> int:
    """The position of :func:`select_meta_graph`'s choice among the model's meta graphs."""
    graphs = list(model.meta_graphs)
    if not graphs:
        raise CorruptFileError("the SavedModel holds no meta graph")
    if tags:
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        for i, mg in enumerate(graphs):
            if set(mg.meta_info_def.tags) == wanted:
                return i
        have = "; ".join(",".join(mg.meta_info_def.tags) for mg in graphs)
        raise NotFoundError(f"no meta graph with tag set {','.join(sorted(wanted))} (tag sets: {have})")
    for i, mg in enumerate(graphs):
        if list(mg.meta_info_def.tags) == ["serve"]:
            return i
    return 0


def read(path: Path, tags: str | None = None, **options: Any) -> ModelDescription:
    resolved = resolve(path)
    folder = resolved.folder
    try:
        return _describe(folder, resolved.notes, tags)
    except TFModelKitError as e:
        if str(folder) in str(e):
            raise
        raise type(e)(f"{folder}: {e}") from None
    except (ValueError, IndexError, KeyError, OverflowError, RecursionError) as e:
        raise CorruptFileError(f"{folder}: damaged SavedModel ({type(e).__name__}: {e})") from None


def _describe(folder: Path, notes: tuple[str, ...], tags: str | None) -> ModelDescription:
    model = load_proto(folder)
    chosen = selected_index(model, tags)
    selected = model.meta_graphs[chosen]
    warnings = list(notes)
    signatures = []
    meta_graphs = []
    for i, mg in enumerate(model.meta_graphs):
        mg_tags = tuple(mg.meta_info_def.tags)
        # Only the chosen meta graph's signatures: the others belong to other tag sets (a
        # `train` graph's signatures are not served), listed by name in metadata.meta_graphs.
        for key in sorted(mg.signature_def) if i == chosen else ():
            sd = mg.signature_def[key]
            signatures.append(
                Signature(
                    key=key,
                    inputs=tuple(_tensor_info(k, sd.inputs[k]) for k in sorted(sd.inputs)),
                    outputs=tuple(_tensor_info(k, sd.outputs[k]) for k in sorted(sd.outputs)),
                    tags=mg_tags,
                    method=sd.method_name or None,
                    hidden=key == INIT_OP_KEY,
                )
            )
        meta_graphs.append(
            {
                "tags": list(mg_tags),
                "tensorflow_version": mg.meta_info_def.tensorflow_version or None,
                "signatures": sorted(k for k in mg.signature_def if k != INIT_OP_KEY),
                "nodes": len(mg.graph_def.node),
                "functions": len(mg.graph_def.library.function),
                "object_graph_nodes": len(mg.object_graph_def.nodes),
            }
        )
    weights: tuple[Any, ...] = ()
    variables_meta: dict[str, Any] = {}
    prefix = folder / "variables" / "variables"
    if Path(str(prefix) + ".index").is_file():
        index = checkpoint.read_index(prefix)
        var_desc = checkpoint.describe_index(index, str(prefix))
        weights = var_desc.weights
        warnings.extend(var_desc.warnings)
        variables_meta = {"variables_shards": index.num_shards}
    elif (folder / "variables").is_dir() and any((folder / "variables").iterdir()):
        warnings.append("variables/ holds no variables.index: variable values are missing")
    layers, keras_facts = _keras_layers(folder, selected, warnings)
    info = selected.meta_info_def
    producer_other = {}
    if info.tensorflow_git_version:
        producer_other["tensorflow_git_version"] = info.tensorflow_git_version
    if selected.graph_def.HasField("versions"):
        producer_other["graph_producer"] = str(selected.graph_def.versions.producer)
    metadata: dict[str, Any] = {
        "schema_version": model.saved_model_schema_version,
        "meta_graphs": meta_graphs,
        "tag_sets": [",".join(mg.meta_info_def.tags) for mg in model.meta_graphs],
        "selected_tags": list(info.tags),
        **variables_meta,
    }
    if keras_facts.get("class_name"):
        metadata["class_name"] = keras_facts["class_name"]
    fp = _fingerprint(folder)
    if fp is not None:
        metadata["fingerprint"] = fp
    if (folder / "saved_model.pbtxt").is_file() and not (folder / "saved_model.pb").is_file():
        metadata["encoding"] = "text (saved_model.pbtxt)"
    ops = op_census(selected)
    problems = graph_problems(selected)
    for subject, problem in problems[:20]:
        warnings.append(f"{subject}: {problem}; TensorFlow cannot load this graph")
    if len(problems) > 20:
        warnings.append("... and more damaged constants; `modelinspect check` lists them")
    return ModelDescription(
        format="savedmodel",
        path=str(folder),
        producer=Producer(
            tensorflow=info.tensorflow_version or None,
            keras=keras_facts.get("keras_version"),
            other=producer_other,
        ),
        signatures=tuple(signatures),
        weights=weights,
        layers=layers,
        ops=dict(sorted(ops.items())),
        functions=functions(selected),
        assets=_assets(folder, selected),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def check(path: Path, **options: Any) -> CheckReport:
    """The graph parses, referenced assets exist, and the variables checkpoint is intact."""
    resolved = resolve(path)
    folder = resolved.folder
    findings = [Finding("warning", "folder", n) for n in resolved.notes]
    checked: dict[str, int] = {}
    try:
        model = load_proto(folder)
    except CorruptFileError as e:  # damaged: exit 1; not a SavedModel at all, or unsupported: exit 2
        return CheckReport(str(folder), "savedmodel", {}, (Finding("error", "saved_model.pb", str(e)),))
    checked["meta_graphs"] = len(model.meta_graphs)
    if not model.meta_graphs:
        findings.append(Finding("error", "saved_model.pb", "holds no meta graph"))
    for mg in model.meta_graphs:
        for subject, problem in graph_problems(mg, limit=1000):
            findings.append(Finding("error", subject, f"{problem}; TensorFlow cannot load this graph"))
        for asset_def in mg.asset_file_def:
            if not (folder / "assets" / asset_def.filename).is_file():
                findings.append(Finding("error", f"assets/{asset_def.filename}", "asset file is missing"))
    prefix = folder / "variables" / "variables"
    if Path(str(prefix) + ".index").is_file():
        try:
            report = checkpoint.check(prefix, progress=options.get("progress"))
        except FormatError as e:  # the graph was read: garbage in variables/ is damage found
            report = CheckReport(str(prefix), "checkpoint", {}, (Finding("error", "index", str(e)),))
        checked.update(report.checked)
        findings.extend(
            Finding(f.severity, f"variables/{f.subject}" if f.subject == "index" else f.subject, f.message)
            for f in report.findings
        )
    else:
        needs_vars = any(
            n.op in ("VarHandleOp", "VariableV2", "RestoreV2") for mg in model.meta_graphs for n in mg.graph_def.node
        )
        if needs_vars:
            findings.append(Finding("error", "variables/", "the graph has variables but variables.index is missing"))
    return CheckReport(str(folder), "savedmodel", checked, tuple(findings))
