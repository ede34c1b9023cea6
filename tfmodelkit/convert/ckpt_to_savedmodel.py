"""Checkpoint + the code (or architecture) that wrote it -> a verified SavedModel.

The model is rebuilt and restored by :mod:`tfmodelkit.loaders.checkpoint` (how checkpoint values
pair with model variables: :mod:`tfmodelkit.loaders.checkpoint_match`), then exported with a
``serving_default`` named after the inputs, and proved twice: every exported variable is
byte-identical to its checkpoint value, and the SavedModel computes what the restored model
computes.

What the report calls what (``report.details``):

- ``restored``: checkpoint key -> model variable (its trackable path from the model);
- ``missing``: model variables that found no value (a problem unless ``allow_partial``);
- ``unused``: values of the model's part of the checkpoint that no model variable took (a problem
  unless ``allow_partial``);
- ``optimizer_unused``: optimizer state (slots, iterations, learning rate): expected, not a problem;
- ``ignored``: everything else outside the model: ``save_counter``, ``global_step``, other root
  objects the user did not choose; not a problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..description import TensorSpec
from ..errors import UserError
from ..formats import checkpoint as ckpt_format
from ..loaders.checkpoint import (
    Built,
    open_checkpoint,
    rebuild,
    restore_matched,
    shape_or_none,
)
from ..loaders.checkpoint_match import Children, Match, dtype_name, listing, match_nodes, variable_keys
from ..loaders.tf import import_tensorflow, quiet_fds
from ..loaders.user_code import load_custom_objects
from ..options import checked_options
from ..util import first_line
from ..verify.runners import SavedModelRunner
from ..verify.runners.checkpoint import CheckpointRunner
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output


def export(tf: Any, built: Built, folder: Path) -> tuple[Any, tuple[TensorSpec, ...]]:
    """Write the SavedModel; returns the exported root (for pairing variables) and the output specs."""
    function = built.serving_function(tf)
    root = tf.Module()
    root.model = built.model  # tracks the variables
    root.serve = function
    try:
        with quiet_fds(replay=False):
            concrete = function.get_concrete_function()
            tf.saved_model.save(root, str(folder), signatures={"serving_default": concrete})
    except Exception as e:
        raise UserError(
            f"{built.detail}: exporting the SavedModel failed ({first_line(e, 200, with_type=True)})"
        ) from None
    outputs = []
    structured = concrete.structured_outputs
    for name in built.output_names:
        t = structured[name]
        outputs.append(TensorSpec(name=name, dtype=dtype_name(t.dtype), shape=shape_or_none(t.shape)))
    return root, tuple(outputs)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return a.tobytes() == b.tobytes()


def check_exported_variables(
    tf: Any, folder: Path, root: Any, match: Match, weights: Mapping[str, Any]
) -> dict[str, Any]:
    """Pair every variable of the SavedModel with its checkpoint value (through the live variables)
    and compare them byte for byte."""
    prefix = folder / "variables" / "variables"
    index = ckpt_format.read_index(prefix)
    graph = ckpt_format.object_graph(index)
    exported = {w.name: w for w in ckpt_format.describe_index(index, str(prefix)).weights}
    result: dict[str, Any] = {
        "compared": 0,
        "identical": 0,
        "mismatched": [],
        "unpaired": [],
        "not_from_checkpoint": [],
    }
    if graph is None:
        result["unpaired"].append(f"{prefix}: no object graph to pair the variables by")
        result["ok"] = False
        return result
    children = Children(tf)
    exported_vars = variable_keys(tf, graph, match_nodes(tf, graph, 0, root, children))
    source_of = {id(v): k for k, v in match.key_to_variable.items()}
    path_of = {vid: p for vid, (p, _) in match.variables.items()}
    seen_sources = set()
    for key in sorted(exported):
        if key == ckpt_format.OBJECT_GRAPH_KEY:
            continue
        var = exported_vars.get(key)
        if var is None:
            result["unpaired"].append(key)
            continue
        source = source_of.get(id(var))
        if source is None:
            result["not_from_checkpoint" if id(var) in path_of else "unpaired"].append(key)
            continue
        seen_sources.add(source)
        result["compared"] += 1
        if _same(exported[key].read(), weights[source].read()):
            result["identical"] += 1
        else:
            result["mismatched"].append(
                {"exported": key, "checkpoint": source, "variable": match.restored[source]}
            )
    for source in match.key_to_variable:
        if source not in seen_sources:
            result["unpaired"].append(f"{source} (restored, but not found in the SavedModel)")
    result["ok"] = not result["mismatched"] and not result["unpaired"]
    return result


@checked_options
def ckpt_to_savedmodel(
    ckpt: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model: str | None = None,
    architecture: str | None = None,
    root_key: str | None = None,
    input_specs: Sequence[str] = (),
    allow_partial: bool = False,
    unsafe: bool = False,
    custom_objects: str | dict[str, Any] | None = None,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Rebuild the model that wrote ``ckpt`` (``model`` code or an ``architecture``), restore it and
    export a SavedModel whose variables are proved identical to the checkpoint's and whose
    ``serving_default`` is verified against the restored model.

    ``root_key`` names the checkpoint's root object holding the model (found from the object graph
    by default; ``"/"`` = the root is the model). Missing or unused model values are an error unless
    ``allow_partial``. Name-based (TF1) checkpoints pair variables by name. ``progress`` receives
    the progress lines (none are said without it).
    """
    if (model is None) == (architecture is None):
        raise UserError(
            "ckpt-to-savedmodel needs exactly one of --model MODULE:CALLABLE (code that builds the model) "
            "or --architecture FILE (a JSON, .h5 or .keras model config); a TF1 checkpoint converts "
            "with its graph instead: --meta CKPT.meta"
        )
    source = open_checkpoint(ckpt, input_specs=input_specs, root_key=root_key)
    prefix = source.prefix
    options = verify or VerifyOptions()
    report = ConversionReport(str(ckpt), "checkpoint", str(dst), ["checkpoint", "savedmodel"])
    report.warnings.extend(source.desc.warnings)
    report.details["prefix"] = str(prefix)
    steps = Progress(report, progress)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)

    with staged_output(dst, overwrite) as stage:
        with steps.stage("load", f"building the model ({'model code' if model else 'architecture'})"):
            tf = import_tensorflow("converting a checkpoint")
            built, match = rebuild(
                tf, source, model=model, architecture=architecture, unsafe=unsafe, custom_objects=objects
            )
        report.loader = built.loader
        report.details["model"] = built.detail
        report.warnings.extend(built.notes)
        steps.say(f"[load] {built.loader}: {built.detail}")
        with steps.stage("restore", f"restoring {prefix.name} ({match.kind})"):
            restored = restore_matched(tf, source, built, match, allow_partial=allow_partial)
        report.details.update(match.details())
        for w in restored.warnings:
            report.warnings.append(w)
            steps.say(f"[restore] warning: {w}")
        steps.say(
            f"[restore] {len(match.restored)} values restored"
            + (f" (root key {match.root_key!r})" if match.root_key else "")
            + f"; {len(match.optimizer_unused)} optimizer values left unused as expected"
        )
        with steps.stage("export", "writing the SavedModel"):
            root, outputs = export(tf, built, stage.path)
        report.details["signature"] = {
            "serving_default": {"inputs": [s.name for s in built.inputs], "outputs": list(built.output_names)}
        }
        with steps.stage("verify", "comparing exported variables with the checkpoint"):
            check = check_exported_variables(tf, stage.path, root, match, source.weights)
        report.details["variable_check"] = check
        report.verification.append({"label": "exported variables vs checkpoint (exact)", **check})
        if check["ok"]:
            steps.say(f"[verify] {check['identical']} exported variables are identical to the checkpoint")
        else:
            bad = [f"{m['variable']} ({m['checkpoint']})" for m in check["mismatched"]] + check["unpaired"]
            text = f"exported variables differ from the checkpoint: {listing(bad)}"
            report.warnings.append(text)
            steps.say(f"[verify] FAILED: {text}")
        report.ok = check["ok"]
        if options.enabled:
            with steps.stage("verify", "loading the SavedModel back"):
                # Our own export of the model the reference runs: the same ops, nothing new.
                candidate = SavedModelRunner(stage.path, signature="serving_default", safe_mode=False)
                candidate.shown = str(stage.destination)
            reference = CheckpointRunner.from_restored(restored, outputs)
            result = run_verification(
                reference, candidate, options, "float32", steps, "restored model vs SavedModel"
            )
            report.ok = report.ok and result.ok
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report
