"""Inputs, outputs and per-layer output shapes of a Keras model config (Keras 1, 2 and 3), read as data.

Where the file records a tensor, the record wins: Keras 3 writes the shape and dtype of every
tensor a layer is called on (``__keras_tensor__`` in ``inbound_nodes``), and every config
holds its input layers' shapes. Other tensors follow from the config by Keras' own shape rules
for standard layers (:mod:`.keras_layer_rules`); anything else is unknown, never a guess.
Nothing is imported from Keras and nothing in the config runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .keras_entries import MAX_DEPTH, as_dict, entry_class, entry_config, entry_name, model_layers
from .keras_layer_rules import UNKNOWN, Spec, apply_rule, compute_dtype, shape_of

__all__ = ["UNKNOWN", "ModelIO", "Spec", "model_io"]

_MODEL_CLASSES = ("Sequential", "Functional", "Model")
#: Keras lists layers before the layers that consume them, so a call rarely waits for
#: another; a config in another order is followed this many calls deep.
_MAX_CHAIN = 100
#: More outputs than this from one layer call are not believed (a damaged config).
_MAX_OUTPUTS = 1024
#: Layer calls evaluated per layer entry or call in the config, at most (a shared nested
#: model is evaluated once per call).
_BUDGET_PER_LAYER = 16


@dataclass(frozen=True)
class ModelIO:
    """What a model config says about the model's tensors."""

    inputs: tuple[tuple[str, Spec], ...] = ()
    outputs: tuple[tuple[str, Spec], ...] = ()
    #: ``id(layer entry)`` -> the layer's output specs (one per output tensor), for every layer
    #: whose calls all agree; layers never called (wrapped ones) and unknown ones are absent.
    layer_outputs: Mapping[int, tuple[Spec, ...]] = field(default_factory=dict)


@dataclass
class _Call:
    """One call of a layer in a functional graph: the tensors it is given."""

    refs: list[tuple[str, int, int]]  # (layer, node index, tensor index) of each input tensor
    recorded: list[Spec | None]  # the input specs the file records (Keras 3), else None each
    kwargs: dict[str, Any]


def _history(v: Any) -> tuple[str, int, int] | None:
    """(layer, node, tensor) of a reference ``[name, node, tensor(, kwargs)]``."""
    if not (isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)):
        return None
    node, index = v[1], v[2]
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (node, index)):
        return None
    return (v[0], node, index) if node >= 0 and 0 <= index < _MAX_OUTPUTS else None


