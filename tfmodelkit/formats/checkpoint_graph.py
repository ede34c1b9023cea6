"""The object graph of TF2 checkpoints, and the role of each tensor: model weight,
optimizer state, or bookkeeping (TF1 checkpoints are told apart by their names alone).
"""

from __future__ import annotations

import re
from typing import Any

from ..description import ROLE_MODEL, ROLE_OPTIMIZER, ROLE_OTHER
from ..errors import CorruptFileError
from .checkpoint_bundle import Index, Shards, string_list

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

# TF1 optimizer slot suffixes (tf.compat.v1.train optimizers) and their scalar accumulators.
_TF1_SLOT_RE = re.compile(
    r"/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|AdagradDA|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+"
    r"|ProximalAdagrad|Nadam|Nadam_\d+|ExponentialMovingAverage)$"
)
_TF1_OPTIMIZER_NAMES = re.compile(r"(^|/)(beta1_power|beta2_power)(_\d+)?$")
_BOOKKEEPING = re.compile(r"(^|/)(global_step|save_counter/\.ATTRIBUTES/VARIABLE_VALUE)$")


def object_graph(index: Index) -> Any | None:
    """The TrackableObjectGraph proto of an object-based checkpoint, or None."""
    entry = index.entries.get(OBJECT_GRAPH_KEY)
    if entry is None or entry.dtype != "string":
        return None
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    value = string_list(Shards(index), entry)
    try:
        return pb.TrackableObjectGraph.FromString(value[0])
    except (DecodeError, IndexError):
        raise CorruptFileError(f"{index.prefix}: the object graph record is damaged") from None


def _reachable(nodes: Any, starts: list[int]) -> set[int]:
    """Nodes reachable from ``starts`` through ``children`` links."""
    seen = set(starts)
    stack = list(starts)
    while stack:
        nid = stack.pop()
        for child in nodes[nid].children:
            cid = child.node_id
            if 0 <= cid < len(nodes) and cid not in seen:
                seen.add(cid)
                stack.append(cid)
    return seen


def _is_optimizer(nodes: Any, name: str, nid: int) -> bool:
    """An optimizer root object: named so, holding slot variables, or counting iterations."""
    node = nodes[nid]
    children = {c.local_name for c in node.children}
    return "optimizer" in name.lower() or bool(node.slot_variables) or bool(children & {"_iterations", "iter"})


def object_paths(graph: Any) -> tuple[dict[str, str], set[str], list[str]]:
    """Map checkpoint key -> variable name (``full_name``), optimizer keys, root children.

    A key is optimizer state when its variable is an optimizer slot or is reachable only
    through optimizer objects. Keys are the *shortest* path to a variable, so a model weight
    can be keyed ``optimizer/_trainable_variables/0`` (Keras 3 keeps a list of the variables
    it trains): reachability from the model, not the key's prefix, decides.
    """
    nodes = graph.nodes
    if not nodes:
        return {}, set(), []
    root = nodes[0]
    valid = [c for c in root.children if 0 <= c.node_id < len(nodes)]
    optimizer_roots = [c.node_id for c in valid if _is_optimizer(nodes, c.local_name, c.node_id)]
    # tf_keras save_weights lists the root among its own children (local name "root"): a walk
    # from it reaches the optimizer too, so it is no model-side start.
    other_roots = [c.node_id for c in valid if c.node_id not in optimizer_roots and c.node_id != 0]
    # A checkpoint whose root is the model itself (tf_keras save_weights) has no such split.
    model_side = _reachable(nodes, other_roots) if optimizer_roots else _reachable(nodes, [0])
    key_to_name: dict[str, str] = {}
    optimizer_keys: set[str] = set()
    for nid, node in enumerate(nodes):
        for attr in node.attributes:
            key = attr.checkpoint_key
            if attr.full_name:
                key_to_name[key] = attr.full_name
            if "/.OPTIMIZER_SLOT/" in key or nid not in model_side:
                optimizer_keys.add(key)
    root_children = [c.local_name for c in root.children]
    return key_to_name, optimizer_keys, root_children


def role(name: str, optimizer_keys: set[str], object_based: bool) -> str:
    """Whether the tensor keyed ``name`` is a model weight, optimizer state or bookkeeping."""
    if name == OBJECT_GRAPH_KEY or _BOOKKEEPING.search(name):
        return ROLE_OTHER
    if name in optimizer_keys or "/.OPTIMIZER_SLOT/" in name:
        return ROLE_OPTIMIZER
    if not object_based and (_TF1_SLOT_RE.search(name) or _TF1_OPTIMIZER_NAMES.search(name)):
        return ROLE_OPTIMIZER
    return ROLE_MODEL
