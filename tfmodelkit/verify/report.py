"""Plain-text rendering of a :class:`VerificationReport` (the JSON form is ``report.as_dict()``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .compare import ErrorHistogram, OutputComparison, VerificationReport


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def _value(v: Any) -> str:
    # 9 significant digits tell any two float32 values apart without float64 noise.
    return f"{v:.9g}" if isinstance(v, float) else repr(v)


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def format_histogram(h: ErrorHistogram | None, width: int = 30) -> list[str]:
    """Bars of absolute error per decade, zero errors and non-finite mismatches first."""
    if h is None:
        return []
    rows: list[tuple[str, int]] = []
    if h.zero:
        rows.append(("0", h.zero))
    rows.extend((f"({h.edges[i]:.0e}, {h.edges[i + 1]:.0e}]", c) for i, c in enumerate(h.counts))
    if h.nonfinite:
        rows.append(("NaN/Inf mismatch", h.nonfinite))
    top = max((c for _, c in rows), default=0)
    label_w = max((len(label) for label, _ in rows), default=0)
    return [
        f"{label.rjust(label_w)} | {'#' * (round(width * c / top) if top else 0)} {c}" for label, c in rows
    ]


def _row(o: OutputComparison) -> list[str]:
    name = o.name if o.name == o.actual_name else f"{o.name}~{o.actual_name}"
    shape = (
        _shape(o.expected_shape) if o.shape_match else f"{_shape(o.expected_shape)}/{_shape(o.actual_shape)}"
    )
    dtype = o.expected_dtype if o.dtype_match else f"{o.expected_dtype}/{o.actual_dtype}"
    failing = f"{o.failing}/{o.size}" if o.size else "0"
    return [
        "ok" if o.ok else "FAIL",
        name,
        shape,
        dtype,
        _num(o.max_abs_error),
        _num(o.mean_abs_error),
        _num(o.p99_abs_error),
        _num(o.max_rel_error),
        failing,
        "exact" if o.exact else _num(o.min_atol) if o.min_atol is not None else "none",
        "-" if o.top1_agreement is None else f"{o.top1_agreement:.0%}",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


def _side(label: str, d: Any) -> str | None:
    if not isinstance(d, dict):
        return None
    extra = []
    if d.get("signature"):
        extra.append(f"signature {d['signature']}")
    if d.get("loader"):
        extra.append(f"loader {d['loader']}")
    versions = ", ".join(f"{k} {v}" for k, v in (d.get("versions") or {}).items() if v)
    if versions:
        extra.append(versions)
    return f"{label}: {d.get('backend')} {d.get('path')}" + (f" ({'; '.join(extra)})" if extra else "")


def applied_tolerances(report: VerificationReport) -> str:
    """The tolerance each output was held to, as one phrase (one pair when all share it)."""
    pairs = {(o.atol, o.rtol, o.exact) for o in report.outputs}
    if len(pairs) <= 1:
        if pairs and next(iter(pairs))[2]:
            return "exact"
        atol, rtol = (report.atol, report.rtol) if not pairs else next(iter(pairs))[:2]
        return f"atol {atol:g}, rtol {rtol:g}"
    parts = [
        f"{o.name}: exact" if o.exact else f"{o.name}: atol {o.atol:g}, rtol {o.rtol:g}"
        for o in report.outputs
    ]
    return "; ".join(parts)


def inputs_phrase(context: Mapping[str, Any]) -> str:
    """How many samples ran and where they came from: "32 generated samples", "4 given samples"."""
    samples = context.get("samples")
    source = context.get("inputs_source") or "generated"
    if source == "calibration":
        source = "held-out calibration"
    if not samples:
        return f"{source} inputs"
    return f"{samples} {source} sample{'' if samples == 1 else 's'}"


def _inputs_lines(context: Mapping[str, Any]) -> list[str]:
    inputs = context.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        return []
    seed = context.get("seed")
    runs = context.get("runs") or 1
    head = (
        inputs_phrase(context)
        + (f", seed {seed}" if seed is not None else "")
        + (f", {runs} runs" if runs > 1 else "")
    )
    lines = [f"inputs ({head}):"]
    for name, v in inputs.items():
        text = f"  {name} {v.get('dtype')}{_shape(tuple(v.get('shape', ())))}"
        if "min" in v:
            text += f" values {_value(v['min'])} .. {_value(v['max'])}"
        if v.get("chosen"):
            text += f" ({v['chosen']})"
        lines.append(text)
    return lines


def _short(name: str, width: int = 44) -> str:
    """A converter's tensor name for a table: its last ``;`` part, cut to ``width``."""
    tail = name.split(";")[-1]
    return tail if len(tail) <= width else "..." + tail[-(width - 3) :]


