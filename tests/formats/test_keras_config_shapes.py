"""A Keras file's inputs, outputs and per-layer output shapes, read from its config without Keras:
against Keras and tf_keras themselves on the fixtures and the corpus, and on configs built here."""

from __future__ import annotations

import copy
import json
import os

import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.formats.keras_config import SIGNATURE_KEY, UNKNOWN_DTYPE, parse_model_config
from tfmodelkit.inspect.views import inspect_summary

#: Fixture files, and the Keras that reads them (Keras 3 refuses some files tf_keras writes).
FIXTURE_FILES = {
    "keras_zip/layer_shapes.keras": "keras",
    "keras_zip/sequential_shapes.keras": "keras",
    "keras_zip/functional_multi_io.keras": "keras",
    "keras_zip/conv_bn.keras": "keras",
    "keras_h5/keras3_legacy.h5": "keras",
    "keras_h5/keras3_lstm.h5": "keras",
    "keras_h5/keras3_nested_sequential.h5": "keras",
    "keras_h5/tfkeras_layer_shapes.h5": "tf_keras",
    "keras_h5/tfkeras_sequential_shapes.h5": "tf_keras",
    "keras_h5/tfkeras_nested_sequential.h5": "tf_keras",
    "keras_h5/tfkeras_lstm.h5": "tf_keras",
    "keras_h5/tfkeras_full_adam.h5": "tf_keras",
}
#: Corpus files written by Keras 2 that tf_keras loads (Keras 3 misreads some of them: see
#: test_keras3_misreads_a_keras2_batch_input_shape).
CORPUS_FILES = [
    "keras_h5/dl4j/examples_custom_loss.h5",
    "keras_h5/dl4j/examples_functional_lstm_lstm_functional_tf_keras_2.h5",
    "keras_h5/dl4j/tfkeras_rnn_9.h5",
    "keras_h5/dl4j/tfkeras_some_loss.h5",
    "keras_h5/dl4j/weights_batch_to_conv2d_tensorflow_2.h5",
    "keras_h5/dl4j/weights_bidirectional_lstm_tensorflow_2.h5",
    "keras_h5/dl4j/weights_conv2d_tensorflow_2.h5",
    "keras_h5/dl4j/weights_dense_tensorflow_2.h5",
    "keras_h5/dl4j/weights_embedding_conv1d_flatten_theano_2.h5",
    "keras_h5/dl4j/weights_keras-attention.h5",
    "keras_h5/dl4j/weights_lstm_tensorflow_2.h5",
    "keras_h5/dl4j/weights_sepconv2d_tensorflow_2.h5",
    "keras_h5/dl4j_oracle/simple_lstm_tf_keras_2_model.h5",
    "keras_h5/dl4j_oracle/simple_sparse_xent_mlp_keras_2_model.h5",
]


def _shape(t) -> tuple:
    return tuple(None if d is None else int(d) for d in t.shape)


