"""Compare two sets of outputs (name -> array): per-output error statistics and a verdict.

The comparator works on results, never on runners, so it compares a conversion's source and
result, a model against stored golden outputs, or two runs of one model alike.

An element passes when ``|actual - expected| <= atol + rtol * |expected|`` (evaluated as
``|a - b| - rtol * |b| <= atol`` so that the reported smallest passing atol passes exactly).
NaN matches NaN only at the same place, an infinity only the same infinity; every other
non-finite pair fails and no atol can fix it. Integer and bool outputs are compared exactly
unless ``per_output`` gives tolerances for them; strings always exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..util import dtype_family, jsonable
from .tolerances import DEFAULT_ATOL, DEFAULT_RTOL

#: A quantized output with more than this share of its elements saturated is a finding.
SATURATION_FINDING = 0.01

MATCHED_BY_NAME = "name"
MATCHED_BY_POSITION = "position"
#: The two sides do not have the same outputs; commonly named ones are still compared.
MATCHED_MISMATCH = "mismatch"


@dataclass(frozen=True)
class ErrorHistogram:
    """Absolute errors binned by decade: ``counts[i]`` elements have ``edges[i] < err <= edges[i+1]``."""

    #: Elements with no error at all (equal values, matching NaN/Inf).
    zero: int = 0
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    #: Elements whose error is not finite (NaN or Inf on one side only, or Inf vs -Inf).
    nonfinite: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "zero": self.zero,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "nonfinite": self.nonfinite,
        }


@dataclass(frozen=True)
class OutputComparison:
    """How one output of the actual side compares with its counterpart on the expected side."""

    #: The output's name on the expected side.
    name: str
    #: Its counterpart's name on the actual side (differs from ``name`` when matched by position).
    actual_name: str
    expected_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    expected_dtype: str
    actual_dtype: str
    #: Tolerances used for this output (0, 0 for an exact comparison).
    atol: float
    rtol: float
    #: True when values had to be equal (integers, bools, strings without tolerances).
    exact: bool
    ok: bool
    #: Why it failed when it is not about values (shape or kind mismatch), else None.
    problem: str | None = None
    size: int = 0
    failing: int = 0
    failing_fraction: float = 0.0
    #: Statistics over elements where both sides are finite (None when there are none).
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    median_abs_error: float | None = None
    p99_abs_error: float | None = None
    #: Relative error ``|a - b| / |b|`` over elements where the expected value is not zero.
    max_rel_error: float | None = None
    mean_rel_error: float | None = None
    median_rel_error: float | None = None
    p99_rel_error: float | None = None
    #: The element that needs the largest atol (a non-finite mismatch first), and its two values.
    worst_index: tuple[int, ...] | None = None
    worst_expected: Any = None
    worst_actual: Any = None
    #: Smallest atol that would pass with this ``rtol``; None if no atol can (NaN/Inf mismatch, shapes).
    min_atol: float | None = None
    expected_nan: int = 0
    expected_inf: int = 0
    actual_nan: int = 0
    actual_inf: int = 0
    #: For 2-D float outputs with at least two columns: fraction of rows whose argmax agrees.
    top1_agreement: float | None = None
    histogram: ErrorHistogram | None = None
    #: Outputs that come from int8/uint8 integers (:mod:`~tfmodelkit.verify.saturation`): the real
    #: range the integers represent, one integer step, the elements clipped at a limit (the
    #: reference lies beyond it), the elements at a limit at all, and the share of the expected
    #: values' range that the quantized range covers.
    quantized_dtype: str | None = None
    quantized_range: tuple[float, float] | None = None
    quantized_step: float | None = None
    saturated: int = 0
    saturated_fraction: float | None = None
    at_limits_fraction: float | None = None
    representable_fraction: float | None = None

    @property
    def shape_match(self) -> bool:
        return self.expected_shape == self.actual_shape

    @property
    def dtype_match(self) -> bool:
        return self.expected_dtype == self.actual_dtype

    def summary(self) -> str:
        """One line for people: what failed and where."""
        label = self.name if self.name == self.actual_name else f"{self.name} ~ {self.actual_name}"
        if self.problem:
            return f"{label}: {self.problem}"
        if self.ok:
            err = "exact" if not self.max_abs_error else f"max abs error {self.max_abs_error:.3g}"
            return f"{label}: ok ({err})"
        where = f" at {list(self.worst_index)}" if self.worst_index is not None else ""
        vs = f" (expected {_short(self.worst_expected)}, got {_short(self.worst_actual)})" if where else ""
        need = (
            f"; passes with atol >= {self.min_atol:.3g}"
            if self.min_atol is not None
            else "; no tolerance passes (NaN/Inf mismatch)"
        )
        tol = "exact comparison" if self.exact else f"atol {self.atol:g}, rtol {self.rtol:g}"
        return f"{label}: {self.failing} of {self.size} elements differ ({tol}){where}{vs}" + (
            "" if self.exact else need
        )

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            d[key] = jsonable(getattr(self, key))
        d["shape_match"] = self.shape_match
        d["dtype_match"] = self.dtype_match
        d["saturation_finding"] = self.saturation_finding
        return d

    @property
    def saturation_finding(self) -> bool:
        """More than :data:`SATURATION_FINDING` of the elements clipped at the integer limits."""
        return self.saturated_fraction is not None and self.saturated_fraction > SATURATION_FINDING


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of comparing two sets of outputs."""

    outputs: tuple[OutputComparison, ...]
    #: "name", "position" (names differed; matched in order, pairwise dtype kind and shape agreed)
    #: or "mismatch" (the output sets differ; see missing / extra).
    matched_by: str
    ok: bool
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    #: Expected outputs with no counterpart, and actual outputs with none.
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: What produced the two sides (runner descriptions, inputs, seed), filled by :func:`verify`.
    context: Mapping[str, Any] = field(default_factory=dict)
    #: The arrays behind the report when :func:`verify` ran the models ("inputs", "expected",
    #: "actual": name -> array), for saving with ``save_arrays``; not part of :meth:`as_dict`.
    arrays: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    #: The layer-by-layer comparison (a :class:`~tfmodelkit.verify.layerwise.LayerwiseReport`) when
    #: asked for (``layerwise=True``); its fields join :meth:`as_dict` at the top level.
    layerwise: Any = field(default=None, repr=False, compare=False)

    @property
    def failed(self) -> tuple[OutputComparison, ...]:
        return tuple(o for o in self.outputs if not o.ok)

    def output(self, name: str) -> OutputComparison:
        for o in self.outputs:
            if name in (o.name, o.actual_name):
                return o
        raise KeyError(name)

    def summary(self) -> str:
        """One line: the verdict and the first failure."""
        if self.ok:
            how = " (matched by position)" if self.matched_by == MATCHED_BY_POSITION else ""
            return f"verification passed: {len(self.outputs)} output(s) within tolerance{how}"
        parts = []
        if self.missing or self.extra:
            if self.missing:
                parts.append(f"missing outputs {', '.join(self.missing)}")
            if self.extra:
                parts.append(f"unexpected outputs {', '.join(self.extra)}")
        failed = self.failed
        if failed:
            parts.append(f"{len(failed)} of {len(self.outputs)} output(s) differ; " + failed[0].summary())
        if not parts:
            parts.append(self.notes[0] if self.notes else "nothing was compared")
        return "verification failed: " + "; ".join(parts)

    def raise_if_failed(self) -> VerificationReport:
        """Raise :class:`~tfmodelkit.errors.CheckFailed` (exit code 1) unless ok; return self."""
        if not self.ok:
            from ..errors import CheckFailed

            raise CheckFailed(self.summary())
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: lists instead of tuples, None instead of non-finite numbers."""
        return {
            "ok": self.ok,
            "matched_by": self.matched_by,
            "atol": self.atol,
            "rtol": self.rtol,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "notes": list(self.notes),
            "outputs": [o.as_dict() for o in self.outputs],
            "context": jsonable(self.context),
            **(self.layerwise.as_dict() if self.layerwise is not None else {}),
        }


# --------------------------------------------------------------------------------------- helpers


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.9g}"
    return repr(v)


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.kind == "O":
        return "object"
    if dtype.kind in "SU":
        return "string"
    return dtype.name


def _compatible(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape and same kind of values (float, int, bool, string...): fit to pair by position."""
    return a.shape == b.shape and dtype_family(a.dtype) == dtype_family(b.dtype)


