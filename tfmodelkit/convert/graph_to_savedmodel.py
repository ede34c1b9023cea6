"""TF1 graphs to a SavedModel: a frozen GraphDef (``graph-to-savedmodel``), a ``.meta`` with its
checkpoint, or a checkpoint with ``meta`` (``ckpt-to-savedmodel --meta``).

The graph is loaded in a ``tf.compat.v1`` session by :mod:`tfmodelkit.loaders.tf1` (variables
restored from the checkpoint) and written by ``tf.compat.v1.saved_model.Builder`` with one
``serving_default`` signature keyed by the given names: the graph's variables stay variables
(restored by the SavedModel's own saver), a frozen graph's constants stay constants. TF2's
``tf.saved_model.load`` reads the result, so the existing routes take it on to TFLite. The
result is verified against the source run by the TF1 session runner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..formats import detect
from ..loaders.tf import import_tensorflow, quiet_fds
from ..options import checked_options
from ..verify.runners import SavedModelRunner, TF1Runner
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output

SOURCES = ("graphdef", "metagraph", "checkpoint", "checkpoint_v1")


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [v.strip() for v in items if v.strip()]


def _renamed(keys: list[str], names: list[str] | None, side: str) -> list[str]:
    if names is None:
        return keys
    if len(names) != len(keys) or len(set(names)) != len(names):
        raise UserError(
            f"--{side}-names: give {len(keys)} distinct names (one per {side} tensor), not {names}"
        )
    return names


def _frozen_session(tf: Any, runner: TF1Runner) -> tuple[Any, Any]:
    """(graph, session) of the runner's graph with its variables as constants, pruned to the outputs."""
    loaded = runner.loaded
    keep = sorted({t.rsplit(":", 1)[0] for t in [*loaded.outputs.values(), *loaded.inputs.values()]})
    graph_def = loaded.graph.as_graph_def()
    for node in graph_def.node:
        # TF quirk: convert_variables_to_constants (TF 2.21) freezes VariableV2 but leaves the TF 0.x
        # `Variable` op (same attributes) a variable, whose read then fails "uninitialized value";
        # named as its successor, it is frozen from the session's value like any other.
        if node.op == "Variable":
            node.op = "VariableV2"
    with loaded.graph.as_default():
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(loaded.session, graph_def, keep)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(frozen, name="")
    return graph, tf.compat.v1.Session(graph=graph)


def write_savedmodel(
    runner: TF1Runner, folder: Path, input_names: list[str], output_names: list[str], freeze: bool = False
) -> dict[str, Any]:
    """The runner's session as a SavedModel with ``serving_default`` (input/output names given);
    ``freeze``: its variables written as constants."""
    tf = import_tensorflow("writing a SavedModel")
    loaded = runner.loaded
    graph, session = loaded.graph, loaded.session
    if freeze:
        with quiet_fds(replay=False):
            graph, session = _frozen_session(tf, runner)
    build = tf.compat.v1.saved_model.utils.build_tensor_info
    with graph.as_default(), quiet_fds(replay=False):
        inputs = {
            n: build(graph.get_tensor_by_name(t))
            for n, t in zip(input_names, loaded.inputs.values(), strict=True)
        }
        outputs = {
            n: build(graph.get_tensor_by_name(t))
            for n, t in zip(output_names, loaded.outputs.values(), strict=True)
        }
        signature = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
            inputs=inputs, outputs=outputs, method_name="tensorflow/serving/predict"
        )
        builder = tf.compat.v1.saved_model.Builder(str(folder))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={"serving_default": signature},
            strip_default_attrs=True,
        )
        builder.save()
        variables = len(tf.compat.v1.global_variables())
    if freeze:
        session.close()
    return {
        "inputs": {name: t for name, t in zip(input_names, loaded.inputs.values(), strict=True)},
        "outputs": {name: t for name, t in zip(output_names, loaded.outputs.values(), strict=True)},
        "variables": variables,
        **({"frozen": True} if freeze else {}),
    }


