"""The Keras .h5 reader: the corpus against Keras 3's answers, files built here with h5py
(split attributes, Keras 0/1 names, the Keras 3 weights layout), Lambda safety, damage and
mutants."""

from __future__ import annotations

import base64
import json
import marshal
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import corpus_entries
from tfmodelkit.description import ROLE_MODEL, ROLE_OPTIMIZER, ROLE_OTHER
from tfmodelkit.dtypes import numpy_dtype
from tfmodelkit.errors import CorruptFileError, FormatError, NotFoundError, TFModelKitError
from tfmodelkit.formats import hdf5, hdf5_inventory, keras_config, keras_h5

ENTRIES = corpus_entries("keras_h5")
OK = [(k, v) for k, v in ENTRIES if v.get("ok")]
LAMBDA = "keras_h5/dl4j/examples_lambda_sequential_lambda.h5"
ATTENTION = "keras_h5/dl4j/weights_keras-attention.h5"
# Keras 2 wrote functional models as class "Model"; Keras 3 calls the same thing "Functional".
_CLASS_ALIASES = {"Model": "Functional"}


def _model_weights(desc):
    return [w for w in desc.weights if w.role == ROLE_MODEL]


def _read_all_values(desc, path: Path) -> None:
    """Every weight loads, with its declared shape and dtype, and equals what h5py reads."""
    with h5py.File(path, "r") as f:
        for w in desc.weights:
            a = w.read()
            assert a.shape == w.shape, w.name
            if w.dtype != "string":
                assert a.dtype == numpy_dtype(w.dtype), w.name
                assert a.nbytes == w.nbytes, w.name
            direct = f[w.name][()]
            if w.dtype == "bfloat16":
                direct = np.asarray(direct).view(numpy_dtype("bfloat16"))
            assert np.array_equal(np.asarray(a), np.asarray(direct)), w.name


# ---------------------------------------------------------------------------------------
# The corpus


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), OK, ids=[k for k, _ in OK])
def test_corpus_agrees_with_keras(corpus, rel, expected):
    desc = keras_h5.read(corpus / rel)
    ours = Counter((w.dtype, tuple(w.shape)) for w in _model_weights(desc))
    theirs = Counter((e["dtype"], tuple(e["shape"])) for e in expected["weights"])
    assert ours == theirs
    assert sum(w.size for w in _model_weights(desc)) == expected["param_count"]
    top = [layer.name for layer in desc.layers if layer.depth == 0]
    assert set(expected["layers"]) <= set(top)
    cls = desc.metadata["class_name"]
    assert _CLASS_ALIASES.get(cls, cls) == _CLASS_ALIASES.get(expected["class_name"], expected["class_name"])
    # Per-layer parameter counts add up to the model's.
    assert sum(layer.params or 0 for layer in desc.layers if layer.depth == 0) == expected["param_count"]


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), ENTRIES, ids=[k for k, _ in ENTRIES])
def test_every_corpus_file_reads_checks_and_loads(corpus, rel, expected):
    path = corpus / rel
    desc = keras_h5.read(path)
    assert desc.format == "keras_h5"
    report = keras_h5.check(path)
    assert report.ok, report.findings
    assert report.checked["datasets"] == len(desc.weights)
    kind = desc.metadata["kind"]
    if rel.endswith("_inputs_and_outputs.h5"):
        assert kind == "hdf5 data"
        assert any("no Keras model config or weights layout found" in w for w in desc.warnings)
        assert desc.weights and all(w.role == ROLE_OTHER for w in desc.weights)
    else:
        assert kind in ("full model", "weights only")
        assert _model_weights(desc)
        assert desc.metadata["keras_generation"] in (1, 2)
        for w in desc.weights:
            assert w.location == f"{w.name} ({path})"
            if w.role == ROLE_MODEL:
                assert w.layer and w.path and not w.path.endswith(":0")
    _read_all_values(desc, path)


