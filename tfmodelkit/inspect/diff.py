"""``modelinspect diff``: two artifacts compared weight by weight, and by signatures, ops and metadata.

Weights are paired in three rounds, each over what the rounds before left unpaired: by **name**;
by a **normalized name**, the layer path and the variable's role (``dense/kernel``), taken from
every name the format keeps (the key, the object path, TensorFlow's variable name) with the
storage decorations removed; then by **shape and order**. Each pair says which round made it,
so that a model and its own conversion (a ``.h5`` and its SavedModel, a checkpoint and its
SavedModel) pair completely and a guess is visible as one. Strings compare as equal or
different. ``tfmodelkit.diff(a, b)`` reads both (paths or descriptions) and returns a
:class:`DiffReport`; it never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..description import ModelDescription, Weight
from ..formats.checkpoint_graph import OBJECT_GRAPH_KEY
from ..options import checked_options
from ..text import plural
from ..util import jsonable
from .render import fmt_shape
from .views import Inspection, PathLike, read_model, select_weights, shape_json, warnings_of

#: How a pair was made, strongest first.
BY_NAME = "name"
BY_NORMALIZED_NAME = "normalized name"
BY_SHAPE_AND_ORDER = "shape and order"
MATCH_METHODS = (BY_NAME, BY_NORMALIZED_NAME, BY_SHAPE_AND_ORDER)

#: Elements compared at a time (bounds the float64 copies a comparison makes).
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightChange:
    """A pair whose dtype, shape or values differ; ``name`` is A's name, ``name_b`` B's."""

    name: str
    what: str  # "dtype", "shape", "values"
    a: Any
    b: Any
    max_abs_diff: float | None = None  # numbers only; None for strings
    name_b: str | None = None
    matched_by: str = BY_NAME
    differing: int | None = None  # elements that differ (beyond atol), for "values"
    size: int | None = None  # elements compared, for "values"


@dataclass(frozen=True)
class WeightPair:
    """Two weights taken for the same one: how they were paired and how they compare."""

    name: str  # A's
    name_b: str
    matched_by: str
    result: str  # "equal", or what differs: "dtype", "shape", "values"


@dataclass(frozen=True)
class DiffReport:
    a: str
    b: str
    #: The weakest round any pair needed (``name`` < ``normalized name`` < ``shape and order``);
    #: None when nothing paired.
    matched_by: str | None
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()
    changed: tuple[WeightChange, ...] = ()
    same: int = 0
    signature_changes: tuple[str, ...] = field(default_factory=tuple)
    pairs: tuple[WeightPair, ...] = ()
    op_changes: tuple[str, ...] = ()
    metadata_changes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not (
            self.only_in_a
            or self.only_in_b
            or self.changed
            or self.signature_changes
            or self.op_changes
            or self.metadata_changes
        )

    @property
    def paired_by(self) -> dict[str, int]:
        """How many pairs each round made."""
        counts = Counter(p.matched_by for p in self.pairs)
        return {how: counts.get(how, 0) for how in MATCH_METHODS}

    def as_dict(self) -> dict[str, Any]:
        return diff_json(self)


# ----------------------------------------------------------------------------------------
# Pairing


def canonical(name: str) -> tuple[str, ...]:
    """A weight name as path segments, without what storage adds to it: the checkpoint's
    ``/.ATTRIBUTES/VARIABLE_VALUE``, TensorFlow's ``:0``, the ``.h5`` ``model_weights/`` group,
    and the underscore of a Keras 3 attribute (``_kernel``, tracked for ``kernel``)."""
    name = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
    name = re.sub(r":\d+$", "", name).removeprefix("model_weights/")
    parts = [p for p in name.split("/") if p]
    if parts and len(parts[-1]) > 1 and parts[-1].startswith("_"):
        parts[-1] = parts[-1][1:]
    return tuple(parts)


def _names(w: Weight) -> set[tuple[str, ...]]:
    """Every name a weight goes by, canonical."""
    raw = {w.name, w.path, w.extra.get("variable_name")}
    return {c for c in (canonical(n) for n in raw if isinstance(n, str) and n) if c}


def _unique_names(weights: Sequence[Weight]) -> list[set[tuple[str, ...]]]:
    """Each weight's names, less those another weight of the same side also goes by
    (Keras 3 gives the kernels of a subclassed model one variable name, ``net/kernel``)."""
    names = [_names(w) for w in weights]
    counts = Counter(n for ns in names for n in ns)
    return [{n for n in ns if counts[n] == 1} for ns in names]


def _mutual(relation: dict[tuple[int, int], int]) -> list[tuple[int, int]]:
    """Pairs (i, j) of ``relation`` (scored) where each is the other's single best, repeated
    until none is left: a pair taken removes its members from the others' choices."""
    chosen: list[tuple[int, int]] = []
    scores = dict(relation)
    while scores:
        best_a: dict[int, int] = defaultdict(int)
        best_b: dict[int, int] = defaultdict(int)
        for (i, j), s in scores.items():
            best_a[i] = max(best_a[i], s)
            best_b[j] = max(best_b[j], s)
        tops_a = Counter(i for (i, j), s in scores.items() if s == best_a[i])
        tops_b = Counter(j for (i, j), s in scores.items() if s == best_b[j])
        found = [
            (i, j)
            for (i, j), s in scores.items()
            if s == best_a[i] == best_b[j] and tops_a[i] == 1 and tops_b[j] == 1
        ]
        if not found:
            break
        chosen += found
        taken_a, taken_b = {i for i, _ in found}, {j for _, j in found}
        scores = {(i, j): s for (i, j), s in scores.items() if i not in taken_a and j not in taken_b}
    return chosen