@checked_options
def graph_to_savedmodel(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    meta: str | os.PathLike[str] | None = None,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    input_names: str | Sequence[str] | None = None,
    output_names: str | Sequence[str] | None = None,
    signature: str | None = None,
    unsafe: bool = False,
    freeze: bool = False,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Convert a TF1 graph (frozen ``.pb``/``.pbtxt``, ``.meta``, or checkpoint + ``meta``) to a
    SavedModel whose ``serving_default`` feeds ``input_tensors`` and fetches ``output_tensors``
    (``NAME[:k]``; default: the graph's signature, else its placeholders and unconsumed tensors),
    keyed by their op names or by ``input_names``/``output_names``; verified against the source.
    ``freeze`` writes the variables as constants (what the TFLite and TF.js routes take)."""
    src_path = Path(src)
    fmt = detect(src_path)
    if fmt not in SOURCES:
        raise UserError(
            f"{src}: a {fmt}, not a TF1 graph (frozen .pb/.pbtxt, .meta, or a checkpoint with --meta)"
        )
    options = verify or VerifyOptions()
    report = ConversionReport(str(src), fmt, str(dst), [fmt, "savedmodel"])
    steps = Progress(report, progress)
    with staged_output(dst, overwrite) as stage:
        with steps.stage("load", f"loading {src_path.name} in a tf.compat.v1 session"):
            runner = TF1Runner(
                src_path, meta=meta, signature=signature, input_tensors=input_tensors,
                output_tensors=output_tensors, safe_mode=not unsafe,
            )  # fmt: skip
        report.loader = f"tf.compat.v1 session ({runner.loaded.kind})"
        report.warnings.extend(n for n in runner.notes if "refused" in n)
        ins = _renamed([s.name for s in runner.inputs], _names(input_names), "input")
        outs = _renamed([s.name for s in runner.outputs], _names(output_names), "output")
        with steps.stage("export", "writing the SavedModel (tf.compat.v1.saved_model.Builder)"):
            report.details["signature"] = {
                "serving_default": write_savedmodel(runner, stage.path, ins, outs, freeze=freeze)
            }
        if options.enabled:
            with steps.stage("verify", "loading the SavedModel back"):
                # Our own export of the graph the reference runs: the same ops, nothing new.
                candidate = SavedModelRunner(stage.path, signature="serving_default", safe_mode=False)
                candidate.shown = str(stage.destination)
            # The candidate's keys may be renamed: verify through a runner keyed like the source.
            reference: Any = runner
            if ins != [s.name for s in runner.inputs] or outs != [s.name for s in runner.outputs]:
                reference = _Renamed(runner, dict(zip([s.name for s in runner.inputs], ins, strict=True)),
                                     dict(zip([s.name for s in runner.outputs], outs, strict=True)))  # fmt: skip
            result = run_verification(
                reference, candidate, options, "float32", steps, "TF1 graph vs SavedModel"
            )
            report.ok = result.ok
        runner.loaded.close()
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report


class _Renamed:
    """A runner whose inputs and outputs carry other names (``--input-names``, ``--output-names``)."""

    def __init__(self, runner: TF1Runner, inputs: dict[str, str], outputs: dict[str, str]) -> None:
        from dataclasses import replace

        self.runner, self.in_map, self.out_map = runner, inputs, outputs
        self.inputs = tuple(replace(s, name=inputs[s.name]) for s in runner.inputs)
        self.outputs = tuple(replace(s, name=outputs[s.name]) for s in runner.outputs)
        self.label, self.shown, self.notes = runner.label, runner.shown, runner.notes
        self.dequantized_outputs: dict[str, Any] = {}

    def run(self, feed: Any) -> dict[str, Any]:
        back = {v: k for k, v in self.in_map.items()}
        result = self.runner.run({back[k]: v for k, v in feed.items()})
        return {self.out_map[k]: v for k, v in result.items()}

    def describe(self) -> dict[str, Any]:
        return self.runner.describe()

    def prepare(self, feed: Any) -> Any:
        return feed