@pytest.mark.corpus
def test_keras1_names_and_generation(corpus):
    desc = keras_h5.read(corpus / "keras_h5/dl4j/weights_lstm_tensorflow_1.h5")
    assert desc.metadata["keras_generation"] == 1
    assert desc.producer.keras == "1.2.2" and desc.producer.backend is None
    assert [w.path for w in desc.weights[:3]] == ["lstm_1/W_i", "lstm_1/U_i", "lstm_1/b_i"]
    theano = keras_h5.read(corpus / "keras_h5/dl4j_oracle/simple_lstm_th_keras_1_model.h5")
    opt = [w for w in theano.weights if w.role == ROLE_OPTIMIZER]
    assert [w.path for w in opt[:3]] == ["param_0", "param_1", "param_2"]  # weight_names order, not h5 order
    assert theano.metadata["optimizer"] == "RMSprop"
    weights_only = keras_h5.read(corpus / "keras_h5/dl4j_oracle/simple_lstm_th_keras_1_weights.h5")
    assert weights_only.metadata == {"kind": "weights only", "keras_generation": 1}
    assert [w.shape for w in weights_only.weights] == [w.shape for w in _model_weights(theano)]


@pytest.mark.corpus
def test_vlen_string_attributes_and_optimizer_iteration(corpus):
    """Keras 2.11 writes layer_names as variable-length strings and adds a
    `top_level_model_weights` group that is not in layer_names."""
    desc = keras_h5.read(corpus / ATTENTION)
    assert [layer.name for layer in desc.layers] == [
        "inputs",
        "dense",
        "attention",
        "concatenate",
        "dense_1",
        "outputs",
    ]
    assert desc.layers[3].inbound == ("dense", "attention")
    (it,) = [w for w in desc.weights if w.role == ROLE_OPTIMIZER]
    assert (it.name, it.path, it.dtype, it.shape) == (
        "optimizer_weights/iteration:0",
        "iteration",
        "int64",
        (),
    )
    assert desc.metadata["optimizer"] == "Custom>Adam"


@pytest.mark.corpus
def test_wrapper_layers_are_nested_with_their_params(corpus):
    desc = keras_h5.read(corpus / "keras_h5/dl4j/weights_bidirectional_lstm_tensorflow_2.h5")
    by_name = {layer.name: layer for layer in desc.layers}
    assert by_name["bidirectional_1"].depth == 0 and by_name["bidirectional_1"].params == 1680
    assert by_name["lstm_1"].depth == 1 and by_name["lstm_1"].class_name == "LSTM"


# ---------------------------------------------------------------------------------------
# Lambda layers: Python code is reported, never run


@pytest.mark.corpus
def test_lambda_is_reported_and_nothing_is_executed(corpus, monkeypatch):
    path = corpus / LAMBDA
    # Import everything h5py needs (codecs...) in this process, which the children fork from,
    # before the traps are set.
    with hdf5_inventory.file_source(path).opened() as f:
        inv = hdf5_inventory.scan(f, str(path))
        for info in inv.datasets.values():
            f[info.path][()]

    def trap(*args, **kwargs):
        raise AssertionError("tfmodelkit tried to load or run code from the file")

    monkeypatch.setattr(marshal, "loads", trap)
    monkeypatch.setattr(marshal, "load", trap)
    monkeypatch.setattr("builtins.exec", trap)
    monkeypatch.setattr("builtins.eval", trap)
    desc = keras_h5.read(path)
    report = keras_h5.check(path)
    monkeypatch.undo()
    lambdas = [layer for layer in desc.layers if layer.class_name == "Lambda"]
    assert [(x.name, x.code) for x in lambdas] == [("lambda_1", "<lambda>"), ("lambda_2", "<lambda>")]
    assert all(layer.code is None for layer in desc.layers if layer.class_name != "Lambda")
    (warning,) = [w for w in desc.warnings if "Python code" in w]
    assert "lambda_1" in warning and "lambda_2" in warning and "never runs it" in warning
    assert report.ok


