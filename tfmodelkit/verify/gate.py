"""``modelconv verify A B``: the pre-deploy gate, as a library function.

A is the trusted model, B the artifact about to ship (or an ``.npz`` of golden outputs, in
which case the inputs must be given). Both run on the same inputs; every output is compared.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..options import checked_options
from .compare import VerificationReport, compare
from .core import compare_runners
from .inputs import feed_summary, load_inputs, save_arrays
from .layerwise import check_pair, compare_layers
from .runners import KerasRunner, runner_for
from .tfjs_quantized import tolerance_for
from .tolerances import route_tolerances


def parse_assignments(values: Sequence[str], what: str) -> dict[str, str]:
    """``name=value`` pairs from repeated options."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"{what} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def parse_tolerances(values: Sequence[str], what: str) -> tuple[float | None, dict[str, float]]:
    """``--atol 1e-4`` (default) and ``--atol out=1e-3`` (per output), repeatable."""
    default = None
    per: dict[str, float] = {}
    for item in values:
        name, sep, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{what} {item!r}: not a number") from None
        if number < 0:
            raise UserError(f"{what} {item!r}: must be >= 0")
        if sep:
            per[name] = number
        else:
            default = number
    return default, per


def parse_shapes(values: Sequence[str]) -> dict[str, list[int]]:
    out = {}
    for name, text in parse_assignments(values, "--shape").items():
        try:
            out[name] = [int(d) for d in text.split(",") if d.strip()]
        except ValueError:
            raise UserError(f"--shape {name}={text}: dims must be integers, e.g. {name}=1,224,224,3") from None
    return out