def _tail_relation(
    names_a: Sequence[set[tuple[str, ...]]], names_b: Sequence[set[tuple[str, ...]]]
) -> dict[tuple[int, int], int]:
    """(i, j) -> the longest tail (in segments, at least a layer and a role) that a name of A's
    i-th weight shares with a name of B's j-th. Equal names score above any tail."""
    equal: dict[tuple[str, ...], list[int]] = defaultdict(list)
    tails: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for j, names in enumerate(names_b):
        for n in names:
            equal[n].append(j)
            if _has_role(n):
                for k in range(2, len(n) + 1):
                    tails[n[-k:]].add(j)
    relation: dict[tuple[int, int], int] = {}
    for i, names in enumerate(names_a):
        for n in names:
            for j in equal.get(n, ()):
                relation[(i, j)] = 1 << 20
            if not _has_role(n):
                continue
            for k in range(2, len(n) + 1):
                for j in tails.get(n[-k:], ()):
                    relation[(i, j)] = max(relation.get((i, j), 0), k)
    return relation


def _has_role(name: tuple[str, ...]) -> bool:
    """Whether the name ends in a layer and a role (``dense/kernel``), not in positions
    (``vars/0``, ``_operations/1/kernel``), so that its tail can stand for the weight."""
    return len(name) >= 2 and not name[-1].isdigit() and not name[-2].isdigit()


def _in_order(weights: Sequence[Weight], desc: ModelDescription) -> list[Weight]:
    """The weights in model order: a checkpoint's keys are sorted bytewise, so ``layer-10``
    comes before ``layer-2`` there; other formats list weights in the model's own order."""
    if desc.format in ("checkpoint", "savedmodel"):
        return sorted(weights, key=lambda w: _natural(w.name))
    return list(weights)