def _code_b64(src: str, name: str) -> str:
    ns: dict = {}
    exec(compile(src, "/home/someone/model.py", "exec"), ns)  # the test makes its own bytecode
    return base64.b64encode(marshal.dumps(ns[name].__code__)).decode()


def test_function_names_recovered_from_bytecode_without_unmarshalling(monkeypatch):
    named = _code_b64("def scale_by_two(x):\n    return x * 2\n", "scale_by_two")
    anon = _code_b64("f = lambda x: x + 1\n", "f")
    monkeypatch.setattr(marshal, "loads", lambda *a: pytest.fail("unmarshalled"))
    assert keras_config.bytecode_function_name(named) == "scale_by_two"
    assert keras_config.bytecode_function_name(anon) == "<lambda>"
    assert keras_config.bytecode_function_name("not bytecode at all") is None
    model = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "x"}, "inbound_nodes": []},
                {  # tf.keras 2: [base64 bytecode, defaults, closure]
                    "class_name": "Lambda",
                    "config": {"name": "l2", "function": [named, None, None], "function_type": "lambda"},
                    "inbound_nodes": [[["x", 0, 0, {}]]],
                },
                {  # Keras 3: a __lambda__ object
                    "class_name": "Lambda",
                    "config": {
                        "name": "l3",
                        "function": {"class_name": "__lambda__", "config": {"code": anon}},
                    },
                    "inbound_nodes": [
                        {
                            "args": [
                                {"class_name": "__keras_tensor__", "config": {"keras_history": ["l2", 0, 0]}}
                            ]
                        }
                    ],
                },
                {  # Keras 3: a function referenced by name only
                    "class_name": "Lambda",
                    "config": {
                        "name": "l4",
                        "function": {"module": "builtins", "class_name": "function", "config": "fn"},
                    },
                    "inbound_nodes": [],
                },
            ],
        },
    }
    parsed = keras_config.parse_model_config(model)
    got = {r.layer.name: (r.layer.code, r.layer.inbound) for r in parsed.layers}
    assert got == {
        "x": (None, ()),
        "l2": ("scale_by_two", ("x",)),
        "l3": ("<lambda>", ("l2",)),
        "l4": ("fn", ()),
    }
    assert any("Python code" in w and "l2" in w and "l3" in w for w in parsed.warnings)
    assert any("by name" in w and "l4 (fn)" in w for w in parsed.warnings)


# ---------------------------------------------------------------------------------------
# Files built here


def _vlen(items):
    return np.array(items, dtype=h5py.string_dtype())