def parse_ranges(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, text in parse_assignments(values, "--input-range").items():
        try:
            lo, hi = (float(x) for x in text.split(","))
        except ValueError:
            raise UserError(f"--input-range {name}={text}: expected LO,HI, e.g. {name}=0,255") from None
        if not lo < hi:
            raise UserError(f"--input-range {name}={text}: LO must be below HI")
        out[name] = (lo, hi)
    return out


def _is_npz(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(".npz") and Path(path).is_file()


@checked_options(name="verify")
def verify_models(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    signature: str | None = None,
    signature_b: str | None = None,
    tags: str | None = None,
    inputs: str | None = None,
    seed: int = 0,
    samples: int | None = None,
    batch: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    per_output_atol: Mapping[str, float] | None = None,
    per_output_rtol: Mapping[str, float] | None = None,
    unsafe: bool = False,
    checkpoint: Mapping[str, Any] | None = None,
    layerwise: bool = False,
    layer_tolerance: float | None = None,
) -> VerificationReport:
    """Run A and B on the same inputs and compare every output (see module doc).

    Unless ``unsafe``, a SavedModel or ``.tflite`` with safety errors (ops reaching files,
    network or Python: ``modelinspect check --target safety``) is refused before it loads.
    A checkpoint on either side runs the model ``checkpoint`` describes (the options of
    ckpt-to-savedmodel: ``model`` or ``architecture``, ``root_key``, ``input_specs``, ...).
    Tolerances default to :mod:`tfmodelkit.verify.tolerances` (a float32 route; dequantized
    outputs of the candidate get a few quantization steps), as a conversion's own check does.
    ``layerwise``: ``report.layerwise`` compares A and B layer by layer on the same inputs.
    """
    from ..formats import detect

    if layerwise:
        check_pair(a, b)
    if not unsafe:
        # Refuse models whose ops reach outside them before anything loads (Keras Lambda
        # layers are the Keras runner's own safe mode).
        from ..lint import require_safe

        for path in (a, b):
            if not _is_npz(path) and detect(path) in ("savedmodel", "tflite"):
                require_safe(path)

    def runner(path: str | os.PathLike[str], sig: str | None) -> Any:
        return _runner(path, sig, tags, unsafe, checkpoint)

    given = sorted(k for k, v in (checkpoint or {}).items() if v)
    if given and not any(not _is_npz(x) and detect(x) == "checkpoint" for x in (a, b)):
        flags = ", ".join("--" + k.replace("_", "-").removesuffix("s") for k in given)
        raise UserError(f"{flags}: for a checkpoint, and neither {a} nor {b} is one")
    per_output = {
        name: ((per_output_atol or {}).get(name), (per_output_rtol or {}).get(name))
        for name in set(per_output_atol or {}) | set(per_output_rtol or {})
    }
    atol_v, rtol_v, steps = route_tolerances("float32", atol, rtol)
    ref = runner(a, signature)
    feed = load_inputs(inputs, ref.inputs) if inputs else None
    if _is_npz(b):
        if feed is None:
            raise UserError(f"{b}: golden outputs need the inputs they were computed from: pass --inputs X.npz")
        expected = load_inputs(b)
        actual = ref.run(feed)
        report = compare(
            expected, actual,
            atol=atol_v, rtol=rtol_v, per_output=per_output, notes=(f"expected outputs: golden file {b}",),
        )  # fmt: skip
        report = dataclasses.replace(
            report,
            context={"reference": {"backend": "golden outputs", "path": str(b)}, "candidate": ref.describe(),
                     "inputs_source": "given", "inputs_file": str(inputs), "seed": None,
                     "inputs": feed_summary(feed, {k: f"given ({inputs})" for k in feed}),
                     "samples": _samples(feed), "runs": 1},
            arrays={"inputs": dict(feed), "expected": expected, "actual": actual},
        )  # fmt: skip
    else:
        cand = runner(b, signature_b or signature)
        # A TF.js model with quantized weights: the tolerance follows from its quantization.
        quantized = tolerance_for(ref, cand, feed=feed, seed=seed, samples=samples, batch=batch) if atol is None else None
        if quantized is not None:
            atol_v, rtol_v = quantized.atol, rtol if rtol is not None else quantized.rtol
        report = compare_runners(
            ref, cand, feed=feed, seed=seed, samples=samples, batch=batch, shapes=shapes, ranges=ranges,
            atol=atol_v, rtol=rtol_v, per_output=per_output,
            quantized_steps=steps if getattr(cand, "output_quantization", None) else None,
        )  # fmt: skip
        if quantized is not None:
            report = quantized.annotate(report, rtol_v)
        if inputs:
            report = dataclasses.replace(report, context={**report.context, "inputs_file": str(inputs)})
        if layerwise:
            report = _with_layers(report, ref, cand, layer_tolerance, signature_b or signature, unsafe)
    return report


def _with_layers(report: VerificationReport, ref: Any, cand: Any, tolerance: float | None, signature: str | None,
                 unsafe: bool) -> VerificationReport:  # fmt: skip
    """``report`` with A and B compared layer by layer on the inputs the verification ran on."""
    fed = report.arrays.get("inputs")
    if not fed:  # the models take different inputs: nothing ran, nothing to compare layer by layer
        return dataclasses.replace(report, notes=(*report.notes, "layer by layer: not compared (nothing ran)"))
    b = cand if isinstance(cand, KerasRunner) else cand.path
    layers = compare_layers(ref, b, fed, tolerance=tolerance, signature=signature, unsafe=unsafe)
    return dataclasses.replace(report, layerwise=layers)


def _runner(
    path: str | os.PathLike[str], sig: str | None, tags: str | None, unsafe: bool, checkpoint: Mapping[str, Any] | None
) -> Any:
    """The runner verify uses for one side (safety was checked by then unless ``unsafe``)."""
    from ..formats import detect

    fmt = detect(path)
    options: dict[str, Any] = {}
    if fmt == "savedmodel":
        options = {"signature": sig, "tags": tags, "safe_mode": False}  # checked above unless --unsafe
    elif fmt == "tflite":
        options = {"signature": sig}
    elif fmt in ("keras_h5", "keras_zip"):
        options = {"safe_mode": not unsafe}
    elif fmt == "checkpoint":
        from .runners.checkpoint import CheckpointRunner

        return CheckpointRunner(path, unsafe=unsafe, **{k: v for k, v in (checkpoint or {}).items() if v is not None})
    return runner_for(path, **options)


def _samples(feed: Mapping[str, Any]) -> int:
    import numpy as np

    return int(np.shape(next(iter(feed.values())))[0]) if feed and np.ndim(next(iter(feed.values()))) else 1


def save_run(report: VerificationReport, *, inputs: str | None = None, outputs: str | None = None) -> None:
    """Write what a verification ran on, to replay it: the inputs fed (``inputs``) and A's outputs
    (``outputs``: the trusted model's numbers, ready to be the next golden file)."""
    if inputs and report.arrays.get("inputs"):
        save_arrays(inputs, report.arrays["inputs"])
    if outputs:
        golden = report.context.get("reference", {}).get("backend") == "golden outputs"
        a_outputs = report.arrays.get("actual" if golden else "expected")
        if a_outputs:
            save_arrays(outputs, a_outputs)
