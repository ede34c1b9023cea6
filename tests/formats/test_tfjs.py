"""The TF.js reader: fixtures made with TF.js itself, read without TensorFlow or Node, agree with
what TF.js's own loaders reported for them (fixtures/tfjs/reference.json, and live when Node and
the TF.js package are installed); every modelinspect subcommand works on them; damaged and
hostile model.json files get one clear error."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.cli.modelinspect import main as modelinspect
from tfmodelkit.errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError
from tfmodelkit.formats import detect
from tfmodelkit.formats import tfjs as tfjs_format

TFJS = FIXTURES / "tfjs"
REFERENCE = json.loads((TFJS / "reference.json").read_text())
MODELS = sorted(REFERENCE)


def tfjs_available() -> bool:
    from tfmodelkit.verify.runners.tfjs import TFJSUnavailable, find_tfjs

    try:
        find_tfjs()
    except TFJSUnavailable:
        return False
    return True


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def agree(desc, ref) -> list[str]:
    """Differences between our description and TF.js's loader's report."""
    out = []
    ours = {w.name: w for w in desc.weights}
    theirs = {w["name"]: w for w in ref["weights"]}
    if set(ours) != set(theirs):
        out.append(f"weights: ours {sorted(ours)}, TF.js {sorted(theirs)}")
    for name, t in theirs.items():
        w = ours.get(name)
        if w is None:
            continue
        if (w.dtype, list(w.shape)) != (t["dtype"], t["shape"]):
            out.append(f"{name}: ours {w.dtype}{list(w.shape)}, TF.js {t['dtype']}{t['shape']}")
        elif sha256_f32(w.read()) != t["sha256"]:
            out.append(f"{name}: dequantized values differ from TF.js's")
    sig = desc.signatures[0]
    want_in = ref["input_names"] if ref["kind"] == "layers" else [i["name"] for i in ref["inputs"]]
    if [s.name for s in sig.inputs] != want_in:
        out.append(f"inputs: ours {[s.name for s in sig.inputs]}, TF.js {want_in}")
    for s, t in zip(sig.inputs, ref["inputs"], strict=False):
        if list(s.shape) != [None if d in (None, -1) else d for d in t["shape"]]:
            out.append(f"input {s.name}: ours {s.shape}, TF.js {t['shape']}")
    want_out = ref["output_names"] if ref["kind"] == "layers" else [o["name"] for o in ref["outputs"]]
    if [s.name for s in sig.outputs] != want_out:
        out.append(f"outputs: ours {[s.name for s in sig.outputs]}, TF.js {want_out}")
    if ref["kind"] == "layers":
        top = [(layer.name, layer.class_name) for layer in desc.layers if layer.depth == 0]
        theirs_layers = [(x["name"], x["class_name"]) for x in ref["layers"]]
        if [t for t in top if t[1] != "InputLayer"] != [t for t in theirs_layers if t[1] != "InputLayer"]:
            out.append(f"layers: ours {top}, TF.js {theirs_layers}")
    return out


@pytest.mark.parametrize("name", MODELS)
def test_reader_agrees_with_tfjs_loader(name):
    desc = tfmodelkit.read(TFJS / name)
    assert desc.format == "tfjs"
    assert agree(desc, REFERENCE[name]) == []


@pytest.fixture(scope="session")
def live_tfjs():
    if not tfjs_available():
        pytest.skip("Node.js or @tensorflow/tfjs not installed (npm ci --prefix tfjs)")
    from tfmodelkit.verify.runners.tfjs import describe_in_tfjs

    return describe_in_tfjs


@pytest.mark.parametrize("name", MODELS)
def test_reader_agrees_with_tfjs_now(name, live_tfjs):
    assert agree(tfmodelkit.read(TFJS / name), live_tfjs(TFJS / name)) == []


def test_fixtures_cover_both_kinds_and_every_quantization():
    kinds = {tfjs_format.kind_of(json.loads((TFJS / n / "model.json").read_text())) for n in MODELS}
    assert kinds == {"layers-model", "graph-model"}
    quant = {
        w.extra["quantization"]["dtype"] for n in MODELS for w in tfmodelkit.read(TFJS / n).weights if "quantization" in w.extra
    }
    assert quant == {"uint8", "uint16", "float16"}


def test_detection_folder_and_file():
    assert detect(TFJS / "graph_mlp") == "tfjs"
    assert detect(TFJS / "graph_mlp" / "model.json") == "tfjs"
    assert tfmodelkit.read(TFJS / "graph_mlp" / "model.json", format="tfjs").path.endswith("model.json")


def test_summary_facts():
    desc = tfmodelkit.read(TFJS / "layers_mlp")
    meta = desc.metadata
    assert meta["tfjs_format"] == "layers-model"
    assert meta["shard_count"] == 3 and [s["nbytes"] for s in meta["shards"]] == [64, 64, 44]
    assert desc.producer.other["generatedBy"].startswith("TensorFlow.js tfjs-layers")
    graph = tfmodelkit.read(TFJS / "graph_mlp")
    assert graph.ops["MatMul"] == 2 and graph.ops["Softmax"] == 1
    assert graph.metadata["user_defined_metadata"] == {"purpose": "tfmodelkit test model"}
    assert graph.producer.tensorflow == "2.21.0"
    assert graph.metadata["signature_from"] == "signature"


def test_quantized_weight_values_and_parameters():
    w = tfmodelkit.read(TFJS / "layers_two_io_uint8").weight("mix/kernel")
    q = w.extra["quantization"]
    assert q["dtype"] == "uint8" and w.dtype == "float32" and w.nbytes == w.size  # one byte each
    values = w.read()
    assert values.dtype == np.float32
    assert values.min() == pytest.approx(q["min"], abs=1e-6)
    assert values.max() == pytest.approx(q["min"] + 255 * q["scale"], rel=1e-5)
    half = tfmodelkit.read(TFJS / "graph_mlp_float16").weight("dense/w1")
    exact = tfmodelkit.read(TFJS / "graph_mlp").weight("dense/w1").read()
    assert half.nbytes == 2 * half.size
    np.testing.assert_array_equal(half.read(), exact.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(
    "argv",
    [
        ["summary"], ["signatures"], ["weights", "--stats"], ["layers"], ["ops"], ["check"],
        ["tensor", "@WEIGHT"],
    ],
)  # fmt: skip
@pytest.mark.parametrize("name", ["layers_two_io_uint8", "graph_mlp_uint16"])
def test_every_modelinspect_subcommand(name, argv, capsys):
    weight = tfmodelkit.read(TFJS / name).weights[0].name
    args = [weight if a == "@WEIGHT" else a for a in argv]
    assert modelinspect([args[0], str(TFJS / name), *args[1:], "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    doc = out[0] if isinstance(out, list) else out
    assert doc.get("format", "tfjs") == "tfjs"


def test_modelinspect_diff_pairs_every_weight(capsys):
    assert modelinspect(["diff", str(TFJS / "graph_mlp"), str(TFJS / "graph_mlp_uint16"), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["only_in_a"] and not out["only_in_b"]
    assert modelinspect(["diff", str(TFJS / "graph_mlp"), str(TFJS / "graph_mlp"), "--format", "json"]) == 0


# ----------------------------------------------------------------------------------------
# Damaged and hostile files


def copy(tmp_path: Path, name: str = "graph_mlp") -> Path:
    dst = tmp_path / name
    shutil.copytree(TFJS / name, dst)
    return dst


def edit(folder: Path, change) -> Path:
    doc = json.loads((folder / "model.json").read_text())
    change(doc)
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def one_line_error(folder: Path, kind=CorruptFileError) -> str:
    with pytest.raises(kind) as e:
        desc = tfmodelkit.read(folder)
        for w in desc.weights:
            w.read()
    msg = str(e.value)
    assert "\n" not in msg and str(folder) in msg
    return msg


def test_huge_shape_is_refused_before_allocating(tmp_path):
    folder = edit(copy(tmp_path), lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[1 << 40, 1 << 40]))
    assert "the shards hold" in one_line_error(folder)
    report = tfmodelkit.check(folder)
    assert not report.ok and any("dense/w1" in f.subject for f in report.findings)


@pytest.mark.parametrize("bad", [[-1, 3], [2.5], "4", [True], list(range(40))])
def test_malformed_shapes(tmp_path, bad):
    folder = edit(copy(tmp_path), lambda d: d["weightsManifest"][0]["weights"][0].update(shape=bad))
    assert "shape" in one_line_error(folder)


def test_missing_shard(tmp_path):
    folder = copy(tmp_path)
    (folder / "group1-shard2of2.bin").unlink()
    assert "group1-shard2of2.bin" in one_line_error(folder)
    report = tfmodelkit.check(folder)
    assert any("shard missing" in f.message for f in report.findings)


def test_short_and_long_shards_are_found_by_check(tmp_path):
    folder = copy(tmp_path)
    shard = folder / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-4])
    assert "the shards hold" in one_line_error(folder)
    shard.write_bytes(shard.read_bytes() + b"\0" * 12)
    report = tfmodelkit.check(folder)
    assert any("the manifest's weights need" in f.message for f in report.findings)


@pytest.mark.parametrize(
    "path", ["../outside.bin", "/etc/passwd", "sub/../../x.bin", "http://example.invalid/w.bin", "..\\x.bin", ""]
)
def test_paths_outside_the_folder_are_refused(tmp_path, path):
    (tmp_path / "outside.bin").write_bytes(b"\0" * 1024)
    folder = edit(copy(tmp_path), lambda d: d["weightsManifest"][0]["paths"].__setitem__(0, path))
    one_line_error(folder)


def test_a_link_leading_outside_is_refused(tmp_path):
    folder = copy(tmp_path)
    (tmp_path / "secret.bin").write_bytes((folder / "group1-shard1of2.bin").read_bytes())
    (folder / "group1-shard1of2.bin").unlink()
    (folder / "group1-shard1of2.bin").symlink_to(tmp_path / "secret.bin")
    assert "outside" in one_line_error(folder)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda d: d["weightsManifest"][0]["weights"][0].update(dtype="float64"), UnsupportedError),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(quantization={"dtype": "int4"}), UnsupportedError),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(quantization={"dtype": "uint8", "min": "x"}), CorruptFileError),
        (lambda d: d.update(weightsManifest={"paths": []}), CorruptFileError),
        (lambda d: d["weightsManifest"][0].pop("paths"), CorruptFileError),
        (lambda d: d["weightsManifest"][0]["weights"].append(7), CorruptFileError),
    ],
)  # fmt: skip
def test_malformed_manifests(tmp_path, change, kind):
    one_line_error(edit(copy(tmp_path), change), kind)


def test_not_json_and_not_tfjs(tmp_path):
    (tmp_path / "model.json").write_text("{ not json")
    with pytest.raises(FormatError):
        tfjs_format.read(tmp_path)
    (tmp_path / "model.json").write_text('{"hello": 1}')
    with pytest.raises(FormatError):
        tfjs_format.read(tmp_path)
    with pytest.raises(NotFoundError):
        tfjs_format.read(tmp_path / "nothing")


def test_string_weights_and_a_dangling_graph_input(tmp_path):
    folder = copy(tmp_path)
    strings = [b"ab", b"", b"xyz"]
    blob = b"".join(len(s).to_bytes(4, "little") + s for s in strings)
    (folder / "strings.bin").write_bytes(blob)

    def change(d):
        d["weightsManifest"].append({"paths": ["strings.bin"], "weights": [{"name": "vocab", "shape": [3], "dtype": "string"}]})
        d["modelTopology"]["node"].append({"name": "use", "op": "Identity", "input": ["nowhere"]})

    edit(folder, change)
    values = tfmodelkit.read(folder).weight("vocab").read()
    assert list(values) == strings
    report = tfmodelkit.check(folder)
    assert [f.subject for f in report.findings if f.severity == "error"] == ["use"]
    (folder / "strings.bin").write_bytes(blob[:-1])
    assert "vocab" in one_line_error(folder)


def test_layers_topology_names_resolve(tmp_path):
    folder = copy(tmp_path, "layers_two_io_uint8")

    def change(d):
        layers = d["modelTopology"]["config"]["layers"]
        mix = next(x for x in layers if x["name"] == "mix")
        mix["inbound_nodes"] = [[["ghost", 0, 0, {}]]]

    edit(folder, change)
    report = tfmodelkit.check(folder)
    assert not report.ok and any("ghost" in f.message for f in report.findings)


# ----------------------------------------------------------------------------------------
# Every modelinspect subcommand, as a user meets them


def test_layers_model_signature_has_the_topologys_shapes():
    (sig,) = tfmodelkit.read(TFJS / "layers_two_io_uint8").signatures
    assert sig.key == "model"  # as a Keras file's: the topology's inputs and outputs
    assert [(s.name, s.shape) for s in sig.inputs] == [("a", (None, 3)), ("b", (None, 6))]
    assert [(s.name, s.shape) for s in sig.outputs] == [("out", (None, 2)), ("norm", (None, 4))]
    (seq,) = tfmodelkit.read(TFJS / "layers_mlp").signatures
    assert [(s.name, s.shape) for s in seq.inputs] == [("hidden_input", (None, 4))]
    assert [(s.name, s.shape) for s in seq.outputs] == [("probs", (None, 3))]


def test_quantized_weights_show_how_they_are_stored():
    from tfmodelkit.inspect import render
    from tfmodelkit.inspect.views import inspect_tensor, weights_view

    view = weights_view(tfmodelkit.read(TFJS / "layers_two_io_uint8"))
    q = {w["name"]: w["quantization"] for w in view["weights"]}
    assert q["mix/kernel"]["dtype"] == "uint8" and q["mix/kernel"]["scale"] > 0
    table = render.render("weights", view, "table")
    assert "stored as" in table and "uint8 (min -0.561185, scale 0.00435043)" in table
    plain = render.render("weights", weights_view(tfmodelkit.read(TFJS / "graph_mlp")), "table")
    assert "stored as" not in plain
    half = render.render("weights", weights_view(tfmodelkit.read(TFJS / "graph_mlp_float16")), "table")
    assert "float16" in half
    (tensor,) = inspect_tensor(TFJS / "layers_two_io_uint8", "mix/kernel").items
    assert tensor["quantization"]["dtype"] == "uint8"
    assert "stored as  uint8 (min" in render.render("tensor", tensor, "table")


def test_diff_of_two_tfjs_models_compares_what_differs():
    d = tfmodelkit.diff(TFJS / "graph_mlp", TFJS / "graph_mlp_float16")
    assert not d.only_in_a and not d.only_in_b and len(d.changed) == 4
    changes = " ".join(d.metadata_changes)
    assert "shard_count" in changes and "model_json" not in changes and "shards:" not in changes
    assert tfmodelkit.diff(TFJS / "graph_mlp", TFJS / "graph_mlp").identical


def test_check_counts_layers_of_a_layers_model_and_nodes_of_a_graph():
    assert tfmodelkit.check(TFJS / "layers_two_io_uint8").checked == {"tensors": 10, "shards": 1, "layers": 9}
    assert tfmodelkit.check(TFJS / "graph_mlp").checked["nodes"] == 12


def test_string_weight_longer_than_a_read_chunk_across_shards(tmp_path):
    """A string weight's lengths are walked a chunk at a time; its bytes and the weight after it
    land where the manifest's stream puts them, across a shard boundary."""
    words = [f"w{i:04d}".encode() * (1 + i % 3) for i in range(20000)]
    blob = b"".join(len(w).to_bytes(4, "little") + w for w in words) + np.arange(3, dtype="<f4").tobytes()
    cut = len(blob) // 2 + 1
    (tmp_path / "a.bin").write_bytes(blob[:cut])
    (tmp_path / "b.bin").write_bytes(blob[cut:])
    doc = {"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": [{"paths": ["a.bin", "b.bin"], "weights": [
        {"name": "vocab", "shape": [len(words)], "dtype": "string"}, {"name": "after", "shape": [3], "dtype": "float32"}]}]}  # fmt: skip
    (tmp_path / "model.json").write_text(json.dumps(doc))
    desc = tfmodelkit.read(tmp_path)
    assert list(desc.weight("vocab").read()) == words
    assert desc.weight("after").read().tolist() == [0.0, 1.0, 2.0]
    assert tfmodelkit.check(tmp_path).ok