def test_split_attributes_bytes_and_str_keras1_names_and_optimizer(tmp_path):
    path = tmp_path / "keras1.h5"
    rng = np.random.default_rng(0)
    k1, b1 = rng.random((4, 3), dtype=np.float32), rng.random(3, dtype=np.float32)
    k2, b2 = rng.random((3, 2), dtype=np.float32), rng.random(2, dtype=np.float32)
    config = {
        "class_name": "Sequential",
        "config": [  # Keras 1: the config is the layer list
            {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 3}},
            {"class_name": "Dense", "config": {"name": "dense_2", "output_dim": 2}},
        ],
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = np.bytes_(b"1.2.2")
        f.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
        f.attrs["training_config"] = json.dumps({"optimizer_config": {"class_name": "SGD", "config": {}}})
        mw = f.create_group("model_weights")
        mw.attrs["layer_names0"] = np.array([b"dense_1"])  # fixed-length bytes
        mw.attrs["layer_names1"] = _vlen(["dense_2"])  # variable-length str
        g1 = mw.create_group("dense_1")
        g1.attrs["weight_names0"] = np.array([b"param_0"])
        g1.attrs["weight_names1"] = np.array([b"param_1"])
        g1["param_0"], g1["param_1"] = k1, b1
        g2 = mw.create_group("dense_2")
        g2.attrs["weight_names"] = _vlen(["dense_2_W:0", "dense_2_b:0"])
        g2["dense_2_W:0"], g2["dense_2_b:0"] = k2, b2
        ow = f.create_group("optimizer_weights")
        ow.attrs["weight_names"] = np.array([b"Variable_1:0", b"Variable:0"])
        ow["Variable:0"], ow["Variable_1:0"] = np.zeros((4, 3), np.float32), np.zeros(3, np.float32)
    desc = keras_h5.read(path)
    assert [(w.name, w.path, w.layer, w.role) for w in desc.weights] == [
        ("model_weights/dense_1/param_0", "dense_1/param_0", "dense_1", ROLE_MODEL),
        ("model_weights/dense_1/param_1", "dense_1/param_1", "dense_1", ROLE_MODEL),
        ("model_weights/dense_2/dense_2_W:0", "dense_2/W", "dense_2", ROLE_MODEL),
        ("model_weights/dense_2/dense_2_b:0", "dense_2/b", "dense_2", ROLE_MODEL),
        ("optimizer_weights/Variable_1:0", "Variable_1", None, ROLE_OPTIMIZER),
        ("optimizer_weights/Variable:0", "Variable", None, ROLE_OPTIMIZER),
    ]
    assert [(x.name, x.class_name, x.params) for x in desc.layers] == [
        ("dense_1", "Dense", 15),
        ("dense_2", "Dense", 8),
    ]
    assert desc.metadata["class_name"] == "Sequential"
    assert desc.metadata["kind"] == "full model"
    assert desc.metadata["keras_generation"] == 1
    assert desc.metadata["optimizer"] == "SGD"
    assert desc.producer.keras == "1.2.2"
    for w, want in zip(desc.weights[:4], (k1, b1, k2, b2), strict=True):
        np.testing.assert_array_equal(w.read(), want)
    assert keras_h5.check(path).ok
    assert desc.warnings == ()


def test_layer_names_over_64kb_are_joined(tmp_path):
    path = tmp_path / "many.h5"
    names = [f"a_rather_long_layer_name_number_{i:05d}" for i in range(1800)]  # 68 KB in all
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.2.4"
        f.attrs["backend"] = "tensorflow"
        f.attrs["layer_names0"] = np.array([n.encode() for n in names[:1000]])
        f.attrs["layer_names1"] = np.array([n.encode() for n in names[1000:]])
        for n in names:
            g = f.create_group(n)
            g.attrs["weight_names"] = np.array([f"{n}/bias:0".encode()])
            g.create_dataset(f"{n}/bias:0", data=np.arange(2, dtype=np.float32))
    desc = keras_h5.read(path)
    assert [x.name for x in desc.layers] == names
    assert len(desc.weights) == 1800 and desc.weights[-1].path == f"{names[-1]}/bias"
    assert desc.metadata["kind"] == "weights only" and desc.metadata["keras_generation"] == 2


