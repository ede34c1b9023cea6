"""The ``safety`` target: what in a model file reaches outside the model when it loads or runs.

SavedModels: ops that touch files, the network, Python or debug hooks, over the graph and
every function body, judged by where they run (a serving signature, the init op, the
saver). Keras files: every place the config holds Python code
(:func:`~tfmodelkit.formats.keras_config.code_sites`). ``.tflite`` files: Flex ops that do I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..description import Finding, ModelDescription
from ..formats import keras_config as kc
from ..formats.keras_config import CodeSite
from .graph import RANK, TF1_GRAPHS, Program, attr_strings, tf1_program
from .tables import FIX, RISKY_OPS, Risk


def _writes_out(node: Any) -> bool:
    """Whether a debug op sends its tensors somewhere (a file or a gRPC address)."""
    if node.op == "PrintV2":
        stream = (
            node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else ""
        )
        return stream.startswith("file://")
    if node.op.startswith("Debug"):
        urls = attr_strings(node.attr["debug_urls"]) if "debug_urls" in node.attr else []
        dump = node.attr["dump_root"].s if "dump_root" in node.attr else b""
        return any(urls) or bool(dump)
    return False


def _proto_descriptor_is_file(node: Any) -> bool:
    if "descriptor_source" not in node.attr:
        return False
    source = node.attr["descriptor_source"].s.decode("utf-8", "replace")
    return bool(source) and source != "local://" and not source.startswith("bytes://")


def _judge(risk: Risk, node: Any, rank: int, reads_asset: bool) -> str | None:
    """The severity of a risky op in a body of ``rank``, or None when it is fine there."""
    kind = risk.kind
    if node.op in ("DecodeProtoV2", "EncodeProto") and not _proto_descriptor_is_file(node):
        return None
    if kind == "checkpoint":
        if rank <= RANK["saver"]:
            return None
        return "warning" if rank == RANK["unreached"] else "error"
    if kind == "read" and reads_asset:
        return "warning"
    if kind == "remote":
        return "warning"
    if kind == "debug":
        return "error" if _writes_out(node) else "warning"
    return "error"


def _program_findings(program: Program, tags: str = "") -> list[Finding]:
    """Risky ops of one meta graph's graph and function bodies, judged by where they run, and
    asset file names that leave the folder."""
    findings: list[Finding] = []
    mg = program.mg
    for body, nodes, reach_of in program.bodies():
        for node in nodes:
            risk = RISKY_OPS.get(node.op)
            if risk is None:
                continue
            reach = reach_of[node.name]
            asset = program.reads_asset(body, node, risk)
            severity = _judge(risk, node, reach.rank(), asset)
            if severity is None:
                continue
            where = f"function {body}, node {node.name}" if body else f"graph node {node.name}"
            what = risk.what + (" (one of the model's own assets)" if asset else "")
            if node.op == "PrintV2" and _writes_out(node):
                what = "prints tensor values into a file"
            findings.append(
                Finding(
                    severity,
                    f"op {node.op} ({where}){tags}",
                    f"{what}; {reach.describe()}; {FIX['asset' if asset else risk.kind]}",
                    target="safety",
                )
            )
    for asset in mg.asset_file_def:
        name = asset.filename
        parts = Path(name).parts
        if os.path.isabs(name) or ".." in parts or "\\" in name:
            findings.append(
                Finding(
                    "error",
                    f"asset {name!r}",
                    "its file name leaves assets/: loading resolves it outside the SavedModel; "
                    "fix: re-export with the asset copied under assets/",
                    target="safety",
                )
            )
    return findings


def _savedmodel_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import savedmodel as sm

    folder = Path(desc.path)
    model = sm.load_proto(folder)
    findings: list[Finding] = []
    counted = {"graph nodes": 0, "functions": 0}
    several = len(model.meta_graphs) > 1
    for mg in model.meta_graphs:
        program = Program(folder, mg)
        counted["graph nodes"] += len(program.graph)
        counted["functions"] += len(program.library)
        tags = f" [tags {','.join(mg.meta_info_def.tags)}]" if several else ""
        findings.extend(_program_findings(program, tags))
    lambdas = [layer.name for layer in desc.layers if layer.class_name == "Lambda"]
    if lambdas:
        findings.append(
            Finding(
                "warning",
                f"Keras layers {', '.join(lambdas[:5])}",
                "Lambda layers: tf.saved_model.load runs only the traced graph, but loading this folder with "
                "tf_keras.models.load_model runs their Python code; fix: load it with tf.saved_model.load",
                target="safety",
            )
        )
    return findings, counted


def keras_code_sites(desc: ModelDescription) -> list[CodeSite]:
    """The :func:`~tfmodelkit.formats.keras_config.code_sites` of a Keras file, from its description:
    each layer record's config, the ``.keras`` compile config, and a config nested too deeply."""
    sites = [
        site
        for layer in desc.layers
        for site in kc.entry_code_sites({"class_name": layer.class_name, "config": layer.config}, layer.name)
    ]
    cls = str(desc.metadata.get("class_name") or "unknown")
    compile_config = desc.metadata.get("compile_config")
    if compile_config:
        sites.extend(kc.code_sites({"class_name": cls, "compile_config": compile_config}))
    if kc.TOO_DEEP_WARNING in desc.warnings:
        sites.append(CodeSite("<model>", cls, "layers", False, kc.UNCHECKED))
    return list(dict.fromkeys(sites))


def _code_finding(site: CodeSite) -> Finding:
    subject = "model config" if site.layer == "<model>" else f"layer {site.layer!r} ({site.class_name})"
    if site.detail == kc.UNCHECKED:
        what = f"nests too deeply in {site.field!r} to be checked for Python code, which loading could run"
    elif site.bytecode:
        what = f"holds Python code ({site.detail}, marshalled bytecode) in {site.field!r} that loading with safe_mode=False runs"
    else:
        what = (
            f"holds Python code ({site.detail}, a function named in {site.field!r}) that loading with "
            "safe_mode=False looks up and runs"
        )
    fix = (
        "fix: replace it with a registered custom layer, or load the file only with --unsafe if you trust it"
    )
    return Finding("error", subject, f"{what}; {fix}", target="safety")


def _keras_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    findings = [_code_finding(site) for site in keras_code_sites(desc)]
    return findings, {"layers": len(desc.layers)}


def _tflite_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    findings = []
    for name in desc.metadata.get("flex_ops", []):
        risk = RISKY_OPS.get(name.removeprefix("Flex"))
        if risk is None:
            continue
        severity = "warning" if risk.kind in ("debug", "remote") else "error"
        findings.append(
            Finding(
                severity,
                f"op {name}",
                f"Flex op that {risk.what} on the device running the model; {FIX[risk.kind]}",
                target="safety",
            )
        )
    return findings, {"op kinds": len(desc.ops)}


def run(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    """Safety findings of ``desc`` and what was counted."""
    if desc.format == "savedmodel":
        return _savedmodel_safety(desc)
    if desc.format in ("keras_h5", "keras_zip"):
        return _keras_safety(desc)
    if desc.format == "tflite":
        return _tflite_safety(desc)
    if desc.format in TF1_GRAPHS:  # a session runs its ops as a SavedModel's serving signature would
        program = tf1_program(desc)
        return _program_findings(program), {"graph nodes": len(program.graph), "functions": len(program.library)}
    return [], {"tensors": len(desc.weights)}  # a checkpoint is data: nothing in it runs
