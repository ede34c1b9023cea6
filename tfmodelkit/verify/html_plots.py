"""The SVG plots of the HTML verification report (error histogram, expected-vs-actual scatter) and
the formatting helpers the page shares with them. Every string from a model is escaped."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from .compare import ErrorHistogram, OutputComparison
from .saturation import saturation_masks

#: At most this many points go into one scatter plot.
MAX_SCATTER_POINTS = 2000
#: Of those, up to this many are the elements that need the largest atol, so outliers always show.
WORST_SCATTER_POINTS = 200

PLOT_W, PLOT_H = 520, 360
BLUE, GREY, RED, GREEN, INK, MUTED = "#3b6ea5", "#9aa5b1", "#c0392b", "#2e7d32", "#1f2933", "#616e7c"
#: Histogram bars that straddle the tolerance (some of their elements may pass), and saturated
#: points of a quantized output (pinned at an integer limit, the reference beyond it).
AMBER, PURPLE = "#e08e0b", "#7b2cbf"

# ------------------------------------------------------------------------------------ formatting


def esc(v: Any) -> str:
    return escape(str(v), quote=True)


def num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def value_text(v: Any) -> str:
    if isinstance(v, bytes):
        return repr(v)
    if isinstance(v, float):
        return f"{v:.9g}"
    if isinstance(v, complex):
        return f"{v:.9g}"
    return str(v)


def shape_text(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "unknown"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def percent(fraction: float) -> str:
    if fraction in (0, 1):
        return f"{fraction:.0%}"
    if fraction >= 0.01:
        return f"{fraction:.1%}".replace(".0%", "%")
    return f"{fraction * 100:.2g}%"


def output_label(o: OutputComparison) -> str:
    return o.name if o.name == o.actual_name else f"{o.name} ~ {o.actual_name}"


def spec_html(d: Any) -> str:
    if not isinstance(d, Mapping):
        return esc(d)
    text = f"<code>{esc(d.get('name'))}</code> {esc(d.get('dtype'))}{esc(shape_text(d.get('shape')))}"
    q = d.get("quantization")
    if isinstance(q, Mapping) and q.get("scale"):
        text += f' <span class="muted">(quantized, scale {esc(num(q["scale"][0], 4))}…)</span>'
    return text


def kv(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows)
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


def plural_text(n: int, word: str, many: str | None = None) -> str:
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
        f'role="img" aria-label="{esc(label)}" font-family="system-ui, Arial, \'Liberation Sans\', '
        f'\'DejaVu Sans\', sans-serif" font-size="11" fill="{INK}"><title>{esc(label)}</title>'
    )


def _text(x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{esc(s)}</text>'


def noplot(message: str) -> str:
    return f'<div class="noplot">{esc(message)}</div>'


# ------------------------------------------------------------------------------------- histogram


def decade_colours(o: OutputComparison) -> list[str]:
    """Per decade bar: red when all of it lies beyond atol (failing), amber when it straddles atol,
    blue when within; every bar blue when nothing failed (rtol passed them)."""
    h = o.histogram
    if h is None:
        return []
    if not o.failing:
        return [BLUE] * len(h.counts)
    if o.exact:
        return [RED] * len(h.counts)
    out = []
    for i in range(len(h.counts)):
        low, high = h.edges[i], h.edges[i + 1]
        out.append(RED if low >= o.atol else AMBER if high > o.atol else BLUE)
    return out


def histogram_svg(o: OutputComparison, title: str | None = None) -> str | None:
    """Bars of |actual - expected| per decade (zero errors and NaN/Inf mismatches apart); None if empty."""
    h: ErrorHistogram | None = o.histogram
    if h is None:
        return None
    slots: list[tuple[str, int, str]] = []  # (kind, count, colour)
    if h.zero:
        slots.append(("zero", h.zero, GREY))
    slots.extend(("decade", c, colour) for c, colour in zip(h.counts, decade_colours(o), strict=True))
    if h.nonfinite:
        slots.append(("nonfinite", h.nonfinite, RED))
    if not slots:
        return None
    w, hgt = PLOT_W, PLOT_H
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
    label = title or f"histogram of absolute errors of {output_label(o)}"
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
                    _text(x + slot_w / 2, y - 4, f"{count:,}", extra=f' fill="{MUTED}" font-size="10"')
                )
        if kind == "zero":
            out.append(_text(x + slot_w / 2, mt + ph + 15, "0 (equal)" if slot_w >= 60 else "0"))
        elif kind == "nonfinite":
            out.append(_text(x + slot_w / 2, mt + ph + 15, "NaN/Inf", extra=f' fill="{RED}"'))
        x += slot_w
        previous = kind
    if decade_x0 is not None and h.edges:
        n = len(h.edges)
        every = max(1, math.ceil(34 / slot_w))
        for i, edge in enumerate(h.edges):
            tx = decade_x0 + i * slot_w
            out.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="{MUTED}"/>'
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
                    f'<line x1="{ax:.1f}" x2="{ax:.1f}" y1="{mt - 12}" y2="{mt + ph}" stroke="{RED}" '
                    'stroke-width="1.5" stroke-dasharray="5 3"/>'
                )
                anchor = "start" if ax < ml + pw * 0.7 else "end"
                dx = 5 if anchor == "start" else -5
                out.append(_text(ax + dx, mt - 14, f"atol {o.atol:g}", anchor, f' fill="{RED}"'))
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{MUTED}"/>')
    out.append(_text(ml + pw / 2, hgt - 12, "|actual − expected|, binned by decade"))
    out.append(_text(16, mt + ph / 2, "elements", extra=f' transform="rotate(-90 16 {mt + ph / 2:.1f})"'))
    out.append("</svg>")
    return "".join(out)


def histogram_caption(o: OutputComparison) -> str:
    h = o.histogram
    parts = []
    if h is not None and h.zero:
        parts.append(f"{plural_text(h.zero, 'element')} equal")
    if h is not None and h.nonfinite:
        parts.append(
            f'<span class="bad">{plural_text(h.nonfinite, "NaN/Inf mismatch", "NaN/Inf mismatches")}</span>'
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
    colours = set(decade_colours(o))
    if RED in colours or AMBER in colours:
        legend = [f'<span class="swatch" style="background:{RED}"></span>beyond atol (failing)']
        if AMBER in colours:
            legend.append(f'<span class="swatch" style="background:{AMBER}"></span>straddling atol')
        parts.append(" ".join(legend))
    return "; ".join(parts)


# --------------------------------------------------------------------------------------- scatter


def as_float(a: Any) -> np.ndarray | None:
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
    xe, ya = as_float(expected), as_float(actual)
    if xe is None or ya is None:
        return None, "values are not real numbers: nothing to plot"
    if xe.size != ya.size:
        return None, "shapes differ: elements do not pair up"
    if xe.size == 0:
        return None, "empty output: nothing to plot"
    x, y, fail, skipped = sample_points(xe, ya, o.atol, o.rtol, o.exact)
    if x.size == 0:
        return None, f"no element is finite on both sides ({plural_text(skipped, 'NaN/Inf pair')})"
    with np.errstate(over="ignore", invalid="ignore"):
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        span = hi - lo
    if not math.isfinite(span):
        return None, "values too large to plot"
    pad = max(abs(lo) * 0.5, 1.0) if span == 0 else span * 0.05
    frame = _ScatterFrame(lo - pad, hi + pad, f"clip-{plot_id}")
    out = [frame.axes(title or f"expected against actual values of {output_label(o)}")]
    half_px = frame.band(out, o)
    saturated = np.zeros(x.shape, dtype=bool)
    if o.quantized_range is not None and o.quantized_step:
        low, high = o.quantized_range
        saturated = saturation_masks(x, y, low, high, o.quantized_step)[1]
        frame.limits(out, low, high)
    out.append(frame.dots(x[~fail & ~saturated], y[~fail & ~saturated], BLUE, 5, 0.65))
    out.append(frame.dots(x[fail & ~saturated], y[fail & ~saturated], RED, 6, 0.9))
    out.append(frame.dots(x[saturated], y[saturated], PURPLE, 6, 0.9))
    out.append(frame.labels())
    caption = _scatter_caption(o, x, fail, int(xe.size) - skipped, skipped, half_px)
    if o.quantized_range is not None:
        caption += (
            f' · <span class="swatch" style="background:{PURPLE}"></span>saturated at the '
            f"{esc(o.quantized_dtype)} limits ({int(np.count_nonzero(saturated)):,}; dotted lines: "
            f"{num(o.quantized_range[0], 4)} and {num(o.quantized_range[1], 4)})"
        )
    return "".join(out), caption


class _ScatterFrame:
    """A square plot of [lo, hi] on both axes, in the report's plot size."""

    def __init__(self, lo: float, hi: float, clip: str) -> None:
        self.lo, self.hi, self.clip = lo, hi, clip
        self.mt, mb = 14, 54
        self.side = PLOT_H - self.mt - mb
        self.ml = 58 + (PLOT_W - 58 - 14 - self.side) // 2
        self.scale = self.side / (hi - lo)

    def px(self, v: float) -> float:
        return self.ml + (v - self.lo) * self.scale

    def py(self, v: float) -> float:
        return self.mt + self.side - (v - self.lo) * self.scale

    def axes(self, label: str) -> str:
        ml, mt, side, clip = self.ml, self.mt, self.side, self.clip
        out = [_svg_open(PLOT_W, PLOT_H, label)]
        out.append(
            f'<defs><clipPath id="{clip}"><rect x="{ml}" y="{mt}" width="{side}" height="{side}"/></clipPath></defs>'
        )
        out.append(f'<rect x="{ml}" y="{mt}" width="{side}" height="{side}" fill="#fbfcfd" stroke="{MUTED}"/>')
        ticks, step = _ticks(self.lo, self.hi, 5)
        for t in ticks:
            X, Y = self.px(t), self.py(t)
            out.append(f'<line x1="{X:.1f}" x2="{X:.1f}" y1="{mt}" y2="{mt + side}" stroke="#eceff2"/>')
            out.append(f'<line x1="{ml}" x2="{ml + side}" y1="{Y:.1f}" y2="{Y:.1f}" stroke="#eceff2"/>')
            out.append(
                f'<line x1="{X:.1f}" x2="{X:.1f}" y1="{mt + side}" y2="{mt + side + 4}" stroke="{MUTED}"/>'
            )
            out.append(f'<line x1="{ml - 4}" x2="{ml}" y1="{Y:.1f}" y2="{Y:.1f}" stroke="{MUTED}"/>')
            out.append(_text(X, mt + side + 15, _tick_label(t, step)))
            out.append(_text(ml - 6, Y + 3.5, _tick_label(t, step), "end"))
        return "".join(out)

    def band(self, out: list[str], o: OutputComparison) -> float:
        """The tolerance band y = x ± (atol + rtol·|x|) (straight between the ends, with a kink at
        x = 0) and the line y = x; returns the band's narrowest half-width in pixels."""
        lo, hi, px, py = self.lo, self.hi, self.px, self.py
        half_px = 0.0
        if not o.exact and (o.atol > 0 or o.rtol > 0):
            xs = [lo, *([0.0] if lo < 0 < hi else []), hi]
            upper = [(v, v + o.atol + o.rtol * abs(v)) for v in xs]
            lower = [(v, v - o.atol - o.rtol * abs(v)) for v in reversed(xs)]
            pts = " ".join(f"{px(a):.2f},{py(b):.2f}" for a, b in upper + lower)
            out.append(f'<polygon points="{pts}" fill="{GREEN}" fill-opacity="0.18" clip-path="url(#{self.clip})"/>')
            half_px = min(o.atol + o.rtol * abs(v) for v in xs) * self.scale
        out.append(
            f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" '
            f'stroke="{GREEN}" stroke-width="1"/>'
        )
        return half_px

    def limits(self, out: list[str], low: float, high: float) -> None:
        """Dotted horizontal lines at the values a quantized output's integer limits represent."""
        for v in (low, high):
            if self.lo <= v <= self.hi:
                y = self.py(v)
                out.append(
                    f'<line x1="{self.ml}" x2="{self.ml + self.side}" y1="{y:.1f}" y2="{y:.1f}" stroke="{PURPLE}" '
                    'stroke-width="1.2" stroke-dasharray="2 3"/>'
                )

    def dots(self, xs: np.ndarray, ys: np.ndarray, colour: str, width: float, opacity: float) -> str:
        if xs.size == 0:
            return ""
        # Zero-length round-capped segments draw as dots, much smaller than <circle> elements.
        d = "".join(f"M{self.px(a):.1f} {self.py(b):.1f}h0" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))
        return (
            f'<path d="{d}" stroke="{colour}" stroke-width="{width}" stroke-linecap="round" '
            f'stroke-opacity="{opacity}" fill="none" clip-path="url(#{self.clip})"/>'
        )

    def labels(self) -> str:
        cy = self.mt + self.side / 2
        ly = self.ml - 44
        return (
            _text(self.ml + self.side / 2, PLOT_H - 10, "expected (reference)")
            + _text(ly, cy, "actual (candidate)", extra=f' transform="rotate(-90 {ly} {cy:.1f})"')
            + "</svg>"
        )


def _scatter_caption(o: OutputComparison, x: np.ndarray, fail: np.ndarray, total: int, skipped: int, half_px: float) -> str:
    n_fail, n = int(np.count_nonzero(fail)), int(x.size)
    parts = [
        f'<span class="swatch" style="background:{BLUE}"></span>within tolerance ({n - n_fail:,})',
        f'<span class="swatch" style="background:{RED}"></span>failing ({n_fail:,})',
        f'<span class="swatch" style="background:{GREEN};border-radius:0;height:3px"></span>y = x',
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
        text = f"{plural_text(skipped, 'NaN/Inf pair')} not drawn"
        parts.append(f'<span class="bad">{text}</span>' if o.histogram and o.histogram.nonfinite else text)
    return " · ".join(parts)
