"""A :class:`VerificationReport` as one self-contained HTML page (``modelconv verify --html``).

Everything is inline (CSS, SVG plots, no scripts, fonts or images from elsewhere), so the page
opens offline and can be attached to a CI run as a single file. Every string that comes from
a model (names, paths, notes) is escaped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..util import atomic_write
from .compare import OutputComparison, VerificationReport
from .html_layers import layers_section
from .html_plots import (
    MAX_SCATTER_POINTS,
    as_float,
    esc,
    histogram_caption,
    histogram_svg,
    kv,
    noplot,
    num,
    output_label,
    percent,
    sample_points,
    scatter_svg,
    shape_text,
    spec_html,
    value_text,
)
from .report import calibration_phrase, saturation_line

__all__ = ["MAX_SCATTER_POINTS", "render_html", "sample_points", "write_html"]


_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9dee4; --soft:#f4f6f8; --pass:#2e7d32; --pass-bg:#e8f5e9;
  --fail:#b3261e; --fail-bg:#fdecea; --accent:#3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
  "DejaVu Sans", sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0; overflow-wrap: anywhere; }
code, .mono, td.num { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
  "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.eyebrow { color: var(--muted); margin: 0; text-transform: uppercase; letter-spacing: .06em; font-size: 12px; }
.verdict { display: flex; align-items: center; gap: 20px; margin: 18px 0 8px; padding: 16px 20px;
  border-radius: 8px; border: 2px solid; }
.verdict.pass { background: var(--pass-bg); border-color: var(--pass); }
.verdict.fail { background: var(--fail-bg); border-color: var(--fail); }
.verdict .word { font-size: 34px; font-weight: 800; letter-spacing: .04em; min-width: 110px; text-align: center; }
.verdict.pass .word { color: var(--pass); }
.verdict.fail .word { color: var(--fail); }
.verdict .headline { font-size: 17px; font-weight: 600; margin: 0 0 2px; }
.verdict .sub { margin: 0; color: var(--ink); word-break: break-word; }
.cards { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; background: #fff; min-width: 0; }
.card h3 { margin-bottom: 8px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 6px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; background: var(--soft); }
th.group { text-align: center; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; white-space: nowrap; }
td.name { overflow-wrap: anywhere; min-width: 120px; max-width: 220px; }
td.name .mono { white-space: nowrap; }
tr.failrow td { background: #fff8f7; }
.table-wrap { overflow-x: auto; }
table.outputs { font-size: 12px; }
table.outputs th, table.outputs td { padding: 5px 4px; }
table.outputs td.num, table.outputs .mono { font-size: 11px; }
table.outputs td:first-child { padding-left: 6px; }
.nowrap { white-space: nowrap; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700;
  color: #fff; white-space: nowrap; }
.pill.pass { background: var(--pass); }
.pill.fail { background: var(--fail); }
.bad { color: var(--fail); font-weight: 600; }
.good { color: var(--pass); }
.muted { color: var(--muted); }
.output { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
.output.failed { border-left: 4px solid var(--fail); }
.output.passed { border-left: 4px solid var(--pass); }
.output header { display: flex; align-items: center; gap: 10px; margin-bottom: 6px; }
.output .line { margin: 0 0 10px; word-break: break-word; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin: 0; min-width: 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
.noplot { display: flex; align-items: center; justify-content: center; min-height: 120px; background: var(--soft);
  border-radius: 6px; color: var(--muted); padding: 12px; text-align: center; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; vertical-align: middle; margin-right: 3px; }
ul.notes { margin: 0; padding-left: 20px; }
ul.notes li { margin: 2px 0; word-break: break-word; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media (max-width: 900px) { .cards, .plots { grid-template-columns: 1fr; } }
@media print { .output { break-inside: avoid; } }
"""





_SIDE_KEYS = (
    ("backend", "backend"),
    ("path", "path"),
    ("loader", "loader"),
    ("signature", "signature"),
    ("tags", "tag set"),
    ("format", "format"),
    ("model_class", "model class"),
    ("safe_mode", "safe mode"),
)