def test_keras0_nb_layers_file(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nb_layers"] = 3
        for k, shapes in enumerate([[(2, 3), (3,)], [], [(3, 1)] * 11]):
            g = f.create_group(f"layer_{k}")
            g.attrs["nb_params"] = len(shapes)
            for j, shape in enumerate(shapes):
                g[f"param_{j}"] = np.full(shape, j, np.float32)
    desc = keras_h5.read(path)
    assert [w.path for w in desc.weights[:3]] == ["layer_0/param_0", "layer_0/param_1", "layer_2/param_0"]
    assert [w.path for w in desc.weights][-2:] == ["layer_2/param_9", "layer_2/param_10"]  # numeric order
    assert [(x.name, x.params) for x in desc.layers] == [("layer_0", 9), ("layer_1", 0), ("layer_2", 33)]
    assert desc.metadata["kind"] == "weights only"
    assert keras_h5.check(path).ok


def _keras3_weights(path: Path) -> dict[str, np.ndarray]:
    """A Keras 3 ``.weights.h5`` layout, as Keras 3.8+ writes it (a `name` on each `vars`)."""
    bf16 = numpy_dtype("bfloat16")
    values = {
        "layers/dense/vars/0": np.arange(12, dtype=np.float32).reshape(4, 3),
        "layers/dense/vars/1": np.ones(3, np.float32),
        "layers/batch_normalization/vars/0": np.full(3, 1, np.float32),
        "layers/batch_normalization/vars/1": np.full(3, 2, np.float32),
        "layers/batch_normalization/vars/2": np.full(3, 3, np.float32),
        "layers/batch_normalization/vars/3": np.full(3, 4, np.float32),
        "layers/lstm/cell/vars/0": np.zeros((3, 16), np.float32),
        "layers/lstm/cell/vars/1": np.zeros((4, 16), np.float32),
        "layers/lstm/cell/vars/2": np.zeros(16, np.float32),
        "layers/dense_1/vars/0": np.array([[1.5, -2.0], [0.25, 3.0], [8.0, 0.0]], dtype=bf16),
        "optimizer/vars/0": np.array(7, np.int64),
        "optimizer/vars/1": np.array(0.01, np.float32),
    }
    for i in range(2, 12):
        values[f"optimizer/vars/{i}"] = np.full(2, i, np.float32)
    names = {
        "": "model",
        "layers/dense": "fc",
        "layers/batch_normalization": "bn",
        "layers/lstm": "lstm",
        "layers/lstm/cell": "lstm_cell",
        "layers/dense_1": "head",
        "optimizer": "adam",
        "layers/dropout": "drop",
    }
    with h5py.File(path, "w") as f:
        for obj, name in names.items():
            f.require_group(f"{obj}/vars" if obj else "vars").attrs["name"] = name
        for key, v in values.items():
            if v.dtype == bf16:
                ds = f.create_dataset(key, data=v.view("V2"))  # how Keras 3 stores bfloat16
                ds.attrs["dtype"] = "bfloat16"
            else:
                f[key] = v
    return values


def test_keras3_weights_layout(tmp_path):
    path = tmp_path / "model.weights.h5"
    values = _keras3_weights(path)
    desc = keras_h5.read(path)
    assert desc.metadata["kind"] == "weights only" and desc.metadata["keras_generation"] == 3
    by_name = {w.name: w for w in desc.weights}
    assert set(by_name) == set(values)
    paths = {w.name: w.path for w in desc.weights}
    assert paths["layers/dense/vars/0"] == "fc/kernel"
    assert paths["layers/dense/vars/1"] == "fc/bias"
    assert [paths[f"layers/batch_normalization/vars/{i}"] for i in range(4)] == [
        "bn/gamma",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    assert [paths[f"layers/lstm/cell/vars/{i}"] for i in range(3)] == [
        "lstm/lstm_cell/kernel",
        "lstm/lstm_cell/recurrent_kernel",
        "lstm/lstm_cell/bias",
    ]
    assert paths["layers/dense_1/vars/0"] == "head/kernel"  # a Dense without bias: one variable
    assert paths["optimizer/vars/0"] == "adam/iteration" and paths["optimizer/vars/1"] == "adam/learning_rate"
    opt = [w.name for w in desc.weights if w.role == ROLE_OPTIMIZER]
    assert opt == [f"optimizer/vars/{i}" for i in range(12)]  # numeric order: 2 before 10
    assert {w.layer for w in desc.weights if w.role == ROLE_MODEL} == {"fc", "bn", "lstm", "head"}
    head = by_name["layers/dense_1/vars/0"]
    assert head.dtype == "bfloat16" and head.nbytes == 12 and "dtype_guessed" not in head.extra
    for name, want in values.items():
        got = by_name[name].read()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    layers = {x.name: x for x in desc.layers}
    assert (layers["fc"].class_name, layers["fc"].params) == ("Dense", 15)
    assert (layers["lstm"].class_name, layers["lstm"].params) == ("LSTM", 3 * 16 + 4 * 16 + 16)
    assert (layers["lstm_cell"].class_name, layers["lstm_cell"].depth) == ("LSTMCell", 1)
    assert (layers["drop"].class_name, layers["drop"].params) == ("Dropout", 0)
    assert keras_h5.check(path).ok


def test_untagged_two_byte_opaque_is_bfloat16(tmp_path):
    """Keras 3's legacy .h5 writer stores bfloat16 as a 2-byte opaque type with no tag."""
    path = tmp_path / "bf16.h5"
    want = np.array([1.0, -2.5, 0.125], dtype=numpy_dtype("bfloat16"))
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["model_config"] = json.dumps(
            {
                "class_name": "Sequential",
                "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "d"}}]},
            }
        )
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = _vlen(["d"])
        mw.create_group("d").attrs["weight_names"] = _vlen(["s/d/bias"])
        mw.create_dataset("d/s/d/bias", data=want.view("V2"))
    desc = keras_h5.read(path)
    (w,) = desc.weights
    assert (w.dtype, w.path, w.layer, w.extra.get("dtype_guessed")) == ("bfloat16", "s/d/bias", "d", True)
    np.testing.assert_array_equal(w.read(), want)
    assert any("bfloat16" in x for x in desc.warnings)
    assert desc.metadata["keras_generation"] == 3


def test_plain_hdf5_is_listed_and_empty_hdf5_refused(tmp_path):
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f["inputs/x"] = np.arange(6, dtype=np.float64).reshape(2, 3)
        f["labels"] = np.array([b"a", b"bc"])
    desc = keras_h5.read(data)
    assert desc.metadata["kind"] == "hdf5 data"
    assert [(w.name, w.dtype, w.role) for w in desc.weights] == [
        ("inputs/x", "float64", ROLE_OTHER),
        ("labels", "string", ROLE_OTHER),
    ]
    assert list(desc.weights[1].read()) == [b"a", b"bc"]
    # A user block moves the HDF5 signature off byte 0; memory-mapped values still line up.
    blocked = tmp_path / "userblock.h5"
    with h5py.File(blocked, "w", userblock_size=1024) as f:
        f["x"] = np.arange(10, dtype=np.float32)
    (w,) = keras_h5.read(blocked).weights
    np.testing.assert_array_equal(w.read(), np.arange(10, dtype=np.float32))
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(FormatError, match="empty.h5.*nothing to describe"):
        keras_h5.read(empty)


def test_not_found_folder_and_not_hdf5(tmp_path):
    with pytest.raises(NotFoundError):
        keras_h5.read(tmp_path / "missing.h5")
    with pytest.raises(FormatError, match="folder"):
        keras_h5.read(tmp_path)
    text = tmp_path / "model.h5"
    text.write_text("this is not HDF5 at all, just text\n")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        keras_h5.check(text)
    short = tmp_path / "short.h5"
    short.write_bytes(b"\x89HD")
    with pytest.raises(CorruptFileError, match="too short"):
        keras_h5.read(short)


def _small_model(path: Path, chunked: bool = False) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["model_config"] = json.dumps(
            {
                "class_name": "Sequential",
                "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "d"}}]},
            }
        )
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"d"])
        g = mw.create_group("d")
        g.attrs["weight_names"] = np.array([b"d/kernel:0", b"d/bias:0", b"d/gone:0"])
        opts = {"chunks": (64, 64), "compression": "gzip"} if chunked else {}
        g.create_dataset(
            "d/kernel:0", data=np.random.default_rng(1).random((256, 256)).astype(np.float32), **opts
        )
        g.create_dataset("d/bias:0", data=np.zeros(256, np.float32))