def keras_view(path, lib: str) -> dict:
    """What Keras (``lib``) reports: inputs and outputs as (name, dtype, shape), and the output
    shapes of every layer it can tell (top-level and in nested models; wrapped layers are
    never called, so Keras has no output for them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if lib == "keras":
        import keras

        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        out_names = getattr(model, "output_names", None) or [
            t._keras_history.operation.name for t in model.outputs
        ]
        in_names = [t.name for t in model.inputs]
    else:
        import tf_keras

        model = tf_keras.models.load_model(str(path), compile=False, safe_mode=True)
        out_names, in_names = list(model.output_names), list(model.input_names)
    layers = {}

    def walk(container):
        for layer in container.layers:
            try:
                out = layer.output
            except (AttributeError, ValueError):
                continue
            layers[layer.name] = tuple(_shape(t) for t in (out if isinstance(out, (list, tuple)) else [out]))
            if getattr(layer, "layers", None):
                walk(layer)

    walk(model)

    def dtype(t):
        return getattr(t.dtype, "name", str(t.dtype))

    return {
        "inputs": [(n, dtype(t), _shape(t)) for n, t in zip(in_names, model.inputs, strict=True)],
        "outputs": [(n, dtype(t), _shape(t)) for n, t in zip(out_names, model.outputs, strict=True)],
        "layers": layers,
    }


def ours(path) -> dict:
    desc = tfmodelkit.read(path)
    [sig] = desc.signatures
    assert sig.key == SIGNATURE_KEY
    return {
        "inputs": [(t.name, t.dtype, t.shape) for t in sig.inputs],
        "outputs": [(t.name, t.dtype, t.shape) for t in sig.outputs],
        "layers": {layer.name: layer.output_shapes for layer in desc.layers},
    }


def _compare(path, lib):
    theirs, mine = keras_view(path, lib), ours(path)
    assert mine["inputs"] == theirs["inputs"]
    assert mine["outputs"] == theirs["outputs"]
    assert theirs["layers"], "Keras reported no layer"
    for name, shapes in theirs["layers"].items():
        assert mine["layers"].get(name) == shapes, name


needs_tf = pytest.mark.skipif(not tf_available(), reason="needs TensorFlow/Keras (the convert extra)")


@pytest.mark.tf
@needs_tf
@pytest.mark.parametrize(("rel", "lib"), sorted(FIXTURE_FILES.items()))
def test_fixture_inputs_outputs_and_layer_shapes_equal_keras(rel, lib):
    _compare(FIXTURES / rel, lib)


@pytest.mark.tf
@pytest.mark.corpus
@needs_tf
@pytest.mark.parametrize("rel", CORPUS_FILES)
def test_corpus_inputs_outputs_and_layer_shapes_equal_tf_keras(corpus, rel):
    _compare(corpus / rel, "tf_keras")


# ----------------------------------------------------------------------------------------
# Without Keras: what the files say, checked by hand against the configs


def test_fixture_signature_without_keras():
    desc = tfmodelkit.read(FIXTURES / "keras_h5/tfkeras_layer_shapes.h5")
    [sig] = desc.signatures
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [
        ("image", "float32", (None, 16, 16, 3)),
        ("tokens", "int32", (None, 20)),
        ("volume", "float32", (None, 4, 4, 4, 1)),
    ]
    assert [(t.name, t.dtype, t.shape) for t in sig.outputs] == [
        ("probs", "float32", (None, 10)),
        ("score", "float16", (None, 1)),
    ]
    shapes = {layer.name: layer.output_shapes for layer in desc.layers}
    assert shapes["lstm_state"] == ((None, 4), (None, 4), (None, 4))  # output, h, c
    assert shapes["deconv"] == ((None, 8, 8, 4),) and shapes["back"] == ((None, 3, 5),)
    assert shapes["per_step"] is None  # wrapped by TimeDistributed: never called on its own
    # the summary now names the signature
    view = inspect_summary(FIXTURES / "keras_zip/functional_multi_io.keras").items[0]
    assert view["signatures"] == [SIGNATURE_KEY]


@pytest.mark.corpus
def test_keras1_files_without_keras(corpus):
    """Keras 1.2 configs (a list of layers, ``output_dim``, ``nb_filter``, ``border_mode``,
    ``input_dtype``) that neither Keras 3 nor tf_keras loads."""
    cases = {
        "keras_h5/dl4j/weights_conv2d_theano_1.h5": (
            ("convolution2d_1_input", "float32", (None, 5, 5, 5)),
            ((None, 3, 3, 6),),  # 3x3 valid over 5x5, 6 filters, dim_ordering "tf"
        ),
        "keras_h5/dl4j/weights_lstm_tensorflow_1.h5": (
            ("lstm_1_input", "float32", (None, 4, 1)),
            ((None, 6),),
        ),
        "keras_h5/dl4j_oracle/simple_lstm_th_keras_1_model.h5": (
            ("lstm_1_input", "float32", (None, 1, 1)),
            ((None, 1),),
        ),
    }
    for rel, (inp, out) in cases.items():
        desc = tfmodelkit.read(corpus / rel)
        [sig] = desc.signatures
        assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [inp], rel
        assert desc.layers[-1].output_shapes == out, rel


@pytest.mark.corpus
def test_a_lambda_makes_what_follows_unknown_not_guessed(corpus):
    desc = tfmodelkit.read(corpus / "keras_h5/dl4j/examples_lambda_sequential_lambda.h5")
    shapes = [(layer.name, layer.output_shapes) for layer in desc.layers]
    assert shapes == [
        ("dense_1", ((None, 64),)),
        ("lambda_1", None),
        ("lambda_2", None),
        ("dense_2", None),
    ]
    [sig] = desc.signatures
    assert [(t.name, t.dtype, t.shape) for t in sig.outputs] == [("dense_2", UNKNOWN_DTYPE, None)]


@pytest.mark.tf
@pytest.mark.corpus
@needs_tf
def test_keras3_misreads_a_keras2_batch_input_shape(corpus):
    """Keras 3.15 loads this Keras 2.3 Sequential (``batch_input_shape [null, 4]`` on its first
    Dense) with an input of shape (None, None, 4); tf_keras, and the file, say (None, 4)."""
    path = corpus / "keras_h5/dl4j_oracle/simple_sparse_xent_mlp_keras_2_model.h5"
    assert keras_view(path, "keras")["inputs"][0][2] == (None, None, 4)
    assert keras_view(path, "tf_keras")["inputs"][0][2] == (None, 4) == ours(path)["inputs"][0][2]


# ----------------------------------------------------------------------------------------
# Configs built here


def _layer(cls, name, inbound=None, **cfg):
    entry = {"class_name": cls, "config": {"name": name, **cfg}, "name": name}
    if inbound is not None:
        entry["inbound_nodes"] = inbound
    return entry


def _io(parsed):
    [sig] = parsed.signatures
    return [(t.name, t.dtype, t.shape) for t in sig.inputs], [(t.name, t.dtype, t.shape) for t in sig.outputs]


def test_keras3_records_win_and_dict_io_is_ordered_by_key():
    """A custom layer's output is unknown by rule, but Keras 3 records it where it is consumed."""

    def tensor(layer, shape):
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": [layer, 0, 0]},
        }

    model = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                _layer("InputLayer", "x", [], batch_shape=[None, 3], dtype="float32"),
                _layer("MyLayer", "custom", [{"args": [tensor("x", [None, 3])], "kwargs": {}}]),
                _layer("Dense", "head", [{"args": [tensor("custom", [None, 7])], "kwargs": {}}], units=2),
                _layer("MyLayer", "tail", [{"args": [tensor("head", [None, 2])], "kwargs": {}}]),
            ],
            "input_layers": {"x": ["x", 0, 0]},
            "output_layers": {"z_tail": ["tail", 0, 0], "a_head": ["head", 0, 0]},
        },
    }
    parsed = parse_model_config(model)
    shapes = {r.layer.name: r.layer.output_shapes for r in parsed.layers}
    assert shapes == {"x": ((None, 3),), "custom": ((None, 7),), "head": ((None, 2),), "tail": None}
    inputs, outputs = _io(parsed)
    assert inputs == [("x", "float32", (None, 3))]
    assert outputs == [("a_head", "float32", (None, 2)), ("z_tail", UNKNOWN_DTYPE, None)]