def _side_card(heading: str, d: Any, arrays: Mapping[str, Any] | None = None) -> str:
    """One side's backend, path, loader, signature, versions, inputs and outputs."""
    if not isinstance(d, Mapping):
        return f'<div class="card"><h3>{esc(heading)}</h3><p class="muted">not recorded</p></div>'
    rows: list[tuple[str, str]] = []
    for key, label in _SIDE_KEYS:
        v = d.get(key)
        if v is None or v == "":
            continue
        text = esc(v) if key != "path" else f"<code>{esc(v)}</code>"
        rows.append((label, text))
    versions = d.get("versions")
    if isinstance(versions, Mapping):
        vs = ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items() if v)
        if vs:
            rows.append(("versions", vs))
    for key, label in (("inputs", "inputs"), ("outputs", "outputs")):
        specs = d.get(key)
        if isinstance(specs, list) and specs:
            rows.append((label, "<br>".join(spec_html(s) for s in specs)))
    if not d.get("outputs") and arrays:  # a golden file: describe the arrays it holds
        rows.append(
            (
                "arrays",
                "<br>".join(
                    spec_html({"name": k, "dtype": str(np.asarray(v).dtype), "shape": list(np.shape(v))})
                    for k, v in arrays.items()
                ),
            )
        )
    deq = d.get("dequantized_outputs")
    if isinstance(deq, Mapping) and deq:
        rows.append(
            (
                "dequantized",
                "<br>".join(f"<code>{esc(k)}</code> from {esc(v.get('dtype'))}" for k, v in deq.items()),
            )
        )
    notes = d.get("notes")
    if isinstance(notes, list) and notes:
        rows.append(("notes", "<br>".join(esc(n) for n in notes)))
    return f'<div class="card"><h3>{esc(heading)}</h3>{kv(rows)}</div>'


def _inputs_section(report: VerificationReport) -> str:
    ctx = report.context
    source = ctx.get("inputs_source")
    seed = ctx.get("seed")
    specs = ctx.get("inputs")
    samples = ctx.get("samples")
    count = f"{samples} samples, " if samples else ""
    if source == "generated":
        how = f"{count}generated from the reference's signature with seed <code>{esc(seed)}</code>"
    elif ctx.get("inputs_file"):
        how = f"{count}read from <code>{esc(ctx['inputs_file'])}</code>"
    elif source == "given":
        how = f"{count}given by the caller"
    elif source == "calibration":
        how = f"{count}held-out samples of the calibration data"
    elif source:
        how = f"{count}read from <code>{esc(source)}</code>"
    else:
        how = "not recorded"
    matched = ctx.get("inputs_matched_by")
    rows = [("source", how)]
    calibration = calibration_phrase(ctx)
    if calibration:
        generated = isinstance(ctx.get("calibration"), Mapping) and ctx["calibration"].get("source") == "generated"
        rows.append(("int8 calibration", f'<span class="bad">{esc(calibration)}</span>' if generated else esc(calibration)))
    if matched == "mismatch":
        rows.append(("fed by", '<span class="bad">not run: the models take different inputs</span>'))
    elif matched:
        rows.append(
            ("fed by", esc({"name": "name", "position": "position (names differ)"}.get(matched, matched)))
        )
    body = kv(rows)
    if isinstance(specs, Mapping) and specs:
        arrays = report.arrays.get("inputs", {}) if report.arrays else {}
        trs = []
        for name, spec in specs.items():
            rng = "–"
            arr = arrays.get(name) if isinstance(arrays, Mapping) else None
            vals = as_float(arr) if arr is not None else None
            if vals is not None and vals.size and np.isfinite(vals).any():
                fin = vals[np.isfinite(vals)]
                rng = f"{num(float(fin.min()), 4)} … {num(float(fin.max()), 4)}"
            shape = spec.get("shape") if isinstance(spec, Mapping) else None
            dtype = spec.get("dtype") if isinstance(spec, Mapping) else None
            trs.append(
                f'<tr><td class="name"><code>{esc(name)}</code></td><td>{esc(dtype)}</td>'
                f'<td class="mono">{esc(shape_text(shape))}</td><td class="num">{esc(rng)}</td></tr>'
            )
        body += (
            '<table style="margin-top:8px"><thead><tr><th>input</th><th>dtype</th><th>shape</th>'
            f'<th class="num">values (min … max)</th></tr></thead><tbody>{"".join(trs)}</tbody></table>'
        )
    return body