def format_layerwise(layers: Any) -> list[str]:
    """The layer-by-layer table (a :class:`~tfmodelkit.verify.layerwise.LayerwiseReport`) and its
    two findings: the first layer over the tolerance and the one whose error grows most."""
    ctx = layers.context
    lines = [
        f"layer by layer ({len(layers.layers)} matched; relative error = worst channel's max |A-B| over its "
        f"range; tolerance {layers.tolerance:g}; {ctx.get('samples', '?')} samples):"
    ]
    header = ["", "layer", "B tensor", "matched", "shape", "B dtype", "scale", "max abs", "mean abs", "relative",
              "growth"]  # fmt: skip
    rows = [
        [
            "FAIL" if r.exceeds else "ok",
            r.layer if r.a_tensor in (r.layer, "") else r.a_tensor,
            _short(r.b_tensor),
            r.matched_by,
            _shape(r.shape),
            r.b_dtype,
            _num(r.scale),
            _num(r.max_abs),
            _num(r.mean_abs),
            _num(r.relative),
            "-" if r.growth is None else f"x{r.growth:.3g}",
        ]
        for r in layers.layers
    ]
    lines.extend(_table(header, rows))
    by_name = {r.layer: r for r in layers.layers}
    first = by_name.get(layers.first_divergent_layer or "")
    if first is not None:
        lines.append(
            f"first divergent layer: {first.layer} (relative error {first.relative:.3g} > {layers.tolerance:g})"
        )
    else:
        lines.append(f"first divergent layer: none (every layer within {layers.tolerance:g})")
    grew = by_name.get(layers.largest_growth_layer or "")
    if grew is not None and grew.growth is not None:
        lines.append(
            f"largest growth: {grew.layer} (relative error x{grew.growth:.3g} over the layers feeding it)"
        )
    lines.extend(f"note: {n}" for n in layers.notes)
    return lines


def saturation_line(o: OutputComparison) -> str | None:
    """A quantized output's saturation, in one line ("SATURATED" over the 1% threshold)."""
    if o.quantized_range is None or o.saturated_fraction is None:
        return None
    low, high = o.quantized_range
    covered = "" if o.representable_fraction is None else f", covering {o.representable_fraction:.0%} of the expected range"
    head = "SATURATED (finding)" if o.saturation_finding else "saturation"
    return (
        f"{head}: {o.saturated_fraction:.1%} of elements clipped at the {o.quantized_dtype} limits "
        f"({o.saturated}/{o.size}; {o.at_limits_fraction or 0:.1%} at a limit); quantized range "
        f"[{low:.4g}, {high:.4g}]{covered}"
    )


def saturated_phrase(outputs: Any) -> str:
    """"; saturated: probs (12%)" for the outputs whose saturation is a finding, else ""."""
    found = [
        f"{o['name']} ({o['saturated_fraction']:.1%})" if isinstance(o, Mapping) else f"{o.name} ({o.saturated_fraction:.1%})"
        for o in outputs
        if (o.get("saturation_finding") if isinstance(o, Mapping) else o.saturation_finding)
    ]
    return f"; saturated at the int8 limits: {', '.join(found)}" if found else ""


def calibration_phrase(context: Mapping[str, Any]) -> str | None:
    """How an int8 candidate was calibrated, when the context says: "128 generated samples (not
    representative data)", "96 samples of data.npz (32 more held out to verify)"."""
    c = context.get("calibration")
    if not isinstance(c, Mapping):
        return None
    n = c.get("samples")
    if c.get("source") == "generated":
        return f"{n} generated samples (--allow-generated-calibration: not representative data)"
    held = f" ({c['held_out']} more held out to verify)" if c.get("held_out") else ""
    return f"{n} samples of {c.get('data') or 'the given data'}{held}"


