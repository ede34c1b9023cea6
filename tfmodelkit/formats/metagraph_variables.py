"""The variables a MetaGraphDef (``.meta``) declares, and which of them each checkpoint tensor feeds.

Shared by the ``.meta`` reader and the checkpoint readers (V1 and V2): a checkpoint ``P`` with
``P.meta`` beside it names, for each of its tensors, the graph variable(s) it restores (a
partitioned variable's slices ``emb/part_0``... all restore from one tensor ``emb``). No
TensorFlow: our own protobuf subset.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..description import ModelDescription, Weight
from ..errors import CorruptFileError, TFModelKitError
from . import graphdef

_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp")
#: ``P-00000-of-00002`` (a V1 shard, or its ``?????`` pattern): its graph is ``P.meta``.
_SHARD_SUFFIX = re.compile(r"-(\d{5}|\?{5})-of-\d{5}$")


def load(path: Path) -> Any:
    from .protos import tfmodelkit_pb2 as pb

    return graphdef.parse(path, pb.MetaGraphDef(), "MetaGraphDef")


def collections(path: Path) -> dict[str, Any]:
    """The collections with their contents (a binary ``.meta`` only; text ones are not parsed again)."""
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    if path.suffix.lower() == ".pbtxt":
        return {}
    msg = pb.MetaGraphCollections()
    try:
        msg.ParseFromString(path.read_bytes())
    except (DecodeError, RecursionError, ValueError) as e:
        raise CorruptFileError(f"{path}: damaged collections ({e})") from None
    return dict(msg.collection_def)


def graph_variables(meta: Any, colls: dict[str, Any]) -> list[dict[str, Any]]:
    """The variables the graph declares: name, dtype, shape, trainable, checkpoint key."""
    from .protos import tfmodelkit_pb2 as pb

    nodes = {n.name: n for n in meta.graph_def.node}
    trainable: set[str] = set()
    if "trainable_variables" in colls and colls["trainable_variables"].WhichOneof("kind") == "bytes_list":
        for raw in colls["trainable_variables"].bytes_list.value:
            v = pb.VariableDef()
            v.ParseFromString(raw)
            trainable.add(v.variable_name)
    found = []
    seen = set()
    for key in ("variables", "local_variables", "model_variables"):
        contents = colls.get(key)
        if contents is None or contents.WhichOneof("kind") != "bytes_list":
            continue
        for raw in contents.bytes_list.value:
            v = pb.VariableDef()
            v.ParseFromString(raw)
            op = v.variable_name.split(":")[0]
            if op in seen:
                continue
            seen.add(op)
            node = nodes.get(op)
            info = v.save_slice_info_def
            entry: dict[str, Any] = {
                "name": op,
                "dtype": graphdef.node_dtype(node) if node is not None else "unknown",
                "shape": list(graphdef.node_shape(node) or ()) if node is not None else None,
                "trainable": v.variable_name in trainable or v.trainable,
                "collection": key,
                "checkpoint_key": info.full_name or op,
            }
            if info.full_name:
                entry["slice"] = {"full_shape": list(info.full_shape), "offset": list(info.var_offset)}
            found.append(entry)
    for node in meta.graph_def.node:  # graphs saved without collections still have the nodes
        if node.op in _VARIABLE_OPS and node.name not in seen:
            shape = graphdef.node_shape(node)
            found.append(
                {"name": node.name, "dtype": graphdef.node_dtype(node), "shape": list(shape or ()),
                 "trainable": None, "collection": None, "checkpoint_key": node.name}
            )  # fmt: skip
    saved = saver_keys(meta, nodes)
    for entry in found:  # the saver's own key wins: Saver({"old/name": v}) saves v under another name
        if entry["name"] in saved:
            entry["checkpoint_key"] = saved[entry["name"]]
    return found


#: Save ops and where their saved tensors start among the inputs (after filename, tensor_names[, slices]).
_SAVE_OPS = {"SaveV2": 3, "SaveSlices": 3, "Save": 2}
#: Ops a saved tensor passes through on its way from the variable (``v/read``, a resource read).
_READS = ("Identity", "ReadVariableOp")


def saver_keys(meta: Any, nodes: dict[str, Any]) -> dict[str, str]:
    """Graph variable -> the checkpoint key the graph's saver (``saver_def``) writes it under, read
    from its save ops: their ``tensor_names`` constant pairs, in order, with their tensor inputs."""
    scope = meta.saver_def.save_tensor_name.rpartition("/")[0] if meta.HasField("saver_def") else ""
    out: dict[str, str] = {}
    for node in meta.graph_def.node:
        start = _SAVE_OPS.get(node.op)
        if start is None or len(node.input) < start or (scope and not node.name.startswith(scope + "/")):
            continue
        names_node = nodes.get(node.input[1].lstrip("^").split(":")[0])
        tensor = graphdef.const_tensor(names_node) if names_node is not None else None
        if tensor is None:
            continue
        keys = [k.decode("utf-8", "replace") for k in tensor.string_val]
        data = [ref for ref in node.input[start:] if not ref.startswith("^")]
        for key, ref in zip(keys, data, strict=False):
            source = nodes.get(ref.split(":")[0])
            for _ in range(8):  # v/read -> v
                if source is None or source.op not in _READS or not source.input:
                    break
                source = nodes.get(source.input[0].lstrip("^").split(":")[0])
            if source is not None and source.op in _VARIABLE_OPS:
                out.setdefault(source.name, key)
    return out


def meta_beside(prefix: str | Path) -> Path | None:
    """``P.meta`` of the checkpoint ``P`` (a V1 shard's set prefix), when it is there."""
    meta = Path(_SHARD_SUFFIX.sub("", str(prefix)) + ".meta")
    return meta if meta.is_file() else None


def with_graph_variables(
    weights: tuple[Weight, ...], variables: list[dict[str, Any]], warnings: list[str]
) -> tuple[Weight, ...]:
    """``weights`` each naming the graph variable(s) it feeds (``extra["graph_variable"]``, and
    ``path``: JSON shows it, ``--match`` finds it); graph variables no tensor feeds are warned of."""
    feeds: dict[str, list[str]] = {}
    for v in variables:
        feeds.setdefault(v["checkpoint_key"], []).append(v["name"])
    out = []
    for w in weights:
        fed = ", ".join(feeds.get(w.name, [])) or None
        out.append(replace(w, path=fed or w.path, extra={**w.extra, "graph_variable": fed}))
    unfed = sorted(set(feeds) - {w.name for w in weights})
    if unfed:
        warnings.append(f"graph variables with no tensor in the checkpoint: {', '.join(unfed[:10])}")
    return tuple(out)


def with_graph_beside(desc: ModelDescription, prefix: str | Path) -> ModelDescription:
    """A checkpoint's description with its tensors paired to the variables of ``P.meta`` beside
    it (``metadata["graph"]`` names it); unchanged without one, a warning if it cannot be read."""
    meta_path = meta_beside(prefix)
    if meta_path is None:
        return desc
    warnings = list(desc.warnings)
    try:
        variables = graph_variables(load(meta_path), collections(meta_path))
    except (TFModelKitError, ValueError, KeyError, IndexError) as e:
        warnings.append(f"the graph beside it ({meta_path.name}) cannot be read: {e}")
        return replace(desc, warnings=tuple(warnings))
    weights = with_graph_variables(desc.weights, variables, warnings)
    metadata = {**desc.metadata, "graph": str(meta_path)}
    return replace(desc, weights=weights, metadata=metadata, warnings=tuple(warnings))
