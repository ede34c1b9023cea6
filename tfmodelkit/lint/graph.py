"""A SavedModel meta graph as a call graph: which graph nodes and function bodies each
serving signature, the init op, the saver or the object graph reaches, and which node
values are paths to the model's own assets.

List-valued attributes, collections and saveable objects are fields the project's proto
subset leaves out; they are read from the serialized messages with ``formats.wire``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..formats import wire
from .tables import Risk


def _attr_list(attr: Any, number: int) -> list[bytes]:
    """Items of field ``number`` of an AttrValue's ``list`` (2 = s, 9 = func)."""
    if attr.WhichOneof("value") is not None:
        return []
    return [
        item
        for lst in wire.submessages(attr.SerializeToString(), 1)
        for item in wire.submessages(lst, number)
    ]


def attr_strings(attr: Any) -> list[str]:
    if attr.WhichOneof("value") == "s":
        return [attr.s.decode("utf-8", "replace")]
    return [s.decode("utf-8", "replace") for s in _attr_list(attr, 2)]


def _attr_functions(attr: Any) -> list[str]:
    if attr.WhichOneof("value") == "func":
        return [attr.func.name]
    names: list[str] = []
    for func in _attr_list(attr, 9):
        names.extend(n.decode("utf-8", "replace") for n in wire.submessages(func, 1))
    return names


def _collection_nodes(mg: Any, key: str) -> list[str]:
    """Node names of a ``node_list`` collection (``saved_model_main_op``, ``legacy_init_op``)."""
    if key not in mg.collection_def:
        return []
    raw = mg.collection_def[key].SerializeToString()
    return [
        s.decode("utf-8", "replace") for lst in wire.submessages(raw, 1) for s in wire.submessages(lst, 1)
    ]


def _saveable_function_nodes(obj: Any) -> list[int]:
    """Object-graph node ids of a SavedObject's saveable save/restore functions (field 11)."""
    ids: list[int] = []
    for entry in wire.submessages(obj.SerializeToString(), 11):
        for saveable in wire.submessages(entry, 2):
            ids.extend(v for n, v in wire.fields(saveable) if n in (2, 3) and isinstance(v, int))
    return ids


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":", 1)[0]


def _data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


# How a body is reached; higher ranks are judged more strictly.
RANK = {"saver": 0, "init": 1, "unreached": 2, "unreferenced": 2, "callable": 3, "serving": 4}


@dataclass
class Reach:
    kinds: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)
    callers: set[str] = field(default_factory=set)  # object paths

    def rank(self) -> int:
        return max((RANK[k] for k in self.kinds), default=RANK["unreferenced"])

    def describe(self) -> str:
        if "serving" in self.kinds:
            keys = ", ".join(repr(k) for k in sorted(self.signatures))
            return f"reached from signature{'s' if len(self.signatures) > 1 else ''} {keys}"
        if "callable" in self.kinds:
            # root.f.trace_0 (the concrete function under root.f) says nothing root.f does not
            named = {c for c in self.callers if ".trace_" not in c} or self.callers
            paths = ", ".join(sorted(named)) or "the object graph"
            return f"callable as {paths} after tf.saved_model.load"
        if "unreached" in self.kinds:
            return "in no signature, init op or saver (a Session could still fetch it)"
        if "init" in self.kinds:
            return "runs when the model loads (init op or resource initializer)"
        if "saver" in self.kinds:
            return "in the saver (runs on save/restore)"
        return "referenced by nothing in the file"