def _as_bytes(a: np.ndarray) -> np.ndarray:
    flat = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in a.reshape(-1).tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(a.shape)


def _wide(a: np.ndarray) -> np.ndarray:
    if dtype_family(a.dtype) == "complex":
        return a.astype(np.complex128)
    return a.astype(np.float64)


def _stat(values: np.ndarray, q: float | None = None) -> float | None:
    if values.size == 0:
        return None
    if q is None:
        return float(values.max())
    return float(np.percentile(values, q))


def histogram(errors: np.ndarray, nonfinite: int = 0) -> ErrorHistogram:
    """Decade bins (10**k < err <= 10**(k+1)) spanning the finite non-zero ``errors``."""
    errors = errors[np.isfinite(errors)]
    zero = int(np.count_nonzero(errors == 0))
    nz = errors[errors > 0]
    if nz.size == 0:
        return ErrorHistogram(zero=zero, nonfinite=nonfinite)
    lo = math.floor(math.log10(float(nz.min())))
    hi = math.ceil(math.log10(float(nz.max())))
    if hi <= lo:
        hi = lo + 1
    edges = tuple(10.0**k for k in range(lo, hi + 1))
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    # Bin by decade, keeping the "(low, high]" convention exact at the powers of ten.
    idx = np.searchsorted(np.asarray(edges), nz, side="left") - 1
    idx = np.clip(idx, 0, len(counts) - 1)
    np.add.at(counts, idx, 1)
    return ErrorHistogram(zero=zero, edges=edges, counts=tuple(int(c) for c in counts), nonfinite=nonfinite)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _top1(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0 or a.shape[1] < 2:
        return None
    if dtype_family(a.dtype) != "float" or dtype_family(b.dtype) != "float":
        return None
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    return float(np.mean(np.argmax(fa, axis=1) == np.argmax(fb, axis=1)))


def compare_arrays(
    name: str,
    expected: np.ndarray,
    actual: np.ndarray,
    atol: float | None = None,
    rtol: float | None = None,
    actual_name: str | None = None,
    exact: bool | None = None,
) -> OutputComparison:
    """Compare one pair of arrays. ``exact=None`` decides from the dtypes (ints, bools, strings).

    ``atol``/``rtol`` of None mean the defaults; for integer and bool outputs, giving either one
    turns the comparison from exact into a tolerance comparison.
    """
    b = np.asarray(expected)
    a = np.asarray(actual)
    actual_name = name if actual_name is None else actual_name
    fa, fb = dtype_family(a.dtype), dtype_family(b.dtype)
    base: dict[str, Any] = {
        "name": name,
        "actual_name": actual_name,
        "expected_shape": tuple(int(d) for d in b.shape),
        "actual_shape": tuple(int(d) for d in a.shape),
        "expected_dtype": _dtype_name(b.dtype),
        "actual_dtype": _dtype_name(a.dtype),
        "size": int(b.size),
    }
    tolerances_given = atol is not None or rtol is not None
    atol_v = DEFAULT_ATOL if atol is None else float(atol)
    rtol_v = DEFAULT_RTOL if rtol is None else float(rtol)
    if atol_v < 0 or rtol_v < 0:
        from ..errors import UserError

        raise UserError(f"output {name!r}: tolerances must not be negative (atol {atol_v}, rtol {rtol_v})")

    if a.shape != b.shape:
        return OutputComparison(
            **base, atol=atol_v, rtol=rtol_v, exact=False, ok=False, failing=int(b.size), failing_fraction=1.0,
            problem=f"shape {list(a.shape)} differs from the expected {list(b.shape)}",
        )  # fmt: skip

    if fa == "string" or fb == "string":
        return _compare_strings(base, a, b, fa, fb)
    if "other" in (fa, fb):
        return OutputComparison(
            **base, atol=atol_v, rtol=rtol_v, exact=False, ok=False, failing=int(b.size), failing_fraction=1.0,
            problem=f"cannot compare dtype {base['actual_dtype']} with {base['expected_dtype']}",
        )  # fmt: skip
    if exact is None:
        exact = fa in ("int", "bool") and fb in ("int", "bool") and not tolerances_given
    if exact:
        atol_v = rtol_v = 0.0
    return _compare_numbers(base, a, b, atol_v, rtol_v, bool(exact), integers=fa == "int" and fb == "int")


def _compare_strings(base: dict[str, Any], a: np.ndarray, b: np.ndarray, fa: str, fb: str) -> OutputComparison:
    """Strings compare exactly, element by element."""
    if fa != fb:
        return OutputComparison(
            **base, atol=0.0, rtol=0.0, exact=True, ok=False, failing=int(b.size), failing_fraction=1.0,
            problem=f"cannot compare {base['actual_dtype']} values with expected {base['expected_dtype']}",
        )  # fmt: skip
    sa, sb = _as_bytes(a), _as_bytes(b)
    bad = sa != sb
    n_bad = int(np.count_nonzero(bad))
    worst_exact: dict[str, Any] = {}
    if n_bad:
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        worst_exact = {"worst_index": idx, "worst_expected": sb[idx], "worst_actual": sa[idx]}
    return OutputComparison(
        **base, atol=0.0, rtol=0.0, exact=True, ok=n_bad == 0, failing=n_bad,
        failing_fraction=n_bad / b.size if b.size else 0.0, **worst_exact,
    )  # fmt: skip


def _error_stats(abs_err: np.ndarray, finite: np.ndarray, mag_b: np.ndarray) -> dict[str, Any]:
    """Absolute and relative error statistics over the finite elements."""
    errs = abs_err[finite]
    nz = finite & (mag_b > 0)
    rel = abs_err[nz] / mag_b[nz] if np.any(nz) else np.zeros(0)
    stats: dict[str, Any] = {}
    if errs.size:
        stats.update(
            max_abs_error=float(errs.max()), mean_abs_error=float(errs.mean()),
            median_abs_error=float(np.median(errs)), p99_abs_error=_stat(errs, 99),
        )  # fmt: skip
    if rel.size:
        stats.update(
            max_rel_error=float(rel.max()), mean_rel_error=float(rel.mean()),
            median_rel_error=float(np.median(rel)), p99_rel_error=_stat(rel, 99),
        )  # fmt: skip
    return stats


def _compare_numbers(
    base: dict[str, Any], a: np.ndarray, b: np.ndarray, atol_v: float, rtol_v: float, exact: bool, integers: bool
) -> OutputComparison:
    """Numbers: within ``atol + rtol * |expected|`` (or equal, when ``exact``); non-finite values
    match only the same non-finite value at the same place."""
    wa, wb = _wide(a), _wide(b)
    nan_a, nan_b = np.isnan(wa), np.isnan(wb)
    inf_a, inf_b = np.isinf(wa), np.isinf(wb)
    finite = ~(nan_a | nan_b | inf_a | inf_b)
    same_nonfinite = (nan_a & nan_b) | (inf_a & inf_b & (wa == wb))
    bad_nonfinite = ~finite & ~same_nonfinite

    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(wa - wb), 0.0).astype(np.float64)
        mag_b = np.abs(wb)
        need = np.where(finite, abs_err - rtol_v * mag_b, 0.0)
    if exact and integers:
        bad = a != b  # on the integers themselves: float64 cannot hold every int64
    elif exact:
        bad = np.where(finite, wa != wb, False) | bad_nonfinite
    else:
        bad = (need > atol_v) | bad_nonfinite
    n_bad = int(np.count_nonzero(bad))
    n_nonfinite_bad = int(np.count_nonzero(bad_nonfinite))
    errs = abs_err[finite]

    worst: dict[str, Any] = {}
    if b.size:
        if n_nonfinite_bad:
            flat = int(np.flatnonzero(bad_nonfinite.reshape(-1))[0])
        elif exact and n_bad:
            flat = int(np.argmax(np.where(bad, abs_err, -1.0).reshape(-1)))
        else:
            flat = int(np.argmax(need.reshape(-1)))
        idx = tuple(int(i) for i in np.unravel_index(flat, b.shape))
        if n_bad or n_nonfinite_bad or (errs.size and float(errs.max()) > 0):
            worst = {"worst_index": idx, "worst_expected": _scalar(b[idx]), "worst_actual": _scalar(a[idx])}

    if n_nonfinite_bad:
        min_atol = None
    elif errs.size:
        min_atol = max(0.0, float(need[finite].max()))
    else:
        min_atol = 0.0

    return OutputComparison(
        **base,
        atol=atol_v,
        rtol=rtol_v,
        exact=exact,
        ok=n_bad == 0,
        failing=n_bad,
        failing_fraction=n_bad / b.size if b.size else 0.0,
        **_error_stats(abs_err, finite, mag_b),
        **worst,
        min_atol=min_atol,
        expected_nan=int(np.count_nonzero(nan_b)),
        expected_inf=int(np.count_nonzero(inf_b)),
        actual_nan=int(np.count_nonzero(nan_a)),
        actual_inf=int(np.count_nonzero(inf_a)),
        top1_agreement=_top1(a, b),
        histogram=histogram(abs_err[finite], nonfinite=n_nonfinite_bad),
    )


