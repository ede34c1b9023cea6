"""Verify one model against another: same inputs into both runners, outputs compared.

This is what ``modelconv <conversion>`` runs after writing its result (reference = the source,
candidate = the artifact) and what ``modelconv verify A B`` runs as a pre-deploy gate.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..description import TensorSpec
from ..errors import UserError
from ..util import dtype_family
from .compare import DEFAULT_ATOL, DEFAULT_RTOL, MATCHED_MISMATCH, VerificationReport, compare
from .hints import InputHint
from .inputs import DEFAULT_DIM, DEFAULT_SAMPLES, feed_summary, generate_inputs, value_choice
from .runners import Runner, runner_for
from .saturation import with_saturation


def _dims_agree(a: TensorSpec, b: TensorSpec) -> bool:
    if a.shape is None or b.shape is None:
        return True
    if len(a.shape) != len(b.shape):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a.shape, b.shape, strict=True))


@dataclasses.dataclass(frozen=True)
class InputMatch:
    """How the reference's inputs map onto the candidate's."""

    #: (reference name, candidate name) pairs.
    pairs: tuple[tuple[str, str], ...]
    #: "name", "position" or "mismatch".
    matched_by: str
    problem: str | None = None


def match_inputs(reference: Sequence[TensorSpec], candidate: Sequence[TensorSpec]) -> InputMatch:
    """Pair inputs by name; by position when the names differ but kinds and shapes agree in order."""
    r_names, c_names = [s.name for s in reference], [s.name for s in candidate]
    by_name = {s.name: s for s in candidate}
    if set(r_names) == set(c_names):
        bad = [
            s.name
            for s in reference
            if dtype_family(s.dtype) != dtype_family(by_name[s.name].dtype) or not _dims_agree(s, by_name[s.name])
        ]
        if bad:
            details = ", ".join(
                f"{n}: {_spec_text(next(s for s in reference if s.name == n))} vs {_spec_text(by_name[n])}"
                for n in bad
            )
            return InputMatch((), MATCHED_MISMATCH, f"inputs differ in dtype or shape ({details})")
        return InputMatch(tuple((n, n) for n in r_names), "name")
    if len(reference) == len(candidate) and all(
        dtype_family(r.dtype) == dtype_family(c.dtype) and _dims_agree(r, c)
        for r, c in zip(reference, candidate, strict=True)
    ):
        return InputMatch(tuple(zip(r_names, c_names, strict=True)), "position")
    return InputMatch(
        (),
        MATCHED_MISMATCH,
        f"the models take different inputs (reference: {', '.join(map(_spec_text, reference)) or 'none'}; "
        f"candidate: {', '.join(map(_spec_text, candidate)) or 'none'})",
    )


def _spec_text(s: TensorSpec) -> str:
    shape = "?" if s.shape is None else "[" + ",".join("?" if d is None else str(d) for d in s.shape) + "]"
    return f"{s.name} {s.dtype}{shape}"


def _merged_shapes(
    reference: Sequence[TensorSpec],
    candidate: Mapping[str, TensorSpec],
    match: InputMatch,
    batch: int,
    given: Mapping[str, Sequence[int]],
) -> dict[str, list[int]]:
    """Full shapes for reference inputs whose dynamic dims the candidate fixes (a batch-1 TFLite model)."""
    out: dict[str, list[int]] = {}
    cand_of = dict(match.pairs)
    for spec in reference:
        if spec.name in given:
            continue
        other = candidate.get(cand_of.get(spec.name, ""))
        if other is None or other.shape is None:
            continue
        if spec.shape is None:
            if all(d is not None for d in other.shape):
                out[spec.name] = [int(d) for d in other.shape]  # type: ignore[arg-type]
            continue
        if not any(d is None and o is not None for d, o in zip(spec.shape, other.shape, strict=True)):
            continue
        dims = []
        for i, (d, o) in enumerate(zip(spec.shape, other.shape, strict=True)):
            dims.append(d if d is not None else o if o is not None else (batch if i == 0 else DEFAULT_DIM))
        out[spec.name] = [int(d) for d in dims]
    return out


def quantized_tolerances(
    runner: Any, steps: float, atol: float = DEFAULT_ATOL
) -> dict[str, tuple[float, None]]:
    """Per-output ``(atol, None)`` of ``steps`` output quantization steps for outputs that come
    from quantized integers (dequantized by the runner or by the model itself)."""
    out: dict[str, tuple[float, None]] = {}
    quantized = getattr(runner, "output_quantization", None) or getattr(runner, "dequantized_outputs", {})
    for name, q in quantized.items():
        out[name] = (max(float(atol), float(steps) * max(abs(s) for s in q.scale)), None)
    return out


def _fixed_batch(
    reference: Sequence[TensorSpec], candidate: Mapping[str, TensorSpec], match: InputMatch,
    shapes: Mapping[str, Sequence[int]],
) -> int | None:  # fmt: skip
    """The batch size every input's first dimension is fixed to, on either side (a TFLite model
    traced at batch 1, say), or None when the batch is free or the first dimensions disagree."""
    cand_of = dict(match.pairs)
    fixed: set[int] = set()
    for spec in reference:
        given = shapes.get(spec.name)
        other = candidate.get(cand_of.get(spec.name, ""))
        dims: list[list[int | None]] = [list(given)] if given else []
        dims += [list(s.shape) for s in (spec, other) if s is not None and s.shape]
        fixed.update(int(d[0]) for d in dims if d and d[0] is not None)
    return fixed.pop() if len(fixed) == 1 else None


def _split(feed: Mapping[str, np.ndarray], batch: int | None) -> list[dict[str, np.ndarray]]:
    """``feed`` as runs of ``batch`` samples when the model takes that fixed batch."""
    sizes = {int(np.shape(v)[0]) if np.ndim(v) else 1 for v in feed.values()}
    if not batch or len(sizes) != 1:
        return [dict(feed)]
    (n,) = sizes
    if n <= batch or n % batch:
        return [dict(feed)]
    return [{k: np.asarray(v)[i : i + batch] for k, v in feed.items()} for i in range(0, n, batch)]


def _join(runs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per name, the runs' arrays along the first dimension (stacked when they have none)."""
    if len(runs) == 1:
        return dict(runs[0])
    out = {}
    for name in runs[0]:
        parts = [np.asarray(r[name]) for r in runs if name in r]
        try:
            out[name] = np.concatenate(parts) if parts[0].ndim else np.stack(parts)
        except ValueError:
            out[name] = np.stack(parts)
    return out


