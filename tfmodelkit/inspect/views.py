"""Views over a ModelDescription: plain, JSON-ready dicts (the documented JSON contract).

Each ``*_view`` function takes descriptions and returns a dict whose shape never depends
on the output format; the renderers turn it into a table, markdown or JSON. The
``inspect_*`` functions do what one ``modelinspect`` command does: read the path(s), build
the view(s), and say what passed and what the reads warned about.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..description import (
    ROLE_MODEL,
    ROLE_OPTIMIZER,
    CheckReport,
    ModelDescription,
    Signature,
    TensorSpec,
    Weight,
)
from ..errors import UserError
from .stats import all_weight_stats


def shape_json(shape: tuple[int | None, ...] | None) -> list[int | None] | None:
    return None if shape is None else [None if d is None else int(d) for d in shape]


def _spec(t: TensorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "dtype": t.dtype, "shape": shape_json(t.shape), "tensor": t.tensor}
    if t.quantization is not None:
        q = t.quantization
        out["quantization"] = {
            "scale": list(q.scale),
            "zero_point": list(q.zero_point),
            "quantized_dimension": q.quantized_dimension,
        }
    return out


def _signature(s: Signature) -> dict[str, Any]:
    return {
        "key": s.key,
        "tags": list(s.tags),
        "method": s.method,
        "inputs": [_spec(t) for t in s.inputs],
        "outputs": [_spec(t) for t in s.outputs],
    }


def signatures_view(desc: ModelDescription, all: bool = False) -> dict[str, Any]:
    return {
        "path": desc.path,
        "format": desc.format,
        "signatures": [_signature(s) for s in desc.visible_signatures(all)],
        "functions": [
            {"name": f.name, "path": f.path, "inputs": [_spec(t) for t in f.inputs]} for f in desc.functions
        ]
        if all
        else [],
        "warnings": list(desc.warnings),
    }


def select_weights(
    desc: ModelDescription, match: str | None = None, include_optimizer: bool = False
) -> tuple[list[Weight], int]:
    """The weights to show, and how many optimizer tensors were left out."""
    pattern = None
    if match:
        try:
            pattern = re.compile(match)
        except re.error as e:
            raise UserError(f"--match {match!r} is not a valid regular expression ({e})") from None
    chosen = []
    hidden = 0
    for w in desc.weights:
        if pattern and not (pattern.search(w.name) or (w.path and pattern.search(w.path))):
            continue
        if w.role == ROLE_OPTIMIZER and not include_optimizer:
            hidden += 1
            continue
        chosen.append(w)
    return chosen, hidden


def weight_entry(w: Weight) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": w.name,
        "dtype": w.dtype,
        "shape": list(w.shape),
        "nbytes": w.nbytes,
        "role": w.role,
        "location": w.location,
    }
    if w.path is not None:
        out["path"] = w.path
    if w.layer is not None:
        out["layer"] = w.layer
    if "graph_variable" in w.extra:  # a TF1 checkpoint beside its .meta: the variable(s) it restores
        out["graph_variable"] = w.extra["graph_variable"]
    if isinstance(w.extra.get("quantization"), dict):  # TF.js: stored as uint8/uint16/float16, read dequantized
        out["quantization"] = dict(w.extra["quantization"])
    return out


def weights_view(
    desc: ModelDescription,
    match: str | None = None,
    include_optimizer: bool = False,
    stats: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The weights table; with ``stats``, each tensor's values are streamed once (bounded
    memory) and ``progress(bytes_done, bytes_total)`` is called as they are read."""
    chosen, hidden = select_weights(desc, match, include_optimizer)
    entries = [weight_entry(w) for w in chosen]
    if stats:
        for e, s in zip(entries, all_weight_stats(chosen, progress), strict=True):
            for k in ("min", "max", "mean", "std", "nan", "inf"):
                e[k] = None if s is None else getattr(s, k)
    return {
        "path": desc.path,
        "format": desc.format,
        "weights": entries,
        "hidden_optimizer_weights": hidden,
        "total_nbytes": sum(w.nbytes for w in chosen),
        "total_elements": sum(w.size for w in chosen),
        "warnings": list(desc.warnings),
    }


def layers_view(desc: ModelDescription) -> dict[str, Any]:
    return {
        "path": desc.path,
        "format": desc.format,
        "layers": [
            {
                "name": layer.name,
                "class_name": layer.class_name,
                "depth": layer.depth,
                "inbound": list(layer.inbound),
                "params": layer.params,
                "code": layer.code,
                "output_shapes": None
                if layer.output_shapes is None
                else [shape_json(s) for s in layer.output_shapes],
            }
            for layer in desc.layers
        ],
        "warnings": list(desc.warnings),
    }