def _tolerance_section(report: VerificationReport) -> str:
    rows = [
        ("default", f"atol <code>{report.atol:g}</code>, rtol <code>{report.rtol:g}</code>"),
        ("rule", "|actual − expected| ≤ atol + rtol·|expected|"),
    ]
    exact = [o for o in report.outputs if o.exact]
    custom = [o for o in report.outputs if not o.exact and (o.atol, o.rtol) != (report.atol, report.rtol)]
    if custom:
        rows.append(
            (
                "per output",
                "<br>".join(f"<code>{esc(o.name)}</code>: atol {o.atol:g}, rtol {o.rtol:g}" for o in custom),
            )
        )
    if exact:
        rows.append(
            ("exact", ", ".join(f"<code>{esc(o.name)}</code>" for o in exact) + " (integers, bools, strings)")
        )
    rows.append(("non-finite", "NaN matches only NaN, ±Inf only the same infinity, at the same place"))
    return kv(rows)


def _nonfinite(o: OutputComparison) -> str:
    def side(nan: int, inf: int) -> str:
        bits = [f"{nan:,} NaN" if nan else "", f"{inf:,} Inf" if inf else ""]
        return ", ".join(b for b in bits if b) or "0"

    if not any((o.expected_nan, o.expected_inf, o.actual_nan, o.actual_inf)):
        return '<span class="muted">none</span>'
    return (
        f'<span class="muted">exp</span> {esc(side(o.expected_nan, o.expected_inf))}<br>'
        f'<span class="muted">act</span> {esc(side(o.actual_nan, o.actual_inf))}'
    )


def _tensor_cell(o: OutputComparison) -> str:
    """Shape and dtype, with a check mark when both sides agree."""
    exp_shape, act_shape = shape_text(o.expected_shape).replace(" ", ""), shape_text(o.actual_shape).replace(" ", "")
    if o.shape_match and o.dtype_match:
        return f'<span class="good">✓</span> <span class="mono">{esc(o.expected_dtype)}{esc(exp_shape)}</span>'

    def part(ok: bool, text: str) -> str:
        return esc(text) if ok else f'<span class="bad">{esc(text)}</span>'

    return (
        '<span class="bad">✗</span> <span class="mono">'
        f"exp {part(o.dtype_match, o.expected_dtype)}{part(o.shape_match, exp_shape)}<br>"
        f"act {part(o.dtype_match, o.actual_dtype)}{part(o.shape_match, act_shape)}</span>"
    )


