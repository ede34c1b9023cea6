"""The lint entry points: targets by name, one report over several targets, the safety gate."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

from ..description import CheckReport, Finding, ModelDescription
from ..errors import UserError
from . import safety, serving, tfjs, tflite

TARGETS = ("serving", "tflite", "safety", "tfjs")

#: Each target's findings and counts for a description and a SavedModel tag set.
_RUNS: dict[str, Callable[[ModelDescription, str | None], tuple[list[Finding], dict[str, int]]]] = {
    "serving": serving.run,
    "tflite": tflite.run,
    "safety": lambda desc, _tags: safety.run(desc),
    "tfjs": tfjs.run,
}


def parse_targets(values: Iterable[str] | str) -> tuple[str, ...]:
    """Targets from repeated and comma-separated values, in the order given, without repeats."""
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip().lower()
            if not name:
                continue
            if name not in TARGETS:
                raise UserError(
                    f"--target {item.strip()!r}: choose from {', '.join(TARGETS)} (comma list or repeated)"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise UserError(f"--target: give at least one of {', '.join(TARGETS)}")
    return tuple(out)


def lint(
    desc_or_path: ModelDescription | str | os.PathLike[str],
    targets: Sequence[str] | str,
    *,
    format: str | None = None,
    tags: str | None = None,
) -> CheckReport:
    """Deploy-readiness and safety findings for ``targets`` (``serving``, ``tflite``, ``safety``).

    ``desc_or_path`` is a :class:`ModelDescription` or a path (read with ``format``/``tags``).
    The report is ``ok`` when no finding is an error.
    """
    chosen = parse_targets(targets)
    if isinstance(desc_or_path, ModelDescription):
        desc = desc_or_path
    else:
        from ..formats import read

        options = {"tags": tags} if tags else {}
        desc = read(desc_or_path, format=format, **options)
    findings: list[Finding] = []
    checked: dict[str, int] = {}
    for target in chosen:
        found, counted = _RUNS[target](desc, tags)
        findings.extend(found)
        for key, value in counted.items():
            checked[key] = max(checked.get(key, 0), value)
    return CheckReport(desc.path, desc.format, checked, tuple(findings), targets=chosen)


def safety_errors(
    path: str | os.PathLike[str] | ModelDescription, *, format: str | None = None
) -> list[Finding]:
    """The safety findings of ``path`` that are errors (what conversions refuse to execute)."""
    report = lint(path, ("safety",), format=format)
    return [f for f in report.findings if f.severity == "error"]


def require_safe(path: str | os.PathLike[str], *, format: str | None = None) -> None:
    """Raise :class:`UserError` when ``path`` holds safety errors (conversions call this before running it)."""
    errors = safety_errors(path, format=format)
    if not errors:
        return
    listed = "; ".join(f"{f.subject}: {f.message.split(';')[0]}" for f in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    raise UserError(
        f"{path}: refusing to run a model with safety errors: {listed}{more}; "
        f"`modelinspect check {path} --target safety` lists them; pass --unsafe only if you trust this model"
    )