#: What a file of a format without an op graph holds instead, for ``ops`` to say.
_NO_OP_GRAPH = {
    "keras_h5": "a Keras .h5 file holds layers, not ops: modelinspect layers lists them",
    "keras_zip": "a Keras .keras file holds layers, not ops: modelinspect layers lists them",
    "tfjs": "a TF.js layers model holds layers, not ops: modelinspect layers lists them",
    "checkpoint": "a checkpoint holds weights only; its graph is in the code or the .meta that wrote it",
    "checkpoint_v1": "a checkpoint holds weights only; its graph is in the code or the .meta that wrote it",
}


def ops_view(desc: ModelDescription) -> dict[str, Any]:
    ops = dict(sorted(desc.ops.items(), key=lambda kv: (-kv[1], kv[0])))
    layers_model = desc.format != "tfjs" or desc.metadata.get("tfjs_format") != "graph-model"
    return {
        "path": desc.path,
        "format": desc.format,
        "ops": ops,
        "total": sum(ops.values()),
        "custom_ops": list(desc.metadata.get("custom_ops", [])),
        "flex_ops": list(desc.metadata.get("flex_ops", [])),
        #: Why there are no ops, for a format that has no op graph; else None.
        "no_op_graph": _NO_OP_GRAPH.get(desc.format) if not ops and layers_model else None,
    }


