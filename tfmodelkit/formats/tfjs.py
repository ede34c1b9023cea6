"""TF.js models: a ``model.json`` and the binary weight shards its ``weightsManifest`` lists.

Two kinds share the file. A layers model (``"format": "layers-model"``) keeps a Keras
topology in ``modelTopology`` (a Keras 2 style config, read as data by
:mod:`.keras_config`); a graph model (``"format": "graph-model"``) keeps a GraphDef as JSON
(``node``, ``library``, ``versions``), a ``signature`` mapping its inputs and outputs, and
optionally ``userDefinedMetadata`` and a ``modelInitializer`` graph. The path is the
``model.json`` or its folder. Weight bytes are read lazily from the shards and quantized
weights are dequantized on read (:mod:`.tfjs_manifest`); nothing here needs TensorFlow or Node.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..description import (
    CheckReport,
    Finding,
    ModelDescription,
    Producer,
    Signature,
    TensorSpec,
    Weight,
)
from ..errors import CorruptFileError
from .tfjs_manifest import Manifest, load_document, load_values, parse, resolve

__all__ = ["FORMAT", "LAYERS", "GRAPH", "check", "kind_of", "looks_like_tfjs", "read", "resolve", "topology"]

FORMAT = "tfjs"
LAYERS = "layers-model"
GRAPH = "graph-model"

#: TensorFlow DataType enum names (as GraphDef JSON spells them) -> our dtype names.
_DT = {
    "DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_INT32": "int32", "DT_UINT8": "uint8",
    "DT_INT16": "int16", "DT_INT8": "int8", "DT_STRING": "string", "DT_INT64": "int64",
    "DT_BOOL": "bool", "DT_HALF": "float16", "DT_UINT16": "uint16", "DT_COMPLEX64": "complex64",
    "DT_RESOURCE": "resource", "DT_VARIANT": "variant", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
}  # fmt: skip


def looks_like_tfjs(path: Path) -> bool:
    """Detection: a folder holding model.json, or a .json file that is a TF.js model."""
    if path.is_dir():
        return (path / "model.json").is_file()
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b'"modelTopology"' in head or b'"weightsManifest"' in head or b'"format"' in head


def kind_of(doc: dict[str, Any]) -> str:
    """``layers-model`` or ``graph-model``: the ``format`` field, else the topology's shape."""
    fmt = doc.get("format")
    if fmt in (LAYERS, GRAPH):
        return str(fmt)
    topo = doc.get("modelTopology")
    if isinstance(topo, dict) and "node" in topo:
        return GRAPH
    return LAYERS


def topology(doc: dict[str, Any]) -> dict[str, Any]:
    """A layers model's Keras model config (``{"class_name", "config"}``); older converters
    wrapped it as ``{"model_config": ..., "training_config": ...}``."""
    topo = doc.get("modelTopology")
    if isinstance(topo, dict) and isinstance(topo.get("model_config"), dict):
        topo = topo["model_config"]
    return topo if isinstance(topo, dict) else {}


# ----------------------------------------------------------------------------------------
# Signatures


def _tensor_shape(raw: Any) -> tuple[int | None, ...] | None:
    if not isinstance(raw, dict) or raw.get("unknownRank"):
        return None
    dims = raw.get("dim", [])
    if not isinstance(dims, list):
        return None
    out: list[int | None] = []
    for d in dims:
        size = d.get("size", -1) if isinstance(d, dict) else -1
        try:
            n = int(size)
        except (TypeError, ValueError):
            n = -1
        out.append(None if n < 0 else n)
    return tuple(out)


def _graph_specs(side: Any) -> tuple[TensorSpec, ...]:
    if not isinstance(side, dict):
        return ()
    out = []
    for key, info in side.items():
        info = info if isinstance(info, dict) else {}
        out.append(
            TensorSpec(
                name=str(key).split(":")[0] if str(key).endswith(":0") else str(key),
                dtype=_DT.get(str(info.get("dtype")), str(info.get("dtype", "unknown")).lower()),
                shape=_tensor_shape(info.get("tensorShape")),
                tensor=str(info.get("name", key)),
            )
        )
    return tuple(out)


