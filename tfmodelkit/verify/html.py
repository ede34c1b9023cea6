"""A :class:`VerificationReport` as one self-contained HTML page (``modelconv verify --html``).

Everything is inline (CSS, SVG plots, no scripts, fonts or images from elsewhere), so the page
opens offline and can be attached to a CI run as a single file. Every string that comes from
a model (names, paths, notes) is escaped.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from .compare import ErrorHistogram, OutputComparison, VerificationReport

#: At most this many points go into one scatter plot.
MAX_SCATTER_POINTS = 2000
#: Of those, up to this many are the elements that need the largest atol, so outliers always show.
WORST_SCATTER_POINTS = 200

_PLOT_W, _PLOT_H = 520, 360
_BLUE, _GREY, _RED, _GREEN, _INK, _MUTED = "#3b6ea5", "#9aa5b1", "#c0392b", "#2e7d32", "#1f2933", "#616e7c"

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


# ------------------------------------------------------------------------------------ formatting


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def _num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def _value(v: Any) -> str:
    if isinstance(v, bytes):
        return repr(v)
    if isinstance(v, float):
        return f"{v:.9g}"
    if isinstance(v, complex):
        return f"{v:.9g}"
    return str(v)


def _shape(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "unknown"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _percent(fraction: float) -> str:
    if fraction in (0, 1):
        return f"{fraction:.0%}"
    if fraction >= 0.01:
        return f"{fraction:.1%}".replace(".0%", "%")
    return f"{fraction * 100:.2g}%"


def _label(o: OutputComparison) -> str:
    return o.name if o.name == o.actual_name else f"{o.name} ~ {o.actual_name}"


def _spec(d: Any) -> str:
    if not isinstance(d, Mapping):
        return _e(d)
    text = f"<code>{_e(d.get('name'))}</code> {_e(d.get('dtype'))}{_e(_shape(d.get('shape')))}"
    q = d.get("quantization")
    if isinstance(q, Mapping) and q.get("scale"):
        text += f' <span class="muted">(quantized, scale {_e(_num(q["scale"][0], 4))}…)</span>'
    return text


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="kv">{items}</dl>'


# ----------------------------------------------------------------------------------- SVG helpers


def _ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], float]:
    """Round-numbered ticks (1, 2, 2.5, 5 x 10^k) covering [lo, hi]."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo], 1.0
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next((m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag), 10 * mag)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(k * step)
        k += 1
    return ticks, step


def _tick_label(v: float, step: float) -> str:
    """As few digits as tell neighbouring ticks apart."""
    if abs(v) < step * 1e-6:
        return "0"
    step_exp = math.floor(math.log10(step) + 1e-9)
    extra = 1 if round(step / 10.0**step_exp, 6) == 2.5 else 0  # 2.5 steps need one more digit
    if step >= 1e-4 and abs(v) < 1e6:
        return f"{v:.{max(0, extra - step_exp)}f}"
    digits = max(1, math.floor(math.log10(abs(v)) + 1e-9) - step_exp + 1 + extra)
    text = f"{v:.{digits - 1}e}"
    mantissa, exp = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def _decade(v: float) -> str:
    k = round(math.log10(v))
    return f"{10.0**k:g}" if -2 <= k <= 3 else f"1e{k}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} " + (word if n == 1 else many or word + "s")


