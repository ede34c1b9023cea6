"""Any Keras-bearing file -> a native Keras 3 ``.keras`` (or a ``.weights.h5``) that plain Keras loads.

The source is loaded by the project's loader ladder (Keras 3, tf_keras, the legacy upgrader),
made a Keras 3 model where it is not one (:mod:`tfmodelkit.loaders.keras_migrate`, every
rewrite listed), saved by Keras 3 itself, and verified the way its users will load it: a
fresh process running ``keras.saving.load_model(DST)`` with safe mode on, no custom objects
and tfmodelkit unimportable (:class:`~tfmodelkit.verify.runners.KerasProcessRunner`), on the
same inputs as the source, once per Keras backend asked for.

A ``.keras`` (or a Keras 3 ``.h5``) that plain Keras 3 loads as it is (no migration, no user
code, no optimizer to carry) is loaded and saved by that plain-Keras process itself, which also runs it as the
reference: TensorFlow is imported once, there, rather than here and there (on a busy machine
two imports cost twice one; the conversion then costs about what Keras's own load + save does).
Anything else is loaded here.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError, UserError
from ..formats import detect
from ..formats.keras_config import code_sites
from ..loaders.checkpoint import restore_optimizer
from ..loaders.keras import read_model_config
from ..loaders.keras_migrate import migrate_to_keras3
from ..loaders.keras_optimizer import (
    CarriedOptimizer,
    NotCarried,
    carry_compiled,
    carry_h5,
    carry_keras_file,
    check_h5_names,
)
from ..loaders.tf import import_keras, import_tensorflow, quiet_fds, version
from ..loaders.user_code import load_custom_objects
from ..options import checked_options
from ..verify.hints import keras_hints
from ..verify.runners import KerasProcessRunner
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output
from .keras_classes import UserClass, importable_names, module_folder, named_in, user_classes
from .keras_sources import SOURCE_FORMATS, KerasSource, load_source

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


def _source_optimizer(src: Path, fmt: str, source: KerasSource) -> bool:
    """Whether the source holds optimizer state."""
    import h5py

    if source.restored is not None:
        return bool(source.restored.match.optimizer_unused)
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
    paths = [p for p in (module_folder(m) for m in preload) if p]
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


def _names_report(source: KerasSource, model: Any, report: ConversionReport) -> None:
    details = report.details
    details["inputs"] = [s.name for s in source.reference.inputs]
    details["outputs"] = [s.name for s in source.reference.outputs]
    details["layers"] = _layer_names(model)
    before = _layer_names(source.model)
    if before != details["layers"]:
        report.warnings.append(f"layer names changed: {before} -> {details['layers']}")


def _check_result_names(source: KerasSource, result: KerasProcessRunner, report: ConversionReport) -> None:
    """The loaded result must keep the source's input, output and layer names."""
    for what, mine, theirs in (
        ("input", [s.name for s in source.reference.inputs], [s.name for s in result.inputs]),
        ("output", [s.name for s in source.reference.outputs], [s.name for s in result.outputs]),
        ("layer", report.details["layers"], result.layer_names),
    ):
        if mine != theirs:
            report.warnings.append(f"the loaded .keras has {what} names {theirs}, the source {mine}")
            report.details["names_kept"] = False
    report.details.setdefault("names_kept", True)


def _classes_report(
    classes: list[UserClass], full: Path, report: ConversionReport, steps: Progress
) -> list[UserClass]:
    """The user's classes the saved file names, and what loading it needs (said once, as a warning)."""
    import zipfile

    with zipfile.ZipFile(full) as z:
        named = named_in(json.loads(z.read("config.json")))
    needed = [c for c in classes if c.registered_name in named]
    report.details["custom_classes"] = [c.as_dict() for c in needed]
    if not needed:
        return needed
    modules = list(dict.fromkeys(c.module for c in needed))
    report.details["needs_module"] = modules[0] if len(modules) == 1 else modules
    folders = list(dict.fromkeys(c.folder for c in needed if c.folder))
    text = (
        f"the result loads only where {'module' if len(modules) == 1 else 'modules'} {', '.join(modules)} "
        f"{'is' if len(modules) == 1 else 'are'} imported first ({', '.join(c.registered_name for c in needed)})"
        + (f"; sys.path must hold {', '.join(folders)}" if folders else "")
    )
    unregistered = [c.registration() for c in needed if not c.self_registered]
    if unregistered:
        text += (
            "; the module does not register "
            + ", ".join(c.name for c in needed if not c.self_registered)
            + f" itself: run {'; '.join(unregistered)} before loading, or decorate the class with "
            "@keras.saving.register_keras_serializable"
        )
    steps.warn(text)
    return needed