class Program:
    """One meta graph: graph nodes and function bodies, who reaches what, and asset paths."""

    def __init__(self, folder: Path, mg: Any) -> None:
        from ..formats import savedmodel as sm

        self.folder = folder
        self.mg = mg
        self.graph = list(mg.graph_def.node)
        self.by_name = {n.name: n for n in self.graph}
        self.library = {f.signature.name: f for f in mg.graph_def.library.function}
        self.nodes: dict[str, list[Any]] = {"": self.graph}
        self.nodes.update((name, list(fn.node_def)) for name, fn in self.library.items())
        # (body, node name) -> functions the node calls, worked out once (list attributes
        # need a serialization each); and per function, everything its body calls.
        self.callees: dict[tuple[str, str], list[str]] = {}
        for body, nodes in self.nodes.items():
            for node in nodes:
                called = self._calls(node)
                if called:
                    self.callees[(body, node.name)] = called
        self.fn_callees: dict[str, set[str]] = defaultdict(set)
        for (body, _), called in self.callees.items():
            if body:
                self.fn_callees[body].update(called)
        self.fn_reach: dict[str, Reach] = defaultdict(Reach)
        self.node_reach: dict[str, Reach] = defaultdict(Reach)
        self.object_paths = sm.node_paths(mg.object_graph_def)
        self._mark_contexts(sm.INIT_OP_KEY)
        self.assets = self._asset_sources()

    # -- calls
    def _calls(self, node: Any) -> list[str]:
        names = [node.op] if node.op in self.library else []
        for attr in node.attr.values():
            names.extend(n for n in _attr_functions(attr) if n in self.library)
        return names

    def graph_calls(self, name: str) -> list[str]:
        return self.callees.get(("", name), [])

    def _closure(self, roots: Iterable[str], fed: frozenset[str] = frozenset()) -> set[str]:
        """The nodes ``roots`` depend on. A ``fed`` tensor (``x:0``, a signature input) cuts its
        edge: TF1 serving graphs often feed a tensor computed from another input (TF Serving's
        half_plus_two feeds ``x``, the Identity of a ParseExample output), and what lies behind
        it never runs for that signature."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.by_name]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for edge in self.by_name[name].input:
                if not edge.startswith("^") and (edge if ":" in edge else f"{edge}:0") in fed:
                    continue
                n = _node_name(edge)
                if n in self.by_name and n not in seen:
                    stack.append(n)
        return seen

    def _spread(
        self, functions: Iterable[str], kind: str, signature: str | None = None, caller: str | None = None
    ) -> None:
        stack = list(functions)
        done: set[str] = set()
        while stack:
            name = stack.pop()
            if name in done or name not in self.library:
                continue
            done.add(name)
            reach = self.fn_reach[name]
            if (
                kind in reach.kinds
                and (not signature or signature in reach.signatures)
                and (not caller or caller in reach.callers)
            ):
                continue  # marked so before, and so were its callees
            reach.kinds.add(kind)
            if signature:
                reach.signatures.add(signature)
            if caller:
                reach.callers.add(caller)
            stack.extend(self.fn_callees.get(name, ()))

    def _mark_nodes(
        self, roots: Iterable[str], kind: str, signature: str | None = None, fed: frozenset[str] = frozenset()
    ) -> set[str]:
        nodes = self._closure(roots, fed)
        for name in nodes:
            reach = self.node_reach[name]
            reach.kinds.add(kind)
            if signature:
                reach.signatures.add(signature)
            self._spread(self.graph_calls(name), kind, signature)
        return nodes

    def _mark_contexts(self, init_key: str) -> None:
        mg = self.mg
        self.serving_nodes: set[str] = set()
        for key, sd in mg.signature_def.items():
            roots = [_node_name(t) for t in _tensor_names(sd.outputs.values())]
            if key == init_key:
                self._mark_nodes(roots, "init")
            else:
                fed = frozenset(_tensor_names(sd.inputs.values()))
                self.serving_nodes |= self._mark_nodes(roots, "serving", key, fed)
        for collection in ("saved_model_main_op", "legacy_init_op", "table_initializer"):
            self._mark_nodes(_collection_nodes(mg, collection), "init")
        saver = mg.saver_def
        self._mark_nodes(
            [_node_name(n) for n in (saver.save_tensor_name, saver.restore_op_name) if n], "saver"
        )
        graph = mg.object_graph_def
        lifecycle: dict[int, str] = {}
        for obj in graph.nodes:
            for child in obj.children:
                if child.local_name in ("_create_resource", "_initialize", "_destroy_resource"):
                    lifecycle[child.node_id] = "init"
            for nid in _saveable_function_nodes(obj):
                lifecycle[nid] = "saver"
        for nid, obj in enumerate(graph.nodes):
            names = _object_functions(obj)
            if not names:
                continue
            kind = lifecycle.get(nid, "callable")
            self._spread(names, kind, caller=self.object_paths.get(nid) if kind == "callable" else None)
        for name in self.by_name:
            if name not in self.node_reach:
                self.node_reach[name].kinds.add("unreached")
                self._spread(self.graph_calls(name), "unreached")

    # -- assets
    def _asset_sources(self) -> dict[str, set[str]]:
        """Per body ('' = the graph), the node or argument names whose value is an asset path."""
        sources: dict[str, set[str]] = defaultdict(set)
        for asset in self.mg.asset_file_def:
            sources[""].add(_node_name(asset.tensor_info.name))
        graph = self.mg.object_graph_def
        for name, concrete in graph.concrete_functions.items():
            fn = self.library.get(name)
            if fn is None or not concrete.bound_inputs:
                continue
            args = [a.name for a in fn.signature.input_arg]
            first = len(args) - len(concrete.bound_inputs)
            for j, nid in enumerate(concrete.bound_inputs):
                if (
                    0 <= nid < len(graph.nodes)
                    and graph.nodes[nid].WhichOneof("kind") == "asset"
                    and first + j >= 0
                ):
                    sources[name].add(args[first + j])
        # Only nodes that can carry a path along: pass-throughs, variable assignments, calls.
        carriers = {
            body: [
                (
                    node.name,
                    node.op,
                    [_node_name(i) for i in _data_inputs(node)],
                    self.callees.get((body, node.name), []),
                )
                for node in nodes
                if node.op in _PASS_THROUGH
                or node.op in ("AssignVariableOp", "Assign")
                or (body, node.name) in self.callees
            ]
            for body, nodes in self.nodes.items()
        }
        for _ in range(len(carriers) + 2):
            changed = False
            for body, nodes in carriers.items():
                known = sources[body]
                if not known:
                    continue
                for name, op, ins, called in nodes:
                    if name not in known and op in _PASS_THROUGH and ins and ins[0] in known:
                        known.add(name)
                        changed = True
                    elif (
                        op in ("AssignVariableOp", "Assign")
                        and len(ins) > 1
                        and ins[1] in known
                        and ins[0] not in known
                    ):
                        known.add(ins[0])
                        changed = True
                    for callee in called:
                        args = [a.name for a in self.library[callee].signature.input_arg]
                        offset = 1 if op in ("If", "StatelessIf") else 0
                        for k, src in enumerate(ins[offset:]):
                            if src in known and k < len(args) and args[k] not in sources[callee]:
                                sources[callee].add(args[k])
                                changed = True
            if not changed:
                break
        return sources

    def reads_asset(self, body: str, node: Any, risk: Risk) -> bool:
        ins = _data_inputs(node)
        if risk.path_input is None or risk.path_input >= len(ins):
            return False
        return _node_name(ins[risk.path_input]) in self.assets.get(body, set())

    def bodies(self) -> Iterator[tuple[str, list[Any], Mapping[str, Reach]]]:
        """('', graph nodes, reach per node) and (function name, nodes, reach of the function)."""
        yield "", self.graph, self.node_reach
        for name in self.library:
            reach = self.fn_reach.get(name) or Reach()
            yield name, self.nodes[name], _Constant(reach)

    def ops_outside_saver(self) -> dict[str, tuple[int, set[str]]]:
        """op -> (count, no signatures) over every body but the saver's and the init op's."""
        out: dict[str, tuple[int, set[str]]] = {}
        for _body, nodes, reach_of in self.bodies():
            for node in nodes:
                if reach_of[node.name].rank() > RANK["init"]:
                    out[node.op] = (out.get(node.op, (0, set()))[0] + 1, set())
        return out

    def serving_ops(self) -> dict[str, tuple[int, set[str]]]:
        """op -> (count, signatures reaching it) over the graph and functions the signatures run."""
        out: dict[str, tuple[int, set[str]]] = {}

        def add(op: str, sigs: set[str]) -> None:
            count, seen = out.get(op, (0, set()))
            out[op] = (count + 1, seen | sigs)

        for name in self.serving_nodes:
            add(self.by_name[name].op, self.node_reach[name].signatures)
        for name, reach in self.fn_reach.items():
            if "serving" in reach.kinds:
                for node in self.nodes[name]:
                    add(node.op, reach.signatures)
        return out


class _Constant(Mapping[str, Reach]):
    """The same reach for every node of a function body."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach

    def __getitem__(self, key: str) -> Reach:
        return self.reach

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_PASS_THROUGH = frozenset(
    {"Identity", "IdentityN", "Snapshot", "StopGradient", "ReadVariableOp", "Enter", "Switch", "Merge"}
)


