"""The package's layers, read from its imports with ``ast`` (docs/architecture.md explains them).

Every import counts, at module level and inside functions alike: a lazy import is still a
dependency, only a later one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfmodelkit"
GENERATED = ("tfmodelkit.formats.protos.",)

#: Lower first. A module may import its own layer and the ones before it.
LAYERS = ("core", "formats", "lint", "inspect", "loaders", "verify", "convert", "api", "cli")
CORE = {"errors", "description", "dtypes", "util", "options", "text", "version", "frames"}

MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"  # tfmodelkit/__init__.py: the public facade over every layer
    if len(parts) == 2 and parts[1] in CORE:
        return "core"
    if parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module}: in no layer; add it to tests/test_layers.py and docs/architecture.md")


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: p for m, p in found.items() if not m.startswith(GENERATED)}


ALL = modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported tfmodelkit module, name taken from it or None, line) for every import in ``module``."""
    path = ALL[module]
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "tfmodelkit"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            if target.split(".")[0] != "tfmodelkit":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in ALL:  # `from . import stream`: the module itself
                    out.append((sub, None, node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return out


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in ALL:
        for target, _, _ in imports(module):
            if target in ALL and target != module:
                graph[module].add(target)
    return graph


def test_every_module_is_in_a_layer():
    for module in ALL:
        layer_of(module)


def test_modules_import_only_their_own_layer_or_earlier_ones():
    bad = []
    for module in ALL:
        mine = LAYERS.index(layer_of(module))
        for target, _, line in imports(module):
            theirs = LAYERS.index(layer_of(target))
            if theirs > mine:
                bad.append(f"{module}:{line} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli():
    bad = [
        f"{module}:{line} imports {target}"
        for module in ALL
        if layer_of(module) != "cli"
        for target, _, line in imports(module)
        if layer_of(target) == "cli"
    ]
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    bad = [
        f"{module}:{line} imports {name} from {target}"
        for module in ALL
        for target, name, line in imports(module)
        if name and name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    cycles = _cycles(edges())
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():
    """The check above can fail: a two-module cycle like the one between convert/ and verify/ that
    the loaders layer removed is found."""
    graph = {
        "tfmodelkit.convert.keras_legacy": {"tfmodelkit.verify.runners"},
        "tfmodelkit.verify.runners": {"tfmodelkit.convert.keras_legacy", "tfmodelkit.errors"},
    }
    assert _cycles(graph) == [["tfmodelkit.convert.keras_legacy", "tfmodelkit.verify.runners"]]


@pytest.mark.parametrize(
    ("module", "target", "ok"),
    [
        ("tfmodelkit.verify.gate", "tfmodelkit.convert.ckpt_to_savedmodel", False),
        ("tfmodelkit.convert.route", "tfmodelkit.lint", True),
        ("tfmodelkit.formats.checkpoint", "tfmodelkit.inspect.views", False),
        ("tfmodelkit.verify.html", "tfmodelkit", False),
        ("tfmodelkit.cli.modelconv", "tfmodelkit", True),
        ("tfmodelkit.util", "tfmodelkit.errors", True),
    ],
)
def test_layer_order_is_what_the_docs_say(module, target, ok):
    assert (LAYERS.index(layer_of(target)) <= LAYERS.index(layer_of(module))) is ok


def test_module_and_function_sizes():
    bad = []
    for module, path in ALL.items():
        text = path.read_text()
        lines = text.count("\n") + 1
        if lines > MAX_MODULE_LINES:
            bad.append(f"{module}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    bad.append(f"{module}.{node.name}: {length} lines (at most {MAX_FUNCTION_LINES})")
    assert not bad, "\n".join(bad)
