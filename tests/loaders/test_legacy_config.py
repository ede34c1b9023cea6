"""Keras 1 model configs rewritten for tf_keras (tfmodelkit.loaders.legacy_config): pure JSON, no TensorFlow."""

from __future__ import annotations

import pytest

from tfmodelkit.errors import UnsupportedError, UserError
from tfmodelkit.loaders.legacy_config import upgrade_config

from ._legacy_files import k1_dense


def _layers(cfg):
    layers = cfg["config"]["layers"] if isinstance(cfg["config"], dict) else cfg["config"]
    return {entry["config"].get("name"): entry for entry in layers}


def test_upgrade_dense_conv_pool_dropout():
    cfg = {
        "class_name": "Sequential",
        "config": [
            {
                "class_name": "Convolution2D",
                "config": {
                    "name": "c",
                    "batch_input_shape": [None, 3, 8, 8],
                    "input_dtype": "float32",
                    "nb_filter": 4,
                    "nb_row": 3,
                    "nb_col": 2,
                    "init": "uniform",
                    "activation": "relu",
                    "border_mode": "same",
                    "subsample": [2, 1],
                    "dim_ordering": "th",
                    "W_regularizer": {"name": "WeightRegularizer", "l1": 0.0, "l2": 0.01},
                    "b_regularizer": None,
                    "activity_regularizer": None,
                    "W_constraint": None,
                    "b_constraint": None,
                    "bias": False,
                },
            },
            {
                "class_name": "MaxPooling2D",
                "config": {
                    "name": "p",
                    "pool_size": [2, 2],
                    "strides": None,
                    "border_mode": "valid",
                    "dim_ordering": "th",
                },
            },
            {"class_name": "Dropout", "config": {"name": "d", "p": 0.25}},
            {"class_name": "Flatten", "config": {"name": "f"}},
            k1_dense("o", 5, "softmax", input_dim=10),
        ],
    }
    up, notes = upgrade_config(cfg)
    assert up["class_name"] == "Sequential"
    layers = _layers(up)
    assert layers["c_input"]["class_name"] == "InputLayer"
    assert layers["c_input"]["config"]["batch_input_shape"] == [None, 3, 8, 8]
    c = layers["c"]
    assert c["class_name"] == "Conv2D"
    assert {
        k: c["config"][k] for k in ("filters", "kernel_size", "strides", "padding", "data_format", "use_bias")
    } == {
        "filters": 4,
        "kernel_size": [3, 2],
        "strides": [2, 1],
        "padding": "same",
        "data_format": "channels_first",
        "use_bias": False,
    }
    assert c["config"]["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}}
    assert c["config"]["kernel_initializer"]["class_name"] == "RandomUniform"
    assert not {"nb_filter", "border_mode", "dim_ordering", "batch_input_shape", "input_dtype"} & set(
        c["config"]
    )
    assert (
        layers["p"]["config"]["padding"] == "valid"
        and layers["p"]["config"]["data_format"] == "channels_first"
    )
    assert layers["d"]["config"]["rate"] == 0.25 and "p" not in layers["d"]["config"]
    assert layers["f"]["config"]["data_format"] == "channels_last"  # flatten in storage order
    o = layers["o"]["config"]
    assert o["units"] == 5 and o["use_bias"] is True and "input_dim" not in o and "output_dim" not in o
    assert o["kernel_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 2, "axis": 0}}
    assert any(
        n.startswith("c: Convolution2D -> Conv2D") and "data_format=channels_first" in n for n in notes
    )


def test_upgrade_conv1d_pool1d_embedding_recurrent_bn():
    cfg = {
        "class_name": "Sequential",
        "config": [
            {
                "class_name": "Embedding",
                "config": {
                    "name": "e",
                    "input_dim": 50,
                    "output_dim": 8,
                    "init": "uniform",
                    "input_length": 12,
                    "mask_zero": False,
                    "W_regularizer": None,
                    "activity_regularizer": None,
                    "W_constraint": None,
                    "dropout": 0.1,
                    "batch_input_shape": [None, 12],
                    "input_dtype": "int32",
                },
            },
            {
                "class_name": "Convolution1D",
                "config": {
                    "name": "c1",
                    "nb_filter": 6,
                    "filter_length": 3,
                    "subsample_length": 1,
                    "border_mode": "valid",
                    "init": "glorot_uniform",
                    "activation": "linear",
                    "bias": True,
                    "input_dim": 8,
                    "input_length": 12,
                },
            },
            {
                "class_name": "MaxPooling1D",
                "config": {"name": "mp", "pool_length": 2, "stride": None, "border_mode": "valid"},
            },
            {
                "class_name": "BatchNormalization",
                "config": {
                    "name": "bn",
                    "epsilon": 1e-3,
                    "mode": 0,
                    "axis": -1,
                    "momentum": 0.99,
                    "gamma_init": "one",
                    "beta_init": "zero",
                },
            },
            {
                "class_name": "GRU",
                "config": {
                    "name": "g",
                    "output_dim": 7,
                    "init": "glorot_uniform",
                    "inner_init": "orthogonal",
                    "activation": "tanh",
                    "inner_activation": "hard_sigmoid",
                    "dropout_W": 0.1,
                    "dropout_U": 0.2,
                    "consume_less": "mem",
                    "return_sequences": True,
                    "go_backwards": True,
                    "stateful": False,
                    "unroll": True,
                },
            },
            {
                "class_name": "LSTM",
                "config": {
                    "name": "l",
                    "output_dim": 4,
                    "inner_activation": "hard_sigmoid",
                    "forget_bias_init": "one",
                    "consume_less": "cpu",
                    "return_sequences": False,
                },
            },
        ],
    }
    up, notes = upgrade_config(cfg)
    layers = _layers(up)
    assert layers["e_input"]["config"]["dtype"] == "int32"
    e = layers["e"]["config"]
    assert e["input_dim"] == 50 and e["output_dim"] == 8 and e["input_length"] == 12
    assert "embeddings_initializer" in e and "dropout" not in e and "dtype" not in e
    c1 = layers["c1"]
    assert (
        c1["class_name"] == "Conv1D" and c1["config"]["kernel_size"] == [3] and c1["config"]["strides"] == [1]
    )
    assert "input_dim" not in c1["config"]
    mp = layers["mp"]["config"]
    assert mp["pool_size"] == 2 and mp["strides"] is None and mp["padding"] == "valid"
    bn = layers["bn"]["config"]
    assert "mode" not in bn and bn["gamma_initializer"] == "ones" and bn["beta_initializer"] == "zeros"
    g = layers["g"]["config"]
    assert (g["units"], g["recurrent_activation"], g["dropout"], g["recurrent_dropout"]) == (
        7,
        "hard_sigmoid",
        0.1,
        0.2,
    )
    assert g["reset_after"] is False and g["go_backwards"] is True and g["unroll"] is True
    assert "consume_less" not in g
    lstm = layers["l"]["config"]
    assert lstm["units"] == 4 and lstm["unit_forget_bias"] is True and "forget_bias_init" not in lstm
    assert any("dropped word dropout" in n for n in notes)


def test_upgrade_functional_merge_and_inbound_nodes():
    model = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "name": "a",
                    "config": {
                        "name": "a",
                        "batch_input_shape": [None, 3],
                        "input_dtype": "float32",
                        "sparse": False,
                    },
                    "inbound_nodes": [],
                },
                {
                    "class_name": "InputLayer",
                    "name": "b",
                    "config": {
                        "name": "b",
                        "batch_input_shape": [None, 3],
                        "input_dtype": "float32",
                        "sparse": False,
                    },
                    "inbound_nodes": [],
                },
                {
                    "class_name": "Merge",
                    "name": "cat",
                    "config": {"name": "cat", "mode": "concat", "concat_axis": 1, "mode_type": "raw"},
                    "inbound_nodes": [[["a", 0, 0], ["b", 0, 0]]],
                },
                {
                    "class_name": "Merge",
                    "name": "dot",
                    "config": {"name": "dot", "mode": "dot", "dot_axes": [1, 1], "mode_type": "raw"},
                    "inbound_nodes": [[["a", 0, 0], ["b", 0, 0]]],
                },
            ],
            "input_layers": [["a", 0, 0], ["b", 0, 0]],
            "output_layers": [["cat", 0, 0], ["dot", 0, 0]],
        },
    }
    up, _ = upgrade_config(model)
    layers = {entry["name"]: entry for entry in up["config"]["layers"]}
    assert layers["a"]["config"]["dtype"] == "float32" and "input_dtype" not in layers["a"]["config"]
    assert layers["cat"]["class_name"] == "Concatenate" and layers["cat"]["config"]["axis"] == 1
    assert layers["cat"]["inbound_nodes"] == [[["a", 0, 0, {}], ["b", 0, 0, {}]]]
    assert layers["dot"]["class_name"] == "Dot" and layers["dot"]["config"]["axes"] == [1, 1]
    for mode, cls in (("sum", "Add"), ("mul", "Multiply"), ("ave", "Average"), ("max", "Maximum")):
        model["config"]["layers"][2]["config"]["mode"] = mode
        assert {e["name"]: e for e in upgrade_config(model)[0]["config"]["layers"]}["cat"][
            "class_name"
        ] == cls
    model["config"]["layers"][2]["config"]["mode"] = "cos"
    with pytest.raises(UnsupportedError, match="mode 'cos'"):
        upgrade_config(model)