def summary_view(desc: ModelDescription) -> dict[str, Any]:
    roles: dict[str, int] = {}
    for w in desc.weights:
        roles[w.role] = roles.get(w.role, 0) + 1
    model_weights = [w for w in desc.weights if w.role == ROLE_MODEL]
    producer = {
        k: v
        for k, v in {
            "tensorflow": desc.producer.tensorflow,
            "keras": desc.producer.keras,
            "backend": desc.producer.backend,
            **dict(desc.producer.other),
        }.items()
        if v
    }
    return {
        "path": desc.path,
        "format": desc.format,
        "producer": producer,
        "signatures": [s.key for s in desc.visible_signatures()],
        "weights": {
            "count": len(desc.weights),
            "by_role": roles,
            "model_parameters": sum(w.size for w in model_weights),
            "model_nbytes": sum(w.nbytes for w in model_weights),
            "total_nbytes": sum(w.nbytes for w in desc.weights),
        },
        "layers": len(desc.layers),
        "ops": {"kinds": len(desc.ops), "total": sum(desc.ops.values())},
        "functions": len(desc.functions),
        "assets": [a.path for a in desc.assets],
        "metadata": _jsonable(dict(desc.metadata)),
        "warnings": list(desc.warnings),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def check_view(report: CheckReport) -> dict[str, Any]:
    view: dict[str, Any] = {
        "path": report.path,
        "format": report.format,
        "ok": report.ok,
        "checked": dict(report.checked),
        "findings": [{"severity": f.severity, "subject": f.subject, "message": f.message} for f in report.findings],
    }
    if report.targets:  # `check --target`: which lints ran, and which one found each problem
        view["targets"] = list(report.targets)
        for entry, f in zip(view["findings"], report.findings, strict=True):
            entry["target"] = f.target or "integrity"
    return view


# ----------------------------------------------------------------------------------------
# one function per modelinspect command

Progress = Callable[[int, int], None]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Inspection:
    """What one inspection produced: its views (one per path), what the reads warned about,
    notes on how a file was written, and whether it passed (check and diff can fail)."""

    view: str  # which renderer draws the items
    items: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    ok: bool = True

    @property
    def document(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The JSON document: the one view, or the list of them when several paths were covered."""
        return self.items[0] if len(self.items) == 1 else list(self.items)

    def warnings_left_out(self, output: str) -> tuple[str, ...]:
        """The warnings a rendering as ``output`` does not show: all of them in tables and
        markdown; in JSON, those of views without a ``warnings`` field of their own."""
        if output == "json" and all("warnings" in item for item in self.items):
            return ()
        return self.warnings


def expand_paths(path: PathLike, format: str | None = None, every_prefix: bool = False) -> list[str]:
    """The paths an inspection covers: ``path``, or with ``every_prefix`` each checkpoint
    prefix of a checkpoint folder (in the folder's order; ``path`` itself when it holds none)."""
    if every_prefix:
        from ..formats import checkpoint, detect, normalize_format

        fmt = normalize_format(format) if format else detect(path)
        if fmt == "checkpoint":
            found = checkpoint.prefixes(path)
            if found:
                # An empty prefix ("<folder>/") as text means the folder: named by its index.
                return [str(p) if p.name else f"{p}.index" for p in found]
    return [str(path)]


def read_model(path: PathLike, format: str | None, tags: str | None, **graph: Any) -> ModelDescription:
    """``path`` read; ``graph``: a TF1 graph's ``input_tensors``/``output_tensors`` (when given)."""
    from ..formats import read

    # Only SavedModels have tag sets; the other readers are not offered the option.
    options = {"tags": tags} if tags else {}
    return read(path, format=format, **options, **{k: v for k, v in graph.items() if v})


def warnings_of(descs: Sequence[ModelDescription], name_each: bool = False) -> tuple[str, ...]:
    """Every description's warnings; each prefixed by its path when several were read."""
    if len(descs) == 1 and not name_each:
        return tuple(descs[0].warnings)
    return tuple(f"{d.path}: {w}" for d in descs for w in d.warnings)


def _each(
    path: PathLike, format: str | None, tags: str | None, every_prefix: bool, view: str,
    build: Callable[[ModelDescription], dict[str, Any]],
) -> Inspection:  # fmt: skip
    descs = [read_model(p, format, tags) for p in expand_paths(path, format, every_prefix)]
    return Inspection(view, tuple(build(d) for d in descs), warnings_of(descs))


def inspect_summary(
    path: PathLike, *, format: str | None = None, tags: str | None = None, every_prefix: bool = False
) -> Inspection:
    """``modelinspect summary``: what the file is, who wrote it, what it holds."""
    return _each(path, format, tags, every_prefix, "summary", summary_view)


def inspect_signatures(
    path: PathLike,
    *,
    format: str | None = None,
    tags: str | None = None,
    all: bool = False,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
) -> Inspection:
    """``modelinspect signatures``; ``all`` adds bookkeeping signatures and the object graph's functions;
    ``input_tensors``/``output_tensors`` name a TF1 graph's signature instead of the inferred one."""
    desc = read_model(path, format, tags, input_tensors=input_tensors, output_tensors=output_tensors)
    graph = desc.metadata.get("graph") if desc.format == "checkpoint" else None
    notes = (f"a checkpoint has no signatures; its graph {graph} has: modelinspect signatures {graph}",) if graph else ()
    return Inspection("signatures", (signatures_view(desc, all=all),), warnings_of([desc]), notes)


def inspect_weights(
    path: PathLike,
    *,
    format: str | None = None,
    tags: str | None = None,
    match: str | None = None,
    include_optimizer: bool = False,
    stats: bool = False,
    every_prefix: bool = False,
    progress: Progress | None = None,
) -> Inspection:
    """``modelinspect weights``: the stored tensors, with ``stats`` their values' statistics."""

    def build(desc: ModelDescription) -> dict[str, Any]:
        return weights_view(
            desc, match=match, include_optimizer=include_optimizer, stats=stats, progress=progress
        )

    return _each(path, format, tags, every_prefix, "weights", build)


def inspect_layers(path: PathLike, *, format: str | None = None, tags: str | None = None) -> Inspection:
    """``modelinspect layers``: the Keras architecture stored in the file."""
    return _each(path, format, tags, False, "layers", layers_view)


def inspect_ops(path: PathLike, *, format: str | None = None, tags: str | None = None) -> Inspection:
    """``modelinspect ops``: the op census over the graph and every function."""
    return _each(path, format, tags, False, "ops", ops_view)


def inspect_tensor(
    path: PathLike,
    name: str,
    *,
    format: str | None = None,
    tags: str | None = None,
    out: PathLike | None = None,
    for_json: bool = False,
    progress: Progress | None = None,
) -> Inspection:
    """``modelinspect tensor``: one tensor's values, or with ``out`` its values saved as ``.npy``.

    ``for_json`` leaves out the values' text form and refuses tensors too large to list.
    """
    from .tensor import MAX_PRINT_ELEMENTS, printable, save_npy

    desc = read_model(path, format, tags)
    weight = desc.weight(name)
    data: dict[str, Any] = {
        "path": desc.path,
        "format": desc.format,
        "name": weight.name,
        "dtype": weight.dtype,
        "shape": list(weight.shape),
    }
    if isinstance(weight.extra.get("quantization"), dict):  # TF.js: the values shown are dequantized
        data["quantization"] = dict(weight.extra["quantization"])
    notes: tuple[str, ...] = ()
    if out is not None:
        note = save_npy(weight, out, progress=progress)
        notes = (note,) if note else ()
        data["out"] = str(out)
    else:
        if for_json and weight.size > MAX_PRINT_ELEMENTS:
            raise UserError(
                f"{weight.name} has {weight.size:,} elements; too many for JSON output: use --out FILE.npy"
            )
        data["values"], data["values_text"] = printable(weight.read())
        if for_json:
            data.pop("values_text")
    return Inspection("tensor", (data,), warnings_of([desc]), notes)


def inspect_check(
    path: PathLike,
    *,
    format: str | None = None,
    tags: str | None = None,
    targets: Sequence[str] | None = None,
    every_prefix: bool = False,
    progress: Progress | None = None,
) -> Inspection:
    """``modelinspect check``: the integrity check, or with ``targets`` (names, or comma lists
    of them) the deployment lints; it passes when nothing found an error."""
    if targets:
        from ..lint import lint, parse_targets

        chosen = parse_targets(list(targets))
        paths = expand_paths(path, format, every_prefix)
        reports = [lint(p, chosen, format=format, tags=tags) for p in paths]
    else:
        from ..formats import check

        reports = [check(p, format=format, progress=progress) for p in expand_paths(path, format, every_prefix)]
    return Inspection("check", tuple(check_view(r) for r in reports), ok=all(r.ok for r in reports))
