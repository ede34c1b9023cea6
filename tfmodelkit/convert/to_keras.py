"""Any Keras-bearing file -> a native Keras 3 ``.keras`` (or a ``.weights.h5``) that plain Keras loads.

The source is loaded by the project's loader ladder (Keras 3, tf_keras, the legacy upgrader),
made a Keras 3 model where it is not one (:mod:`tfmodelkit.loaders.keras_migrate`, every
rewrite listed), saved by Keras 3 itself, and verified the way its users will load it: a
fresh process running ``keras.saving.load_model(DST)`` with safe mode on, no custom objects
and tfmodelkit unimportable (:class:`~tfmodelkit.verify.runners.KerasProcessRunner`), on the
same inputs as the source, once per Keras backend asked for.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError, UserError
from ..formats import detect
from ..loaders.keras import LoadedKeras
from ..loaders.keras_migrate import load_keras_savedmodel, migrate_to_keras3
from ..loaders.tf import quiet_fds, version
from ..loaders.user_code import load_custom_objects
from ..options import checked_options
from ..verify.runners import KerasProcessRunner, KerasRunner
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output
from .keras_to_savedmodel import load_keras_model

#: The destinations this conversion writes, by how their names end.
DESTINATIONS = {".keras": "keras_zip", ".weights.h5": "keras_weights"}
KERAS_BACKENDS = ("tensorflow", "jax")


def keras_destination(dst: str | os.PathLike[str]) -> str | None:
    """ "keras_zip" for ``*.keras``, "keras_weights" for ``*.weights.h5``, else None."""
    name = str(dst).lower().rstrip("/")
    return next((kind for suffix, kind in DESTINATIONS.items() if name.endswith(suffix)), None)


def _check_backends(backends: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(backends))
    unknown = [b for b in chosen if b not in KERAS_BACKENDS]
    if unknown or not chosen:
        raise UserError(
            f"--keras-backend {','.join(unknown) or '(none)'}: choose from {', '.join(KERAS_BACKENDS)}"
        )
    for b in chosen:
        if b != "tensorflow" and importlib.util.find_spec(b) is None:
            raise UserError(f"--keras-backend {b}: {b} is not installed (pip install 'tfmodelkit[{b}]')")
    return chosen


def _module_folder(spec: str) -> str | None:
    """The sys.path entry a fresh process needs to import ``spec`` (a user's module)."""
    found = importlib.util.find_spec(spec)
    if found is None or not found.origin:
        return None
    folder = Path(found.origin).parent
    for _ in spec.split(".")[1:]:
        folder = folder.parent
    if Path(found.origin).name == "__init__.py":
        folder = folder.parent
    return str(folder)


def _source_optimizer(src: Path, fmt: str) -> bool:
    """Whether the source file holds optimizer state."""
    import h5py

    if fmt == "savedmodel":
        return False
    try:
        if fmt == "keras_h5":
            with h5py.File(src, "r") as f:
                return "optimizer_weights" in f
        import zipfile

        with zipfile.ZipFile(src) as z:
            if "model.weights.h5" not in z.namelist():
                return False
            with z.open("model.weights.h5") as member, h5py.File(member, "r") as f:
                return "optimizer" in f and len(f["optimizer"].keys()) > 0
    except (OSError, ValueError, KeyError):
        return False


#: Idle workers by (backend, preload), reused by the next conversion in this process: a
#: worker only ever imports Keras and the preload modules, and forgets each model it ran.
_IDLE: dict[tuple[str, tuple[str, ...]], list[KerasProcessRunner]] = {}


def _close_idle() -> None:
    for workers in _IDLE.values():
        for w in workers:
            w.close()
    _IDLE.clear()


atexit.register(_close_idle)


@contextlib.contextmanager
def _workers(
    backends: Sequence[str], preload: Sequence[str], enabled: bool
) -> Iterator[list[KerasProcessRunner]]:
    """One Keras process per backend, started now so their imports overlap our work."""
    if not enabled:
        yield []
        return
    paths = [p for p in (_module_folder(m) for m in preload) if p]
    runners = []
    for b in backends:
        idle = _IDLE.get((b, tuple(preload)))
        runners.append(
            idle.pop() if idle else KerasProcessRunner(keras_backend=b, preload=preload, sys_path=paths)
        )
    try:
        yield runners
    finally:
        for r in runners:
            if r.reset():
                _IDLE.setdefault((r.keras_backend, tuple(preload)), []).append(r)
            else:
                r.close()


def _layer_names(model: Any) -> list[str]:
    return [layer.name for layer in getattr(model, "layers", [])]


def _save(model: Any, work: Path, kind: str) -> tuple[Path, Path | None]:
    """Save with Keras 3: the ``.keras`` (always: it is what verification loads) and, for a
    weights destination, the ``.weights.h5``."""
    full = work / "model.keras"
    weights = work / "model.weights.h5" if kind == "keras_weights" else None
    with quiet_fds():
        model.save(str(full))
        if weights is not None:
            model.save_weights(str(weights))
    return full, weights


def _names_report(source: KerasRunner, model: Any, report: ConversionReport) -> None:
    details = report.details
    details["inputs"] = [s.name for s in source.inputs]
    details["outputs"] = [s.name for s in source.outputs]
    details["layers"] = _layer_names(model)
    before = _layer_names(source.model)
    if before != details["layers"]:
        report.warnings.append(f"layer names changed: {before} -> {details['layers']}")


def _check_result_names(source: KerasRunner, result: KerasProcessRunner, report: ConversionReport) -> None:
    """The loaded result must keep the source's input, output and layer names."""
    for what, mine, theirs in (
        ("input", [s.name for s in source.inputs], [s.name for s in result.inputs]),
        ("output", [s.name for s in source.outputs], [s.name for s in result.outputs]),
        ("layer", report.details["layers"], result.layer_names),
    ):
        if mine != theirs:
            report.warnings.append(f"the loaded .keras has {what} names {theirs}, the source {mine}")
            report.details["names_kept"] = False
    report.details.setdefault("names_kept", True)


def _load_source(
    src: Path, fmt: str, *, unsafe: bool, custom_objects: dict[str, Any], architecture: str | None
) -> KerasRunner:
    """The source as a KerasRunner, run by the loader that reads it (tf_keras for a SavedModel)."""
    if fmt != "savedmodel":
        return load_keras_model(src, unsafe=unsafe, custom_objects=custom_objects, architecture=architecture)
    model = load_keras_savedmodel(src, unsafe=unsafe)
    return KerasRunner.from_loaded(LoadedKeras(model, "tf_keras", "savedmodel", not unsafe), src)


@checked_options
def to_keras(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    unsafe: bool = False,
    custom_objects: str | None = None,
    keras_backends: Sequence[str] = ("tensorflow",),
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert a Keras model file (``.h5`` of any Keras generation, ``.keras``) to a Keras 3
    ``.keras`` (or, for ``*.weights.h5``, Keras 3's weights-only file), verified by plain Keras
    in a fresh process on each of ``keras_backends``.

    ``custom_objects`` is a module that registers the model's custom classes: the fresh
    process imports it before loading, and the report names it as needed to load the file."""
    src_path, dst_path = Path(src), Path(dst)
    kind = keras_destination(dst_path)
    if kind is None:
        raise UserError(f"{dst}: to-keras writes a .keras file or a .weights.h5 file")
    fmt = detect(src_path)
    if fmt not in ("keras_h5", "keras_zip", "savedmodel"):
        raise UnsupportedError(
            f"{src}: a {fmt}; to-keras converts Keras .h5 and .keras files and Keras SavedModels "
            "(checkpoint sources are not supported yet)"
        )
    if fmt == "savedmodel" and architecture:
        raise UserError(f"{src}: --architecture applies to weights-only .h5 files, not to a SavedModel")
    backends = _check_backends(keras_backends)
    options = verify or VerifyOptions()
    report = ConversionReport(str(src), fmt, str(dst), [fmt, kind])
    steps = Progress(report, progress)
    objects = load_custom_objects(custom_objects)
    preload = [custom_objects] if custom_objects else []
    if custom_objects:
        report.details["needs_module"] = custom_objects
        steps.warn(
            f"the result loads only where {custom_objects} is importable (it registers the custom classes)"
        )
    with staged_output(dst_path, overwrite) as stage, _workers(backends, preload, options.enabled) as workers:
        with steps.stage("load", f"loading {src_path.name}"):
            source = _load_source(
                src_path, fmt, unsafe=unsafe, custom_objects=objects, architecture=architecture
            )
        report.loader = source.loader
        report.warnings.extend(source.notes)
        steps.say(f"[load] loaded with {source.loader}")
        with steps.stage("migrate", "making a Keras 3 model"):
            migrated = migrate_to_keras3(source.model, src_path)
        report.details["rewrites"] = migrated.rewrites
        for line in migrated.rewrites:
            steps.say(f"[migrate] {line}")
        if _source_optimizer(src_path, fmt):
            steps.warn(
                "the source's optimizer state was dropped (the result holds the model and its weights)"
            )
        report.details["optimizer"] = "not carried"
        _names_report(source, migrated.model, report)
        report.details["keras_version"] = version("keras")
        report.details["load_with"] = (
            "keras.saving.load_model(path)" if kind == "keras_zip" else "model.load_weights(path)"
        )
        work = Path(
            tempfile.mkdtemp(
                prefix=f".{dst_path.name}.tfmodelkit-partial-{os.getpid()}.", dir=dst_path.parent
            )
        )
        try:
            with steps.stage(
                "save", f"writing the {dst_path.suffix} with Keras {report.details['keras_version']}"
            ):
                full, weights = _save(migrated.model, work, kind)
            for worker in workers:
                worker.shown = f"{dst} ({worker.keras_backend})"
                with steps.stage(
                    "verify", f"loading it with plain Keras in a fresh process ({worker.keras_backend})"
                ):
                    worker.load(full, weights)
                _check_result_names(source, worker, report)
                result = run_verification(
                    source,
                    worker,
                    options,
                    "float32",
                    steps,
                    f"{source.loader} vs .keras on {worker.keras_backend}",
                )
                report.ok = report.ok and result.ok
            if report.ok or keep_failed:
                os.replace(weights or full, stage.path)
                stage.commit()
                report.kept_failed = not report.ok
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return report