def format_report(report: VerificationReport, histograms: bool = True) -> str:
    """The report for a terminal: verdict, both sides, one row per output, worst elements, notes."""
    how = {
        "name": "outputs matched by name",
        "position": "outputs matched by position",
        "mismatch": "the outputs differ" if report.outputs or report.missing or report.extra else "not run",
    }.get(report.matched_by, report.matched_by)
    lines = [f"verification {'passed' if report.ok else 'FAILED'} ({applied_tolerances(report)}; {how})"]
    for label in ("reference", "candidate"):
        line = _side(label, report.context.get(label))
        if line:
            lines.append(line)
    lines.extend(_inputs_lines(report.context))
    calibration = calibration_phrase(report.context)
    if calibration:
        lines.append(f"calibration: {calibration}")
    if report.outputs:
        header = ["", "output", "shape", "dtype", "max abs", "mean abs", "p99 abs", "max rel", "failing",
                  "min atol", "top-1"]  # fmt: skip
        lines.append("")
        lines.extend(_table(header, [_row(o) for o in report.outputs]))
    for o in report.outputs:
        details = []
        if o.problem:
            details.append(o.problem)
        elif not o.ok or (o.max_abs_error or 0) > 0:
            if o.worst_index is not None:
                details.append(
                    f"worst at {list(o.worst_index)}: expected {_value(o.worst_expected)}, "
                    f"got {_value(o.worst_actual)}"
                )
            if not o.exact and (o.atol, o.rtol) != (report.atol, report.rtol):
                details.append(f"tolerance atol {o.atol:g}, rtol {o.rtol:g}")
            nonfinite = (o.expected_nan, o.expected_inf, o.actual_nan, o.actual_inf)
            if any(nonfinite):
                details.append("NaN/Inf expected {}/{}, actual {}/{}".format(*nonfinite))
        saturation = saturation_line(o)
        if saturation:
            details.append(saturation)
        if not details and not (histograms and o.histogram and o.histogram.counts):
            continue
        lines.append("")
        lines.append(f"{o.name}:")
        lines.extend(f"  {d}" for d in details)
        if histograms and o.histogram is not None and (o.histogram.counts or o.histogram.nonfinite):
            lines.append("  |abs error| histogram:")
            lines.extend(f"    {h}" for h in format_histogram(o.histogram))
    if report.missing:
        lines.append(f"missing outputs: {', '.join(report.missing)}")
    if report.extra:
        lines.append(f"unexpected outputs: {', '.join(report.extra)}")
    if report.layerwise is not None:
        lines.append("")
        lines.extend(format_layerwise(report.layerwise))
    if report.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


def verdict_line(report: VerificationReport) -> str:
    """One line a gate prints last: ``PASS: ...`` or ``FAIL: ...``, naming the candidate (the
    artifact about to ship) and what it was compared with (the reference or golden outputs)."""
    ctx = report.context
    reference = ctx.get("reference") or {}
    candidate = ctx.get("candidate") or {}
    what = "golden outputs " if reference.get("backend") == "golden outputs" else ""
    ref_name = f"{what}{reference.get('path', '?')}"
    failed = [o.name for o in report.outputs if not o.ok] + list(report.missing)
    on = f" on {inputs_phrase(ctx)}" if ctx.get("samples") else ""
    calibration = ctx.get("calibration")
    if isinstance(calibration, Mapping) and calibration.get("source") == "generated":
        on += " (int8 calibrated on generated data)"
    on += saturated_phrase(report.outputs)
    if report.ok:
        count = len(report.outputs)
        return f"PASS: {count} output{'' if count == 1 else 's'} of {candidate.get('path', '?')} match {ref_name}{on}"
    layers = report.layerwise
    if failed and layers is not None and layers.first_divergent_layer:
        return f"FAIL: outputs {', '.join(failed)} differ{on}; first divergent layer {layers.first_divergent_layer}"
    if failed:
        return f"FAIL: outputs {', '.join(failed)} differ{on}"
    return "FAIL: the signatures do not match"