def _natural(name: str) -> list[tuple[int, int, str]]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def pair_weights(
    wa: Sequence[Weight], wb: Sequence[Weight], da: ModelDescription, db: ModelDescription
) -> tuple[list[tuple[Weight, Weight, str]], list[Weight], list[Weight]]:
    """(pairs with how each was made, A's unpaired, B's unpaired)."""
    pairs: list[tuple[Weight, Weight, str]] = []
    by_name = {w.name: w for w in wb}
    left_a = []
    for w in wa:
        other = by_name.pop(w.name, None)
        if other is None:
            left_a.append(w)
        else:
            pairs.append((w, other, BY_NAME))
    left_b = [w for w in wb if w.name in by_name]

    relation = _tail_relation(_unique_names(left_a), _unique_names(left_b))
    relation = {(i, j): s for (i, j), s in relation.items() if left_a[i].role == left_b[j].role}
    taken_a, taken_b = set(), set()
    for i, j in sorted(_mutual(relation)):
        pairs.append((left_a[i], left_b[j], BY_NORMALIZED_NAME))
        taken_a.add(i)
        taken_b.add(j)
    left_a = [w for i, w in enumerate(left_a) if i not in taken_a]
    left_b = [w for j, w in enumerate(left_b) if j not in taken_b]

    # Same role, dtype and shape, in model order; only where both sides have as many.
    groups_a: dict[Any, list[Weight]] = defaultdict(list)
    groups_b: dict[Any, list[Weight]] = defaultdict(list)
    for w in _in_order(left_a, da):
        groups_a[(w.role, w.dtype, tuple(w.shape))].append(w)
    for w in _in_order(left_b, db):
        groups_b[(w.role, w.dtype, tuple(w.shape))].append(w)
    ordered: set[int] = set()
    for key, group in groups_a.items():
        if len(group) == len(groups_b.get(key, ())):
            for x, y in zip(group, groups_b[key], strict=True):
                pairs.append((x, y, BY_SHAPE_AND_ORDER))
                ordered.update((id(x), id(y)))
    left_a = [w for w in left_a if id(w) not in ordered]
    left_b = [w for w in left_b if id(w) not in ordered]
    return pairs, left_a, left_b


# ----------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ValueComparison:
    """How two tensors of one dtype and shape compare, element by element."""

    differing: int
    size: int
    max_abs_diff: float | None  # None for strings


def compare_values(wa: Weight, wb: Weight, atol: float = 0.0) -> ValueComparison:
    """How many elements differ (beyond ``atol``) and by how much at most. NaN equals NaN;
    strings are equal or not, with no distance."""
    import numpy as np

    va = np.asarray(wa.read()).reshape(-1)
    vb = np.asarray(wb.read()).reshape(-1)
    if va.dtype == object or vb.dtype == object or va.dtype.kind in "SU" or vb.dtype.kind in "SU":
        differing = sum(
            int(np.count_nonzero(np.asarray(va[i : i + _CHUNK] != vb[i : i + _CHUNK], dtype=bool)))
            for i in range(0, va.size, _CHUNK)
        )
        return ValueComparison(differing, int(va.size), None)
    if va.dtype == vb.dtype and _same_bytes(np, va, vb):  # the common case, without float copies
        return ValueComparison(0, int(va.size), 0.0)
    wide = np.complex128 if "c" in (va.dtype.kind, vb.dtype.kind) else np.float64
    differing, worst = 0, 0.0
    for i in range(0, va.size, _CHUNK):
        x = va[i : i + _CHUNK].astype(wide)
        y = vb[i : i + _CHUNK].astype(wide)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(x - y)
        d[(x == y) | (np.isnan(x) & np.isnan(y))] = 0.0  # inf == inf, NaN == NaN
        d[np.isnan(d)] = np.inf  # NaN against a number
        differing += int(np.count_nonzero(d > atol))
        if d.size:
            worst = max(worst, float(d.max()))
    return ValueComparison(differing, int(va.size), worst)


