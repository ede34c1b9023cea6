"""What every conversion shares: staged (atomic) output, progress, verification, the report.

A conversion writes into a temporary sibling of the destination, verifies it there, and
only then renames it into place. Temporary siblings are named
``.<destination name>.tfmodelkit-partial-<pid>``: a run that was killed leaves one behind,
and the next run for the same destination removes it once its process is gone.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..verify.tolerances import route_tolerances

PARTIAL_MARK = ".tfmodelkit-partial-"
OLD_MARK = ".tfmodelkit-old-"

@dataclass
class VerifyOptions:
    """How a conversion proves itself."""

    enabled: bool = True
    inputs: str | None = None  # an .npz of inputs
    seed: int = 0
    samples: int | None = None  # None: verify.inputs.DEFAULT_SAMPLES
    batch: int | None = None  # samples per run where the batch is dynamic (None: all at once)
    ranges: dict[str, tuple[float, float]] | None = None  # --input-range
    shapes: dict[str, list[int]] | None = None  # --shape: full shapes of generated inputs (unknown ranks)
    atol: float | None = None  # None: the route's default
    rtol: float | None = None


@dataclass
class ConversionReport:
    source: str
    source_format: str
    destination: str
    route: list[str]
    loader: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    verification: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    kept_failed: bool = False
    #: int8 conversions: what calibrated them ({"source": "given" | "generated", "samples": N, ...}).
    calibration: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Receives each progress line of a conversion (stage lines, warnings, verification reports).
ProgressSink = Callable[[str], None]


class Progress:
    """Stage lines and per-stage timings of one conversion.

    The library prints nothing: lines go to ``sink`` (the command passes one that writes to
    stderr unless ``-q``); with no sink they are dropped."""

    def __init__(self, report: ConversionReport, sink: ProgressSink | None = None) -> None:
        self.report = report
        self.sink = sink

    @property
    def quiet(self) -> bool:
        return self.sink is None

    def say(self, text: str) -> None:
        if self.sink is not None:
            self.sink(text)

    def warn(self, text: str) -> None:
        """A warning: kept in the report and said."""
        self.report.warnings.append(text)
        self.say(f"warning: {text}")

    @contextmanager
    def stage(self, name: str, text: str) -> Iterator[None]:
        self.say(f"[{name}] {text}")
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.report.timings[name] = round(self.report.timings.get(name, 0.0) + elapsed, 4)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def clean_leftovers(destination: Path) -> list[str]:
    """Remove partial outputs of earlier runs for ``destination`` whose process is gone."""
    removed: list[str] = []
    parent = destination.parent
    if not parent.is_dir():
        return removed
    for mark in (PARTIAL_MARK, OLD_MARK):
        prefix = f".{destination.name}{mark}"
        for child in parent.iterdir():
            if child.name.startswith(prefix):
                pid_text = child.name[len(prefix) :].split(".")[0]
                if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                    if mark == OLD_MARK and not (destination.exists() or destination.is_symlink()):
                        # Killed between moving the old destination aside and renaming the
                        # new one in: the backup is the user's previous model; put it back.
                        os.replace(child, destination)
                        removed.append(f"{child.name} (restored as {destination.name})")
                        continue
                    _remove(child)
                    removed.append(child.name)
    return removed


class Stage:
    """A temporary sibling of the destination that becomes it on :meth:`commit`."""

    def __init__(self, destination: Path, overwrite: bool) -> None:
        self.destination = destination
        self.overwrite = overwrite
        self.path = destination.parent / f".{destination.name}{PARTIAL_MARK}{os.getpid()}"
        self.committed = False

    def commit(self) -> None:
        """Move the staged result into place; an existing destination is replaced whole."""
        dst = self.destination
        backup = None
        if dst.exists() or dst.is_symlink():
            if not self.overwrite:  # appeared while we worked
                raise UserError(f"{dst} appeared during the conversion; not replacing it (use --overwrite)")
            backup = dst.parent / f".{dst.name}{OLD_MARK}{os.getpid()}"
            os.replace(dst, backup)
        os.replace(self.path, dst)
        self.committed = True
        if backup is not None:
            _remove(backup)


@contextmanager
def staged_output(destination: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Stage]:
    """A :class:`Stage` for ``destination``; removed again unless committed."""
    dst = Path(destination)
    if (dst.exists() or dst.is_symlink()) and not overwrite:
        raise UserError(f"{dst} already exists; pass --overwrite to replace it")
    if not dst.parent.exists():
        raise UserError(f"{dst.parent}: the destination's folder does not exist")
    clean_leftovers(dst)
    stage = Stage(dst, overwrite)
    _remove(stage.path)
    try:
        yield stage
    finally:
        if not stage.committed:
            _remove(stage.path)


def run_verification(
    reference: Any,
    candidate: Any,
    options: VerifyOptions,
    kind: str,
    progress: Progress,
    label: str,
    *,
    feed: Mapping[str, Any] | None = None,
    inputs_source: str | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> Any:
    """Verify ``candidate`` against ``reference`` and record the figures in the report.

    The inputs are ``options.inputs``, else ``feed`` (from ``inputs_source``: held-out
    calibration samples), else generated; ``calibration`` (how an int8 candidate was calibrated)
    goes into the report's context, where the text report and the verdict show it."""
    import dataclasses

    from ..verify import compare_runners, format_report, load_inputs

    atol, rtol, steps = route_tolerances(kind, options.atol, options.rtol)
    if options.inputs:
        feed, inputs_source = load_inputs(options.inputs, reference.inputs), "given"
    with progress.stage("verify", f"{label}: running both on the same inputs"):
        result = compare_runners(
            reference, candidate, feed=feed, seed=options.seed, samples=options.samples, batch=options.batch,
            ranges=options.ranges, shapes=options.shapes, inputs_source=inputs_source,
            atol=atol, rtol=rtol, quantized_steps=steps,
        )  # fmt: skip
    if calibration is not None:
        result = dataclasses.replace(result, context={**result.context, "calibration": dict(calibration)})
    entry = result.as_dict()
    entry["label"] = label
    entry["inputs_file"] = options.inputs
    progress.report.verification.append(entry)
    if not progress.quiet:
        progress.say(format_report(result, histograms=not result.ok))
    return result


def _entry_label(entry: Mapping[str, Any]) -> str:
    """A verification's label and what it ran on: "SavedModel vs TFLite [x] on 32 generated samples"."""
    from ..verify.report import inputs_phrase, saturated_phrase

    context = entry.get("context") or {}
    on = f" on {inputs_phrase(context)}" if context.get("samples") else ""
    return f"{entry.get('label', '?')}{on}{saturated_phrase(entry.get('outputs') or [])}"


def summary_line(report: ConversionReport) -> str:
    total = sum(report.timings.values())
    if not report.verification:
        verdict = "not verified"
    else:
        failed = [_entry_label(v) for v in report.verification if not v.get("ok")]
        labels = "; ".join(_entry_label(v) for v in report.verification)
        verdict = f"FAILED verification: {'; '.join(failed)}" if failed else f"verified: {labels}"
    if report.calibration and report.calibration.get("source") == "generated":
        verdict += "; int8 calibrated on generated data, not representative inputs"
    return f"{report.source} -> {report.destination} ({' -> '.join(report.route)}; {verdict}; {total:.1f} s)"