def _nodes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    topo = doc.get("modelTopology")
    nodes = topo.get("node", []) if isinstance(topo, dict) else []
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _node_inputs(node: dict[str, Any]) -> list[str]:
    raw = node.get("input", [])
    return [str(i) for i in raw] if isinstance(raw, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _placeholder_spec(node: dict[str, Any]) -> TensorSpec:
    attr = _dict(node.get("attr"))
    dtype = _dict(attr.get("dtype")).get("type")
    shape = _dict(attr.get("shape")).get("shape")
    name = str(node.get("name"))
    return TensorSpec(name=name, dtype=_DT.get(str(dtype), "float32"), shape=_tensor_shape(shape), tensor=f"{name}:0")


def _graph_signature(doc: dict[str, Any]) -> tuple[Signature, str]:
    sig = doc.get("signature")
    if isinstance(sig, dict) and (sig.get("inputs") or sig.get("outputs")):
        return Signature("serving_default", _graph_specs(sig.get("inputs")), _graph_specs(sig.get("outputs"))), "signature"
    nodes = _nodes(doc)
    used = {i.lstrip("^").split(":")[0] for n in nodes for i in _node_inputs(n)}
    ins = tuple(_placeholder_spec(n) for n in nodes if n.get("op") == "Placeholder")
    outs = tuple(
        TensorSpec(name=str(n.get("name")), dtype="unknown", shape=None, tensor=f"{n.get('name')}:0")
        for n in nodes
        if n.get("name") not in used and n.get("op") not in ("Const", "Placeholder", "NoOp")
    )
    return Signature("serving_default", ins, outs), "placeholders and sinks"


def _layer_dtype(cfg: dict[str, Any]) -> str:
    d = cfg.get("dtype", "float32")
    if isinstance(d, dict):  # a Keras 3 dtype policy left in by a writer
        d = (d.get("config") or {}).get("name", "float32")
    return str(d) if d else "float32"


def _layers_signature(topo: dict[str, Any]) -> Signature:
    cfg = topo.get("config")
    layers = (cfg.get("layers") if isinstance(cfg, dict) else cfg) or []
    layers = [x for x in layers if isinstance(x, dict)] if isinstance(layers, list) else []
    by_name = {str((x.get("config") or {}).get("name", x.get("name"))): x for x in layers}

    def spec(name: str) -> TensorSpec:
        entry = by_name.get(name, {})
        c = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        shape = c.get("batch_input_shape") or c.get("batch_shape")
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in shape) if isinstance(shape, list) else None
        return TensorSpec(name=name, dtype=_layer_dtype(c), shape=dims)

    def names(key: str) -> list[str]:
        raw = cfg.get(key) if isinstance(cfg, dict) else None
        if isinstance(raw, dict):  # Keras 3 dict inputs, should a writer keep them
            raw = list(raw.values())
        if not isinstance(raw, list):
            return []
        if raw and isinstance(raw[0], str):  # a single [name, node, tensor]
            raw = [raw]
        return [str(r[0]) for r in raw if isinstance(r, list) and r]

    ins, outs = names("input_layers"), names("output_layers")
    if not ins and layers:  # Sequential: the first layer declares the input
        first = layers[0]
        c = first.get("config") if isinstance(first.get("config"), dict) else {}
        # Without an InputLayer, TF.js (like Keras 2) names the input "<first layer>_input".
        ins = [str(c.get("name", "input")) + ("" if first.get("class_name") == "InputLayer" else "_input")]
        by_name.setdefault(ins[0], first)
        last = layers[-1].get("config") if isinstance(layers[-1].get("config"), dict) else {}
        outs = [str(last.get("name", "output"))]
    out_specs = tuple(TensorSpec(name=n, dtype=_layer_dtype({}), shape=None) for n in outs)
    return Signature("serving_default", tuple(spec(n) for n in ins), out_specs)


# ----------------------------------------------------------------------------------------
# The description


def _loader(m: Manifest, index: int) -> Callable[[], Any]:
    e = m.entries[index]
    return functools.partial(load_values, m.groups[e.group], e)