def _same_bytes(np: Any, va: Any, vb: Any) -> bool:
    """Whether two flat arrays of one dtype hold the same bytes (compared chunk by chunk)."""
    step = _CHUNK * 8
    a = np.ascontiguousarray(va).view(np.uint8)
    b = np.ascontiguousarray(vb).view(np.uint8)
    return a.size == b.size and all(
        np.array_equal(a[i : i + step], b[i : i + step]) for i in range(0, a.size, step)
    )


def _compare_pair(x: Weight, y: Weight, how: str, atol: float) -> tuple[WeightPair, WeightChange | None]:
    change = None
    if x.dtype != y.dtype:
        change = WeightChange(x.name, "dtype", x.dtype, y.dtype, name_b=y.name, matched_by=how)
    elif tuple(x.shape) != tuple(y.shape):
        change = WeightChange(x.name, "shape", list(x.shape), list(y.shape), name_b=y.name, matched_by=how)
    else:
        v = compare_values(x, y, atol)
        if v.differing:
            change = WeightChange(
                x.name, "values", None, None, v.max_abs_diff, y.name, how, v.differing, v.size
            )
    return WeightPair(x.name, y.name, how, "equal" if change is None else change.what), change


# ----------------------------------------------------------------------------------------
# Signatures, ops, metadata


def _signature_changes(a: ModelDescription, b: ModelDescription) -> list[str]:
    if not a.signatures or not b.signatures:
        return []
    sa = {s.key: s for s in a.visible_signatures()}
    sb = {s.key: s for s in b.visible_signatures()}
    only_a, only_b = sorted(set(sa) - set(sb)), sorted(set(sb) - set(sa))
    pairs = [(k, k) for k in sorted(set(sa) & set(sb))]
    if a.format != b.format and len(only_a) == len(only_b) == 1:
        # A Keras file's signature is the model's own inputs and outputs under no real name
        # ("model"); the SavedModel made of it calls it serving_default: across formats the one
        # signature left on each side is the same one.
        pairs.append((only_a.pop(), only_b.pop()))
    out = [f"signature {k!r} only in A" for k in only_a]
    out += [f"signature {k!r} only in B" for k in only_b]
    for ka, kb in pairs:
        label = ka if ka == kb else f"{ka} (B: {kb})"
        for side in ("inputs", "outputs"):
            ta = {t.name: t for t in getattr(sa[ka], side)}
            tb = {t.name: t for t in getattr(sb[kb], side)}
            for n in sorted(set(ta) - set(tb)):
                out.append(f"{label}: {side[:-1]} {n!r} only in A")
            for n in sorted(set(tb) - set(ta)):
                out.append(f"{label}: {side[:-1]} {n!r} only in B")
            for n in sorted(set(ta) & set(tb)):
                x, y = ta[n], tb[n]
                if x.dtype != y.dtype or x.shape != y.shape:
                    out.append(
                        f"{label}: {side[:-1]} {n!r} is {x.dtype} {fmt_shape(shape_json(x.shape))} in A, "
                        f"{y.dtype} {fmt_shape(shape_json(y.shape))} in B"
                    )
    return out


def _op_changes(a: ModelDescription, b: ModelDescription) -> list[str]:
    """The op census, kind by kind; only between files of one format (a SavedModel's MatMul
    is a TFLite FULLY_CONNECTED)."""
    if a.format != b.format:
        return []
    out = []
    for op in sorted(set(a.ops) | set(b.ops)):
        x, y = a.ops.get(op, 0), b.ops.get(op, 0)
        if x == y:
            continue
        if not x:
            out.append(f"op {op} only in B ({y}x)")
        elif not y:
            out.append(f"op {op} only in A ({x}x)")
        else:
            out.append(f"op {op}: {x}x in A, {y}x in B")
    return out