def _worst_cell(o: OutputComparison) -> str:
    if o.worst_index is None:
        return '<span class="muted">–</span>'

    def short(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else value_text(v)

    return (
        f'<span class="mono">{esc(shape_text(o.worst_index).replace(" ", ""))}</span><br>'
        f'<span class="muted">exp</span> {esc(short(o.worst_expected))}<br>'
        f'<span class="muted">act</span> {esc(short(o.worst_actual))}'
    )


def _outputs_table(report: VerificationReport) -> str:
    head = (
        "<thead><tr>"
        '<th rowspan="2"></th><th rowspan="2">output<br>dtype &amp; shape</th>'
        '<th rowspan="2">tolerance</th>'
        '<th class="group" colspan="4">absolute error</th><th class="group" colspan="4">relative error</th>'
        '<th rowspan="2">worst element</th><th rowspan="2" class="num">failing</th>'
        '<th rowspan="2" class="num">smallest<br>passing atol</th>'
        '<th rowspan="2">NaN / Inf</th><th rowspan="2" class="num">top-1<br>agree</th>'
        "</tr><tr>"
        + "".join(f'<th class="num">{h}</th>' for h in ("max", "mean", "median", "p99") * 2)
        + "</tr></thead>"
    )
    trs = []
    for o in report.outputs:
        pill = '<span class="pill pass">PASS</span>' if o.ok else '<span class="pill fail">FAIL</span>'
        tol = "exact" if o.exact else f"atol {o.atol:g}<br>rtol {o.rtol:g}"
        failing = f"{o.failing:,} / {o.size:,}" + (f"<br>{percent(o.failing_fraction)}" if o.failing else "")
        fail_cls = ' class="num bad"' if o.failing else ' class="num"'
        if o.exact:
            min_atol = '<span class="muted">exact</span>'
        elif o.min_atol is None:
            min_atol = '<span class="bad">none</span>'
        else:
            min_atol = esc(num(o.min_atol))
        nums = [
            o.max_abs_error, o.mean_abs_error, o.median_abs_error, o.p99_abs_error,
            o.max_rel_error, o.mean_rel_error, o.median_rel_error, o.p99_rel_error,
        ]  # fmt: skip
        top1 = "–" if o.top1_agreement is None else percent(o.top1_agreement)
        row = (
            f'<td>{pill}</td><td class="name"><code>{esc(output_label(o))}</code><br>{_tensor_cell(o)}</td>'
            f'<td class="mono nowrap">{tol}</td>'
            + "".join(f'<td class="num">{esc(num(v))}</td>' for v in nums)
            + f'<td class="num">{_worst_cell(o)}</td><td{fail_cls}>{failing}</td><td class="num">{min_atol}</td>'
            f'<td class="nowrap">{_nonfinite(o)}</td><td class="num">{esc(top1)}</td>'
        )
        trs.append(f"<tr>{row}</tr>" if o.ok else f'<tr class="failrow">{row}</tr>')
    return f'<div class="table-wrap"><table class="outputs">{head}<tbody>{"".join(trs)}</tbody></table></div>'


def _output_card(report: VerificationReport, o: OutputComparison, index: int) -> str:
    status = '<span class="pill pass">PASS</span>' if o.ok else '<span class="pill fail">FAIL</span>'
    parts = [
        f'<article class="output {"passed" if o.ok else "failed"}">',
        f"<header>{status}<h3><code>{esc(output_label(o))}</code></h3>"
        f'<span class="muted mono">{esc(o.expected_dtype)}{esc(shape_text(o.expected_shape))}</span></header>',
        f'<p class="line">{esc(o.summary())}</p>',
    ]
    saturation = saturation_line(o)
    if saturation:
        parts.append(f'<p class="line{" bad" if o.saturation_finding else ""}">{esc(saturation)}</p>')
    if o.problem:
        parts.append(f'<div class="plots"><figure>{noplot(o.problem)}</figure></div></article>')
        return "".join(parts)
    hist = histogram_svg(o)
    if hist is None:
        hist_fig = noplot(
            "empty output: no errors to bin"
            if o.size == 0
            else "values are not numbers (compared exactly): no error histogram"
        )
        hist_cap = ""
    else:
        hist_fig, hist_cap = hist, histogram_caption(o)
    expected = (report.arrays or {}).get("expected", {}) or {}
    actual = (report.arrays or {}).get("actual", {}) or {}
    if o.name in expected and o.actual_name in actual:
        svg, scatter_cap = scatter_svg(o, expected[o.name], actual[o.actual_name], plot_id=f"o{index}")
        scatter_fig = svg if svg is not None else noplot(scatter_cap)
        if svg is None:
            scatter_cap = ""
    else:
        scatter_fig, scatter_cap = noplot("the values were not kept with this report"), ""
    parts.append(
        f'<div class="plots"><figure>{hist_fig}<figcaption>{hist_cap}</figcaption></figure>'
        f"<figure>{scatter_fig}<figcaption>{scatter_cap}</figcaption></figure></div></article>"
    )
    return "".join(parts)


def _verdict(report: VerificationReport) -> str:
    n = len(report.outputs)
    passed = sum(o.ok for o in report.outputs)
    if report.ok:
        headline = "The output is within tolerance" if n == 1 else f"All {n} outputs within tolerance"
    elif report.matched_by == "mismatch" and not report.outputs and not (report.missing or report.extra):
        headline = "The models could not be compared"
    elif report.missing or report.extra:
        headline = "The two sides do not have the same outputs"
        if n:
            headline += f"; {passed} of {n} compared output{'s' if n != 1 else ''} pass"
    else:
        headline = f"{n - passed} of {n} output{'s' if n != 1 else ''} out of tolerance"
    how = {"name": "outputs matched by name", "position": "outputs matched by position (names differ)"}.get(
        report.matched_by,
        "the output sets differ" if report.outputs or report.missing or report.extra else "not run",
    )
    cls, word = ("pass", "PASS") if report.ok else ("fail", "FAIL")
    return (
        f'<section class="verdict {cls}" aria-label="verdict"><div class="word">{word}</div><div>'
        f'<p class="headline">{esc(headline)}</p>'
        + ("" if report.ok else f'<p class="sub">{esc(report.summary())}</p>')
        + f'<p class="sub muted">atol {report.atol:g}, rtol {report.rtol:g}; {esc(how)}</p></div></section>'
    )


def _default_title(report: VerificationReport) -> str:
    names = []
    for key in ("reference", "candidate"):
        d = report.context.get(key)
        if isinstance(d, Mapping) and d.get("path"):
            names.append(Path(str(d["path"])).name or str(d["path"]))
    if len(names) == 2:
        return f"{names[0]} vs {names[1]}"
    return "Verification report"


def render_html(report: VerificationReport, title: str | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, nothing fetched)."""
    from ..version import __version__

    title = title or _default_title(report)
    ctx = report.context
    body = [
        '<header><p class="eyebrow">modelconv verify</p>',
        f"<h1>{esc(title)}</h1></header>",
        _verdict(report),
    ]
    if ctx.get("reference") is not None or ctx.get("candidate") is not None:
        body.append(
            '<h2>Models</h2><div class="cards">'
            + _side_card("Expected · reference", ctx.get("reference"), (report.arrays or {}).get("expected"))
            + _side_card("Actual · candidate", ctx.get("candidate"), (report.arrays or {}).get("actual"))
            + "</div>"
        )
    body.append(
        '<div class="cards"><div><h2>Inputs</h2>'
        + _inputs_section(report)
        + "</div><div><h2>Tolerances</h2>"
        + _tolerance_section(report)
        + "</div></div>"
    )
    body.append("<h2>Outputs</h2>")
    if report.outputs:
        body.append(_outputs_table(report))
    else:
        body.append('<p class="muted">No output was compared.</p>')
    if report.missing or report.extra:
        items = []
        if report.missing:
            items.append(
                "<li>expected but missing from the actual side: "
                + ", ".join(f"<code>{esc(n)}</code>" for n in report.missing)
                + "</li>"
            )
        if report.extra:
            items.append(
                "<li>not expected (only on the actual side): "
                + ", ".join(f"<code>{esc(n)}</code>" for n in report.extra)
                + "</li>"
            )
        body.append(f'<ul class="notes bad" style="margin-top:8px">{"".join(items)}</ul>')
    if report.notes:
        body.append(
            '<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>"
        )
    if report.layerwise is not None:
        body.append(layers_section(report.layerwise))
    if report.outputs:
        body.append("<h2>Per output</h2>")
        body.extend(_output_card(report, o, i) for i, o in enumerate(report.outputs))
    body.append(
        f"<footer>tfmodelkit {esc(__version__)} · a pass means every element satisfied the rule above.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(('PASS' if report.ok else 'FAIL') + ' · ' + title)}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def write_html(report: VerificationReport, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically (a temporary sibling renamed into place)."""
    text = render_html(report, title=title)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)
    return Path(path)