def _count(n: float) -> str:
    """Axis label for a count: 800, 12,000, 150k, 2.5M."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e5:
        return f"{n / 1e3:.3g}k"
    return f"{n:,.0f}"


def _svg_open(w: int, h: int, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'role="img" aria-label="{_e(label)}" font-family="system-ui, Arial, \'Liberation Sans\', '
        f'\'DejaVu Sans\', sans-serif" font-size="11" fill="{_INK}"><title>{_e(label)}</title>'
    )


def _text(x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{_e(s)}</text>'


def _noplot(message: str) -> str:
    return f'<div class="noplot">{_e(message)}</div>'


# ------------------------------------------------------------------------------------- histogram


def histogram_svg(o: OutputComparison, title: str | None = None) -> str | None:
    """Bars of |actual - expected| per decade (zero errors and NaN/Inf mismatches apart); None if empty."""
    h: ErrorHistogram | None = o.histogram
    if h is None:
        return None
    slots: list[tuple[str, int, str]] = []  # (kind, count, colour)
    if h.zero:
        slots.append(("zero", h.zero, _GREY))
    slots.extend(("decade", c, _BLUE) for c in h.counts)
    if h.nonfinite:
        slots.append(("nonfinite", h.nonfinite, _RED))
    if not slots:
        return None
    w, hgt = _PLOT_W, _PLOT_H
    ml, mr, mt, mb = 62, 14, 30, 54
    pw, ph = w - ml - mr, hgt - mt - mb
    # Zero and NaN/Inf bars sit apart from the decades, half a slot away.
    gaps = (1 if h.zero and h.counts else 0) + (1 if h.nonfinite and (h.counts or h.zero) else 0)
    slot_w = min(pw / (len(slots) + 0.5 * gaps), 90.0)
    x0 = ml + (pw - slot_w * (len(slots) + 0.5 * gaps)) / 2
    top = max(c for _, c, _ in slots)
    # Integer counts: whole-number ticks, with headroom above the tallest bar for its label.
    ticks, step = _ticks(0, max(top * 1.08, 4), 5)
    ymax = ticks[-1] if ticks[-1] >= top * 1.08 else ticks[-1] + step
    if ymax not in ticks:
        ticks.append(ymax)
    label = title or f"histogram of absolute errors of {_label(o)}"
    out = [_svg_open(w, hgt, label)]

    def y_of(c: float) -> float:
        return mt + ph - c / ymax * ph

    for t in ticks:
        y = y_of(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ed"/>')
        out.append(_text(ml - 6, y + 3.5, _count(t), "end"))
    x = x0
    decade_x0 = None
    previous = None
    bar_labels = len(slots) <= 18
    for kind, count, colour in slots:
        if previous is not None and kind != previous and "decade" in (kind, previous):
            x += slot_w * 0.5
        if kind == "decade" and decade_x0 is None:
            decade_x0 = x
        y = y_of(count)
        pad = slot_w * (0.08 if kind == "decade" else 0.14)
        if count:
            out.append(
                f'<rect x="{x + pad:.1f}" y="{y:.1f}" width="{slot_w - 2 * pad:.1f}" '
                f'height="{mt + ph - y:.1f}" fill="{colour}" rx="1.5"><title>{count:,}</title></rect>'
            )
            if bar_labels:
                out.append(
                    _text(x + slot_w / 2, y - 4, f"{count:,}", extra=f' fill="{_MUTED}" font-size="10"')
                )
        if kind == "zero":
            out.append(_text(x + slot_w / 2, mt + ph + 15, "0 (equal)" if slot_w >= 60 else "0"))
        elif kind == "nonfinite":
            out.append(_text(x + slot_w / 2, mt + ph + 15, "NaN/Inf", extra=f' fill="{_RED}"'))
        x += slot_w
        previous = kind
    if decade_x0 is not None and h.edges:
        n = len(h.edges)
        every = max(1, math.ceil(34 / slot_w))
        for i, edge in enumerate(h.edges):
            tx = decade_x0 + i * slot_w
            out.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="{_MUTED}"/>'
            )
            if i % every == 0 or i == n - 1:
                out.append(_text(tx, mt + ph + 15, _decade(edge)))
        # The absolute tolerance, where it falls on the decade axis.
        if not o.exact and o.atol > 0:
            p = math.log10(o.atol)
            lo, hi = math.log10(h.edges[0]), math.log10(h.edges[-1])
            if lo <= p <= hi:
                ax = decade_x0 + (p - lo) * slot_w
                out.append(
                    f'<line x1="{ax:.1f}" x2="{ax:.1f}" y1="{mt - 12}" y2="{mt + ph}" stroke="{_RED}" '
                    'stroke-width="1.5" stroke-dasharray="5 3"/>'
                )
                anchor = "start" if ax < ml + pw * 0.7 else "end"
                dx = 5 if anchor == "start" else -5
                out.append(_text(ax + dx, mt - 14, f"atol {o.atol:g}", anchor, f' fill="{_RED}"'))
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{_MUTED}"/>')
    out.append(_text(ml + pw / 2, hgt - 12, "|actual − expected|, binned by decade"))
    out.append(_text(16, mt + ph / 2, "elements", extra=f' transform="rotate(-90 16 {mt + ph / 2:.1f})"'))
    out.append("</svg>")
    return "".join(out)


def _histogram_caption(o: OutputComparison) -> str:
    h = o.histogram
    parts = []
    if h is not None and h.zero:
        parts.append(f"{_plural(h.zero, 'element')} equal")
    if h is not None and h.nonfinite:
        parts.append(
            f'<span class="bad">{_plural(h.nonfinite, "NaN/Inf mismatch", "NaN/Inf mismatches")}</span>'
        )
    if o.exact:
        parts.append("exact comparison: any difference fails")
    elif h is not None and h.edges and o.atol > 0:
        if o.atol > h.edges[-1]:
            parts.append(f"every error is below atol {o.atol:g}")
        elif o.atol < h.edges[0]:
            parts.append(
                f"every non-zero error is above atol {o.atol:g} (rtol {o.rtol:g} may still pass them)"
            )
        else:
            parts.append(f"dashed line: atol {o.atol:g} (rtol {o.rtol:g} adds to it per element)")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------- scatter


def _as_float(a: Any) -> np.ndarray | None:
    arr = np.asarray(a)
    if arr.dtype.kind in "SUOc":
        return None
    try:
        return arr.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None


def sample_points(
    expected: np.ndarray,
    actual: np.ndarray,
    atol: float,
    rtol: float,
    exact: bool,
    limit: int = MAX_SCATTER_POINTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Deterministic sample of finite pairs: (x, y, failing, non-finite pairs left out).

    Keeps the elements needing the largest atol (so outliers always appear) and fills the rest
    with evenly spaced elements.
    """
    finite = np.isfinite(expected) & np.isfinite(actual)
    skipped = int(expected.size - np.count_nonzero(finite))
    idx = np.flatnonzero(finite)
    x_all, y_all = expected[idx], actual[idx]
    with np.errstate(over="ignore", invalid="ignore"):
        need = np.abs(y_all - x_all) - rtol * np.abs(x_all)
    fail_all = (y_all != x_all) if exact else (need > atol)
    if idx.size > limit:
        k = min(WORST_SCATTER_POINTS, limit // 4)
        worst = np.argpartition(need, idx.size - k)[idx.size - k :]
        spread = np.linspace(0, idx.size - 1, limit - k).round().astype(np.int64)
        keep = np.unique(np.concatenate([worst, spread]))
        x_all, y_all, fail_all = x_all[keep], y_all[keep], fail_all[keep]
    return x_all, y_all, fail_all, skipped


def scatter_svg(
    o: OutputComparison, expected: Any, actual: Any, title: str | None = None, plot_id: str = "p0"
) -> tuple[str | None, str]:
    """Expected (x) against actual (y) with y = x and the tolerance band; (svg or None, caption)."""
    xe, ya = _as_float(expected), _as_float(actual)
    if xe is None or ya is None:
        return None, "values are not real numbers: nothing to plot"
    if xe.size != ya.size:
        return None, "shapes differ: elements do not pair up"
    if xe.size == 0:
        return None, "empty output: nothing to plot"
    x, y, fail, skipped = sample_points(xe, ya, o.atol, o.rtol, o.exact)
    if x.size == 0:
        return None, f"no element is finite on both sides ({_plural(skipped, 'NaN/Inf pair')})"
    with np.errstate(over="ignore", invalid="ignore"):
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        span = hi - lo
    if not math.isfinite(span):
        return None, "values too large to plot"
    if span == 0:
        pad = max(abs(lo) * 0.5, 1.0)
    else:
        pad = span * 0.05
    lo, hi = lo - pad, hi + pad
    ticks, step = _ticks(lo, hi, 5)

    w, hgt = _PLOT_W, _PLOT_H
    mt, mb = 14, 54
    side = hgt - mt - mb
    ml = 58 + (w - 58 - 14 - side) // 2
    scale = side / (hi - lo)

    def px(v: float) -> float:
        return ml + (v - lo) * scale

    def py(v: float) -> float:
        return mt + side - (v - lo) * scale

    label = title or f"expected against actual values of {_label(o)}"
    clip = f"clip-{plot_id}"
    out = [_svg_open(w, hgt, label)]
    out.append(
        f'<defs><clipPath id="{clip}"><rect x="{ml}" y="{mt}" width="{side}" height="{side}"/></clipPath></defs>'
    )
    out.append(f'<rect x="{ml}" y="{mt}" width="{side}" height="{side}" fill="#fbfcfd" stroke="{_MUTED}"/>')
    for t in ticks:
        X, Y = px(t), py(t)
        out.append(f'<line x1="{X:.1f}" x2="{X:.1f}" y1="{mt}" y2="{mt + side}" stroke="#eceff2"/>')
        out.append(f'<line x1="{ml}" x2="{ml + side}" y1="{Y:.1f}" y2="{Y:.1f}" stroke="#eceff2"/>')
        out.append(
            f'<line x1="{X:.1f}" x2="{X:.1f}" y1="{mt + side}" y2="{mt + side + 4}" stroke="{_MUTED}"/>'
        )
        out.append(f'<line x1="{ml - 4}" x2="{ml}" y1="{Y:.1f}" y2="{Y:.1f}" stroke="{_MUTED}"/>')
        out.append(_text(X, mt + side + 15, _tick_label(t, step)))
        out.append(_text(ml - 6, Y + 3.5, _tick_label(t, step), "end"))
    # Tolerance band y = x ± (atol + rtol·|x|): straight between the ends, with a kink at x = 0.
    half_px = 0.0
    if not o.exact and (o.atol > 0 or o.rtol > 0):
        xs = [lo, *([0.0] if lo < 0 < hi else []), hi]
        upper = [(v, v + o.atol + o.rtol * abs(v)) for v in xs]
        lower = [(v, v - o.atol - o.rtol * abs(v)) for v in reversed(xs)]
        pts = " ".join(f"{px(a):.2f},{py(b):.2f}" for a, b in upper + lower)
        out.append(f'<polygon points="{pts}" fill="{_GREEN}" fill-opacity="0.18" clip-path="url(#{clip})"/>')
        half_px = min(o.atol + o.rtol * abs(v) for v in xs) * scale
    out.append(
        f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" '
        f'stroke="{_GREEN}" stroke-width="1"/>'
    )

    def dots(xs: np.ndarray, ys: np.ndarray, colour: str, width: float, opacity: float) -> str:
        if xs.size == 0:
            return ""
        # Zero-length round-capped segments draw as dots, much smaller than <circle> elements.
        d = "".join(f"M{px(a):.1f} {py(b):.1f}h0" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))
        return (
            f'<path d="{d}" stroke="{colour}" stroke-width="{width}" stroke-linecap="round" '
            f'stroke-opacity="{opacity}" fill="none" clip-path="url(#{clip})"/>'
        )

    out.append(dots(x[~fail], y[~fail], _BLUE, 5, 0.65))
    out.append(dots(x[fail], y[fail], _RED, 6, 0.9))
    out.append(_text(ml + side / 2, hgt - 10, "expected (reference)"))
    cy = mt + side / 2
    ly = ml - 44
    out.append(_text(ly, cy, "actual (candidate)", extra=f' transform="rotate(-90 {ly} {cy:.1f})"'))
    out.append("</svg>")

    n_fail, n = int(np.count_nonzero(fail)), int(x.size)
    total = int(xe.size) - skipped
    parts = [
        f'<span class="swatch" style="background:{_BLUE}"></span>within tolerance ({n - n_fail:,})',
        f'<span class="swatch" style="background:{_RED}"></span>failing ({n_fail:,})',
        f'<span class="swatch" style="background:{_GREEN};border-radius:0;height:3px"></span>y = x',
    ]
    if o.exact:
        parts.append("exact comparison")
    else:
        band = f"band: atol {o.atol:g} + rtol {o.rtol:g}·|expected|"
        if half_px < 0.5:
            band += " (thinner than a pixel at this scale)"
        parts.append(band)
    if n < total:
        parts.append(f"{n:,} of {total:,} points: the worst ones and an even spread")
    if skipped:
        text = f"{_plural(skipped, 'NaN/Inf pair')} not drawn"
        parts.append(f'<span class="bad">{text}</span>' if o.histogram and o.histogram.nonfinite else text)
    return "".join(out), " · ".join(parts)