# Metadata that differs between any two files, or that other comparisons already cover.
_NOT_COMPARED = frozenset(
    {
        "prefix",  # where the checkpoint is
        "fingerprint",  # hashes of the files themselves
        "members",  # .keras member sizes: config and weights are compared as such
        "buffers",  # TFLite: a count that follows from the weights and metadata entries
        "metadata_names",  # TFLite: compared entry by entry, with their contents
        "custom_ops",  # the op census names them
        "flex_ops",
        "model_json",  # TF.js: where the model is
        "shards",  # TF.js: the shard files (shard_count and shard_bytes compare them)
    }
)
_PRODUCER_NOT_COMPARED = frozenset({"date_saved"})


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(jsonable(value), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mapping_changes(what: str, a: dict[str, Any], b: dict[str, Any], skip: Iterable[str]) -> list[str]:
    out = []
    skipped = set(skip)
    for key in [k for k in a if k not in skipped] + [k for k in b if k not in a and k not in skipped]:
        named = f"{what} {key}" if what else key
        if key not in b:
            out.append(f"{named} only in A: {_short(a[key])}")
        elif key not in a:
            out.append(f"{named} only in B: {_short(b[key])}")
        elif jsonable(a[key]) != jsonable(b[key]):
            out.append(f"{named}: {_short(a[key])} in A, {_short(b[key])} in B")
    return out


def _producer(desc: ModelDescription) -> dict[str, Any]:
    p = desc.producer
    fields = {"tensorflow": p.tensorflow, "keras": p.keras, "backend": p.backend, **dict(p.other)}
    return {k: v for k, v in fields.items() if v is not None}


def tflite_metadata_entries(path: str | os.PathLike[str]) -> dict[str, tuple[int, str]]:
    """A ``.tflite`` file's metadata entries: name -> (byte size, sha256 of the bytes).

    The description lists the entries' names only; a changed entry keeps its name.
    """
    from ..formats.tflite_parse import load_model

    model = load_model(Path(path))
    seen: Counter[str] = Counter()
    out: dict[str, tuple[int, str]] = {}
    with open(path, "rb") as f:
        for name, index in model.metadata:
            seen[name] += 1
            key = name if seen[name] == 1 else f"{name}#{seen[name]}"
            buffer = model.buffer(index)
            span = buffer.span() if buffer is not None else None
            if span is None or span[0] + span[1] > model.file_size:
                out[key] = (0, "")
                continue
            f.seek(span[0])
            data = f.read(span[1])
            out[key] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def _tflite_entry_changes(a: ModelDescription, b: ModelDescription) -> list[str]:
    ea, eb = tflite_metadata_entries(a.path), tflite_metadata_entries(b.path)
    out = []
    for name in list(ea) + [n for n in eb if n not in ea]:
        if name == "min_runtime_version" and name in ea and name in eb:
            continue  # the producer's min_runtime_version says it, with the values
        if name not in eb:
            out.append(f"metadata entry {name!r} only in A ({plural(ea[name][0], 'byte')})")
        elif name not in ea:
            out.append(f"metadata entry {name!r} only in B ({plural(eb[name][0], 'byte')})")
        elif ea[name] != eb[name]:
            sizes = (
                f"{plural(ea[name][0], 'byte')} in A, {plural(eb[name][0], 'byte')} in B"
                if ea[name][0] != eb[name][0]
                else f"{plural(ea[name][0], 'byte')} each"
            )
            out.append(f"metadata entry {name!r} differs ({sizes})")
    return out


def _metadata_changes(a: ModelDescription, b: ModelDescription) -> list[str]:
    """Producer and format metadata, between files of one format (the fields are the format's)."""
    if a.format != b.format:
        return []
    out = _mapping_changes("producer", _producer(a), _producer(b), _PRODUCER_NOT_COMPARED)
    out += _mapping_changes("", dict(a.metadata), dict(b.metadata), _NOT_COMPARED)
    if a.format == "tflite":
        out += _tflite_entry_changes(a, b)
    return out


# ----------------------------------------------------------------------------------------
# The report


def diff_view(
    a: ModelDescription, b: ModelDescription, include_optimizer: bool = False, atol: float = 0.0
) -> DiffReport:
    """Weights (paired, changed, unpaired), signatures, ops and metadata of two artifacts."""
    wa, _ = select_weights(a, include_optimizer=include_optimizer)
    wb, _ = select_weights(b, include_optimizer=include_optimizer)
    # The object graph is the checkpoint's structure, not a value: a SavedModel's always differs.
    wa = [w for w in wa if w.name != OBJECT_GRAPH_KEY]
    wb = [w for w in wb if w.name != OBJECT_GRAPH_KEY]
    matched, left_a, left_b = pair_weights(wa, wb, a, b)
    order_a = {w.name: i for i, w in enumerate(wa)}
    matched.sort(key=lambda p: order_a[p[0].name])
    pairs, changed = [], []
    for x, y, how in matched:
        pair, change = _compare_pair(x, y, how, atol)
        pairs.append(pair)
        if change is not None:
            changed.append(change)
    used = {p.matched_by for p in pairs}
    return DiffReport(
        a=a.path,
        b=b.path,
        matched_by=next((how for how in reversed(MATCH_METHODS) if how in used), None),
        only_in_a=tuple(sorted(w.name for w in left_a)),
        only_in_b=tuple(sorted(w.name for w in left_b)),
        changed=tuple(changed),
        same=sum(1 for p in pairs if p.result == "equal"),
        signature_changes=tuple(_signature_changes(a, b)),
        pairs=tuple(pairs),
        op_changes=tuple(_op_changes(a, b)),
        metadata_changes=tuple(_metadata_changes(a, b)),
    )


def diff_json(report: DiffReport) -> dict[str, Any]:
    return {
        "a": report.a,
        "b": report.b,
        "identical": report.identical,
        "matched_by": report.matched_by,
        "paired_by": report.paired_by,
        "same": report.same,
        "pairs": [
            {"name": p.name, "name_b": p.name_b, "matched_by": p.matched_by, "result": p.result}
            for p in report.pairs
        ],
        "only_in_a": list(report.only_in_a),
        "only_in_b": list(report.only_in_b),
        "changed": [
            {
                "name": c.name,
                "name_b": c.name_b,
                "matched_by": c.matched_by,
                "what": c.what,
                "a": c.a,
                "b": c.b,
                "max_abs_diff": c.max_abs_diff,
                "differing": c.differing,
                "size": c.size,
            }
            for c in report.changed
        ],
        "signature_changes": list(report.signature_changes),
        "op_changes": list(report.op_changes),
        "metadata_changes": list(report.metadata_changes),
    }


@checked_options
def diff(
    a: ModelDescription | str | os.PathLike[str],
    b: ModelDescription | str | os.PathLike[str],
    *,
    format: str | None = None,
    tags: str | None = None,
    include_optimizer: bool = False,
    atol: float = 0.0,
) -> DiffReport:
    """Compare two artifacts (paths, read with ``format``/``tags``, or descriptions): weights
    paired by name, then normalized name, then shape and order; values within ``atol`` count
    as equal; signatures, and between files of one format ops and metadata too."""
    da = a if isinstance(a, ModelDescription) else read_model(a, format, tags)
    db = b if isinstance(b, ModelDescription) else read_model(b, format, tags)
    return diff_view(da, db, include_optimizer=include_optimizer, atol=atol)


def inspect_diff(
    a: PathLike,
    b: PathLike,
    *,
    format: str | None = None,
    tags: str | None = None,
    include_optimizer: bool = False,
    atol: float = 0.0,
) -> Inspection:
    """``modelinspect diff``: weights, signatures, ops and metadata of two artifacts; it passes
    when they are the same."""
    da, db = read_model(a, format, tags), read_model(b, format, tags)
    report = diff_view(da, db, include_optimizer=include_optimizer, atol=atol)
    return Inspection(
        "diff", (diff_json(report),), warnings_of([da, db], name_each=True), ok=report.identical
    )
