"""The layer-by-layer section of the HTML verification report (``modelconv verify --layerwise
--html``): the relative error along the model's depth as an inline SVG line chart, with the
tolerance line and the first divergent layer marked, then the per-layer table. Every string from
a model is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .html_plots import BLUE, GREY, INK, MUTED, RED, esc, num

CHART_W, CHART_H = 1040, 380


def _svg_text(x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{esc(s)}</text>'


def _log_bounds(values: Sequence[float], tolerance: float) -> tuple[float, float, float]:
    """(lowest decade, highest decade, the value zero errors are drawn at) of a log axis."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    lo = min([*positive, tolerance]) if positive else tolerance / 1e3
    hi = max([*positive, tolerance])
    lo_exp, hi_exp = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if hi_exp - lo_exp < 2:
        lo_exp -= 1
        hi_exp += 1
    return float(lo_exp), float(hi_exp), 10.0**lo_exp


def depth_chart_svg(layers: Any) -> str | None:
    """Relative error per layer along the depth (log scale), the tolerance as a dashed line,
    layers over it in red; None when no layer was compared."""
    rows = list(layers.layers)
    if not rows:
        return None
    tol = float(layers.tolerance)
    values = [float(r.relative) for r in rows]
    lo_exp, hi_exp, zero_at = _log_bounds(values, tol)
    ml, mr, mt = 76, 44, 34
    label_room = min(150, 12 + 6.2 * max(len(r.layer) for r in rows)) if len(rows) > 1 else 30
    mb = int(label_room) + 28
    pw, ph = CHART_W - ml - mr, CHART_H - mt - mb
    step = pw / max(len(rows) - 1, 1)

    def px(i: int) -> float:
        return ml + (i * step if len(rows) > 1 else pw / 2)

    def py(v: float) -> float:
        v = v if v > 0 and math.isfinite(v) else (10.0**hi_exp if v == math.inf else zero_at)
        p = (math.log10(v) - lo_exp) / (hi_exp - lo_exp)
        return mt + ph - min(max(p, 0.0), 1.0) * ph

    label = "relative error of each layer along the depth of the model"
    out = [
        f'<svg viewBox="0 0 {CHART_W} {CHART_H}" width="{CHART_W}" height="{CHART_H}" role="img" '
        f'aria-label="{esc(label)}" font-family="system-ui, Arial, \'Liberation Sans\', \'DejaVu Sans\', '
        f'sans-serif" font-size="11" fill="{INK}"><title>{esc(label)}</title>'
    ]
    for k in range(int(lo_exp), int(hi_exp) + 1):
        y = py(10.0**k)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ed"/>')
        out.append(_svg_text(ml - 8, y + 3.5, f"{10.0**k:g}" if -3 <= k <= 3 else f"1e{k}", "end"))
    ty = py(tol)
    out.append(
        f'<line x1="{ml}" x2="{ml + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{RED}" stroke-width="1.5" '
        'stroke-dasharray="6 4"/>'
    )
    out.append(_svg_text(ml + pw - 4, ty - 6, f"tolerance {tol:g}", "end", f' fill="{RED}"'))
    points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
    out.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        colour = RED if r.exceeds else (GREY if v <= 0 else BLUE)
        out.append(
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="4.5" fill="{colour}" stroke="#fff" stroke-width="1">'
            f"<title>{esc(r.layer)}: relative error {esc(num(v))}</title></circle>"
        )
        x, y = px(i), mt + ph + 14
        out.append(
            _svg_text(x, y, r.layer, "end", f' font-size="10.5" transform="rotate(-40 {x:.1f} {y:.1f})"'
                      + (f' fill="{RED}"' if r.exceeds else ""))
        )  # fmt: skip
    first = layers.first_divergent_layer
    for i, r in enumerate(rows):
        if r.layer == first:
            x, y = px(i), py(values[i])
            anchor = "start" if x < ml + pw * 0.7 else "end"
            out.append(
                _svg_text(x + (8 if anchor == "start" else -8), y - 9, f"first divergent: {r.layer}", anchor,
                          f' fill="{RED}" font-weight="600"')
            )  # fmt: skip
            break
    out.append(f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{mt + ph}" stroke="{MUTED}"/>')
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{MUTED}"/>')
    mid = mt + ph / 2
    out.append(_svg_text(18, mid, "relative error", extra=f' transform="rotate(-90 18 {mid:.1f})"'))
    out.append(_svg_text(ml + pw / 2, 18, "layers in graph order (inputs first)", extra=f' fill="{MUTED}"'))
    out.append("</svg>")
    return "".join(out)


def _table(layers: Any) -> str:
    head = "".join(
        f'<th class="{c}">{h}</th>' if c else f"<th>{h}</th>"
        for h, c in (("", ""), ("layer", ""), ("B tensor", ""), ("matched by", ""), ("shape", ""),
                     ("B dtype", ""), ("scale", "num"), ("max abs", "num"), ("mean abs", "num"),
                     ("relative", "num"), ("growth", "num"))
    )  # fmt: skip
    body = []
    for r in layers.layers:
        pill = '<span class="pill fail">FAIL</span>' if r.exceeds else '<span class="pill pass">ok</span>'
        shape = "[" + ",".join(str(d) for d in r.shape) + "]"
        growth = "–" if r.growth is None else f"×{num(r.growth)}"
        cls = ' class="failrow"' if r.exceeds else ""
        body.append(
            f'<tr{cls}><td>{pill}</td><td class="name mono">{esc(r.a_tensor)}</td>'
            f'<td class="name mono">{esc(r.b_tensor)}</td><td>{esc(r.matched_by)}</td>'
            f'<td class="mono">{esc(shape)}</td><td class="mono">{esc(r.b_dtype)}</td>'
            f'<td class="num">{num(r.scale)}</td><td class="num">{num(r.max_abs)}</td>'
            f'<td class="num">{num(r.mean_abs)}</td><td class="num">{num(r.relative)}</td>'
            f'<td class="num">{growth}</td></tr>'
        )
    return f'<div class="table-wrap"><table class="outputs"><tr>{head}</tr>{"".join(body)}</table></div>'


def layers_section(layers: Any) -> str:
    """The "Layer by layer" section: findings, the depth chart and the table."""
    tol = float(layers.tolerance)
    first, growth = layers.first_divergent_layer, layers.largest_growth_layer
    findings = [
        f'<li class="bad">first divergent layer: <code>{esc(first)}</code> (relative error over {tol:g})</li>'
        if first
        else f'<li class="good">every layer within the tolerance {tol:g}</li>'
    ]
    if growth:
        findings.append(f"<li>largest growth of the relative error: <code>{esc(growth)}</code></li>")
    findings.extend(f'<li class="muted">{esc(n)}</li>' for n in layers.notes)
    chart = depth_chart_svg(layers)
    return (
        "<h2>Layer by layer</h2>"
        '<p class="muted">relative error = the worst channel\'s max |A − B| over that channel\'s range in A; '
        f"{esc(layers.context.get('samples', '?'))} samples</p>"
        f'<ul class="notes">{"".join(findings)}</ul>'
        + (f'<figure style="margin:12px 0">{chart}</figure>' if chart else "")
        + _table(layers)
    )