def _weights(m: Manifest, layered: bool) -> tuple[Weight, ...]:
    out = []
    for i, e in enumerate(m.entries):
        group = m.groups[e.group]
        extra: dict[str, Any] = {"group": e.group, "offset": e.offset, "stored_dtype": e.stored}
        if e.quant is not None:
            extra["quantization"] = dict(e.quant)
        out.append(
            Weight(
                name=e.name,
                dtype=e.dtype,
                shape=e.shape,
                nbytes=max(e.nbytes, 0),
                location=f"group {e.group} ({len(group.shards)} shard{'s' if len(group.shards) != 1 else ''}) @ {e.offset}",
                path=e.name,
                layer=e.name.split("/")[0] if layered and "/" in e.name else None,
                extra=extra,
                _loader=_loader(m, i),
            )
        )
    return tuple(out)


def _producer(doc: dict[str, Any], topo: dict[str, Any]) -> Producer:
    other = {k: str(doc[k]) for k in ("format", "generatedBy", "convertedBy") if isinstance(doc.get(k), str)}
    generated = str(doc.get("generatedBy") or "")
    tf_version = generated if generated[:1].isdigit() else None
    if generated.lower().startswith("tensorflow ") and generated.split()[-1][:1].isdigit():
        tf_version = generated.split()[-1]
    keras = topo.get("keras_version") if isinstance(topo.get("keras_version"), str) else None
    backend = topo.get("backend") if isinstance(topo.get("backend"), str) else None
    return Producer(tensorflow=tf_version, keras=keras, backend=backend, other=other)


def _ops(doc: dict[str, Any]) -> Counter[str]:
    ops: Counter[str] = Counter(str(n.get("op")) for n in _nodes(doc))
    topo = doc.get("modelTopology")
    lib = topo.get("library") if isinstance(topo, dict) else None
    functions = lib.get("function", []) if isinstance(lib, dict) else []
    for f in functions if isinstance(functions, list) else []:
        for n in f.get("nodeDef", []) if isinstance(f, dict) else []:
            if isinstance(n, dict):
                ops[str(n.get("op"))] += 1
    return ops


def _metadata(m: Manifest, kind: str, sig_source: str | None) -> dict[str, Any]:
    doc = m.document
    shards = [{"path": s.path, "nbytes": s.size} for g in m.groups for s in g.shards]
    meta: dict[str, Any] = {
        "tfjs_format": kind,
        "model_json": str(m.model_json),
        "shard_count": len(shards),
        "shard_bytes": sum(s["nbytes"] or 0 for s in shards),
        "shards": shards,
        "weight_groups": len(m.groups),
    }
    if sig_source:
        meta["signature_from"] = sig_source
    if isinstance(doc.get("userDefinedMetadata"), dict):
        meta["user_defined_metadata"] = doc["userDefinedMetadata"]
    init = doc.get("modelInitializer")
    if isinstance(init, dict):
        nodes = init.get("node")
        meta["model_initializer_nodes"] = len(nodes) if isinstance(nodes, list) else 0
    return meta


def _fatal(m: Manifest) -> None:
    if m.problems:
        subject, message = m.problems[0]
        more = f" (and {len(m.problems) - 1} more problems; `modelinspect check` lists them)" if len(m.problems) > 1 else ""
        raise CorruptFileError(f"{m.model_json}: {subject}: {message}{more}")


def read(path: str | os.PathLike[str], **_options: Any) -> ModelDescription:
    """Describe a TF.js model (``model.json`` or its folder) without TensorFlow or Node."""
    m = parse(path)
    _fatal(m)
    return describe(m)


