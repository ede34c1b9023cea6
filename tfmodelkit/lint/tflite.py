"""The ``tflite`` target: what stands between a model and LiteRT.

For a SavedModel, the ops the serving signatures reach (graph and every function they call),
classified by the op tables (a frozen GraphDef or ``.meta`` likewise, through its signature); for a ``.tflite``, custom and Flex ops, dynamic and string I/O,
quantization; for a Keras file, its recurrent layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..description import Finding, ModelDescription
from .graph import TF1_GRAPHS, TF1_VARIABLE_OPS, Program, tf1_program
from .tables import (
    FILE_TABLE_INITS,
    FIX,
    RISKY_OPS,
    RNN_LAYERS,
    TFLITE_BUILTIN,
    TFLITE_FLEX,
    TFLITE_NEVER_WHY,
    TFLITE_QUIRKS,
    TFLITE_STOCK_CUSTOM,
)

if TYPE_CHECKING:
    from ..formats.tflite_parse import Model


def _tflite_op_finding(op: str, count: int, sigs: set[str] | None) -> Finding | None:
    if op in TFLITE_BUILTIN:
        return None
    where = f" in {', '.join(repr(s) for s in sorted(sigs))}" if sigs else ""
    subject = f"op {op} (x{count}{where})"
    risk = RISKY_OPS.get(op)
    if risk is not None and risk.kind in TFLITE_NEVER_WHY:
        return Finding("error", subject, f"{TFLITE_NEVER_WHY[risk.kind]}; {FIX[risk.kind]}", target="tflite")
    if op.endswith("Dataset") or op in (
        "IteratorV2",
        "IteratorGetNext",
        "MakeIterator",
        "AnonymousIteratorV3",
    ):
        return Finding(
            "error", subject, f"{TFLITE_NEVER_WHY['dataset']}; fix: feed the model tensors, not a dataset",
            target="tflite",
        )  # fmt: skip
    if op in TFLITE_QUIRKS:
        return Finding("warning", subject, TFLITE_QUIRKS[op], target="tflite")
    if op in TFLITE_FLEX:
        return Finding(
            "warning", subject,
            "no TFLite builtin: converts only as a Flex (select TF) op; fix: convert with --select-tf-ops and "
            "link the Flex delegate into the app, or replace the op",
            target="tflite",
        )  # fmt: skip
    return Finding(
        "warning", subject,
        "not in tfmodelkit's builtin table: the converter may lower it, or it needs Flex (select TF ops) if the "
        "Flex allowlist has it; fix: convert with modelconv savedmodel-to-tflite and read its op report",
        target="tflite",
    )  # fmt: skip


def _savedmodel_tflite(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import savedmodel as sm

    folder = Path(desc.path)
    model = sm.load_proto(folder)
    mg = sm.select_meta_graph(model, tags)
    program = Program(folder, mg)
    ops = program.serving_ops()
    findings = []
    if ops:
        census, scope = ops, "op kinds the signatures reach"
    else:
        census = program.ops_outside_saver()
        scope = "op kinds (all but saver and init, no signature)"
        findings.append(
            Finding(
                "warning",
                "signatures",
                "no serving signature: the TFLite converter converts signatures, and this model has none; "
                "fix: re-export with signatures={'serving_default': fn}",
                target="tflite",
            )
        )
    for op in sorted(census):
        count, sigs = census[op]
        finding = _tflite_op_finding(op, count, sigs)
        if finding is not None:
            findings.append(finding)
    if any(op.startswith("LookupTable") for op in census):
        # Tables filled from a vocabulary file in the init function: the converter keeps the
        # table ops but drops the file read (TFLite reads no files), and LiteRT then fails at
        # the first lookup ("hashtable need to be initialized"). Seen with tf 2.21/LiteRT 2.3.
        file_inits = sorted(
            {n.op for _, nodes, _ in program.bodies() for n in nodes if n.op in FILE_TABLE_INITS}
        )
        if file_inits:
            findings.append(
                Finding(
                    "error",
                    f"op {file_inits[0]}",
                    "fills a lookup table from a file at load time; TFLite reads no files, so the converted "
                    "table stays empty and every lookup fails at run time; fix: build the table from "
                    "constants (tf.lookup.KeyValueTensorInitializer over the vocabulary as tensors) "
                    "before exporting",
                    target="tflite",
                )
            )
    return findings, {scope: len(census)}


def _xnnpack_dtypes(model: Model, name: str) -> list[str]:
    """dtypes other than float32 among the tensors of the nodes running custom op ``name``."""
    from ..formats.tflite import CUSTOM_CODE

    codes = {i for i, oc in enumerate(model.opcodes) if oc.builtin == CUSTOM_CODE and oc.custom == name}
    found: dict[str, None] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode_index not in codes:
                continue
            for t in (*op.inputs, *op.outputs):
                if 0 <= t < len(sg.tensors) and sg.tensors[t].dtype != "float32":
                    found[sg.tensors[t].dtype] = None
    return list(found)


def _custom_op_finding(name: str, flex: set[str], model: Model) -> Finding:
    subject = f"op {name}"
    if name in flex:
        return Finding(
            "warning", subject,
            "a Flex (select TF) op: it runs only with the Flex delegate linked into the app "
            "(tensorflow-lite-select-tf-ops on Android, the full TensorFlow pip package in Python); "
            "fix: re-convert without --select-tf-ops if builtins can express it",
            target="tflite",
        )  # fmt: skip
    how = TFLITE_STOCK_CUSTOM.get(name)
    if how == "kernel":
        return Finding(
            "warning", subject,
            "a custom op LiteRT's default op resolver provides; fix: keep it in a selective build's op list",
            target="tflite",
        )  # fmt: skip
    if how == "xnnpack":
        other = _xnnpack_dtypes(model, name)
        if other:
            return Finding(
                "error", subject,
                f"a MediaPipe custom op stock LiteRT runs only through its XNNPACK delegate, which takes float32 "
                f"tensors, and this model gives it {', '.join(other)} ones: LiteRT cannot run the model; fix: "
                "register MediaPipe's kernel for it (op resolver AddCustom), or keep the op's tensors float32",
                target="tflite",
            )  # fmt: skip
        return Finding(
            "warning", subject,
            "a MediaPipe custom op stock LiteRT runs through the XNNPACK delegate it applies by default on CPU "
            "(no kernel is registered for it): a build with the default delegates off, another delegate or "
            "TFLite Micro cannot run it; fix: keep XNNPACK on, or register MediaPipe's kernel (op resolver "
            "AddCustom) in such builds",
            target="tflite",
        )  # fmt: skip
    return Finding(
        "error", subject,
        "a custom op: LiteRT cannot run the model until the app registers a kernel for it; "
        "fix: register the kernel (op resolver AddCustom), or re-convert without "
        "allow_custom_ops (builtins, or Flex with --select-tf-ops)",
        target="tflite",
    )  # fmt: skip


def _tflite_tflite(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import tflite as tfl

    model = tfl.load_model(Path(desc.path))
    flex = set(desc.metadata.get("flex_ops", []))
    findings = [_custom_op_finding(name, flex, model) for name in desc.metadata.get("custom_ops", [])]
    for sig in desc.signatures:
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                subject = f"{role} {spec.name!r} of {sig.key!r}"
                dynamic = [i for i, d in enumerate(spec.shape or ()) if d is None and i > 0]
                if dynamic:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            f"dynamic dimension{'s' if len(dynamic) > 1 else ''} {dynamic} besides the batch: "
                            "GPU/NNAPI delegates and TFLite Micro need static shapes; fix: fix the dims in the "
                            "input signature before conversion, or call resize_tensor_input before "
                            "allocate_tensors",
                            target="tflite",
                        )
                    )
                if spec.dtype == "string":
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "a string tensor: delegates (GPU, NNAPI, XNNPACK) and TFLite Micro do not take "
                            "strings; fix: tokenize or hash outside the model and feed numbers",
                            target="tflite",
                        )
                    )
    checked_quant = 0
    for i, sg in enumerate(model.subgraphs):
        for t in sg.tensors:
            if t.quant is None:
                continue
            checked_quant += 1
            qd = t.quant.quantized_dimension
            known = (
                t.shape_signature is None
                or not (0 <= qd < len(t.shape_signature))
                or t.shape_signature[qd] >= 0
            )
            for severity, message in tfl.quant_problems(t, constant=known):
                findings.append(
                    Finding(
                        severity,
                        tfl.tensor_subject(i, t),
                        f"{message}; fix: re-quantize the model (the converter never writes this: the file was "
                        "edited or damaged)",
                        target="tflite",
                    )
                )
    return findings, {"op kinds": len(desc.ops), "quantized tensors": checked_quant}


def _graph_tflite(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    """A frozen GraphDef or ``.meta``: the ops its signature reaches, as for a SavedModel (its
    variables become constants on the way: ``modelconv convert`` goes through a SavedModel)."""
    program = tf1_program(desc)
    census = {op: v for op, v in program.serving_ops().items() if op not in TF1_VARIABLE_OPS}
    findings = [f for op in sorted(census) if (f := _tflite_op_finding(op, *census[op])) is not None]
    return findings, {"op kinds": len(census)}


def run(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    """TFLite findings of ``desc`` (SavedModel meta graph ``tags``) and what was counted."""
    fmt = desc.format
    if fmt == "savedmodel":
        return _savedmodel_tflite(desc, tags)
    if fmt == "tflite":
        return _tflite_tflite(desc)
    if fmt in TF1_GRAPHS:
        return _graph_tflite(desc)
    if fmt == "checkpoint":
        graph = desc.metadata.get("graph")
        fix = (
            f"its graph is {Path(graph).name} beside it: lint that, or convert with modelconv convert CKPT out.tflite"
            if graph
            else "build a SavedModel with modelconv ckpt-to-savedmodel (--model/--architecture, or --meta for a "
            "TF1 graph), then convert or lint that"
        )
        return [
            Finding(
                "error",
                "format",
                f"a checkpoint holds weights only, there is no graph to convert; fix: {fix}",
                target="tflite",
            )  # fmt: skip
        ], {}
    rnn = [layer for layer in desc.layers if layer.class_name in RNN_LAYERS]
    findings = [
        Finding(
            "warning",
            "format",
            "a Keras file has no op census to check; fix: run modelconv convert MODEL out.tflite (it reports "
            "ops that need Flex), or lint the SavedModel modelconv keras-to-savedmodel writes",
            target="tflite",
        )  # fmt: skip
    ]
    if rnn:
        names = ", ".join(f"{layer.name} ({layer.class_name})" for layer in rnn[:3]) + (
            ", ..." if len(rnn) > 3 else ""
        )
        findings.append(
            Finding(
                "warning",
                f"layers {names}",
                "recurrent layers become TFLite builtins only with a fixed batch size; fix: nothing to do "
                "with modelconv convert MODEL out.tflite (it fixes the batch at 1; --batch-size N for "
                "another), or keep a dynamic batch with --select-tf-ops (Flex)",
                target="tflite",
            )
        )
    return findings, {"layers": len(desc.layers)}
