"""Renderers: the same view dict as a terminal table, markdown, or JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

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


class _Doc:
    """Collects headings, key/value blocks and tables for table or markdown output."""

    def __init__(self, markdown: bool) -> None:
        self.md = markdown
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"## {text}" if self.md else text)

    def line(self, text: str) -> None:
        self.parts.append(text)

    def table(self, rows: list[list[Any]], headers: list[str]) -> None:
        from tabulate import tabulate

        if not rows:
            self.parts.append("_(none)_" if self.md else "  (none)")
            return
        self.parts.append(tabulate(rows, headers=headers, tablefmt="github" if self.md else "simple", disable_numparse=True))

    def pairs(self, items: list[tuple[str, Any]]) -> None:
        from tabulate import tabulate

        rows = [[k, v] for k, v in items if v not in (None, "", [], {})]
        if self.md:
            self.parts.append(tabulate(rows, headers=["", ""], tablefmt="github", disable_numparse=True))
        else:
            self.parts.append(tabulate(rows, tablefmt="plain", disable_numparse=True))

    def warnings(self, warnings: list[str]) -> None:
        for w in warnings:
            self.parts.append(f"warning: {w}")

    def text(self) -> str:
        return "\n\n".join(p for p in self.parts if p is not None).rstrip() + "\n"


def _summary(d: dict[str, Any], doc: _Doc) -> None:
    doc.heading(f"{d['path']}  [{d['format']}]")
    w = d["weights"]
    roles = ", ".join(f"{n} {r}" for r, n in sorted(w["by_role"].items()))
    meta = d.get("metadata", {})
    doc.pairs(
        [
            ("producer", ", ".join(f"{k} {v}" for k, v in d["producer"].items())),
            ("signatures", ", ".join(d["signatures"]) or (None if d["format"] == "checkpoint" else "none")),
            ("weights", f"{w['count']} tensors ({roles})" if w["count"] else "none"),
            ("model parameters", f"{w['model_parameters']:,} ({fmt_bytes(w['model_nbytes'])})"),
            ("all tensor bytes", fmt_bytes(w["total_nbytes"])),
            ("layers", d["layers"] or None),
            ("ops", f"{d['ops']['total']} nodes of {d['ops']['kinds']} kinds" if d["ops"]["total"] else None),
            ("functions", d["functions"] or None),
            ("assets", ", ".join(d["assets"])),
            *[(k, _short(v)) for k, v in meta.items() if _is_simple(v)],
        ]
    )
    doc.warnings(d["warnings"])


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
        doc.table(rows, headers)
    if d.get("functions"):
        doc.heading("functions")
        doc.table(
            [[f["path"] or "", f["name"], ", ".join(f"{t['name']}:{t['dtype']}{fmt_shape(t['shape'])}" for t in f["inputs"])] for f in d["functions"]],
            ["object", "concrete function", "inputs"],
        )
    doc.warnings(d["warnings"])


def _first(values: list[Any]) -> str:
    if len(values) == 1:
        return fmt_num(values[0])
    return f"[{len(values)} values]"


def _weights(d: dict[str, Any], doc: _Doc) -> None:
    stats = any("mean" in w for w in d["weights"])
    rows = []
    for w in d["weights"]:
        row = [w["name"], w["dtype"], fmt_shape(w["shape"]), fmt_bytes(w["nbytes"])]
        if not stats:
            row.append(w["role"] if w["role"] != "model" else "")
        else:
            row += [fmt_num(w[k]) for k in ("min", "max", "mean", "std", "nan", "inf")]
        rows.append(row)
    headers = ["name", "dtype", "shape", "size"] + (["min", "max", "mean", "std", "nan", "inf"] if stats else ["role"])
    doc.table(rows, headers)
    footer = f"{len(d['weights'])} tensors, {d['total_elements']:,} elements, {fmt_bytes(d['total_nbytes'])}"
    if d["hidden_optimizer_weights"]:
        footer += f"; {d['hidden_optimizer_weights']} optimizer tensors hidden (--include-optimizer shows them)"
    doc.line(footer)
    doc.warnings(d["warnings"])


def _layers(d: dict[str, Any], doc: _Doc) -> None:
    if not d["layers"]:
        doc.line("no Keras architecture in this file")
    else:
        rows = []
        for layer in d["layers"]:
            indent = "  " * layer["depth"]
            rows.append(
                [
                    indent + layer["name"],
                    layer["class_name"],
                    "" if layer["params"] is None else f"{layer['params']:,}",
                    ", ".join(layer["inbound"]),
                    layer["code"] or "",
                ]
            )
        headers = ["layer", "class", "params", "inbound", "code"]
        if not any(r[4] for r in rows):
            rows = [r[:4] for r in rows]
            headers = headers[:4]
        doc.table(rows, headers)
    doc.warnings(d["warnings"])


def _ops(d: dict[str, Any], doc: _Doc) -> None:
    doc.table([[k, v] for k, v in d["ops"].items()], ["op", "count"])
    line = f"{d['total']} ops of {len(d['ops'])} kinds"
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
            doc.table(rows, ["severity", "target", "subject", "problem"])
    else:
        doc.heading(f"{d['path']}  [{d['format']}]")
        if d["findings"]:
            doc.table([[f["severity"], f["subject"], f["message"]] for f in d["findings"]], ["severity", "subject", "problem"])
    checked = ", ".join(f"{v} {k.removesuffix('s') if v == 1 else k}" for k, v in d["checked"].items())
    errors = sum(1 for f in d["findings"] if f["severity"] == "error")
    if targets:
        warnings = len(d["findings"]) - errors
        verdict = f"OK: no errors ({warnings} warning(s))" if d["ok"] else f"FAILED: {errors} error(s), {warnings} warning(s)"
        doc.line(f"{verdict} for {', '.join(targets)}; checked {checked or 'nothing'}")
        return
    checked = checked or "nothing"
    doc.line(f"OK: checked {checked}" if d["ok"] else f"FAILED: {errors} problem(s) found (checked {checked})")


def _diff(d: dict[str, Any], doc: _Doc) -> None:
    doc.heading(f"A: {d['a']}\nB: {d['b']}" if not doc.md else f"{d['a']} vs {d['b']}")
    doc.line(f"weights matched by {d['matched_by']}: {d['same']} equal, {len(d['changed'])} changed, "
             f"{len(d['only_in_a'])} only in A, {len(d['only_in_b'])} only in B")
    if d["changed"]:
        rows = []
        for c in d["changed"]:
            detail = f"max |a-b| = {fmt_num(c['max_abs_diff'])}" if c["what"] == "values" else f"{c['a']} -> {c['b']}"
            rows.append([c["name"], c["what"], detail])
        doc.table(rows, ["weight", "changed", "detail"])
    if d["only_in_a"]:
        doc.table([[n] for n in d["only_in_a"]], ["only in A"])
    if d["only_in_b"]:
        doc.table([[n] for n in d["only_in_b"]], ["only in B"])
    if d["signature_changes"]:
        doc.line("\n".join(d["signature_changes"]))
    doc.line("identical" if d["identical"] else "different")


def _tensor(d: dict[str, Any], doc: _Doc) -> None:
    doc.pairs([("name", d["name"]), ("dtype", d["dtype"]), ("shape", fmt_shape(d["shape"])), ("written to", d.get("out"))])
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


def render(view: str, data: dict[str, Any] | list[dict[str, Any]], output: str) -> str:
    """Render one view (or a list of them, e.g. every prefix of a folder)."""
    if output == "json":
        return to_json(data) + "\n"
    doc = _Doc(markdown=output == "markdown")
    for item in data if isinstance(data, list) else [data]:
        _RENDERERS[view](item, doc)
    return doc.text()
