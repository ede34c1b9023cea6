"""The ``serving`` target: a SavedModel TF Serving loads and its REST API can feed.

A ``serve`` meta graph, a ``serving_default`` signature, input/output dtypes JSON can carry,
the ``<base>/<version>/`` folder layout, and the integrity check (assets present, variables
restorable). Other formats get one error saying how to make a SavedModel of them.
"""

from __future__ import annotations

from pathlib import Path

from ..description import Finding, ModelDescription
from .tables import REST_DTYPES, UNSERVABLE_DTYPES


def _serving_layout(folder: Path) -> list[Finding]:
    if folder.name.isdigit():
        return []
    return [
        Finding(
            "warning",
            "layout",
            f"{folder.name}/ is not a numbered version folder: TF Serving loads <base>/<version>/saved_model.pb "
            f"and would find no version here; fix: mkdir -p base/1 && mv {folder}/* base/1/ "
            "then serve --model_base_path=base",
            target="serving",
        )
    ]


def _savedmodel_serving(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import check

    folder = Path(desc.path)
    findings = _serving_layout(folder)
    wanted = tuple(sorted(t.strip() for t in (tags or "serve").split(",") if t.strip()))
    sigs = [s for s in desc.visible_signatures() if tuple(sorted(s.tags)) == wanted]
    tag_sets = sorted({",".join(sorted(mg["tags"])) for mg in desc.metadata.get("meta_graphs", [])})
    if not any(tuple(sorted(mg["tags"])) == wanted for mg in desc.metadata.get("meta_graphs", [])):
        findings.append(
            Finding(
                "error",
                "meta graph",
                f"no meta graph tagged {','.join(wanted)} (tag sets: {'; '.join(tag_sets) or 'none'}); TF Serving "
                "loads the 'serve' tag set unless told otherwise; fix: re-export with tags=['serve'] or start "
                "tensorflow_model_server with --saved_model_tags=TAGS",
                target="serving",
            )
        )
    keys = [s.key for s in sigs]
    if "serving_default" not in keys:
        findings.append(
            Finding(
                "error",
                "signature 'serving_default'",
                f"missing (signatures: {', '.join(keys) or 'none'}); requests without signature_name use "
                "serving_default; fix: re-export with signatures={'serving_default': fn}, or name the "
                "signature in every request",
                target="serving",
            )
        )
    for sig in sigs:
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                subject = f"{role} {spec.name!r} of {sig.key!r}"
                if spec.dtype in UNSERVABLE_DTYPES:
                    findings.append(
                        Finding(
                            "error",
                            subject,
                            f"dtype {spec.dtype}: a handle that means nothing outside the serving process, "
                            "neither REST nor gRPC clients can carry it; fix: export a signature that takes "
                            "and returns plain tensors",
                            target="serving",
                        )
                    )
                elif spec.dtype not in REST_DTYPES:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            f"dtype {spec.dtype}: gRPC Predict carries it as a TensorProto, but the REST API's JSON "
                            "only carries float32/64, int8/16/32/64, uint8/32/64, bool and string; fix: tf.cast "
                            "to float32 (or a wider integer) in the exported signature",
                            target="serving",
                        )
                    )
                if spec.tensor and spec.tensor.startswith("sparse("):
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "a sparse (COO) tensor: TF Serving's Predict API feeds and returns dense tensors; "
                            "fix: export a signature with dense tensors",
                            target="serving",
                        )
                    )
                # Classify/Regress requests carry tf.Examples, not tensors: the shape is TF Serving's.
                example_api = (sig.method or "").endswith(("/classify", "/regress"))
                if role == "input" and spec.shape is None and not example_api:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "unknown rank: clients cannot tell which shape to send and TF Serving cannot "
                            "batch requests; fix: give the input signature a shape, e.g. "
                            "tf.TensorSpec([None, 3], tf.float32)",
                            target="serving",
                        )
                    )
    # "variables restorable": the integrity check, whose findings keep their own target name
    report = check(folder, format="savedmodel")
    fix = "fix: re-export the model (TF Serving restores these variables and assets at load)"
    findings.extend(
        Finding(
            f.severity,
            f.subject,
            f.message if "fix:" in f.message else f"{f.message}; {fix}",
            target="integrity",
        )
        for f in report.findings
        if f.subject != "folder"  # the base-folder note: the layout check speaks for it
    )
    return findings, {"signatures": len(sigs), **dict(report.checked)}


_CONVERT_HINT = {
    "checkpoint": "a checkpoint holds weights only; build a SavedModel with modelconv ckpt-to-savedmodel "
    "(--model/--architecture, or --meta CKPT.meta for a TF1 graph)",
    "graphdef": "convert it with modelconv convert GRAPH.pb SAVEDMODEL_DIR (--input-tensors/--output-tensors to "
    "choose the signature)",
    "metagraph": "convert it with its checkpoint beside it: modelconv convert MODEL.meta SAVEDMODEL_DIR",
    "keras_h5": "convert with modelconv h5-to-savedmodel",
    "keras_zip": "convert with modelconv keras-to-savedmodel",
    "tflite": "keep the SavedModel it was converted from (TF Serving's TFLite support is experimental)",
}


def run(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    """Serving findings of ``desc`` (meta graph ``tags``, default ``serve``) and what was counted."""
    fmt = desc.format
    if fmt != "savedmodel":
        return [
            Finding(
                "error",
                "format",
                f"TF Serving serves SavedModels, this is a {fmt} file; fix: {_CONVERT_HINT.get(fmt, 'convert it with modelconv')}",
                target="serving",
            )  # fmt: skip
        ], {}
    return _savedmodel_serving(desc, tags)