def _keras_tensor(v: Any) -> tuple[tuple[str, int, int], Spec] | None:
    """The reference and the recorded spec of a Keras 3 ``__keras_tensor__`` object."""
    if not (isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"):
        return None
    cfg = as_dict(v.get("config"))
    hist = _history(cfg.get("keras_history"))
    if hist is None:
        return None
    dtype = cfg.get("dtype")
    return hist, Spec(shape_of(cfg.get("shape")), dtype if isinstance(dtype, str) else None)


def _tensors(v: Any, depth: int = 0) -> Iterator[tuple[tuple[str, int, int], Spec | None]]:
    """Every tensor reference in a Keras 3 call argument (nested lists and dicts), in order."""
    if depth > MAX_DEPTH:
        return
    found = _keras_tensor(v)
    if found is not None:
        yield found
    elif isinstance(v, dict):
        for x in v.values():
            yield from _tensors(x, depth + 1)
    elif isinstance(v, list):
        for x in v:
            yield from _tensors(x, depth + 1)


def _calls(entry: Any) -> list[_Call]:
    """The calls of a functional-model layer entry, in the node formats of Keras 1/2 and 3."""
    nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
    out: list[_Call] = []
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            args = [*_tensors(node.get("args")), *_tensors(node.get("kwargs"))]
            kwargs = as_dict(node.get("kwargs"))
            out.append(_Call([r for r, _ in args], [s for _, s in args], kwargs))
        elif isinstance(node, list):  # Keras 1/2: [[name, node, tensor, kwargs], ...]
            refs: list[tuple[str, int, int]] = []
            kwargs = {}
            for item in node:
                hist = _history(item)
                if hist is None:
                    continue
                refs.append(hist)
                if len(item) > 3 and isinstance(item[3], dict):
                    kwargs.update(item[3])
                    refs.extend(h for h in map(_history, item[3].values()) if h is not None)
            out.append(_Call(refs, [None] * len(refs), kwargs))
    return out


def _io_refs(v: Any) -> list[tuple[str, tuple[str, int, int]]]:
    """(name, reference) of a model's ``input_layers``/``output_layers``: a list of references,
    one flat reference (Keras 3, one tensor) or a dict of them (Keras 3, named tensors)."""
    single = _history(v)
    if single is not None:
        return [(single[0], single)]
    if isinstance(v, dict):  # Keras 3 flattens a dict of tensors in the order of its keys
        return [(str(k), h) for k, h in ((k, _history(v[k])) for k in sorted(v, key=str)) if h is not None]
    refs = [h for h in map(_history, v) if h is not None] if isinstance(v, list) else []
    counts: dict[str, int] = {}
    for name, _, _ in refs:
        counts[name] = counts.get(name, 0) + 1
    return [(name if counts[name] == 1 else f"{name}:{t}", (name, n, t)) for name, n, t in refs]


def _input_spec(cfg: Mapping[str, Any]) -> Spec:
    """The tensor an ``InputLayer`` config (or a first layer's ``batch_input_shape``) describes."""
    for key in ("batch_shape", "batch_input_shape"):
        if key in cfg:
            shape = shape_of(cfg[key])
            break
    else:
        own = cfg.get("shape", cfg.get("input_shape"))
        rest = shape_of(own)
        shape = None if rest is None else (None, *rest)
    dtype = cfg.get("dtype", cfg.get("input_dtype"))  # Keras 1 says input_dtype
    return Spec(shape, dtype if isinstance(dtype, str) else compute_dtype(cfg))


def _is_model(entry: Any) -> bool:
    """A Keras model whose graph the config holds (a subclassed model's layer list says
    nothing about how it calls them)."""
    return entry_class(entry) in _MODEL_CLASSES or "input_layers" in entry_config(entry)


class _Inference:
    def __init__(self, budget: int) -> None:
        #: id(entry) -> outputs of each of its calls (None: that call's outputs are unknown)
        self.per_call: dict[int, list[tuple[Spec, ...] | None]] = {}
        #: Layer calls left to evaluate: a nested model is evaluated once per call, so models
        #: called twice inside models called twice... would take exponential time.
        self.budget = budget

    def note(self, entry: Any, outs: tuple[Spec, ...] | None) -> None:
        self.per_call.setdefault(id(entry), []).append(outs)

    def layer_outputs(self) -> dict[int, tuple[Spec, ...]]:
        out = {}
        for key, calls in self.per_call.items():
            first = calls[0]
            if (
                first is not None
                and all(c == first for c in calls)
                and any(s.shape is not None for s in first)
            ):
                out[key] = first
        return out

    def apply(
        self, entry: Any, ins: list[Spec], kwargs: Mapping[str, Any], depth: int
    ) -> tuple[Spec, ...] | None:
        """Outputs of a layer entry called on ``ins``."""
        self.budget -= 1
        if depth > MAX_DEPTH or self.budget < 0:
            return None
        if _is_model(entry):
            io = self.model(entry, ins, depth + 1)
            return tuple(s for _, s in io[1]) if io[1] else None
        inner = entry_config(entry).get("layer")
        if entry_class(entry) == "TimeDistributed" and isinstance(inner, dict):
            return self.time_distributed(inner, ins, depth)
        return apply_rule(entry_class(entry), entry_config(entry), ins, kwargs)

    def time_distributed(self, inner: Any, ins: list[Spec], depth: int) -> tuple[Spec, ...] | None:
        x = ins[0].shape if ins else None
        if x is None or len(x) < 3:
            return None
        outs = self.apply(inner, [Spec((x[0], *x[2:]), ins[0].dtype)], {}, depth + 1)
        if not outs or len(outs) != 1 or outs[0].shape is None:
            return None
        return (Spec((x[0], x[1], *outs[0].shape[1:]), outs[0].dtype),)

    def model(
        self, entry: Any, ins: list[Spec] | None, depth: int
    ) -> tuple[list[tuple[str, Spec]], list[tuple[str, Spec]]]:
        """(inputs, outputs) of a model entry, called on ``ins`` (None: on its own inputs)."""
        if entry_class(entry) == "Sequential" or isinstance(entry.get("config"), list):
            return self.sequential(entry, ins, depth)
        if "input_layers" in entry_config(entry):
            return _Functional(self, entry, depth).run(ins)
        return [], []

    def sequential(
        self, entry: Any, ins: list[Spec] | None, depth: int
    ) -> tuple[list[tuple[str, Spec]], list[tuple[str, Spec]]]:
        layers = model_layers(entry)
        if not layers:
            return [], []
        name, own = _sequential_input(entry)
        if entry_class(layers[0]) == "InputLayer":
            self.note(layers[0], (own,))
            layers = layers[1:]
        x = ins[0] if ins else own
        for layer in layers:
            outs = self.apply(layer, [x], {}, depth)
            self.note(layer, outs)
            x = outs[0] if outs and len(outs) == 1 else UNKNOWN
        last = entry_name(layers[-1], "output") if layers else name
        return [(name, own)], [(last, x)]


def _sequential_input(entry: Any) -> tuple[str, Spec]:
    """The input of a Sequential model entry: its InputLayer, its first layer's
    ``batch_input_shape`` (Keras names the input ``<first layer>_input``), its build config, or,
    when its first layer is a model, that model's one input (followed down, not evaluated)."""
    for _ in range(MAX_DEPTH):
        layers = model_layers(entry)
        if not layers:
            return "input", UNKNOWN
        first = layers[0]
        first_cfg = entry_config(first)
        if entry_class(first) == "InputLayer":
            return entry_name(first, "input"), _input_spec(first_cfg)
        name = f"{entry_name(first, 'layer')}_input"
        build = as_dict(entry.get("build_config"))
        if "batch_input_shape" in first_cfg or "batch_shape" in first_cfg:
            return name, _input_spec(first_cfg)
        if "input_shape" in build:
            return name, Spec(shape_of(build["input_shape"]), None)
        if entry_class(first) == "Sequential" or isinstance(first.get("config"), list):
            entry = first
            continue
        if _is_model(first):  # a functional model: its input layers are in its config
            refs = _io_refs(first_cfg.get("input_layers"))
            named = {entry_name(e, ""): e for e in model_layers(first)}
            if len(refs) == 1 and refs[0][1][0] in named:
                return refs[0][0], _input_spec(entry_config(named[refs[0][1][0]]))
        return name, UNKNOWN
    return "input", UNKNOWN


class _Functional:
    """One functional model's graph, evaluated call by call."""

    def __init__(self, inference: _Inference, entry: Any, depth: int) -> None:
        self.inference, self.entry, self.depth = inference, entry, depth
        self.layers = {entry_name(e, f"layer_{i}"): e for i, e in enumerate(model_layers(entry))}
        self.calls = {name: _calls(e) for name, e in self.layers.items()}
        #: (layer, call) -> {output index: spec} as the file records them (Keras 3: in the
        #: arguments of the calls that consume them)
        self.recorded: dict[tuple[str, int], dict[int, Spec]] = {}
        for calls in self.calls.values():
            for call in calls:
                for (layer, node, index), spec in zip(call.refs, call.recorded, strict=True):
                    k = self.call_index(layer, node)
                    if spec is not None and k is not None:
                        self.recorded.setdefault((layer, k), {}).setdefault(index, spec)
        self.fed: dict[str, Spec] = {}
        self.done: dict[tuple[str, int], tuple[Spec, ...] | None] = {}
        self.busy: set[tuple[str, int]] = set()

    def run(self, ins: list[Spec] | None) -> tuple[list[tuple[str, Spec]], list[tuple[str, Spec]]]:
        cfg = entry_config(self.entry)
        inputs = _io_refs(cfg.get("input_layers"))
        for i, (_, (layer, _, _)) in enumerate(inputs):
            entry = self.layers.get(layer)
            own = _input_spec(entry_config(entry)) if entry is not None else UNKNOWN
            self.fed[layer] = ins[i] if ins and i < len(ins) else own
        for name, entry in self.layers.items():
            if entry_class(entry) == "InputLayer":
                self.inference.note(entry, (self.input_of(name),))
                continue
            for k in range(len(self.calls[name])):
                self.inference.note(entry, self.call(name, k))
        named_inputs = [(n, self.input_of(layer)) for n, (layer, _, _) in inputs]
        outputs = [(n, self.tensor(ref)) for n, ref in _io_refs(cfg.get("output_layers"))]
        return named_inputs, outputs

    def input_of(self, layer: str) -> Spec:
        if layer in self.fed:
            return self.fed[layer]
        entry = self.layers.get(layer)
        return _input_spec(entry_config(entry)) if entry is not None else UNKNOWN

    def call_index(self, layer: str, node: int) -> int | None:
        """The call of ``layer`` a reference's node index means."""
        n = len(self.calls.get(layer, ()))
        if n <= 1:
            return 0 if n else None
        # A nested model built on inputs has its own graph as node 0: references to its calls
        # in the outer graph count from 1.
        return node if node < n else node - 1 if node == n else None

    def tensor(self, ref: tuple[str, int, int]) -> Spec:
        """The tensor ``ref`` names: as recorded in the file, else computed."""
        layer, node, index = ref
        entry = self.layers.get(layer)
        if entry is None:
            return UNKNOWN
        if entry_class(entry) == "InputLayer":
            return self.input_of(layer)
        k = self.call_index(layer, node)
        outs = self.call(layer, k) if k is not None else None
        return outs[index] if outs is not None and 0 <= index < len(outs) else UNKNOWN

    def call(self, layer: str, k: int) -> tuple[Spec, ...] | None:
        key = (layer, k)
        if key in self.done:
            return self.done[key]
        if key in self.busy or len(self.busy) > _MAX_CHAIN:  # a cycle (not a valid graph), or a
            return None  # chain of layers listed after their consumers too long to follow
        self.busy.add(key)
        c = self.calls[layer][k]
        ins = [
            spec if spec is not None else self.tensor(ref)
            for ref, spec in zip(c.refs, c.recorded, strict=True)
        ]
        outs = self.inference.apply(self.layers[layer], ins, c.kwargs, self.depth)
        self.busy.discard(key)
        recorded = self.recorded.get(key, {})
        if recorded:  # what the file records wins over what the rules compute
            count = max(len(outs or ()), max(recorded) + 1)
            computed = list(outs or ()) + [UNKNOWN] * count
            outs = tuple(recorded.get(i, computed[i]) for i in range(count))
        self.done[key] = outs
        return outs


def _count_entries(model: Any) -> int:
    """Layer entries and their calls in a model config, nested ones included."""
    count, stack = 0, [(model, 0)]
    while stack:
        entry, depth = stack.pop()
        if depth <= MAX_DEPTH:
            children = model_layers(entry)
            nodes = [c.get("inbound_nodes") for c in children]
            count += len(children) + sum(len(n) for n in nodes if isinstance(n, list))
            stack.extend((c, depth + 1) for c in children)
    return count


def model_io(model: Any) -> ModelIO:
    """Inputs, outputs and layer output specs of a model config (``{"class_name", "config"}``)."""
    if not isinstance(model, dict) or not _is_model(model):
        return ModelIO()
    inference = _Inference(budget=_BUDGET_PER_LAYER * (1 + _count_entries(model)))
    try:
        inputs, outputs = inference.model(model, None, 0)
    except RecursionError:  # models nested deep inside each other, each listed out of order
        return ModelIO()
    return ModelIO(tuple(inputs), tuple(outputs), inference.layer_outputs())
