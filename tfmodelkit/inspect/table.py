"""Plain-text tables: the three layouts the renderers use, drawn the way ``tabulate`` draws them.

``tabulate`` costs a fifth of a small file's whole ``modelinspect`` run to import (it asks
``importlib.metadata`` for its own version, which scans every installed distribution), so
the renderers use this instead. The output is the same as ``tabulate(rows, headers,
tablefmt, disable_numparse=True)`` for the ``simple``, ``github`` and ``plain`` layouts
(a test compares them): every cell is text, left-aligned; ``None`` is empty; a cell is
stripped of surrounding blanks unless ``preserve_whitespace``; a cell may span lines; a
column with a header is at least two wider than it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

LAYOUTS = ("simple", "github", "plain")
#: Columns with a header are this much wider than the header.
HEADER_PAD = 2
#: Between two columns of the ``simple`` and ``plain`` layouts.
GAP = "  "


def _cell(value: Any, preserve_whitespace: bool) -> str:
    text = "" if value is None else f"{value}"
    return text if preserve_whitespace else text.strip()


def tabulate(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str] = (),
    tablefmt: str = "simple",
    disable_numparse: bool = True,
    preserve_whitespace: bool = False,
) -> str:
    """``rows`` (and ``headers``) laid out as ``tablefmt``: ``simple``, ``github`` or ``plain``.

    Numbers are never parsed out of text (``disable_numparse`` must stay True: it is there
    so that calls read like ``tabulate``'s).
    """
    if tablefmt not in LAYOUTS or not disable_numparse:
        raise ValueError(f"unsupported table layout {tablefmt!r} (numbers parsed: {not disable_numparse})")
    if not headers and tablefmt != "plain":
        raise ValueError(f"the {tablefmt} layout needs headers")
    raw = [["" if v is None else f"{v}" for v in row] for row in rows]
    ncols = max((len(r) for r in raw), default=len(headers))
    if ncols == 0:
        return ""
    # As in tabulate: once any cell spans lines, every cell is cut into its lines, and a
    # cell without text has none (a row of such cells takes no line at all).
    multiline = any("\n" in t or "\r" in t for r in [headers, *raw] for t in r)
    texts = [[t if preserve_whitespace else t.strip() for t in r] for r in raw]
    heads = list(headers)[:ncols]
    heads = [""] * (ncols - len(heads)) + [_cell(h, preserve_whitespace) for h in heads] if heads else []
    cells = [
        [_split(t, multiline) for t in r] + [[""] if not multiline else []] * (ncols - len(r)) for r in texts
    ]
    head_cells = [_split(h, multiline) or [""] for h in heads]
    widths = [max((len(line) for r in cells for line in r[i]), default=0) for i in range(ncols)]
    if heads:
        widths = [
            max(w, *(len(line) + HEADER_PAD for line in h)) for w, h in zip(widths, head_cells, strict=True)
        ]
    out: list[str] = []
    if heads:
        out += _lines(head_cells, widths, tablefmt, multiline)
        if tablefmt == "github":
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        else:
            out.append(GAP.join("-" * w for w in widths))
    for r in cells:
        out += _lines(r, widths, tablefmt, multiline)
    return "\n".join(out)


def _split(text: str, multiline: bool) -> list[str]:
    return text.splitlines() if multiline else [text]


def _lines(row: list[list[str]], widths: list[int], tablefmt: str, multiline: bool) -> list[str]:
    """One table row, as many lines as its tallest cell."""
    padded = [[line.ljust(w) for line in c] for c, w in zip(row, widths, strict=True)]
    if multiline:  # tabulate joins a cell's padded lines and splits them again
        padded = ["\n".join(c).splitlines() for c in padded]
    height = max(len(c) for c in padded)
    out = []
    for k in range(height):
        parts = [c[k] if k < len(c) else " " * w for c, w in zip(padded, widths, strict=True)]
        if tablefmt == "github":
            out.append("| " + " | ".join(parts) + " |")
        else:
            out.append(GAP.join(parts).rstrip())
    return out