# ---------------------------------------------------------------------------------------- sections


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
        return f'<div class="card"><h3>{_e(heading)}</h3><p class="muted">not recorded</p></div>'
    rows: list[tuple[str, str]] = []
    for key, label in _SIDE_KEYS:
        v = d.get(key)
        if v is None or v == "":
            continue
        text = _e(v) if key != "path" else f"<code>{_e(v)}</code>"
        rows.append((label, text))
    versions = d.get("versions")
    if isinstance(versions, Mapping):
        vs = ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items() if v)
        if vs:
            rows.append(("versions", vs))
    for key, label in (("inputs", "inputs"), ("outputs", "outputs")):
        specs = d.get(key)
        if isinstance(specs, list) and specs:
            rows.append((label, "<br>".join(_spec(s) for s in specs)))
    if not d.get("outputs") and arrays:  # a golden file: describe the arrays it holds
        rows.append(
            (
                "arrays",
                "<br>".join(
                    _spec({"name": k, "dtype": str(np.asarray(v).dtype), "shape": list(np.shape(v))})
                    for k, v in arrays.items()
                ),
            )
        )
    deq = d.get("dequantized_outputs")
    if isinstance(deq, Mapping) and deq:
        rows.append(
            (
                "dequantized",
                "<br>".join(f"<code>{_e(k)}</code> from {_e(v.get('dtype'))}" for k, v in deq.items()),
            )
        )
    notes = d.get("notes")
    if isinstance(notes, list) and notes:
        rows.append(("notes", "<br>".join(_e(n) for n in notes)))
    return f'<div class="card"><h3>{_e(heading)}</h3>{_kv(rows)}</div>'


