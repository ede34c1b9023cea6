"""``run``: one model run on given or generated inputs, every output summarized.

``saved_model_cli run`` for every format tfmodelkit runs: SavedModels (TF1 ones through a
session when TF2's loader refuses them), Keras files, TFLite, TF.js, TF1 graphs (frozen
GraphDefs, ``.meta`` + checkpoint) and checkpoints with the model they belong to. The runner is
the one verification uses (:func:`tfmodelkit.verify.runners.runner_for`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, NotFoundError, UserError
from ..options import checked_options
from .inputs import generate_inputs, load_inputs, save_arrays

#: Outputs with at most this many elements are shown whole.
SMALL = 16


@dataclass(frozen=True)
class ArraySummary:
    """dtype, shape and summary statistics of one array (its values when small)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nonfinite: int = 0
    values: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "nonfinite": self.nonfinite,
            "values": self.values,
        }


@dataclass(frozen=True)
class RunReport:
    """What ``run`` did: the runner, where the inputs came from, each input and output summarized."""

    model: str
    runner: Mapping[str, Any]
    inputs_source: str
    inputs: tuple[ArraySummary, ...]
    outputs: tuple[ArraySummary, ...]
    saved: str | None = None
    arrays: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runner": dict(self.runner),
            "inputs_source": self.inputs_source,
            "inputs": [s.as_dict() for s in self.inputs],
            "outputs": [s.as_dict() for s in self.outputs],
            "saved": self.saved,
        }


def _values(a: np.ndarray) -> Any:
    if a.dtype == object:
        return [
            x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x) for x in a.reshape(-1)
        ]
    return a.tolist()


def summarize(name: str, value: Any) -> ArraySummary:
    """Statistics of a numeric (or bool) array; strings get only their values (when small)."""
    a = np.asarray(value)
    values = _values(a) if a.size <= SMALL else None
    if a.dtype == object or a.dtype.kind in "SUV" or a.size == 0:
        return ArraySummary(name, str(a.dtype) if a.dtype != object else "string", a.shape, values=values)
    x = a.astype(np.float64) if a.dtype.kind != "c" else np.abs(a).astype(np.float64)
    finite = x[np.isfinite(x)]
    stats: dict[str, float | None] = {"min": None, "max": None, "mean": None, "std": None}
    if finite.size:
        stats = {
            "min": float(finite.min()),
            "max": float(finite.max()),
            "mean": float(finite.mean()),
            "std": float(finite.std()),
        }
    return ArraySummary(
        name, str(a.dtype), a.shape, nonfinite=int(x.size - finite.size), values=values, **stats
    )


def _load_npy(name: str, path: str | os.PathLike[str]) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"--input {name}={p}: no such file")
    try:
        value = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise UserError(
                f"{p}: holds object (pickled) arrays, which are never loaded; store plain arrays"
            ) from None
        raise CorruptFileError(f"{p}: not a readable .npy file ({e})") from None
    except (OSError, EOFError) as e:
        raise CorruptFileError(f"{p}: not a readable .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(value, np.ndarray):
        raise UserError(f"{p}: an .npz archive; pass it as --inputs {p}")
    return value


def _runner(
    path: str | os.PathLike[str], options: dict[str, Any], checkpoint: Mapping[str, Any] | None
) -> Any:
    from ..formats import detect
    from .runners import runner_for

    fmt = detect(path)
    given = {k: v for k, v in (checkpoint or {}).items() if v is not None}
    if fmt == "checkpoint" and given:
        from .runners.checkpoint import CheckpointRunner

        return CheckpointRunner(path, unsafe=not options.get("safe_mode", True), **given)
    if given:
        raise UserError(
            f"{', '.join('--' + k.replace('_', '-') for k in given)}: for a checkpoint, and {path} is a {fmt}"
        )
    if fmt in ("keras_h5", "keras_zip"):
        options = {"safe_mode": options.get("safe_mode")}
    elif fmt in ("tflite", "tfjs"):
        options = {"signature": options.get("signature")} if fmt == "tflite" else {}
    elif fmt == "savedmodel":
        options = {k: options.get(k) for k in ("signature", "tags", "safe_mode")}
    return runner_for(path, **options)


@checked_options(name="run")
def run(
    path: str | os.PathLike[str],
    *,
    inputs: Mapping[str, Any] | None = None,
    input_files: Mapping[str, str | os.PathLike[str]] | None = None,
    inputs_file: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    signature: str | None = None,
    tags: str | None = None,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    meta: str | os.PathLike[str] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    seed: int = 0,
    batch: int = 1,
    shapes: Mapping[str, Sequence[int]] | None = None,
    unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``path`` once and summarize each output.

    Inputs: ``inputs`` (arrays by name), ``input_files`` (name -> ``.npy``), ``inputs_file`` (an
    ``.npz``), merged in that order of precedence; inputs none of them gives are generated
    (seeded, ``batch`` rows where the batch is dynamic; ``shapes`` gives an input's full shape,
    which one of unknown rank needs). ``out`` saves the outputs as an ``.npz``. TF1 graphs take
    ``input_tensors`` / ``output_tensors`` (``NAME[:k]``, comma list) and ``meta`` (the graph of a
    checkpoint); checkpoints of Keras models take ``checkpoint`` (``model`` or ``architecture``
    and the rest of ckpt-to-savedmodel's options). Nothing from the model file runs as Python
    and ops reaching files, network or Python are refused unless ``unsafe``.
    """
    options: dict[str, Any] = {
        "signature": signature,
        "tags": tags,
        "safe_mode": not unsafe,
        "input_tensors": input_tensors,
        "output_tensors": output_tensors,
        "meta": meta,
    }
    if not unsafe:
        from ..formats import detect
        from ..lint import require_safe

        if detect(path) in ("savedmodel", "tflite"):
            require_safe(path)
    if progress:
        progress(f"loading {path}")
    runner = _runner(path, {k: v for k, v in options.items() if v is not None}, checkpoint)
    given: dict[str, Any] = {}
    sources = []
    if inputs_file is not None:
        given.update(load_inputs(inputs_file))
        sources.append(str(inputs_file))
    for name, file in (input_files or {}).items():
        given[name] = _load_npy(name, file)
        sources.append(f"{name}={file}")
    if inputs:
        given.update(inputs)
        sources.append("given arrays")
    names = [s.name for s in runner.inputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UserError(
            f"{path}: the model has no input {', '.join(unknown)} (its inputs: {', '.join(names) or 'none'})"
        )
    missing = [s for s in runner.inputs if s.name not in given]
    if missing:
        given.update(generate_inputs(missing, seed=seed, batch=batch, shapes=shapes))
        sources.append(f"generated (seed {seed}, batch {batch}): {', '.join(s.name for s in missing)}")
    feed = {s.name: given[s.name] for s in runner.inputs}
    if progress:
        progress(f"running {runner.label}")
    outputs = runner.run(feed)
    saved = str(save_arrays(out, outputs)) if out is not None else None
    return RunReport(
        model=str(path),
        runner=runner.describe(),
        inputs_source="; ".join(sources) or "none (the model takes no inputs)",
        inputs=tuple(summarize(k, v) for k, v in feed.items()),
        outputs=tuple(summarize(k, v) for k, v in outputs.items()),
        saved=saved,
        arrays={"inputs": feed, "outputs": outputs},
    )
