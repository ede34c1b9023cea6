"""MetaGraphDef ``.meta`` files (``Saver.save`` writes ``P.meta`` beside checkpoint ``P``).

Summary (TF version, tags, collections, saver def, asset files), signatures (``signature_def``
when present, else inferred from the graph as for a frozen GraphDef), op census, and the
variables the graph declares (its ``variables`` collection of ``VariableDef``, else its
variable nodes). When the checkpoint ``P`` sits beside ``P.meta``, its tensors are the weights,
each naming the graph variable it restores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..description import CheckReport, Finding, ModelDescription, Producer, Signature, TensorSpec, Weight
from ..dtypes import tf_dtype_name
from ..errors import CorruptFileError, TFModelKitError
from . import graphdef
from .checkpoint_v1 import is_v1_file
from .metagraph_variables import collections, graph_variables, load, with_graph_variables

_SAVER_VERSIONS = {0: "LEGACY", 1: "V1", 2: "V2"}


def _collection_summary(contents: Any) -> dict[str, Any]:
    kind = contents.WhichOneof("kind")
    if kind is None:
        return {"kind": "empty", "count": 0}
    values = getattr(contents, kind).value
    out: dict[str, Any] = {"kind": kind, "count": len(values)}
    if kind == "node_list":
        out["values"] = list(values)[:20]
    return out


def _signatures(meta: Any) -> tuple[Signature, ...]:
    tags = tuple(meta.meta_info_def.tags)
    if not meta.signature_def:
        return (graphdef.inferred_signature(meta.graph_def),)
    out = []
    for key in sorted(meta.signature_def):
        sd = meta.signature_def[key]

        def spec(k: str, info: Any) -> TensorSpec:
            return TensorSpec(
                k, tf_dtype_name(info.dtype), graphdef.shape_of(info.tensor_shape), tensor=info.name or None
            )

        out.append(
            Signature(
                key,
                tuple(spec(k, sd.inputs[k]) for k in sorted(sd.inputs)),
                tuple(spec(k, sd.outputs[k]) for k in sorted(sd.outputs)),
                tags=tags,
                method=sd.method_name or None,
                hidden=key == "__saved_model_init_op",
            )
        )
    return tuple(out)


def checkpoint_beside(path: Path) -> Path | None:
    """The checkpoint ``P`` of ``P.meta``, when its files are there."""
    if path.suffix != ".meta":
        return None
    prefix = path.with_suffix("")
    if Path(str(prefix) + ".index").is_file() or is_v1_file(prefix):
        return prefix
    return None


def _weights(
    prefix: Path | None, path: Path, variables: list[dict[str, Any]], warnings: list[str]
) -> tuple[Weight, ...]:
    if prefix is None:
        return ()
    from . import read as read_any

    try:
        desc = read_any(prefix)  # the checkpoint reader pairs its tensors with this graph's variables
    except TFModelKitError as e:
        warnings.append(f"the checkpoint beside it cannot be read: {e}")
        return ()
    if desc.metadata.get("graph") != str(path):  # a checkpoint whose own P.meta is another file
        return with_graph_variables(desc.weights, variables, warnings)
    warnings.extend(w for w in desc.warnings if w.startswith("graph variables with no tensor"))
    return desc.weights


def describe(
    meta: Any,
    path: Path,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
) -> ModelDescription:
    colls = collections(path)
    info = meta.meta_info_def
    variables = graph_variables(meta, colls)
    warnings: list[str] = []
    prefix = checkpoint_beside(path)
    saver = meta.saver_def
    metadata: dict[str, Any] = {
        "tags": list(info.tags),
        "meta_graph_version": info.meta_graph_version or None,
        "collections": {k: _collection_summary(colls[k]) for k in sorted(colls)}
        or sorted(meta.collection_def),
        "saver": {
            "version": _SAVER_VERSIONS.get(saver.version, str(saver.version)),
            "filename_tensor": saver.filename_tensor_name or None,
            "save_tensor": saver.save_tensor_name or None,
            "restore_op": saver.restore_op_name or None,
            "sharded": saver.sharded,
            "max_to_keep": saver.max_to_keep,
        }
        if meta.HasField("saver_def")
        else None,
        "variables": variables,
        "nodes": len(meta.graph_def.node),
        "functions": len(meta.graph_def.library.function),
        "checkpoint": str(prefix) if prefix else None,
    }
    return ModelDescription(
        format="metagraph",
        path=str(path),
        producer=Producer(
            tensorflow=info.tensorflow_version or None,
            other={"tensorflow_git_version": info.tensorflow_git_version}
            if info.tensorflow_git_version
            else {},
        ),
        signatures=_signatures(meta)
        if not (input_tensors or output_tensors)
        else (graphdef.named_signature(meta.graph_def, str(path), input_tensors, output_tensors),),
        weights=_weights(prefix, path, variables, warnings),
        ops=dict(sorted(graphdef.op_census(meta.graph_def).items())),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def read(
    path: Path,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    **options: Any,
) -> ModelDescription:
    """The ``.meta``; ``input_tensors``/``output_tensors`` name the one signature (``serving_default``,
    as ``graph-to-savedmodel`` writes it from the same names) instead of the file's or an inferred one."""
    from google.protobuf.message import DecodeError

    meta = load(Path(path))
    try:
        return describe(meta, Path(path), input_tensors, output_tensors)
    except (ValueError, KeyError, IndexError, OverflowError, DecodeError) as e:
        raise CorruptFileError(f"{path}: damaged MetaGraphDef ({type(e).__name__}: {e})") from None


def check(path: Path, **options: Any) -> CheckReport:
    """The MetaGraphDef parses, its graph's inputs resolve and constants decode, its collections parse."""
    from google.protobuf.message import DecodeError

    try:
        meta = load(Path(path))
    except CorruptFileError as e:  # damaged: exit 1; not a MetaGraphDef at all (FormatError): exit 2
        return CheckReport(str(path), "metagraph", {}, (Finding("error", "meta graph", str(e)),))
    try:
        colls = collections(Path(path))
        graph_variables(meta, colls)
    except TFModelKitError as e:
        return CheckReport(str(path), "metagraph", {}, (Finding("error", "meta graph", str(e)),))
    except (ValueError, KeyError, IndexError, DecodeError) as e:
        return CheckReport(str(path), "metagraph", {}, (Finding("error", "collections", f"damaged ({e})"),))
    findings, consts = graphdef.graph_findings(meta.graph_def, str(path))
    checked = {"nodes": len(meta.graph_def.node), "constants": consts, "collections": len(colls)}
    return CheckReport(str(path), "metagraph", checked, tuple(findings))
