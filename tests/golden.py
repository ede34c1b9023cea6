"""One comparison between a tfmodelkit description and what TensorFlow/Keras/LiteRT report.

The expectation has the schema of the corpus's EXPECTED.json (for fixtures it is computed
by TensorFlow in the test run). ``mismatches`` returns readable differences; empty = equal.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np

from tfmodelkit.description import ROLE_MODEL, ModelDescription, Weight


def tf_dtype(name: str) -> str:
    """TensorFlow's dtype names as ours: TF1 reference dtypes are their base dtype."""
    return name[: -len("_ref")] if name.endswith("_ref") else name


def value_sha256(w: Weight) -> str:
    """sha256 of row-major little-endian bytes; strings as (8-byte LE length + bytes) each."""
    a = w.read()
    if w.dtype == "string":
        data = b"".join(len(bytes(x)).to_bytes(8, "little") + bytes(x) for x in a.reshape(-1))
        return hashlib.sha256(data).hexdigest()
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def _variables(desc: ModelDescription, expected: dict[str, Any], out: list[str], hashes: bool) -> None:
    ours = {w.name: w for w in desc.weights}
    if set(ours) != set(expected):
        out.append(f"variable names differ: only ours {sorted(set(ours) - set(expected))[:5]}, "
                   f"only theirs {sorted(set(expected) - set(ours))[:5]}")
    for name, e in expected.items():
        w = ours.get(name)
        if w is None:
            continue
        if w.dtype != tf_dtype(e["dtype"]) or list(w.shape) != e["shape"]:
            out.append(f"{name}: ours {w.dtype}{list(w.shape)}, theirs {e['dtype']}{e['shape']}")
        elif hashes and "sha256" in e and value_sha256(w) != e["sha256"]:
            out.append(f"{name}: values differ (sha256)")


def _shape(shape: Any) -> Any:
    return None if shape is None else [None if d is None else d for d in shape]


def _savedmodel(desc: ModelDescription, expected: dict[str, Any], out: list[str]) -> None:
    for i, emg in enumerate(expected["meta_graphs"]):
        tags = tuple(emg["tags"])
        # A description lists the signatures of the meta graph it was read with; the other
        # tag sets' signatures are those of a read with their tags.
        chosen = desc
        if list(desc.metadata["selected_tags"]) != list(tags):
            from tfmodelkit import read

            chosen = read(desc.path, tags=",".join(tags))
        ours = {s.key: s for s in chosen.signatures if s.tags == tags}
        if set(ours) != set(emg["signatures"]):
            out.append(f"meta graph {tags}: signature keys {sorted(ours)} != {sorted(emg['signatures'])}")
        for key, es in emg["signatures"].items():
            s = ours.get(key)
            if s is None:
                continue
            if (s.method or "") != (es.get("method") or ""):
                out.append(f"{key}: method {s.method!r} != {es.get('method')!r}")
            for side in ("inputs", "outputs"):
                got = {t.name: t for t in getattr(s, side)}
                if set(got) != set(es[side]):
                    out.append(f"{key} {side}: {sorted(got)} != {sorted(es[side])}")
                for name, et in es[side].items():
                    t = got.get(name)
                    if t is None:
                        continue
                    if (t.dtype, _shape(t.shape), t.tensor) != (tf_dtype(et["dtype"]), et["shape"], et["name"]):
                        out.append(f"{key} {side} {name}: ours {(t.dtype, t.shape, t.tensor)}, theirs {et}")
        meta = desc.metadata["meta_graphs"][i]
        if meta["tensorflow_version"] != (emg.get("tensorflow_version") or None):
            out.append(f"tensorflow_version {meta['tensorflow_version']} != {emg.get('tensorflow_version')}")
        if meta["object_graph_nodes"] != emg["object_graph_nodes"]:
            out.append(f"object graph nodes {meta['object_graph_nodes']} != {emg['object_graph_nodes']}")
        if list(desc.metadata["selected_tags"]) == list(tags) and dict(desc.ops) != emg["op_counts"]:
            diff = {k: (desc.ops.get(k), emg["op_counts"].get(k)) for k in set(desc.ops) | set(emg["op_counts"])
                    if desc.ops.get(k) != emg["op_counts"].get(k)}
            out.append(f"op counts differ (ours, theirs): {diff}")
    if desc.metadata.get("schema_version") != expected.get("schema_version"):
        out.append(f"schema version {desc.metadata.get('schema_version')} != {expected.get('schema_version')}")