def match_outputs(
    expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
) -> tuple[list[tuple[str, str]], str, tuple[str, ...], tuple[str, ...]]:
    """Pair expected and actual names: (pairs, matched_by, missing, extra)."""
    e_names, a_names = list(expected), list(actual)
    if set(e_names) == set(a_names):
        return [(n, n) for n in e_names], MATCHED_BY_NAME, (), ()
    if len(e_names) == len(a_names) and all(
        _compatible(np.asarray(expected[e]), np.asarray(actual[a]))
        for e, a in zip(e_names, a_names, strict=True)
    ):
        return list(zip(e_names, a_names, strict=True)), MATCHED_BY_POSITION, (), ()
    common = [n for n in e_names if n in actual]
    missing = tuple(n for n in e_names if n not in actual)
    extra = tuple(n for n in a_names if n not in expected)
    return [(n, n) for n in common], MATCHED_MISMATCH, missing, extra


def _tolerance_for(
    per_output: Mapping[str, tuple[float | None, float | None]], e_name: str, a_name: str
) -> tuple[float | None, float | None] | None:
    if e_name in per_output:
        return per_output[e_name]
    if a_name in per_output:
        return per_output[a_name]
    return None


def compare(
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    per_output: Mapping[str, tuple[float | None, float | None]] | None = None,
    notes: Iterable[str] = (),
) -> VerificationReport:
    """Compare ``actual`` with ``expected`` output by output (see the module doc for the rules).

    ``per_output`` maps an output name (either side's) to ``(atol, rtol)``; a None keeps the
    global value. Giving an integer or bool output an entry there makes its comparison
    tolerant instead of exact.
    """
    per_output = dict(per_output or {})
    all_names = set(expected) | set(actual)
    unknown = sorted(set(per_output) - all_names)
    if unknown:
        from ..errors import UserError

        raise UserError(
            f"tolerance given for {', '.join(unknown)}, which neither side outputs "
            f"(outputs: {', '.join(sorted(all_names)) or 'none'})"
        )
    pairs, matched_by, missing, extra = match_outputs(expected, actual)
    note_list = list(notes)
    if matched_by == MATCHED_BY_POSITION:
        renamed = ", ".join(f"{e} ~ {a}" for e, a in pairs if e != a)
        note_list.append(f"output names differ; matched by position ({renamed})")
    elif matched_by == MATCHED_MISMATCH:
        note_list.append(
            "the outputs differ: "
            + "; ".join(
                part
                for part in (
                    f"expected but missing: {', '.join(missing)}" if missing else "",
                    f"not expected: {', '.join(extra)}" if extra else "",
                )
                if part
            )
            + (f" (compared only {', '.join(e for e, _ in pairs)})" if pairs else "")
        )
    results = []
    for e_name, a_name in pairs:
        tol = _tolerance_for(per_output, e_name, a_name)
        e, a = np.asarray(expected[e_name]), np.asarray(actual[a_name])
        if tol is None:
            # Global tolerances apply to floats; integers and bools must match exactly.
            integral = dtype_family(e.dtype) in ("int", "bool") and dtype_family(a.dtype) in ("int", "bool")
            result = compare_arrays(e_name, e, a, atol, rtol, actual_name=a_name, exact=integral)
        else:
            o_atol = atol if tol[0] is None else tol[0]
            o_rtol = rtol if tol[1] is None else tol[1]
            result = compare_arrays(e_name, e, a, o_atol, o_rtol, actual_name=a_name, exact=False)
        if result.expected_dtype != result.actual_dtype and result.problem is None:
            note_list.append(f"{e_name}: dtype {result.actual_dtype} vs expected {result.expected_dtype}")
        results.append(result)
    if not pairs and matched_by != MATCHED_MISMATCH:
        note_list.append("there are no outputs to compare")
    ok = matched_by != MATCHED_MISMATCH and bool(results) and all(r.ok for r in results)
    return VerificationReport(
        outputs=tuple(results),
        matched_by=matched_by,
        ok=ok,
        atol=float(atol),
        rtol=float(rtol),
        missing=missing,
        extra=extra,
        notes=tuple(note_list),
    )
