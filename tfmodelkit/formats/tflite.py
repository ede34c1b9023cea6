"""TFLite models (``.tflite``): a flatbuffer read with LiteRT's generated schema, never TensorFlow.

The file is memory-mapped and parsed once into plain records (:mod:`.tflite_parse`).
:func:`read` turns the records into a :class:`ModelDescription`; :func:`check` validates
them (:mod:`.tflite_check`: buffer bounds, indices, constant sizes, quantization).

Constant tensors become weights whose values are memory-mapped from the file when read
(:mod:`.tflite_values`). String tensors come back as an object array of ``bytes`` (TFLite's
string layout decoded), sparse constants are densified, and int4/int2 constants unpacked.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..description import (
    CheckReport,
    Finding,
    ModelDescription,
    Producer,
    Quantization,
    Signature,
    TensorSpec,
    Weight,
)
from ..errors import CorruptFileError, FormatError
from .tflite_check import quant_problems, tensor_subject, validate
from .tflite_parse import IDENTIFIER, Model, Quant, Subgraph, Tensor, builtin_names, load_model
from .tflite_values import holds_data, load_values, value_chunks

#: The reader's public face; ``load_model``, ``quant_problems`` and ``tensor_subject`` also serve
#: the tflite lint target.
__all__ = ["CUSTOM_CODE", "FORMAT", "check", "load_model", "quant_problems", "read", "tensor_subject"]

FORMAT = "tflite"
CUSTOM_CODE = 32  # BuiltinOperator.CUSTOM: the op is named by its custom_code
#: Problems ``read`` repeats as warnings before it says "and N more".
_MAX_LISTED = 20


# ----------------------------------------------------------------------------------------
# The description


def _shape(t: Tensor) -> tuple[int | None, ...]:
    # shape_signature carries -1 for dynamic dims; some writers store it empty, and
    # LiteRT then falls back to `shape`, as we do.
    dims = t.shape_signature if t.shape_signature and len(t.shape_signature) == len(t.shape) else t.shape
    return tuple(None if d < 0 else d for d in dims)


def _quantization(q: Quant | None) -> Quantization | None:
    if q is None:
        return None
    return Quantization(
        scale=tuple(q.scale),
        zero_point=tuple(q.zero_point),
        quantized_dimension=q.quantized_dimension,
        min=tuple(q.min),
        max=tuple(q.max),
    )


def _spec(name: str, t: Tensor) -> TensorSpec:
    return TensorSpec(
        name=name, dtype=t.dtype, shape=_shape(t), tensor=t.name, quantization=_quantization(t.quant)
    )


def _specs(sg: Subgraph, maps: tuple[tuple[str, int], ...]) -> tuple[TensorSpec, ...]:
    return tuple(_spec(name, sg.tensors[t]) for name, t in maps if 0 <= t < len(sg.tensors))


def _signatures(model: Model) -> tuple[tuple[Signature, ...], str]:
    if model.signature_defs:
        sigs = []
        for sd in model.signature_defs:
            if not 0 <= sd.subgraph_index < len(model.subgraphs):
                continue
            sg = model.subgraphs[sd.subgraph_index]
            sigs.append(Signature(sd.key, _specs(sg, sd.inputs), _specs(sg, sd.outputs)))
        return tuple(sigs), "signature_defs"
    if not model.subgraphs:
        return (), "none"
    sg = model.subgraphs[0]
    ins = tuple((sg.tensors[t].name, t) for t in sg.inputs if 0 <= t < len(sg.tensors))
    outs = tuple((sg.tensors[t].name, t) for t in sg.outputs if 0 <= t < len(sg.tensors))
    return (Signature("subgraph_0", _specs(sg, ins), _specs(sg, outs)),), "subgraph"


def _op_name(model: Model, index: int) -> str | None:
    if not 0 <= index < len(model.opcodes):
        return None
    oc = model.opcodes[index]
    if oc.builtin == CUSTOM_CODE:
        return oc.custom or "CUSTOM"
    return builtin_names().get(oc.builtin, f"BUILTIN_{oc.builtin}")


def _weights(model: Model) -> tuple[Weight, ...]:
    found = []
    for i, sg in enumerate(model.subgraphs):
        for t in sg.tensors:
            b = model.buffer(t.buffer)
            if b is not None and holds_data(b):
                found.append((i, t, b))
    names = [t.name or f"tensor_{t.index}" for _, t, _ in found]
    subgraphs_of: dict[str, set[int]] = defaultdict(set)
    for (i, _, _), name in zip(found, names, strict=True):
        subgraphs_of[name].add(i)
    names = [
        f"subgraph_{i}/{name}" if len(subgraphs_of[name]) > 1 else name
        for (i, _, _), name in zip(found, names, strict=True)
    ]
    repeats = Counter(names)
    weights = []
    for (i, t, b), name in zip(found, names, strict=True):
        if repeats[name] > 1:  # the same name twice in one subgraph
            name = f"{name}#{t.index}"
        span = b.span()
        assert span is not None
        offset, nbytes = span
        extra: dict[str, Any] = {"buffer": t.buffer, "subgraph": i, "tensor_index": t.index}
        if t.quant is not None:
            extra["quantization"] = t.quant.as_dict()
        if t.sparsity is not None:
            extra["sparse"] = True
        if b.external:
            extra["external"] = True
        if t.is_variable:
            extra["variable"] = True
        weights.append(
            Weight(
                name=name,
                dtype=t.dtype,
                shape=tuple(t.shape),
                nbytes=nbytes,
                location=f"buffer {t.buffer} @ {offset}",
                extra=extra,
                _loader=functools.partial(
                    load_values,
                    model.path,
                    t.name or name,
                    t.dtype,
                    tuple(t.shape),
                    offset,
                    nbytes,
                    t.sparsity,
                ),
                _chunker=functools.partial(
                    value_chunks,
                    model.path,
                    t.name or name,
                    t.dtype,
                    tuple(t.shape),
                    offset,
                    nbytes,
                    t.sparsity,
                ),
            )
        )
    return tuple(weights)


def _describe(model: Model, problems: list[Finding]) -> ModelDescription:
    path = model.path
    warnings = []
    if not model.subgraphs:
        warnings.append(f"{path} has no subgraphs: LiteRT cannot run it")
    signatures, source = _signatures(model)
    metadata_names = [name for name, _ in model.metadata]
    if source == "subgraph":
        legacy = (
            " (its legacy 'signature_defs_metadata' entry is ignored by LiteRT)"
            if "signature_defs_metadata" in metadata_names
            else ""
        )
        warnings.append(
            f"{path} has no signatures{legacy}: subgraph 0's inputs and outputs are listed as 'subgraph_0'"
        )

    ops: Counter[str] = Counter()
    for sg in model.subgraphs:
        for op in sg.operators:
            name = _op_name(model, op.opcode_index)
            if name is not None:
                ops[name] += 1
    custom = sorted({oc.custom for oc in model.opcodes if oc.builtin == CUSTOM_CODE and oc.custom})
    flex = [c for c in custom if c.startswith("Flex")]
    if flex:
        warnings.append(
            f"uses TensorFlow (Flex) ops {', '.join(flex)}: running it needs LiteRT's Flex delegate"
        )
    others = [c for c in custom if not c.startswith("Flex")]
    if others:
        warnings.append(
            f"uses custom ops {', '.join(others)}: running it needs a kernel or a delegate for each "
            "(`modelinspect check --target tflite` says which ones stock LiteRT runs)"
        )
    if model.external_buffers:
        warnings.append(
            f"keeps {model.external_buffers} tensors in external weight files, which tfmodelkit does not read"
        )

    errors = [f for f in problems if f.severity == "error" and f.subject != "model"]
    warnings.extend(f"{f.subject}: {f.message}" for f in errors[:_MAX_LISTED])
    if len(errors) > _MAX_LISTED:
        warnings.append(
            f"... and {len(errors) - _MAX_LISTED} more problems; `modelinspect check` lists them all"
        )

    other = {"schema_version": str(model.version)}
    if model.description is not None:
        other["description"] = model.description
    if model.min_runtime_version is not None:
        other["min_runtime_version"] = model.min_runtime_version
    metadata = {
        "subgraphs": len(model.subgraphs),
        "subgraph_names": [sg.name for sg in model.subgraphs],
        # Both counted over every subgraph, as `check` does; subgraph by subgraph after
        # (LiteRT's get_tensor_details(i) lists subgraph i's tensors).
        "tensors": sum(len(sg.tensors) for sg in model.subgraphs),
        "operators": sum(len(sg.operators) for sg in model.subgraphs),
        "tensors_per_subgraph": [len(sg.tensors) for sg in model.subgraphs],
        "operators_per_subgraph": [len(sg.operators) for sg in model.subgraphs],
        "buffers": len(model.buffers),
        "metadata_names": metadata_names,
        "signature_source": source,
        "custom_ops": custom,
        "flex_ops": flex,
    }
    return ModelDescription(
        format=FORMAT,
        path=str(path),
        producer=Producer(other=other),
        signatures=signatures,
        weights=_weights(model),
        ops=dict(sorted(ops.items())),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def read(path: Path, **options: Any) -> ModelDescription:
    """Describe the ``.tflite`` file at ``path`` (signatures, constants, op census)."""
    path = Path(path)
    model = load_model(path)
    return _describe(model, validate(model, deep=False))


def _identified(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8)[4:8] == IDENTIFIER


def check(path: Path, **options: Any) -> CheckReport:
    """Integrity of a ``.tflite`` file: buffer bounds, indices, constant sizes, quantization."""
    path = Path(path)
    try:
        model = load_model(path)
    except CorruptFileError as e:
        if not _identified(path):
            # Too short for a header, or no 'TFL3': not a TFLite file at all, so nothing was
            # read (exit 2); past the identifier, what is wrong is damage found (exit 1).
            raise FormatError(str(e)) from None
        # The subject names the file; the message need not repeat its path.
        message = str(e).removeprefix(f"{path}: ")
        return CheckReport(str(path), FORMAT, {}, (Finding("error", path.name, message),))
    findings = validate(model, deep=True)
    checked = {
        "subgraphs": len(model.subgraphs),
        "tensors": sum(len(sg.tensors) for sg in model.subgraphs),
        "buffers": len(model.buffers),
        "operators": sum(len(sg.operators) for sg in model.subgraphs),
    }
    return CheckReport(str(path), FORMAT, checked, tuple(findings))
