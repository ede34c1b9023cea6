"""SavedModel -> a TF.js graph model (``model.json`` + weight shards), proven by tf.loadGraphModel.

One signature (``serving_default`` unless told) is frozen: its variables become constants
(``convert_variables_to_constants_v2``, functions inlined), the GraphDef is written as JSON the
way TF.js's graph executor reads it (protobuf's JSON mapping of each NodeDef), and every Const
node's value moves into the weights manifest under the node's name (the node keeps its dtype and
shape). The TF.js ``signature`` maps the SavedModel's own input and output keys to the tensors.
Ops the TF.js executor lacks are named before anything is written (``check --target tfjs``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError
from ..lint import require_safe
from ..lint.tfjs import TFJS_OPS
from ..loaders.savedmodel import load_savedmodel
from ..loaders.tf import import_tensorflow, quiet_fds
from ..options import checked_options
from ..verify.runners import SavedModelRunner
from ..verify.runners.tfjs import TFJSRunner
from ..verify.tfjs_quantized import ROUTE_KIND
from ..version import __version__
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output
from .tfjs_write import (
    DEFAULT_SHARD_SIZE,
    check_options,
    destination_folder,
    encode_weights,
    require_tfjs,
    write_model,
)


def _dt(dtype: Any) -> str:
    if getattr(dtype, "kind", None) in ("O", "S", "U") or dtype.name == "string":  # numpy: an object array of bytes
        return "DT_STRING"
    names = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int32": "DT_INT32", "int64": "DT_INT64",
             "bool": "DT_BOOL", "string": "DT_STRING", "uint8": "DT_UINT8", "int8": "DT_INT8"}  # fmt: skip
    return names.get(dtype.name, f"DT_{dtype.name.upper()}")


def freeze(tf: Any, folder: Path, signature: str) -> tuple[list[dict[str, Any]], list[tuple[str, Any]], dict[str, Any], dict[str, Any]]:
    """``(nodes as JSON, const weights, versions, signature)`` of one frozen signature."""
    from google.protobuf.json_format import MessageToDict
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = load_savedmodel(folder, purpose="writing a TF.js graph model")
    if signature not in loaded.signatures:
        raise UnsupportedError(f"{folder}: no signature {signature!r} (signatures: {', '.join(loaded.signatures) or 'none'})")
    fn = loaded.signatures[signature]
    with quiet_fds():
        frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    _name_variable_constants(fn, graph_def)
    missing = sorted({n.op for n in graph_def.node} - TFJS_OPS)
    if missing:
        raise UnsupportedError(f"{folder}: TF.js's graph executor has no {', '.join(missing[:8])} (signature {signature!r})")
    nodes, weights = [], []
    for node in graph_def.node:
        if node.op == "Const":
            value = tensor_util.MakeNdarray(node.attr["value"].tensor)
            value = _narrow(value, node.name, folder)
            weights.append((node.name, value))
            shape = {"dim": [{"size": str(d)} for d in value.shape]} if value.shape else {}
            node.attr["value"].tensor.Clear()
            node.attr["value"].tensor.dtype = node.attr["dtype"].type
            entry = MessageToDict(node)
            entry["attr"]["value"] = {"tensor": {"dtype": _dt(value.dtype), "tensorShape": shape}}
            nodes.append(entry)
        else:
            nodes.append(MessageToDict(node))
    _, inputs = fn.structured_input_signature
    placeholders = [t.name for t in frozen.inputs]
    outputs = tf.nest.flatten(fn.structured_outputs)
    out_keys = sorted(fn.structured_outputs) if isinstance(fn.structured_outputs, dict) else [f"output_{i}" for i in range(len(outputs))]
    sig_in = {k: {"name": f"{spec.name}:0" if f"{spec.name}:0" in placeholders else placeholders[i], "dtype": _dt(spec.dtype),
                  "tensorShape": _shape(spec)} for i, (k, spec) in enumerate(sorted(inputs.items()))}  # fmt: skip
    sig_out = {k: {"name": t.name, "dtype": _dt(spec.dtype), "tensorShape": _shape(spec)}
               for k, t, spec in zip(out_keys, frozen.outputs, outputs, strict=True)}  # fmt: skip
    return nodes, weights, MessageToDict(graph_def.versions), {"inputs": sig_in, "outputs": sig_out}


def _name_variable_constants(fn: Any, graph_def: Any) -> None:
    """Name each frozen variable's Const after the variable (``conv/kernel``), in place.

    TF quirk: convert_variables_to_constants_v2 names the constant of a captured variable after
    the function's placeholder for it: ``unknown``, ``unknown_0``... (weights a user cannot tell
    apart or match with ``--quantize-weights``). Names already taken in the graph are kept."""
    by_handle = {id(v.handle): v.name.split(":")[0] for v in fn.variables}
    taken = {n.name for n in graph_def.node}
    renames: dict[str, str] = {}
    for external, internal in fn.graph.captures:
        name = by_handle.get(id(external))
        if name and name not in taken and name not in renames.values():
            renames[internal.op.name] = name
    if not renames:
        return

    def renamed(ref: str) -> str:
        control, bare = ("^", ref[1:]) if ref.startswith("^") else ("", ref)
        node, sep, port = bare.partition(":")
        return control + renames.get(node, node) + sep + port

    for node in graph_def.node:
        if node.op == "Const" and node.name in renames:
            node.name = renames[node.name]
        node.input[:] = [renamed(i) for i in node.input]


def _narrow(value: Any, name: str, folder: Path) -> Any:
    """TF.js tensors hold no 64-bit kinds: int64 constants become int32 (when they fit), float64 float32,
    as TF.js's own converter does; the graph keeps the node's dtype, which TF.js maps the same way."""
    import numpy as np

    if value.dtype.kind in "OSU":  # strings: written as they are (tfjs_write.string_bytes)
        return value
    if value.dtype in (np.int64, np.uint32, np.uint64, np.int16, np.int8, np.uint16, np.uint8):
        info = np.iinfo(np.int32)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise UnsupportedError(f"{folder}: constant {name} holds integers beyond int32, which TF.js tensors cannot")
        return value.astype(np.int32)
    if value.dtype.kind == "f" and value.dtype != np.float32:
        return value.astype(np.float32)
    return value


def _shape(spec: Any) -> dict[str, Any]:
    if spec.shape.rank is None:
        return {"unknownRank": True}
    return {"dim": [{"size": str(-1 if d is None else d)} for d in spec.shape.as_list()]}


def write_graph_model(
    tf: Any, model_folder: Path, key: str, out: Path, steps: Progress, *, shard_size: int, quantize: str,
    patterns: Sequence[str], generated_by: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Freeze signature ``key`` of the SavedModel in ``model_folder`` and write it as a TF.js graph
    model in ``out``; the report's details."""
    with steps.stage("freeze", f"freezing signature {key}"):
        nodes, weights, versions, sig = freeze(tf, model_folder, key)
    with steps.stage("write", "writing the TF.js graph model"):
        entries, data, _, quantized = encode_weights(weights, quantize, patterns)
        doc = {
            "format": "graph-model", "generatedBy": generated_by or tf.__version__, "convertedBy": f"tfmodelkit {__version__}",
            "modelTopology": {"node": nodes, "library": {}, "versions": versions}, "signature": sig,
        }  # fmt: skip
        sizes = write_model(out, doc, entries, data, shard_size)
    return {"tfjs_format": "graph-model", "signature": key, "shards": sizes, "weights": len(entries),
            "weight_bytes": len(data), "quantize": quantize, "quantized_weights": quantized}  # fmt: skip