def _inputs_section(report: VerificationReport) -> str:
    ctx = report.context
    source = ctx.get("inputs_source")
    seed = ctx.get("seed")
    specs = ctx.get("inputs")
    if source == "generated":
        how = f"generated from the reference's signature with seed <code>{_e(seed)}</code>"
    elif source == "given":
        how = "given by the caller"
    elif source:
        how = f"read from <code>{_e(source)}</code>"
    else:
        how = "not recorded"
    matched = ctx.get("inputs_matched_by")
    rows = [("source", how)]
    if matched == "mismatch":
        rows.append(("fed by", '<span class="bad">not run: the models take different inputs</span>'))
    elif matched:
        rows.append(
            ("fed by", _e({"name": "name", "position": "position (names differ)"}.get(matched, matched)))
        )
    body = _kv(rows)
    if isinstance(specs, Mapping) and specs:
        arrays = report.arrays.get("inputs", {}) if report.arrays else {}
        trs = []
        for name, spec in specs.items():
            rng = "–"
            arr = arrays.get(name) if isinstance(arrays, Mapping) else None
            vals = _as_float(arr) if arr is not None else None
            if vals is not None and vals.size and np.isfinite(vals).any():
                fin = vals[np.isfinite(vals)]
                rng = f"{_num(float(fin.min()), 4)} … {_num(float(fin.max()), 4)}"
            shape = spec.get("shape") if isinstance(spec, Mapping) else None
            dtype = spec.get("dtype") if isinstance(spec, Mapping) else None
            trs.append(
                f'<tr><td class="name"><code>{_e(name)}</code></td><td>{_e(dtype)}</td>'
                f'<td class="mono">{_e(_shape(shape))}</td><td class="num">{_e(rng)}</td></tr>'
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
                "<br>".join(f"<code>{_e(o.name)}</code>: atol {o.atol:g}, rtol {o.rtol:g}" for o in custom),
            )
        )
    if exact:
        rows.append(
            ("exact", ", ".join(f"<code>{_e(o.name)}</code>" for o in exact) + " (integers, bools, strings)")
        )
    rows.append(("non-finite", "NaN matches only NaN, ±Inf only the same infinity, at the same place"))
    return _kv(rows)