def test_damage_is_named_in_read_warnings_and_check_findings(tmp_path):
    path = tmp_path / "damaged.h5"
    _small_model(path, chunked=True)
    with h5py.File(path, "r") as f:
        chunk = f["model_weights/d/d/kernel:0"].id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    raw[chunk.byte_offset + 10 : chunk.byte_offset + 60] = b"\xff" * 50  # ruin one gzip chunk
    path.write_bytes(bytes(raw))
    desc = keras_h5.read(path)  # metadata is intact: read works
    assert any("model_weights/d/d/gone:0" in w and "no such dataset" in w for w in desc.warnings)
    with pytest.raises(CorruptFileError, match="damaged.h5.*d/kernel:0"):
        desc.weight("model_weights/d/d/kernel:0").read()
    np.testing.assert_array_equal(desc.weight("d/bias").read(), np.zeros(256, np.float32))
    report = keras_h5.check(path)
    errors = {(f.subject, f.severity) for f in report.findings}
    assert ("model_weights/d/d/kernel:0", "error") in errors
    assert ("model_weights/d/d/gone:0", "error") in errors
    assert ("model_weights/d/d/bias:0", "error") not in errors
    assert not report.ok and report.checked["datasets"] == 2


def test_truncated_file_is_corrupt(tmp_path):
    path = tmp_path / "cut.h5"
    _small_model(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="cut.h5"):
        keras_h5.read(path)
    report = keras_h5.check(path)
    assert not report.ok and report.findings[0].subject == str(path)