def test_keras2_rules_nested_models_and_shared_layers():
    inner = {
        "class_name": "Sequential",
        "config": {
            "name": "block",
            "layers": [
                _layer("InputLayer", "block_in", batch_input_shape=[None, 8, 8, 3], dtype="float32"),
                _layer(
                    "Conv2D",
                    "c",
                    filters=4,
                    kernel_size=[3, 3],
                    strides=[2, 2],
                    padding="valid",
                    dilation_rate=[1, 1],
                    data_format="channels_first",
                ),  # fmt: skip
            ],
        },
        "name": "block",
        "inbound_nodes": [[["img", 0, 0, {}]]],
    }
    model = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                _layer("InputLayer", "img", [], batch_input_shape=[2, 8, 8, 3], dtype="float32"),
                inner,
                _layer("Flatten", "flat", [[["block", 1, 0, {}]]]),
                _layer("Dense", "shared", [[["flat", 0, 0, {}]], [["shared", 0, 0, {}]]], units=5),
                _layer(
                    "Dense",
                    "twice",
                    [[["flat", 0, 0, {}]], [["shared", 1, 0, {}]]],
                    units=4,
                    dtype={"class_name": "Policy", "config": {"name": "mixed_float16"}},
                ),  # fmt: skip
            ],
            "input_layers": [["img", 0, 0]],
            "output_layers": [["twice", 1, 0], ["shared", 1, 0]],
        },
    }
    parsed = parse_model_config(model)
    shapes = {r.layer.name: r.layer.output_shapes for r in parsed.layers}
    # channels_first: (8, 8, 3) is 8 channels over 8x3; 3x3 stride 2 valid -> 3x1
    assert shapes["c"] == ((2, 4, 3, 1),) and shapes["block"] == ((2, 4, 3, 1),)
    assert shapes["flat"] == ((2, 12),)
    assert shapes["shared"] == ((2, 5),)  # called twice: (2, 12) -> (2, 5) and (2, 5) -> (2, 5)
    assert shapes["twice"] == ((2, 4),)
    _, outputs = _io(parsed)
    assert outputs == [("twice", "float16", (2, 4)), ("shared", "float32", (2, 5))]