def _hints(ref: Any, cand: Any, match: InputMatch) -> dict[str, InputHint]:
    """What the inputs expect, by reference name: the candidate's hints, then the reference's."""
    to_ref = {c: r for r, c in match.pairs}
    hints = {to_ref[c]: h for c, h in getattr(cand, "input_hints", dict)().items() if c in to_ref}
    hints.update(getattr(ref, "input_hints", dict)())
    return hints


def compare_runners(
    reference: Runner | str | os.PathLike[str],
    candidate: Runner | str | os.PathLike[str],
    *,
    feed: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    samples: int | None = None,
    batch: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    per_output: Mapping[str, tuple[float | None, float | None]] | None = None,
    quantized_steps: float | None = None,
    inputs_source: str | None = None,
) -> VerificationReport:
    """Run ``reference`` and ``candidate`` (runners or model paths) on the same inputs and compare.

    The inputs are ``feed`` (all of its samples; ``inputs_source`` says where it came from, "given"
    by default) or, by default, ``samples`` (:data:`DEFAULT_SAMPLES`) generated by
    :func:`generate_inputs` over the reference's inputs, fitted to what the models say they expect
    (:mod:`~tfmodelkit.verify.hints`; ``ranges`` win). A dynamic batch takes ``batch`` samples per
    run (all of them by default); a batch either side fixes is run as many times as it takes.
    Inputs pair by name, or by position when the names differ but kinds and shapes agree.
    ``quantized_steps``, when given, sets the default atol of every output the candidate
    dequantized to that many output quantization steps (explicit ``per_output`` entries win).
    A failed verification is a report with ``ok=False``; :meth:`VerificationReport.raise_if_failed`
    turns it into CheckFailed.
    """
    ref = runner_for(reference) if isinstance(reference, str | os.PathLike) else reference
    cand = runner_for(candidate) if isinstance(candidate, str | os.PathLike) else candidate
    context: dict[str, Any] = {
        "reference": ref.describe(),
        "candidate": cand.describe(),
        "seed": seed if feed is None else None,
        "inputs_source": "generated" if feed is None else (inputs_source or "given"),
    }
    match = match_inputs(ref.inputs, cand.inputs)
    context["inputs_matched_by"] = match.matched_by
    if match.problem:
        return VerificationReport(
            outputs=(), matched_by=MATCHED_MISMATCH, ok=False, atol=atol, rtol=rtol,
            notes=(match.problem,), context=context,
        )  # fmt: skip
    notes: list[str] = []
    if match.matched_by == "position":
        renamed = ", ".join(f"{r} -> {c}" for r, c in match.pairs if r != c)
        notes.append(f"input names differ; fed by position ({renamed})")
    cand_specs = {s.name: s for s in cand.inputs}
    fixed = _fixed_batch(ref.inputs, cand_specs, match, shapes or {})
    if feed is None:
        feeds, how = _generated(ref, cand, match, cand_specs, fixed, seed, samples, batch, shapes, ranges)
    else:
        feeds = _split(feed, fixed)
        source = context["inputs_source"]
        given = "held out from the calibration data" if source == "calibration" else f"given ({source})"
        how = dict.fromkeys(feed, given)
    expected = _join([ref.run(f) for f in feeds])
    actual = _join([cand.run({c: f[r] for r, c in match.pairs if r in f}) for f in feeds])
    feed = _join(feeds)
    summary = feed_summary(feed, how)
    context["inputs"] = summary
    context["samples"] = next(iter(summary.values()), {}).get("samples", 0) if summary else 0
    context["runs"] = len(feeds)

    tolerances: dict[str, tuple[float | None, float | None]] = {}
    dequantized = dict(getattr(cand, "dequantized_outputs", {}))
    for name, q in dequantized.items():
        scale = ", ".join(f"{s:.4g}" for s in q.scale[:4]) + (" ..." if len(q.scale) > 4 else "")
        notes.append(f"candidate output {name} was dequantized from {q.dtype} (scale {scale})")
    if quantized_steps is not None:
        tolerances.update(quantized_tolerances(cand, quantized_steps, atol))
    tolerances.update(per_output or {})
    quantized = dict(getattr(cand, "output_quantization", None) or dequantized)
    for name, q in quantized.items():
        if name not in dequantized:
            notes.append(f"candidate output {name} is dequantized inside the model from {q.dtype} (scale {q.scale[0]:.4g})")
    report = compare(expected, actual, atol=atol, rtol=rtol, per_output=tolerances, notes=notes)
    report = with_saturation(report, expected, actual, quantized)
    if not report.ok and quantized and quantized_steps is None:
        report = dataclasses.replace(
            report,
            notes=(
                *report.notes,
                "quantized outputs rarely match float ones to 1e-5 (a full-int8 MLP is typically 2-4 "
                "output steps off); allow a few steps (quantized_steps=4) or set per-output tolerances",
            ),
        )
    return dataclasses.replace(
        report,
        context=context,
        arrays={"inputs": dict(feed), "expected": expected, "actual": actual},
    )


def _generated(
    ref: Any, cand: Any, match: InputMatch, cand_specs: Mapping[str, TensorSpec], fixed: int | None,
    seed: int, samples: int | None, batch: int | None, shapes: Mapping[str, Sequence[int]] | None,
    ranges: Mapping[str, tuple[float, float]] | None,
) -> tuple[list[dict[str, np.ndarray]], dict[str, str]]:  # fmt: skip
    """The generated runs (one seed each) and, per input, how its values were chosen."""
    total = DEFAULT_SAMPLES if samples is None else int(samples)
    if total < 1:
        raise UserError(f"samples must be at least 1, not {total}")
    per_run = fixed or min(batch or total, total)
    hints = _hints(ref, cand, match)
    merged = _merged_shapes(ref.inputs, cand_specs, match, per_run, shapes or {})
    feeds = [
        generate_inputs(
            ref.inputs, seed=seed + i, batch=per_run, shapes={**merged, **(shapes or {})}, ranges=ranges, hints=hints
        )
        for i in range(math.ceil(total / per_run))
    ]
    return feeds, {s.name: value_choice(s, ranges or {}, hints) for s in ref.inputs}