# ---------------------------------------------------------------------------------------
# libhdf5 at arm's length


def _sleeps():
    yield "started"
    time.sleep(60)
    yield "never"


def _crashes():
    yield "started"
    os.kill(os.getpid(), signal.SIGSEGV)
    yield "never"


def _raises():
    yield "started"
    raise CorruptFileError("x.h5: bad")


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="isolation needs fork")


@needs_fork
def test_isolated_reports_hangs_crashes_and_errors():
    t0 = time.monotonic()
    items, failure = hdf5.isolated(_sleeps, (), 0.5)
    assert items == ["started"] and "no progress" in failure
    assert time.monotonic() - t0 < 5
    items, failure = hdf5.isolated(_crashes, (), 5)
    assert items == ["started"] and "SIGSEGV" in failure
    with pytest.raises(CorruptFileError, match="x.h5: bad"):
        hdf5.isolated(_raises, (), 5)
    assert hdf5.isolated(iter, ([1, 2],), 5) == ([1, 2], None)


@needs_fork
@pytest.mark.corpus
def test_heap_that_makes_libhdf5_spin_is_reported_quickly(corpus, tmp_path):
    """Found by the mutation test: enlarging one global-heap object's size field (16 -> 80)
    makes libhdf5 1.14 loop forever reading the string attributes, holding the GIL."""
    raw = bytearray((corpus / ATTENTION).read_bytes())
    i = raw.find(b"\x10\x00\x00\x00\x00\x00\x00\x00outputs/kernel:0")
    assert i > 0
    raw[i] = 0x50
    path = tmp_path / "spin.h5"
    path.write_bytes(bytes(raw))
    t0 = time.monotonic()
    with pytest.raises(CorruptFileError, match="spin.h5.*(hung|damaged)"):
        keras_h5.read(path, timeout=2)
    report = keras_h5.check(path, timeout=2)
    assert not report.ok
    assert time.monotonic() - t0 < 15