def test_convolution_and_pooling_lengths():
    from tfmodelkit.formats.keras_layer_rules import Spec, apply_rule

    def out(cls, shape, **cfg):
        got = apply_rule(cls, cfg, [Spec(shape, "float32")], {})
        return None if got is None else [s.shape for s in got]

    assert out("Conv1D", (None, 20, 6), filters=8, kernel_size=[3], padding="causal", dilation_rate=[2]) == [
        (None, 20, 8)
    ]
    assert out("Conv1D", (None, 20, 6), filters=8, kernel_size=[3], strides=[2]) == [(None, 9, 8)]
    assert out(
        "Conv2D", (None, None, 7, 3), filters=2, kernel_size=[3, 3], padding="same", strides=[2, 2]
    ) == [(None, None, 4, 2)]
    assert out(
        "Conv2DTranspose", (None, 5, 5, 3), filters=2, kernel_size=[3, 3], strides=[2, 2], padding="valid"
    ) == [(None, 11, 11, 2)]
    assert out("Conv2DTranspose", (None, 5, 5, 3), filters=2, kernel_size=[3, 3], strides=[2, 2], padding="same",
               output_padding=[1, 0]) == [(None, 10, 9, 2)]  # fmt: skip
    assert out("MaxPooling2D", (None, 7, 7, 3), pool_size=[2, 2], strides=None, padding="valid") == [
        (None, 3, 3, 3)
    ]
    assert out("MaxPooling1D", (None, 9, 8), pool_size=[2], strides=[2], padding="same") == [(None, 5, 8)]
    assert out("Conv2D", (None, 2, 2, 3), filters=2, kernel_size=[3, 3]) is None  # no room: Keras refuses it
    assert out("Bidirectional", (None, 5, 3), layer={"class_name": "LSTM", "config": {"units": 4}},
               merge_mode=None) == [(None, 4), (None, 4)]  # fmt: skip
    assert out("Reshape", (None, 6, None), target_shape=[-1, 2]) == [(None, None, 2)]
    assert out("Frobnicate", (None, 3)) is None  # not a standard layer: unknown, not guessed


def test_damaged_configs_give_unknown_shapes_not_errors():
    model = {
        "class_name": "Functional",
        "config": {"layers": [_layer("Dense", "d", [[["nowhere", 3, 9]]], units="x")], "input_layers": 5},
    }
    parsed = parse_model_config(copy.deepcopy(model))
    assert parsed.signatures == () and parsed.layers[0].layer.output_shapes is None
    cycle = {
        "class_name": "Functional",
        "config": {
            "layers": [
                _layer("InputLayer", "x", [], batch_shape=[None, 2]),
                _layer("Dense", "a", [[["b", 0, 0, {}]]], units=2),
                _layer("Dense", "b", [[["a", 0, 0, {}]]], units=2),
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["b", 0, 0]],
        },
    }
    _, outputs = _io(parse_model_config(cycle))
    assert outputs == [("b", UNKNOWN_DTYPE, None)]