def _keras(desc: ModelDescription, expected: dict[str, Any], out: list[str]) -> None:
    model = [w for w in desc.weights if w.role == ROLE_MODEL]
    ours = Counter((w.dtype, tuple(w.shape)) for w in model)
    theirs = Counter((tf_dtype(e["dtype"]), tuple(e["shape"])) for e in expected["weights"])
    if ours != theirs:
        out.append(f"model weights (dtype, shape) differ: only ours {ours - theirs}, only theirs {theirs - ours}")
    params = sum(w.size for w in model)
    if params != expected["param_count"]:
        out.append(f"parameter count {params} != {expected['param_count']}")
    # Keras 2 wrote functional models as class "Model"; Keras 3 calls the same thing "Functional".
    ours_class = {"Model": "Functional"}.get(desc.metadata.get("class_name"), desc.metadata.get("class_name"))
    if ours_class != {"Model": "Functional"}.get(expected["class_name"], expected["class_name"]):
        out.append(f"class name {desc.metadata.get('class_name')} != {expected['class_name']}")
    names = {layer.name for layer in desc.layers}
    missing = [n for n in expected["layers"] if n not in names]
    if missing:
        out.append(f"layers missing: {missing}")


def _tflite(desc: ModelDescription, expected: dict[str, Any], out: list[str]) -> None:
    def dyn(shape: Any) -> Any:
        return None if shape is None else [-1 if d is None else d for d in shape]

    sigs = {s.key: s for s in desc.signatures}
    if expected["signatures"]:
        if set(sigs) != set(expected["signatures"]):
            out.append(f"signature keys {sorted(sigs)} != {sorted(expected['signatures'])}")
        for key, es in expected["signatures"].items():
            s = sigs.get(key)
            if s is None:
                continue
            for side in ("inputs", "outputs"):
                got = {t.name: (t.dtype, dyn(t.shape)) for t in getattr(s, side)}
                want = {n: (e["dtype"], e["shape"]) for n, e in es[side].items()}
                if got != want:
                    out.append(f"{key} {side}: ours {got}, theirs {want}")
    else:
        s = sigs.get("subgraph_0")
        if s is None:
            out.append(f"no subgraph_0 signature for a model without signatures (have {sorted(sigs)})")
        else:
            for side in ("inputs", "outputs"):
                got = [(t.name, t.dtype, dyn(t.shape)) for t in getattr(s, side)]
                want = [(e["name"], e["dtype"], e["shape"]) for e in expected[side]]
                if got != want:
                    out.append(f"subgraph 0 {side}: ours {got}, theirs {want}")
    # LiteRT's tensor_count is get_tensor_details(): subgraph 0's tensors.
    main = (desc.metadata.get("tensors_per_subgraph") or [0])[0]
    if main != expected["tensor_count"]:
        out.append(f"subgraph 0 tensor count {main} != {expected['tensor_count']}")


def mismatches(desc: ModelDescription, expected: dict[str, Any], hashes: bool = True) -> list[str]:
    out: list[str] = []
    kind = expected["kind"]
    if kind == "checkpoint":
        _variables(desc, expected["variables"], out, hashes)
    elif kind == "savedmodel":
        _savedmodel(desc, expected, out)
        _variables(desc, expected["variables"], out, hashes)
    elif kind in ("keras_h5", "keras_zip"):
        _keras(desc, expected, out)
    elif kind == "tflite":
        _tflite(desc, expected, out)
    else:
        out.append(f"unknown kind {kind}")
    return out