def _carry_optimizer(
    include: bool,
    src: Path,
    fmt: str,
    kind: str,
    source: KerasSource,
    migrated: Any,
    steps: Progress,
    unsafe: bool,
) -> CarriedOptimizer | None:
    """The source's optimizer state on the migrated model (compiled with it), or None with a
    warning saying it was dropped (and why, when it was asked for)."""
    held = _source_optimizer(src, fmt, source)
    if not include:
        if held:
            steps.warn(
                "the source's optimizer state was dropped (the result holds the model and its weights; "
                "--include-optimizer carries Adam, SGD and RMSprop state)"
            )
        return None
    keras = import_keras("carrying the optimizer state")
    try:
        if kind != "keras_zip":
            raise NotCarried("a .weights.h5 holds no optimizer state (write a .keras)")
        if not held:
            raise NotCarried("the source holds none")
        if fmt == "keras_h5":
            check_h5_names(src)
        if any("scaled" in r for r in migrated.rewrites):
            # Scaling a kernel by s scales its gradients by 1/s: the slots would not continue.
            raise NotCarried(
                "the migration rescaled weights (hard_sigmoid), so their slots would not continue"
            )
        if source.restored is not None:
            carried = carry_compiled(migrated.model)
            reason = restore_optimizer(
                import_tensorflow("carrying the optimizer state"), source.restored, carried.optimizer
            )
            if reason:
                raise NotCarried(reason)
            carried.snapshot()
        elif fmt == "keras_h5":
            carried = carry_h5(keras, src, migrated.model)
            with quiet_fds():
                migrated.model.compile(optimizer=carried.optimizer, loss=carried.loss)
        elif fmt == "keras_zip" and source.loader == "keras":
            carried = carry_keras_file(keras, src, migrated.model, safe_mode=not unsafe)
            with quiet_fds():
                migrated.model.compile(optimizer=carried.optimizer, loss=carried.loss)
        else:
            raise NotCarried(f"the optimizer state of a {fmt} ({source.loader}) is not carried")
    except NotCarried as e:
        steps.warn(f"the source's optimizer state was dropped: {e}")
        return None
    steps.say(
        f"[migrate] optimizer {carried.class_name} carried: step {carried.summary()['iterations']}, "
        f"{carried.summary()['slots']} slot values"
    )
    return carried


def _check_optimizer(
    carried: CarriedOptimizer, worker: KerasProcessRunner, report: ConversionReport, steps: Progress
) -> bool:
    """The loaded .keras gives back the optimizer's class, step counter and every slot value."""
    name, values = worker.optimizer_state()
    problems = []
    if name != carried.class_name:
        problems.append(f"its optimizer is {name}, not {carried.class_name}")
    # Keras saves optimizer variables by position (their paths follow the layers' scopes, which
    # differ between a built model and a loaded one): compared in that order.
    mine, theirs = list(carried.values.items()), list(values.values())
    if len(mine) != len(theirs):
        problems.append(f"it holds {len(theirs)} optimizer variables, the source {len(mine)}")
    differing = [
        p for (p, a), b in zip(mine, theirs, strict=False) if a.shape != b.shape or not np.array_equal(a, b)
    ]
    if differing:
        problems.append(f"{', '.join(differing[:4])} differ")
    entry = {
        "label": f"optimizer state of the .keras on {worker.keras_backend} (exact)",
        "ok": not problems,
        "compared": len(carried.values),
        "problems": problems,
    }
    report.verification.append(entry)
    if problems:
        report.warnings.append(f"the loaded .keras does not continue the optimizer: {'; '.join(problems)}")
        steps.say(f"[verify] FAILED: optimizer state: {'; '.join(problems)}")
    else:
        steps.say(
            f"[verify] optimizer {name}: step and {len(values)} variables identical in the fresh process"
        )
    return not problems