def _chain(n: int, reverse: bool) -> dict:
    layers = [_layer("InputLayer", "x", [], batch_shape=[None, 4])]
    for i in range(n):
        layers.append(_layer("Dense", f"d{i}", [[[layers[-1]["name"], 0, 0, {}]]], units=4))
    return {
        "class_name": "Functional",
        "config": {
            "layers": layers[::-1] if reverse else layers,
            "input_layers": [["x", 0, 0]],
            "output_layers": [[f"d{n - 1}", 0, 0]],
        },
    }


def test_long_graphs_and_damaged_configs_never_raise():
    """Keras lists layers before their consumers; a config in another order is followed only so
    deep (no recursion limit is hit). Random damage anywhere in real configs gives unknowns."""
    import random
    import zipfile

    import h5py

    _, outputs = _io(parse_model_config(_chain(3000, reverse=False)))
    assert outputs == [("d2999", "float32", (None, 4))]
    _, outputs = _io(parse_model_config(_chain(3000, reverse=True)))
    assert outputs == [("d2999", UNKNOWN_DTYPE, None)]

    configs = [json.loads(zipfile.ZipFile(FIXTURES / "keras_zip/layer_shapes.keras").read("config.json"))]
    with h5py.File(FIXTURES / "keras_h5/tfkeras_layer_shapes.h5", "r") as f:
        configs.append(json.loads(f.attrs["model_config"]))
    junk = [
        None,
        -1,
        0,
        10**12,
        "x",
        [],
        {},
        [None],
        [-1, -1],
        True,
        1.5,
        ["a", 0, 0],
        [["join", 10**9, 10**9]],
    ]
    rng = random.Random(11)

    def slots(o, path=()):
        items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
        for k, v in items:
            yield (*path, k)
            yield from slots(v, (*path, k))

    for base in configs:
        places = list(slots(base))
        for _ in range(150):
            config = copy.deepcopy(base)
            for _ in range(rng.randint(1, 4)):
                *parents, last = rng.choice(places)
                target = config
                try:
                    for p in parents:
                        target = target[p]
                    target[last] = copy.deepcopy(rng.choice(junk))
                except (KeyError, IndexError, TypeError):
                    pass
            parse_model_config(config)  # never raises


def test_models_shared_inside_shared_models_stay_linear():
    """A nested model is evaluated once per call: a model called twice inside a model called
    twice, forty levels down, would be 2**40 evaluations; a budget per layer entry and call stops
    it (the outputs are then unknown), and nested Sequentials find their input without
    evaluating each level again."""
    import time

    def functional(name, layers, output):
        return {
            "class_name": "Functional",
            "config": {
                "name": name,
                "layers": layers,
                "input_layers": [["x", 0, 0]],
                "output_layers": [output],
            },
        }

    model = functional("leaf", [_layer("InputLayer", "x", [], batch_shape=[None, 4]),
                                _layer("Dense", "d", [[["x", 0, 0, {}]]], units=4)], ["d", 0, 0])  # fmt: skip
    for i in range(40):
        sub = {**model, "name": "sub", "inbound_nodes": [[["x", 0, 0, {}]], [["sub", 1, 0, {}]]]}
        model = functional(
            f"m{i}", [_layer("InputLayer", "x", [], batch_shape=[None, 4]), sub], ["sub", 2, 0]
        )
    start = time.monotonic()
    parse_model_config(model)
    nested = {"class_name": "Sequential", "config": {"name": "s", "layers": [_layer("InputLayer", "i", batch_shape=[None, 3]),
                                                                           _layer("Dense", "d", units=2)]}}  # fmt: skip
    for i in range(60):
        nested = {"class_name": "Sequential", "config": {"name": f"s{i}", "layers": [nested]}}
    inputs, outputs = _io(parse_model_config(nested))
    assert time.monotonic() - start < 10
    assert inputs == [("i", "float32", (None, 3))] and outputs == [("s58", "float32", (None, 2))]