def _nonfinite(o: OutputComparison) -> str:
    def side(nan: int, inf: int) -> str:
        bits = [f"{nan:,} NaN" if nan else "", f"{inf:,} Inf" if inf else ""]
        return ", ".join(b for b in bits if b) or "0"

    if not any((o.expected_nan, o.expected_inf, o.actual_nan, o.actual_inf)):
        return '<span class="muted">none</span>'
    return (
        f'<span class="muted">exp</span> {_e(side(o.expected_nan, o.expected_inf))}<br>'
        f'<span class="muted">act</span> {_e(side(o.actual_nan, o.actual_inf))}'
    )


def _tensor_cell(o: OutputComparison) -> str:
    """Shape and dtype, with a check mark when both sides agree."""
    exp_shape, act_shape = _shape(o.expected_shape).replace(" ", ""), _shape(o.actual_shape).replace(" ", "")
    if o.shape_match and o.dtype_match:
        return f'<span class="good">✓</span> <span class="mono">{_e(o.expected_dtype)}{_e(exp_shape)}</span>'

    def part(ok: bool, text: str) -> str:
        return _e(text) if ok else f'<span class="bad">{_e(text)}</span>'

    return (
        '<span class="bad">✗</span> <span class="mono">'
        f"exp {part(o.dtype_match, o.expected_dtype)}{part(o.shape_match, exp_shape)}<br>"
        f"act {part(o.dtype_match, o.actual_dtype)}{part(o.shape_match, act_shape)}</span>"
    )