def test_upgrade_refuses_what_it_cannot_rebuild():
    def seq(*layers):
        return {"class_name": "Sequential", "config": list(layers)}

    with pytest.raises(UnsupportedError, match="mode=1"):
        upgrade_config(seq({"class_name": "BatchNormalization", "config": {"name": "bn", "mode": 1}}))
    with pytest.raises(UnsupportedError, match="dim_ordering='default'"):
        upgrade_config(
            seq({"class_name": "MaxPooling2D", "config": {"name": "p", "dim_ordering": "default"}})
        )
    with pytest.raises(UnsupportedError, match="Highway"):
        upgrade_config(seq({"class_name": "Highway", "config": {"name": "h"}}))
    with pytest.raises(UnsupportedError, match="border_mode='full'"):
        upgrade_config(seq({"class_name": "Convolution2D", "config": {"name": "c", "border_mode": "full"}}))
    with pytest.raises(UserError, match="not a Keras model config"):
        upgrade_config({"layers": []})


def test_upgrade_refuses_bytecode_unless_unsafe():
    lam = {
        "class_name": "Lambda",
        "config": {"name": "lam", "function": ["YQ==", None, None], "function_type": "lambda"},
    }
    model = {"class_name": "Sequential", "config": [k1_dense("d", 2, batch_input_shape=[None, 2]), lam]}
    with pytest.raises(UserError, match=r"lam \(Lambda\).*Python bytecode"):
        upgrade_config(model)
    up, _ = upgrade_config(model, unsafe=True)
    assert _layers(up)["lam"]["class_name"] == "Lambda"
    merge = {
        "class_name": "Model",
        "config": {
            "layers": [
                {
                    "class_name": "Merge",
                    "name": "m",
                    "config": {"name": "m", "mode": ["YQ==", None, None], "mode_type": "lambda"},
                    "inbound_nodes": [],
                }
            ],
            "input_layers": [],
            "output_layers": [],
        },
    }
    with pytest.raises(UserError, match=r"m \(Merge\)"):
        upgrade_config(merge)
    with pytest.raises(UnsupportedError, match="Python function"):
        upgrade_config(merge, unsafe=True)


def test_upgrade_keras2_config_passes_through():
    keras2 = {
        "class_name": "Sequential",
        "config": [
            {
                "class_name": "Dense",
                "config": {
                    "name": "d",
                    "units": 3,
                    "batch_input_shape": [None, 4],
                    "dtype": "float32",
                    "activation": "relu",
                },
            },
            {"class_name": "GRU", "config": {"name": "g", "units": 2}},
        ],
    }
    up, _ = upgrade_config(keras2)
    layers = _layers(up)
    assert list(layers) == ["d", "g"]  # no InputLayer added: tf_keras reads batch_input_shape itself
    assert layers["d"]["config"] == keras2["config"][0]["config"]
    assert layers["g"]["config"]["reset_after"] is False  # GRUs saved before reset_after existed