def _tensor_names(infos: Iterable[Any]) -> list[str]:
    names = []
    for info in infos:
        kind = info.WhichOneof("encoding")
        if kind == "name":
            names.append(info.name)
        elif kind == "coo_sparse":
            sp = info.coo_sparse
            names.extend(
                n for n in (sp.values_tensor_name, sp.indices_tensor_name, sp.dense_shape_tensor_name) if n
            )
    return names


def _object_functions(obj: Any) -> list[str]:
    kind = obj.WhichOneof("kind")
    if kind == "function":
        return list(obj.function.concrete_functions)
    if kind == "bare_concrete_function":
        return [obj.bare_concrete_function.concrete_function_name]
    return []


#: TF1 graph files the targets walk like a SavedModel's meta graph.
TF1_GRAPHS = ("graphdef", "metagraph")
#: Variable ops of TF1 graphs: a conversion freezes them into constants.
TF1_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp", "ReadVariableOp"})


def tf1_program(desc: Any) -> Program:
    """A frozen GraphDef or a ``.meta`` (``desc`` is its description) as one meta graph, with the
    description's signatures where the file has none (inferred: placeholders in, unconsumed out)."""
    from ..formats.protos import tfmodelkit_pb2 as pb

    path = Path(desc.path)
    if desc.format == "graphdef":
        from ..formats import graphdef

        mg = pb.MetaGraphDef()
        mg.graph_def.CopyFrom(graphdef.load(path))
    else:
        from ..formats.metagraph_variables import load

        mg = load(path)
    if not mg.signature_def:
        for sig in desc.signatures:
            sd = mg.signature_def[sig.key]
            for side, specs in ((sd.inputs, sig.inputs), (sd.outputs, sig.outputs)):
                for t in specs:
                    side[t.name].name = t.tensor or f"{t.name}:0"
    return Program(path.parent, mg)
