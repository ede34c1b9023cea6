"""Renderers: the same view dict as a terminal table, markdown, or JSON.

Views carry their reader's warnings in a ``warnings`` list; JSON keeps it, while tables and
markdown leave it out (the command line shows warnings on stderr, apart from the output).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..text import plural

OUTPUT_FORMATS = ("table", "json", "markdown")


def fmt_shape(shape: list[int | None] | None) -> str:
    if shape is None:
        return "<unknown rank>"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def fmt_num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, bytes):
        return o.decode("utf-8", errors="replace")
    return str(o)


def _clean(o: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null (stats count them separately)."""
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def to_json(data: Any) -> str:
    return json.dumps(_clean(data), indent=2, default=_json_default, allow_nan=False)


#: Narrowest a wrapped column gets, unless its header is wider or its cells are narrower.
MIN_COLUMN = 12
#: tabulate pads every header by two spaces; "simple" and "plain" put two between columns.
_HEADER_PAD = 2
_GAP = 2
#: Where a long name or sentence may be broken: after a space, a slash or a comma.
_BREAKS = re.compile(r"(?<=[ /,])")


def fit_rows(
    rows: list[list[Any]], headers: list[str] | None, width: int, wrap: Iterable[int]
) -> list[list[Any]]:
    """``rows`` with the cells of the ``wrap`` columns wrapped so that the table fits ``width``.

    The other columns (numbers, dtypes) keep their width. The widest wrappable columns are
    cut back to one common limit, the largest that fits, never below :data:`MIN_COLUMN` or
    their header. A table that cannot fit even so is left as it is: wrapping its names would
    not make it fit, only harder to read.
    """
    if not rows:
        return rows
    ncols = max(len(r) for r in rows)
    cells = [[str(c) for c in r] + [""] * (ncols - len(r)) for r in rows]
    heads = [len(h) + _HEADER_PAD for h in headers] if headers else []
    heads += [0] * (ncols - len(heads))
    natural = [max([heads[i], *(len(ln) for r in cells for ln in r[i].split("\n"))]) for i in range(ncols)]
    room = width - _GAP * (ncols - 1)
    if sum(natural) <= room:
        return rows
    wrapped = set(wrap)
    floors = [min(natural[i], max(MIN_COLUMN, heads[i])) if i in wrapped else natural[i] for i in range(ncols)]
    if sum(floors) > room:
        return rows

    def caps(limit: int) -> list[int]:
        return [max(floors[i], min(natural[i], limit)) for i in range(ncols)]

    limit = max(natural)
    while sum(caps(limit)) > room:
        limit -= 1
    cap = caps(limit)
    return [[_wrap(c, cap[i]) if natural[i] > cap[i] else c for i, c in enumerate(r)] for r in cells]


def _wrap(cell: str, width: int) -> str:
    """``cell`` in lines of at most ``width``, broken after spaces, slashes and commas where it
    can be (mid-word only for a word longer than a line); continuations keep its indent."""
    out = []
    for text in cell.split("\n"):
        indent = text[: len(text) - len(text.lstrip(" "))]
        if len(indent) >= width // 2:  # deep nesting in a narrow column: no room to indent
            indent = ""
        line = ""
        for piece in _BREAKS.split(text):
            while piece:
                if len(line) + len(piece.rstrip()) <= width:
                    line += piece
                    piece = ""
                elif line.strip():  # the piece starts the next line
                    out.append(line.rstrip())
                    line = indent
                    piece = piece.lstrip(" ")
                else:  # longer than a whole line: cut it
                    take = width - len(line)
                    out.append(line + piece[:take])
                    line, piece = indent, piece[take:]
        out.append(line.rstrip())
    return "\n".join(out)