def _verify_on(
    worker: KerasProcessRunner,
    full: Path,
    weights: Path | None,
    source: KerasSource,
    needed: list[UserClass],
    carried: CarriedOptimizer | None,
    options: VerifyOptions,
    report: ConversionReport,
    steps: Progress,
) -> None:
    """Load the saved file with plain Keras in ``worker`` (the user's modules imported as the
    report says) and check names, optimizer state and numbers against the source."""
    worker.shown = f"{report.destination} ({worker.keras_backend})"
    with steps.stage("verify", f"loading it with plain Keras in a fresh process ({worker.keras_backend})"):
        worker.register(
            [(c.module, c.name, c.package) for c in needed if not c.self_registered],
            modules=[c.module for c in needed],
            sys_path=[c.folder for c in needed if c.folder],
        )
        worker.load(full, weights, given=source.given)
    _check_result_names(source, worker, report)
    if carried is not None:
        report.ok = _check_optimizer(carried, worker, report, steps) and report.ok
    result = run_verification(
        source.reference,
        worker,
        options,
        "float32",
        steps,
        f"{source.loader} vs .keras on {worker.keras_backend}",
    )
    report.ok = report.ok and result.ok


def _in_worker(
    src: Path, fmt: str, dst: Path, kind: str, workers: list[KerasProcessRunner], stage: Any, keep_failed: bool,
    options: VerifyOptions, report: ConversionReport, steps: Progress,
) -> bool:  # fmt: skip
    """A ``.keras`` (or a Keras 3 ``.h5``) that plain Keras 3 loads as it is needs no migration:
    the first worker loads it (its original loader) and saves the result, so that TensorFlow is
    imported once, there, and not also here. False (nothing done) when plain Keras cannot load
    it or its config holds Python code: the loader ladder takes it then."""
    config = read_model_config(src, fmt)
    if config is None or code_sites(config):
        return False  # the loader ladder says why (weights only; Python code, refused without --unsafe)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tfmodelkit-partial-{os.getpid()}.", dir=dst.parent))
    try:
        full = work / "model.keras"
        weights = work / "model.weights.h5" if kind == "keras_weights" else None
        with steps.stage(
            "load", f"loading {src.name} with plain Keras in a fresh process, which saves the result"
        ):
            try:
                reference = workers[0].convert(src, full, weights)
            except UserError:
                return False
        report.loader = "keras"
        steps.say("[load] loaded with keras")
        hints = keras_hints(config)
        if "*" in hints and len(reference.inputs) == 1:  # a Sequential model's only input
            hints[reference.inputs[0].name] = hints.pop("*")
        reference.hints = {s.name: hints[s.name] for s in reference.inputs if s.name in hints}
        source = KerasSource(reference, None, "keras")
        if _source_optimizer(src, fmt, source):
            steps.warn(
                "the source's optimizer state was dropped (the result holds the model and its weights; "
                "--include-optimizer carries Adam, SGD and RMSprop state)"
            )
        details = report.details
        details.update(rewrites=[], optimizer="not carried", custom_classes=[], layers=reference.layer_names)
        details.update(inputs=[s.name for s in reference.inputs], outputs=[s.name for s in reference.outputs])
        details["keras_version"] = workers[0].hello.get("keras")
        details["load_with"] = (
            "keras.saving.load_model(path)" if kind == "keras_zip" else "model.load_weights(path)"
        )
        for worker in workers:
            _verify_on(worker, full, weights, source, [], None, options, report, steps)
        if report.ok or keep_failed:
            os.replace(weights or full, stage.path)
            stage.commit()
            report.kept_failed = not report.ok
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _keras3_h5(src: Path, fmt: str) -> bool:
    """Whether ``src`` is a model ``.h5`` Keras 3 wrote (which Keras 3 reads as it is)."""
    import h5py

    if fmt != "keras_h5":
        return False
    try:
        with h5py.File(src, "r") as f:
            written = f.attrs.get("keras_version", b"")
            written = written.decode() if isinstance(written, bytes) else str(written)
            return "model_config" in f.attrs and written.startswith("3.")
    except (OSError, ValueError):
        return False