def describe(m: Manifest) -> ModelDescription:
    doc = m.document
    kind = kind_of(doc)
    warnings: list[str] = []
    if kind == GRAPH:
        sig, source = _graph_signature(doc)
        return ModelDescription(
            format=FORMAT, path=str(m.model_json), producer=_producer(doc, {}), signatures=(sig,),
            weights=_weights(m, False), ops=dict(_ops(doc)), metadata=_metadata(m, kind, source),
        )  # fmt: skip
    from .keras_config import parse_model_config  # layers models only: graph models skip its import

    topo = topology(doc)
    parsed = parse_model_config(topo)
    warnings.extend(parsed.warnings)
    weights = _weights(m, True)
    params: Counter[str] = Counter()
    for w in weights:
        if w.layer:
            params[w.layer] += w.size
    layers = tuple(
        type(p.layer)(**{**p.layer.__dict__, "params": params.get(p.layer.name, 0) if p.layer.depth == 0 else None})
        for p in parsed.layers
    )
    meta = _metadata(m, kind, None)
    meta["class_name"] = parsed.class_name
    return ModelDescription(
        # The topology's inputs and outputs with the shapes that follow from it, as for Keras
        # files (signature "model"): a Keras file and its TF.js conversion describe alike.
        format=FORMAT, path=str(m.model_json), producer=_producer(doc, topo), signatures=parsed.signatures[:1] or (_layers_signature(topo),),
        weights=weights, layers=layers, metadata=meta, warnings=tuple(warnings),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# The integrity check


def _topology_findings(m: Manifest) -> list[Finding]:
    doc = m.document
    found = []
    names = {e.name for e in m.entries}
    if kind_of(doc) == GRAPH:
        nodes = _nodes(doc)
        defined = {str(n.get("name")) for n in nodes}
        for n in nodes:
            for i in _node_inputs(n):
                src = i.lstrip("^").split(":")[0]
                if src not in defined:
                    found.append(Finding("error", str(n.get("name")), f"input {i!r} names no node of the graph"))
            if n.get("op") == "Const" and str(n.get("name")) not in names and "value" not in _dict(n.get("attr")):
                found.append(Finding("error", str(n.get("name")), "a Const node whose value is not in the weightsManifest"))
        sig = _dict(doc.get("signature"))
        for side in ("inputs", "outputs"):
            for key, info in _dict(sig.get(side)).items():
                tensor = str(info.get("name", key)) if isinstance(info, dict) else str(key)
                if tensor.split(":")[0] not in defined:
                    found.append(Finding("error", str(key), f"signature {side[:-1]} {tensor!r} names no node of the graph"))
        return found
    from .keras_config import parse_model_config

    parsed = parse_model_config(topology(doc))
    layer_names = {p.layer.name for p in parsed.layers}
    for p in parsed.layers:
        for src in p.layer.inbound:
            if src not in layer_names:
                found.append(Finding("error", p.layer.name, f"inbound layer {src!r} is not in the topology"))
    for e in m.entries:
        owner = e.name.split("/")[0]
        if "/" in e.name and owner not in layer_names:
            found.append(Finding("warning", e.name, f"weight of layer {owner!r}, which the topology does not have"))
    layer_sig = _layers_signature(topology(doc))
    for spec in (*layer_sig.inputs, *layer_sig.outputs):
        if spec.name not in layer_names and spec.name.removesuffix("_input") not in layer_names:
            found.append(Finding("error", spec.name, "model input/output layer not in the topology"))
    return found


def _layer_entries(doc: dict[str, Any]) -> list[Any]:
    cfg = topology(doc).get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg
    return layers if isinstance(layers, list) else []


def check(path: str | os.PathLike[str], progress: Any = None, **_options: Any) -> CheckReport:
    """Every shard present and as long as the manifest implies, no weight outside its shards,
    every value readable, the topology's names resolved."""
    m = parse(path)
    findings = [Finding("error", subject, message) for subject, message in m.problems]
    done = 0
    total = sum(max(e.nbytes, 0) for e in m.entries if e.problem is None)
    for e in m.entries:
        if e.problem is not None:
            continue
        try:
            load_values(m.groups[e.group], e)
        except CorruptFileError as err:
            findings.append(Finding("error", e.name, str(err)))
        done += max(e.nbytes, 0)
        if progress is not None:
            progress(done, total)
    findings.extend(_topology_findings(m))
    shards = sum(len(g.shards) for g in m.groups)
    graph = kind_of(m.document) == GRAPH
    parts = len(_nodes(m.document)) if graph else len(_layer_entries(m.document))
    return CheckReport(
        path=str(m.model_json), format=FORMAT,
        checked={"tensors": len(m.entries), "shards": shards, "nodes" if graph else "layers": parts},
        findings=tuple(findings),
    )  # fmt: skip


def document(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The parsed model.json (for writers and lint targets that look at the raw topology)."""
    return load_document(path)