def _worst_cell(o: OutputComparison) -> str:
    if o.worst_index is None:
        return '<span class="muted">–</span>'

    def short(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else _value(v)

    return (
        f'<span class="mono">{_e(_shape(o.worst_index).replace(" ", ""))}</span><br>'
        f'<span class="muted">exp</span> {_e(short(o.worst_expected))}<br>'
        f'<span class="muted">act</span> {_e(short(o.worst_actual))}'
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
        failing = f"{o.failing:,} / {o.size:,}" + (f"<br>{_percent(o.failing_fraction)}" if o.failing else "")
        fail_cls = ' class="num bad"' if o.failing else ' class="num"'
        if o.exact:
            min_atol = '<span class="muted">exact</span>'
        elif o.min_atol is None:
            min_atol = '<span class="bad">none</span>'
        else:
            min_atol = _e(_num(o.min_atol))
        nums = [
            o.max_abs_error, o.mean_abs_error, o.median_abs_error, o.p99_abs_error,
            o.max_rel_error, o.mean_rel_error, o.median_rel_error, o.p99_rel_error,
        ]  # fmt: skip
        top1 = "–" if o.top1_agreement is None else _percent(o.top1_agreement)
        row = (
            f'<td>{pill}</td><td class="name"><code>{_e(_label(o))}</code><br>{_tensor_cell(o)}</td>'
            f'<td class="mono nowrap">{tol}</td>'
            + "".join(f'<td class="num">{_e(_num(v))}</td>' for v in nums)
            + f'<td class="num">{_worst_cell(o)}</td><td{fail_cls}>{failing}</td><td class="num">{min_atol}</td>'
            f'<td class="nowrap">{_nonfinite(o)}</td><td class="num">{_e(top1)}</td>'
        )
        trs.append(f"<tr>{row}</tr>" if o.ok else f'<tr class="failrow">{row}</tr>')
    return f'<div class="table-wrap"><table class="outputs">{head}<tbody>{"".join(trs)}</tbody></table></div>'


def _output_card(report: VerificationReport, o: OutputComparison, index: int) -> str:
    status = '<span class="pill pass">PASS</span>' if o.ok else '<span class="pill fail">FAIL</span>'
    parts = [
        f'<article class="output {"passed" if o.ok else "failed"}">',
        f"<header>{status}<h3><code>{_e(_label(o))}</code></h3>"
        f'<span class="muted mono">{_e(o.expected_dtype)}{_e(_shape(o.expected_shape))}</span></header>',
        f'<p class="line">{_e(o.summary())}</p>',
    ]
    if o.problem:
        parts.append(f'<div class="plots"><figure>{_noplot(o.problem)}</figure></div></article>')
        return "".join(parts)
    hist = histogram_svg(o)
    if hist is None:
        hist_fig = _noplot(
            "empty output: no errors to bin"
            if o.size == 0
            else "values are not numbers (compared exactly): no error histogram"
        )
        hist_cap = ""
    else:
        hist_fig, hist_cap = hist, _histogram_caption(o)
    expected = (report.arrays or {}).get("expected", {}) or {}
    actual = (report.arrays or {}).get("actual", {}) or {}
    if o.name in expected and o.actual_name in actual:
        svg, scatter_cap = scatter_svg(o, expected[o.name], actual[o.actual_name], plot_id=f"o{index}")
        scatter_fig = svg if svg is not None else _noplot(scatter_cap)
        if svg is None:
            scatter_cap = ""
    else:
        scatter_fig, scatter_cap = _noplot("the values were not kept with this report"), ""
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
        f'<p class="headline">{_e(headline)}</p>'
        + ("" if report.ok else f'<p class="sub">{_e(report.summary())}</p>')
        + f'<p class="sub muted">atol {report.atol:g}, rtol {report.rtol:g}; {_e(how)}</p></div></section>'
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
    from .. import __version__

    title = title or _default_title(report)
    ctx = report.context
    body = [
        '<header><p class="eyebrow">modelconv verify</p>',
        f"<h1>{_e(title)}</h1></header>",
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
                + ", ".join(f"<code>{_e(n)}</code>" for n in report.missing)
                + "</li>"
            )
        if report.extra:
            items.append(
                "<li>not expected (only on the actual side): "
                + ", ".join(f"<code>{_e(n)}</code>" for n in report.extra)
                + "</li>"
            )
        body.append(f'<ul class="notes bad" style="margin-top:8px">{"".join(items)}</ul>')
    if report.notes:
        body.append(
            '<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>"
        )
    if report.outputs:
        body.append("<h2>Per output</h2>")
        body.extend(_output_card(report, o, i) for i, o in enumerate(report.outputs))
    body.append(
        f"<footer>tfmodelkit {_e(__version__)} · a pass means every element satisfied the rule above.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(('PASS' if report.ok else 'FAIL') + ' · ' + title)}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def write_html(report: VerificationReport, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically (a temporary sibling renamed into place)."""
    text = render_html(report, title=title)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
