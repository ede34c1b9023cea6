"""The TF.js reader under the same property as every other reader (test_readers_hypothesis.py):
whatever damage a model.json or its shards have, ``read``, reading every weight and ``check``
raise only tfmodelkit's own one-line errors naming the file, within the time limit.

Mutants of the TF.js fixtures: JSON-aware edits of the manifest (shapes set to extreme or
malformed values, dtypes and quantization fields replaced, shard paths pointed outside the
folder or at nothing, entries dropped or duplicated), of the topology (node inputs, layer
names, signature), and raw damage (model.json truncated or bit-flipped, shards cut, grown or
removed). Examples: ``TFMODELKIT_FUZZ_EXAMPLES`` (default 200).
"""

from __future__ import annotations

import functools
import json
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES

from .harness import TIME_LIMIT, Scratch
from .mutators import Base, Mutant, _files, flips, truncate

FMT = "tfjs"
EXAMPLES = int(os.environ.get("TFMODELKIT_FUZZ_EXAMPLES") or 200)
NAMES = ("graph_mlp", "graph_mlp_float16", "layers_mlp", "layers_two_io_uint8", "graph_mlp_uint16")
EXTREMES = [0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**53, 2**63, 10**30, 1.5, "7", None, True, [], {}]
PATHS = ["../x.bin", "/etc/hostname", "a/../../b", "http://example.invalid/w", "", "\x00", "nope.bin", "./group1-shard1of1.bin", 7]


@functools.cache
def bases() -> tuple[Base, ...]:
    return tuple(Base(FMT, n, _files(FIXTURES / "tfjs" / n), "", "model.json") for n in NAMES)


def _json_edit(draw, doc: dict) -> str:
    groups = doc.get("weightsManifest") or []
    group = draw(st.sampled_from(groups)) if groups else {"weights": [], "paths": []}
    weights = group.get("weights") or [{}]
    w = draw(st.sampled_from(weights))
    choice = draw(st.integers(0, 9))
    if choice == 0 and w.get("shape"):
        i = draw(st.integers(0, len(w["shape"]) - 1))
        w["shape"][i] = draw(st.sampled_from(EXTREMES))
        return f"shape[{i}] of {w.get('name')} = {w['shape'][i]!r}"
    if choice == 1:
        w["shape"] = draw(st.sampled_from([[], [0], [2**40] * 3, list(range(1, 40)), "x", None]))
        return f"shape of {w.get('name')} = {w['shape']!r}"[:80]
    if choice == 2:
        w["dtype"] = draw(st.sampled_from(["float64", "string", "int32", "bool", "complex64", "", 3]))
        return f"dtype of {w.get('name')} = {w['dtype']!r}"
    if choice == 3:
        q = {"dtype": draw(st.sampled_from(["uint8", "uint16", "float16", "int8", None]))}
        for key in draw(st.lists(st.sampled_from(["min", "scale"]), unique=True)):
            q[key] = draw(st.sampled_from([0.1, -3.0, float("1e308"), "x", None, 1e-300]))
        w["quantization"] = q
        return f"quantization of {w.get('name')} = {q}"
    if choice == 4 and group.get("paths"):
        i = draw(st.integers(0, len(group["paths"]) - 1))
        group["paths"][i] = draw(st.sampled_from(PATHS))
        return f"paths[{i}] = {group['paths'][i]!r}"
    if choice == 5 and weights and weights[0]:
        if draw(st.booleans()):
            weights.pop(draw(st.integers(0, len(weights) - 1)))
            return "a weight dropped"
        weights.append(dict(weights[0]))
        return "a weight repeated"
    if choice == 6:
        nodes = (doc.get("modelTopology") or {}).get("node") or []
        if nodes:
            n = draw(st.sampled_from(nodes))
            n["input"] = draw(st.sampled_from([["ghost"], "x", [7], ["^x:99"], None]))
            return f"inputs of node {n.get('name')}"
    if choice == 7:
        topo = doc.get("modelTopology")
        if isinstance(topo, dict) and isinstance(topo.get("config"), dict):
            layers = topo["config"].get("layers") or []
            if layers:
                layer = draw(st.sampled_from(layers))
                layer["config"] = draw(st.sampled_from([None, [], {"name": 5}, {"batch_input_shape": "x"}]))
                return "a layer's config replaced"
    if choice == 8:
        if isinstance(doc.get("signature"), dict) and draw(st.booleans()):
            side = draw(st.sampled_from(["inputs", "outputs"]))
            doc["signature"][side] = draw(st.sampled_from([[], "x", {"k": 3}, {"k": {"name": 5, "tensorShape": "x"}}]))
            return f"signature {side} replaced"
        key = draw(st.sampled_from(["modelTopology", "weightsManifest", "signature", "format"]))
        doc[key] = draw(st.sampled_from(EXTREMES + ["graph-model", "layers-model"]))
        return f"{key} = {doc[key]!r}"
    group["paths"] = draw(st.sampled_from([[], None, "x", [["a"]]]))
    return f"paths = {group['paths']!r}"


@st.composite
def mutants(draw) -> Mutant:
    base = draw(st.sampled_from(bases()))
    files = dict(base.files)
    how = draw(st.integers(0, 4))
    if how <= 1:
        doc = json.loads(files["model.json"])
        label = _json_edit(draw, doc)
        files["model.json"] = json.dumps(doc).encode()
    elif how == 2:
        data = files["model.json"]
        files["model.json"], label = (flips if draw(st.booleans()) else _cut)(draw, data)
    else:
        shard = draw(st.sampled_from(sorted(k for k in files if k.endswith(".bin"))))
        action = draw(st.integers(0, 2))
        if action == 0:
            del files[shard]
            label = f"{shard} removed"
        elif action == 1:
            files[shard], label = truncate(draw, files[shard], {0, len(files[shard]) // 2, len(files[shard]) - 1})
        else:
            files[shard] = files[shard] + b"\x01" * draw(st.integers(1, 64))
            label = f"{shard} grown"
    return Mutant(base, tuple(files.items()), label)


def _cut(draw, data: bytes) -> tuple[bytes, str]:
    return truncate(draw, data, {data.find(b'"weightsManifest"'), data.find(b'"paths"'), len(data) // 2})


@pytest.fixture(scope="module")
def scratch():
    s = Scratch()
    yield s
    s.close()


def test_tfjs_bases_are_sound(scratch):
    for b in bases():
        out = scratch.run(FMT, b.files, b.target, f"{b.name}: unmutated", record=False)
        assert not out.errors and not out.findings, (b.name, out)


@settings(
    max_examples=EXAMPLES, deadline=timedelta(seconds=2 * TIME_LIMIT + 5), derandomize=True, database=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
)  # fmt: skip
@given(m=mutants())
def test_tfjs_mutants_fail_cleanly(scratch, m):
    out = scratch.run(FMT, m.files, m.base.target, f"{m.base.name}: {m.label}")
    assert out.seconds < TIME_LIMIT, f"{m!r} took {out.seconds:.2f} s"
