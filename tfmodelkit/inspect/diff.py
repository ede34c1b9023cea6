"""``modelinspect diff``: the weights and signatures of two artifacts, paired and compared.

``tfmodelkit.diff(a, b)`` reads both (paths or descriptions) and returns a :class:`DiffReport`;
it never imports TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..description import ModelDescription, Weight
from ..options import checked_options
from .views import Inspection, PathLike, read_model, select_weights, shape_json, warnings_of


@dataclass(frozen=True)
class WeightChange:
    name: str
    what: str  # "dtype", "shape", "values"
    a: Any
    b: Any
    max_abs_diff: float | None = None


@dataclass(frozen=True)
class DiffReport:
    a: str
    b: str
    matched_by: str
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()
    changed: tuple[WeightChange, ...] = ()
    same: int = 0
    signature_changes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.changed or self.signature_changes)

    def as_dict(self) -> dict[str, Any]:
        return diff_json(self)


_SUFFIXES = ("/.ATTRIBUTES/VARIABLE_VALUE", ":0")


def _normal(name: str) -> str:
    for s in _SUFFIXES:
        if name.endswith(s):
            name = name[: -len(s)]
    if name.startswith("model_weights/"):
        name = name[len("model_weights/") :]
    return name


def _keyed(weights: list[Weight], how: str) -> dict[str, Weight]:
    out: dict[str, Weight] = {}
    for w in weights:
        key = {"name": w.name, "path": w.path or w.name, "normalized name": _normal(w.path or w.name)}[how]
        out.setdefault(key, w)
    return out


def _max_abs_diff(wa: Weight, wb: Weight) -> float | None:
    import numpy as np

    va, vb = wa.read(), wb.read()
    if va.dtype == object or vb.dtype == object:
        return None if np.array_equal(va, vb) else float("inf")
    a64 = np.atleast_1d(np.asarray(va, dtype=np.complex128 if va.dtype.kind == "c" else np.float64))
    b64 = np.atleast_1d(np.asarray(vb, dtype=np.complex128 if vb.dtype.kind == "c" else np.float64))
    if a64.size == 0:
        return 0.0
    both_nan = np.isnan(a64) & np.isnan(b64)
    d = np.abs(a64 - b64)
    d[both_nan] = 0.0
    return float(np.nanmax(np.where(np.isnan(d), np.inf, d)))


def diff_view(a: ModelDescription, b: ModelDescription, include_optimizer: bool = False, atol: float = 0.0) -> DiffReport:
    """Weights (missing, extra, changed with max |a-b|) and signatures of two artifacts."""
    wa, _ = select_weights(a, include_optimizer=include_optimizer)
    wb, _ = select_weights(b, include_optimizer=include_optimizer)
    best = ("name", _keyed(wa, "name"), _keyed(wb, "name"))
    for how in ("path", "normalized name"):
        ka, kb = _keyed(wa, how), _keyed(wb, how)
        if len(set(ka) & set(kb)) > len(set(best[1]) & set(best[2])):
            best = (how, ka, kb)
    how, ka, kb = best
    changed = []
    same = 0
    for key in sorted(set(ka) & set(kb)):
        x, y = ka[key], kb[key]
        if x.dtype != y.dtype:
            changed.append(WeightChange(key, "dtype", x.dtype, y.dtype))
        elif tuple(x.shape) != tuple(y.shape):
            changed.append(WeightChange(key, "shape", list(x.shape), list(y.shape)))
        else:
            d = _max_abs_diff(x, y)
            if d is None or d <= atol:
                same += 1
            else:
                changed.append(WeightChange(key, "values", None, None, d))
    sig_changes = _signature_changes(a, b)
    return DiffReport(
        a=a.path,
        b=b.path,
        matched_by=how,
        only_in_a=tuple(sorted(set(ka) - set(kb))),
        only_in_b=tuple(sorted(set(kb) - set(ka))),
        changed=tuple(changed),
        same=same,
        signature_changes=tuple(sig_changes),
    )


def _signature_changes(a: ModelDescription, b: ModelDescription) -> list[str]:
    if not a.signatures or not b.signatures:
        return []
    sa = {s.key: s for s in a.visible_signatures()}
    sb = {s.key: s for s in b.visible_signatures()}
    out = [f"signature {k!r} only in A" for k in sorted(set(sa) - set(sb))]
    out += [f"signature {k!r} only in B" for k in sorted(set(sb) - set(sa))]
    for key in sorted(set(sa) & set(sb)):
        for side in ("inputs", "outputs"):
            ta = {t.name: t for t in getattr(sa[key], side)}
            tb = {t.name: t for t in getattr(sb[key], side)}
            for n in sorted(set(ta) - set(tb)):
                out.append(f"{key}: {side[:-1]} {n!r} only in A")
            for n in sorted(set(tb) - set(ta)):
                out.append(f"{key}: {side[:-1]} {n!r} only in B")
            for n in sorted(set(ta) & set(tb)):
                x, y = ta[n], tb[n]
                if x.dtype != y.dtype or x.shape != y.shape:
                    out.append(
                        f"{key}: {side[:-1]} {n!r} is {x.dtype}{shape_json(x.shape)} in A, "
                        f"{y.dtype}{shape_json(y.shape)} in B"
                    )
    return out


def diff_json(report: DiffReport) -> dict[str, Any]:
    return {
        "a": report.a,
        "b": report.b,
        "identical": report.identical,
        "matched_by": report.matched_by,
        "same": report.same,
        "only_in_a": list(report.only_in_a),
        "only_in_b": list(report.only_in_b),
        "changed": [
            {"name": c.name, "what": c.what, "a": c.a, "b": c.b, "max_abs_diff": c.max_abs_diff} for c in report.changed
        ],
        "signature_changes": list(report.signature_changes),
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
    """Compare two artifacts (paths, read with ``format``/``tags``, or descriptions): weights paired
    by name, path or normalized name, whichever pairs more; values within ``atol`` count as equal."""
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
    """``modelinspect diff``: weights and signatures of two artifacts; it passes when they are the same."""
    da, db = read_model(a, format, tags), read_model(b, format, tags)
    report = diff_view(da, db, include_optimizer=include_optimizer, atol=atol)
    return Inspection("diff", (diff_json(report),), warnings_of([da, db], name_each=True), ok=report.identical)