class _Doc:
    """Collects headings, key/value blocks and tables for table or markdown output.

    ``width`` (table output only) is the terminal's: tables are wrapped to fit it.
    """

    def __init__(self, markdown: bool, width: int | None = None) -> None:
        self.md = markdown
        self.width = None if markdown else width
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"## {text}" if self.md else text)

    def line(self, text: str) -> None:
        self.parts.append(text)

    def table(
        self, rows: list[list[Any]], headers: list[str], wrap: Iterable[str] = (), indented: bool = False
    ) -> None:
        """A table; the columns named in ``wrap`` may be wrapped to fit the width. ``indented``
        keeps the cells' leading blanks (tabulate strips them by default)."""
        from .table import tabulate

        if not rows:
            self.parts.append("_(none)_" if self.md else "  (none)")
            return
        if self.width:
            names = set(wrap)
            rows = fit_rows(rows, headers, self.width, [i for i, h in enumerate(headers) if h in names])
        keep = {"preserve_whitespace": True} if indented else {}
        self.parts.append(tabulate(rows, headers=headers, tablefmt="github" if self.md else "simple", disable_numparse=True, **keep))

    def pairs(self, items: list[tuple[str, Any]]) -> None:
        from .table import tabulate

        rows = [[k, v] for k, v in items if v not in (None, "", [], {})]
        if self.md:
            self.parts.append(tabulate(rows, headers=["", ""], tablefmt="github", disable_numparse=True))
        else:
            if self.width:
                rows = fit_rows(rows, None, self.width, wrap=[1])  # the values, not their names
            self.parts.append(tabulate(rows, tablefmt="plain", disable_numparse=True))

    def text(self) -> str:
        return "\n\n".join(p for p in self.parts if p is not None).rstrip() + "\n"


def _summary(d: dict[str, Any], doc: _Doc) -> None:
    doc.heading(f"{d['path']}  [{d['format']}]")
    w = d["weights"]
    roles = ", ".join(f"{n} {r}" for r, n in sorted(w["by_role"].items()))
    meta = d.get("metadata", {})
    ops = d["ops"]
    doc.pairs(
        [
            ("producer", ", ".join(f"{k} {v}" for k, v in d["producer"].items())),
            ("signatures", ", ".join(d["signatures"]) or (None if d["format"] == "checkpoint" else "none")),
            ("weights", f"{plural(w['count'], 'tensor')} ({roles})" if w["count"] else "none"),
            ("model parameters", f"{w['model_parameters']:,} ({fmt_bytes(w['model_nbytes'])})"),
            ("all tensor bytes", fmt_bytes(w["total_nbytes"])),
            ("layers", d["layers"] or None),
            ("ops", f"{plural(ops['total'], 'node')} of {plural(ops['kinds'], 'kind')}" if ops["total"] else None),
            ("functions", d["functions"] or None),
            ("assets", ", ".join(d["assets"])),
            *[(k, _short(v)) for k, v in meta.items() if _is_simple(v)],
        ]
    )


def _is_simple(v: Any) -> bool:
    """Metadata worth a table row: scalars and short flat lists (JSON output has the rest)."""
    if isinstance(v, dict):
        return False
    if isinstance(v, list):
        return all(isinstance(x, (str, int, float)) for x in v) and len(json.dumps(v)) <= 100
    return True