def _busy_but_progressing(seconds: float):
    """Work that returns no item for ``seconds`` but says it is alive all along."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
        hdf5.alive()
    yield "done"


@needs_fork
def test_the_watchdog_waits_on_progress_not_on_the_clock():
    t0 = time.monotonic()
    assert hdf5.isolated(_busy_but_progressing, (2.0,), 0.5) == (["done"], None)  # 4x the timeout
    assert time.monotonic() - t0 >= 2.0
    t0 = time.monotonic()
    items, failure = hdf5.isolated(_sleeps, (), 0.5)  # silent: stopped after 0.5 s
    assert items == ["started"] and "made no progress for 0.5 s" in failure and "--timeout" in failure
    assert time.monotonic() - t0 < 5


def test_the_wait_comes_from_the_option_the_scope_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv(hdf5.TIMEOUT_ENV, raising=False)
    assert hdf5.option_timeout({}) == hdf5.DEFAULT_TIMEOUT == 10.0
    monkeypatch.setenv(hdf5.TIMEOUT_ENV, "2.5")
    assert hdf5.option_timeout({}) == 2.5
    with hdf5.timeout_scope(4):
        assert hdf5.option_timeout({}) == 4.0 and hdf5_inventory.H5Source(Path("x.h5")).timeout == 4.0
        assert hdf5.option_timeout({"timeout": 1}) == 1.0
    assert hdf5.option_timeout({}) == 2.5
    monkeypatch.setenv(hdf5.TIMEOUT_ENV, "0")
    with pytest.raises(TFModelKitError, match="TFMODELKIT_HDF5_TIMEOUT '0': give a positive number of seconds"):
        hdf5.option_timeout({})
    for bad in (-1, "x", float("inf"), True):
        with pytest.raises(TFModelKitError, match="give a positive number of seconds"):
            hdf5.option_timeout({"timeout": bad})


def test_the_model_config_is_read_by_the_guarded_reader(tmp_path, monkeypatch):
    import tfmodelkit.formats as formats
    from tests.conftest import FIXTURES

    assert formats.keras_model_config(FIXTURES / "keras_h5/tfkeras_lstm.h5")["class_name"] == "Sequential"
    assert formats.keras_model_config(FIXTURES / "keras_zip/conv_bn.keras")["class_name"] == "Sequential"
    assert formats.keras_model_config(FIXTURES / "keras_h5/tfkeras_weights_only.h5") is None
    with pytest.raises(TFModelKitError, match="not a Keras model file"):
        formats.keras_model_config(FIXTURES / "tflite/mlp_int8.tflite")
    with pytest.raises(TFModelKitError, match="unknown option"):
        formats.keras_model_config(FIXTURES / "keras_h5/tfkeras_lstm.h5", tags="serve")
    bad = tmp_path / "bad_config.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["model_config"] = "{not json"
    with pytest.raises(CorruptFileError, match="bad_config.h5: model_config is not valid JSON"):
        formats.keras_model_config(bad)
    # h5py runs in the watched child (tests/cli/test_damaged_and_odd_files.py hangs it for real).
    calls = []
    monkeypatch.setattr(
        hdf5_inventory, "isolated", lambda work, args, timeout: calls.append(timeout) or ([], "made no progress for 3 s")
    )
    with hdf5.timeout_scope(3), pytest.raises(CorruptFileError, match="lstm.h5: reading the HDF5 attributes made no progress"):
        formats.keras_model_config(FIXTURES / "keras_h5/tfkeras_lstm.h5")
    assert calls == [3.0]


# ---------------------------------------------------------------------------------------
# Mutants


MUTANT_SOURCES = [
    "keras_h5/dl4j/weights_keras-attention.h5",
    "keras_h5/dl4j_oracle/simple_lstm_th_keras_1_model.h5",
]


def mutants(data: bytes, seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        if rng.random() < 0.3:
            yield data[: rng.randrange(len(data))]
        else:
            b = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            yield bytes(b)


def exercise(module, path: Path, timeout: float) -> None:
    """read, check and every weight's values: only our errors, on one line, naming the file."""
    for step in ("read", "check"):
        try:
            if step == "read":
                desc = module.read(path, timeout=timeout)
                for w in desc.weights:
                    try:
                        a = w.read()
                        assert a.shape == w.shape
                    except TFModelKitError as e:
                        assert "\n" not in str(e) and str(path) in str(e)
            else:
                module.check(path, timeout=timeout)
        except TFModelKitError as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)


@pytest.mark.corpus
@pytest.mark.parametrize("rel", MUTANT_SOURCES)
def test_mutants_fail_cleanly_and_fast(corpus, tmp_path, rel):
    data = (corpus / rel).read_bytes()
    path = tmp_path / "mutant.h5"
    timeout = 2.0
    for i, mutant in enumerate(mutants(data, seed=1234 + MUTANT_SOURCES.index(rel), count=150)):
        path.write_bytes(mutant)
        t0 = time.monotonic()
        exercise(keras_h5, path, timeout)
        assert time.monotonic() - t0 < 3 * timeout + 5, f"mutant {i} took too long"