def verify_graph_model(
    reference: Any, out: Path, folder: Path, quantize: str, options: VerifyOptions, steps: Progress, label: str
) -> bool:
    """tf.loadGraphModel runs the model written in ``out`` against ``reference``, at the tolerances
    of its weights' quantization (:mod:`tfmodelkit.verify.tolerances`)."""
    with steps.stage("verify", "loading the result with tf.loadGraphModel in Node.js"):
        candidate = TFJSRunner(out)
        candidate.shown = str(folder / "model.json")
    return bool(run_verification(reference, candidate, options, ROUTE_KIND[quantize], steps, label).ok)


@checked_options
def savedmodel_to_tfjs(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    signature: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    quantize: str = "none",
    quantize_weights: Sequence[str] = (),
    unsafe: bool = False,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
) -> ConversionReport:
    """Freeze one signature of a SavedModel into a TF.js graph model at ``dst`` (``DST/model.json``),
    verified with tf.loadGraphModel in Node against the SavedModel unless ``verify.enabled`` is False."""
    check_options(shard_size, quantize, quantize_weights)
    options = verify or VerifyOptions()
    require_tfjs(options)
    if not unsafe:
        require_safe(src)
    key = signature or "serving_default"
    folder = destination_folder(dst)
    if folder.is_dir() and not any(folder.iterdir()) and not overwrite:
        folder.rmdir()
    report = ConversionReport(str(src), "savedmodel", str(folder / "model.json"), ["savedmodel", "tfjs"])
    steps = Progress(report, progress)
    tf = import_tensorflow("writing a TF.js graph model")
    from ..formats import savedmodel as savedmodel_format

    model_folder = savedmodel_format.resolve(src).folder  # a TF Serving base folder: its newest version
    with staged_output(folder, overwrite) as stage:
        details = write_graph_model(tf, Path(model_folder), key, stage.path, steps, shard_size=shard_size,
                                    quantize=quantize, patterns=quantize_weights)  # fmt: skip
        report.details.update(details)
        if options.enabled:
            with steps.stage("verify", "loading the SavedModel"):
                reference = SavedModelRunner(src, signature=key, safe_mode=False)  # checked above unless --unsafe
            report.ok = verify_graph_model(reference, stage.path, folder, quantize, options, steps, "SavedModel vs TF.js")
        else:
            report.warnings.append("not verified (--no-verify): nothing proved that TF.js computes what the SavedModel does")
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report