def _short(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 100 else text[:97] + "..."
    return v


def _signatures(d: dict[str, Any], doc: _Doc) -> None:
    if not d["signatures"]:
        doc.line("no signatures")
    for s in d["signatures"]:
        extras = [f"tags: {','.join(s['tags'])}" if s["tags"] else "", f"method: {s['method']}" if s["method"] else ""]
        extra = "; ".join(e for e in extras if e)
        doc.heading(f"signature {s['key']!r}" + (f" ({extra})" if extra else ""))
        rows = []
        for side in ("inputs", "outputs"):
            for t in s[side]:
                q = t.get("quantization")
                qtext = f"scale={_first(q['scale'])} zp={_first(q['zero_point'])}" if q and q["scale"] else ""
                rows.append([side[:-1], t["name"], t["dtype"], fmt_shape(t["shape"]), t["tensor"] or "", qtext])
        headers = ["", "name", "dtype", "shape", "tensor", "quantization"]
        if not any(r[5] for r in rows):
            rows = [r[:5] for r in rows]
            headers = headers[:5]
        doc.table(rows, headers, wrap=("name", "shape", "tensor", "quantization"))
    if d.get("functions"):
        doc.heading("functions")
        doc.table(
            [[f["path"] or "", f["name"], ", ".join(f"{t['name']}:{t['dtype']}{fmt_shape(t['shape'])}" for t in f["inputs"])] for f in d["functions"]],
            ["object", "concrete function", "inputs"],
            wrap=("object", "concrete function", "inputs"),
        )


def _first(values: list[Any]) -> str:
    if len(values) == 1:
        return fmt_num(values[0])
    return f"[{len(values)} values]"


def _stored_as(q: dict[str, Any] | None) -> str:
    """A TF.js quantized weight's stored form: ``uint8 (min -0.61, scale 0.0047)``, ``float16``."""
    if not q:
        return ""
    if "scale" not in q:
        return str(q["dtype"])
    return f"{q['dtype']} (min {fmt_num(q['min'])}, scale {fmt_num(q['scale'])})"


def _weights(d: dict[str, Any], doc: _Doc) -> None:
    stats = any("mean" in w for w in d["weights"])
    graph = any("graph_variable" in w for w in d["weights"])  # a TF1 checkpoint beside its .meta
    quantized = any("quantization" in w for w in d["weights"])  # TF.js weights stored quantized
    rows = []
    for w in d["weights"]:
        row = [w["name"], w["dtype"], fmt_shape(w["shape"]), fmt_bytes(w["nbytes"])]
        if not stats:
            row.append(w["role"] if w["role"] != "model" else "")
        else:
            row += [fmt_num(w[k]) for k in ("min", "max", "mean", "std", "nan", "inf")]
        if graph:
            row.append(w.get("graph_variable") or "-")
        if quantized:
            row.append(_stored_as(w.get("quantization")))
        rows.append(row)
    headers = ["name", "dtype", "shape", "size"] + (["min", "max", "mean", "std", "nan", "inf"] if stats else ["role"])
    headers += ["graph variable"] if graph else []
    headers += ["stored as"] if quantized else []
    doc.table(rows, headers, wrap=("name", "shape", "graph variable", "stored as"))
    elements = d["total_elements"]
    tensors = plural(len(d["weights"]), "tensor")
    footer = f"{tensors}, {elements:,} element{'' if elements == 1 else 's'}, {fmt_bytes(d['total_nbytes'])}"
    if d["hidden_optimizer_weights"]:
        hidden = plural(d["hidden_optimizer_weights"], "optimizer tensor")
        footer += f"; {hidden} hidden (--include-optimizer shows them)"
    doc.line(footer)


def _layers(d: dict[str, Any], doc: _Doc) -> None:
    if not d["layers"]:
        doc.line("no Keras architecture in this file")
        return
    # Nested layers are indented under their parent; markdown collapses plain spaces.
    step = "\u00a0\u00a0" if doc.md else "  "
    rows = []
    for layer in d["layers"]:
        shapes = layer.get("output_shapes")
        rows.append(
            [
                step * layer["depth"] + layer["name"],
                layer["class_name"],
                "?" if shapes is None else ", ".join("?" if s is None else fmt_shape(s) for s in shapes),
                "" if layer["params"] is None else f"{layer['params']:,}",
                ", ".join(layer["inbound"]),
                layer["code"] or "",
            ]
        )
    headers = ["layer", "class", "output shape", "params", "inbound", "code"]
    keep = [i for i in range(len(headers)) if i not in (2, 5) or any(r[i] not in ("", "?") for r in rows)]
    rows = [[r[i] for i in keep] for r in rows]
    headers = [headers[i] for i in keep]
    doc.table(rows, headers, wrap=("layer", "class", "output shape", "inbound", "code"), indented=True)


def _ops(d: dict[str, Any], doc: _Doc) -> None:
    if d.get("no_op_graph"):
        doc.line(f"no ops: {d['no_op_graph']}")
        return
    doc.table([[k, v] for k, v in d["ops"].items()], ["op", "count"], wrap=("op",))
    line = f"{plural(d['total'], 'op')} of {plural(len(d['ops']), 'kind')}"
    if d["flex_ops"]:
        line += f"; Flex (TF select) ops: {', '.join(d['flex_ops'])}"
    custom = [c for c in d["custom_ops"] if c not in d["flex_ops"]]
    if custom:
        line += f"; custom ops: {', '.join(custom)}"
    doc.line(line)


def _check(d: dict[str, Any], doc: _Doc) -> None:
    targets = d.get("targets")
    if targets:  # `check --target`: the lint report
        doc.heading(f"{d['path']}  [{d['format']}]  targets: {', '.join(targets)}")
        if d["findings"]:
            rows = [[f["severity"], f["target"], f["subject"], f["message"]] for f in d["findings"]]
            doc.table(rows, ["severity", "target", "subject", "problem"], wrap=("subject", "problem"))
    else:
        doc.heading(f"{d['path']}  [{d['format']}]")
        if d["findings"]:
            rows = [[f["severity"], f["subject"], f["message"]] for f in d["findings"]]
            doc.table(rows, ["severity", "subject", "problem"], wrap=("subject", "problem"))
    checked = ", ".join(f"{v} {k if v != 1 else _singular(k)}" for k, v in d["checked"].items())
    errors = sum(1 for f in d["findings"] if f["severity"] == "error")
    if targets:
        warnings = len(d["findings"]) - errors
        found = plural(warnings, "warning")
        verdict = f"OK: no errors ({found})" if d["ok"] else f"FAILED: {plural(errors, 'error')}, {found}"
        doc.line(f"{verdict} for {', '.join(targets)}; checked {checked or 'nothing'}")
        return
    checked = checked or "nothing"
    failed = f"FAILED: {plural(errors, 'problem')} found (checked {checked})"
    doc.line(f"OK: checked {checked}" if d["ok"] else failed)


def _singular(counted: str) -> str:
    """What one of ``counted`` is called: "op kinds the signatures reach" -> "op kind the ..."."""
    cut = min((i for i in (counted.find(" ("), counted.find(" the ")) if i >= 0), default=len(counted))
    return counted[:cut].removesuffix("s") + counted[cut:]


def _diff(d: dict[str, Any], doc: _Doc) -> None:
    doc.heading(f"A: {d['a']}\nB: {d['b']}" if not doc.md else f"{d['a']} vs {d['b']}")
    paired = ", ".join(f"{how} ({n})" for how, n in d.get("paired_by", {}).items() if n)
    doc.line(
        f"weights: {d['same']} equal, {len(d['changed'])} changed, {len(d['only_in_a'])} only in A, "
        f"{len(d['only_in_b'])} only in B" + (f"; paired by {paired}" if paired else "")
    )
    # Every pair that is not plainly the same tensor under the same name: JSON lists them all.
    changes = {(c["name"], c.get("name_b", c["name"])): c for c in d["changed"]}
    rows = []
    for p in d.get("pairs", ()):
        change = changes.get((p["name"], p["name_b"]))
        if change is None and p["matched_by"] == "name":
            continue
        b_name = "(same name)" if p["name_b"] == p["name"] else p["name_b"]
        rows.append([p["name"], b_name, p["matched_by"], _diff_result(change)])
    if rows:
        headers = ["weight in A", "weight in B", "paired by", "result"]
        doc.table(rows, headers, wrap=("weight in A", "weight in B", "result"))
    if d["only_in_a"]:
        doc.table([[n] for n in d["only_in_a"]], ["only in A"], wrap=("only in A",))
    if d["only_in_b"]:
        doc.table([[n] for n in d["only_in_b"]], ["only in B"], wrap=("only in B",))
    others = [["signatures", t] for t in d["signature_changes"]]
    others += [["ops", t] for t in d.get("op_changes", ())]
    others += [["metadata", t] for t in d.get("metadata_changes", ())]
    if others:
        doc.table(others, ["", "difference"], wrap=("difference",))
    doc.line("identical" if d["identical"] else "different")


def _diff_result(change: dict[str, Any] | None) -> str:
    if change is None:
        return "equal"
    if change["what"] == "values":
        if change["max_abs_diff"] is None:  # strings: equal or not
            return f"different strings: {change['differing']} of {change['size']}"
        return f"max |a-b| = {fmt_num(change['max_abs_diff'])} ({change['differing']} of {plural(change['size'], 'element')})"
    if change["what"] == "shape":
        return f"shape {fmt_shape(change['a'])} -> {fmt_shape(change['b'])}"
    return f"{change['what']} {change['a']} -> {change['b']}"


def _tensor(d: dict[str, Any], doc: _Doc) -> None:
    stored = f"{_stored_as(d['quantization'])}, dequantized" if d.get("quantization") else None
    doc.pairs([("name", d["name"]), ("dtype", d["dtype"]), ("shape", fmt_shape(d["shape"])), ("stored as", stored),
               ("written to", d.get("out"))])  # fmt: skip
    if "values" in d and "out" not in d:
        doc.line(d["values_text"])


_RENDERERS: dict[str, Callable[[dict[str, Any], _Doc], None]] = {
    "summary": _summary,
    "signatures": _signatures,
    "weights": _weights,
    "layers": _layers,
    "ops": _ops,
    "check": _check,
    "diff": _diff,
    "tensor": _tensor,
}


def render(
    view: str, data: dict[str, Any] | list[dict[str, Any]], output: str, width: int | None = None
) -> str:
    """Render one view (or a list of them, e.g. every prefix of a folder).

    ``width`` fits tables to a terminal that many columns wide (table output only; JSON and
    markdown always hold the full text).
    """
    if output == "json":
        return to_json(data) + "\n"
    doc = _Doc(markdown=output == "markdown", width=width)
    for item in data if isinstance(data, list) else [data]:
        _RENDERERS[view](item, doc)
    return doc.text()