def _formats(src: Path, dst: Path) -> tuple[str, str]:
    """The source's format and the destination's kind, or the reason there is no such conversion."""
    kind = keras_destination(dst)
    if kind is None:
        raise UserError(f"{dst}: to-keras writes a .keras file or a .weights.h5 file")
    fmt = detect(src)
    if fmt not in SOURCE_FORMATS:
        raise UnsupportedError(
            f"{src}: a {fmt}; to-keras converts Keras .h5 and .keras files, Keras SavedModels and TF2 "
            "checkpoints (with --model or --architecture)"
        )
    return fmt, kind


@checked_options
def to_keras(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    model: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    include_optimizer: bool = False,
    unsafe: bool = False,
    custom_objects: str | None = None,
    keras_backends: Sequence[str] = ("tensorflow",),
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert a Keras model file (``.h5`` of any Keras generation, ``.keras``), a Keras 2 SavedModel
    or a TF2 checkpoint (with ``model`` code or an ``architecture``, as ``ckpt_to_savedmodel``
    takes them) to a Keras 3 ``.keras`` (or, for ``*.weights.h5``, Keras 3's weights-only file),
    verified by plain Keras in a fresh process on each of ``keras_backends``.

    ``include_optimizer`` carries the source's Adam, SGD or RMSprop state (step counter and
    slots) into the ``.keras``, checked in the fresh process; otherwise, or where it cannot be
    carried, the report says it was dropped and why.

    ``custom_objects`` is a module that registers the model's custom classes: the fresh
    process imports it before loading, and the report names it as needed to load the file
    (as it names the module of a subclassed model built by ``model`` code)."""
    src_path, dst_path = Path(src), Path(dst)
    fmt, kind = _formats(src_path, dst_path)
    checkpoint = dict(
        model=model, root_key=root_key, input_specs=tuple(input_specs), allow_partial=allow_partial
    )
    backends = _check_backends(keras_backends)
    options = verify or VerifyOptions()
    report = ConversionReport(str(src), fmt, str(dst), [fmt, kind])
    steps = Progress(report, progress)
    objects = load_custom_objects(custom_objects)
    preload = [custom_objects] if custom_objects else []
    # A .keras plain Keras (on TensorFlow, as the loader ladder would) may load as it is.
    plain = (fmt == "keras_zip" or _keras3_h5(src_path, fmt)) and not (
        unsafe or custom_objects or architecture or include_optimizer
    )
    plain = plain and backends[0] == "tensorflow" and not any(checkpoint.values())
    with staged_output(dst_path, overwrite) as stage, _workers(backends, preload, options.enabled) as workers:
        if (
            plain
            and workers
            and _in_worker(src_path, fmt, dst_path, kind, workers, stage, keep_failed, options, report, steps)
        ):
            return report
        with steps.stage("load", f"loading {src_path.name}"):
            source = load_source(
                src_path, fmt, steps, architecture=architecture, unsafe=unsafe, custom_objects=objects,
                checkpoint=checkpoint,
            )  # fmt: skip
        report.loader = source.loader
        report.warnings.extend(source.notes)
        report.details.update(source.details)
        steps.say(f"[load] loaded with {source.loader}")
        with steps.stage("migrate", "making a Keras 3 model"):
            migrated = migrate_to_keras3(source.model, src_path)
            classes = user_classes(import_keras("saving a .keras"), migrated.model)
        report.details["rewrites"] = migrated.rewrites
        for line in migrated.rewrites:
            steps.say(f"[migrate] {line}")
        carried = _carry_optimizer(include_optimizer, src_path, fmt, kind, source, migrated, steps, unsafe)
        report.details["optimizer"] = carried.summary() if carried else "not carried"
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
            with (
                steps.stage(
                    "save", f"writing the {dst_path.suffix} with Keras {report.details['keras_version']}"
                ),
                importable_names(classes),
            ):
                full, weights = _save(migrated.model, work, kind)
            needed = _classes_report(classes, full, report, steps)
            for worker in workers:
                _verify_on(worker, full, weights, source, needed, carried, options, report, steps)
            if report.ok or keep_failed:
                os.replace(weights or full, stage.path)
                stage.commit()
                report.kept_failed = not report.ok
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return report
