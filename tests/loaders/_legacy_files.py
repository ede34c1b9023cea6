"""Keras 1 model configs and ``.h5`` files written here, as Keras 1.2 laid them out."""

from __future__ import annotations

import json

import h5py
import numpy as np


def write_keras1(path, model_config, weights, *, version="1.2.2", split_names=False, str_attrs=False):
    """A Keras 1.2-style full-model .h5: ``weights`` maps layer name -> [(weight name, array)]."""
    enc = (lambda s: s) if str_attrs else (lambda s: s.encode())

    def names_attr(items):
        if not items:
            return np.array([], dtype="S1")
        return np.array(items, dtype=h5py.string_dtype()) if str_attrs else np.array(items)

    with h5py.File(path, "w") as f:
        if version:
            f.attrs["keras_version"] = enc(version)
        f.attrs["model_config"] = enc(json.dumps(model_config))
        g = f.create_group("model_weights")
        names = [enc(n) for n in weights]
        if split_names:  # how Keras splits attributes over 64 KB
            half = max(1, len(names) // 2)
            g.attrs["layer_names0"] = names_attr(names[:half])
            g.attrs["layer_names1"] = names_attr(names[half:])
        else:
            g.attrs["layer_names"] = names_attr(names)
        for lname, ws in weights.items():
            lg = g.create_group(lname)
            lg.attrs["weight_names"] = names_attr([enc(n) for n, _ in ws])
            for n, a in ws:
                lg.create_dataset(n, data=np.asarray(a, dtype=np.float32))
    return path


def k1_dense(name, units, act="linear", input_dim=None, batch_input_shape=None):
    cfg = {
        "name": name,
        "trainable": True,
        "output_dim": units,
        "init": "glorot_uniform",
        "activation": act,
        "W_regularizer": None,
        "b_regularizer": None,
        "activity_regularizer": {"name": "ActivityRegularizer", "l1": 0.0, "l2": 0.0},
        "W_constraint": {"name": "MaxNorm", "m": 2, "axis": 0},
        "b_constraint": None,
        "bias": True,
        "input_dim": input_dim,
    }
    if batch_input_shape:
        cfg["batch_input_shape"] = batch_input_shape
        cfg["input_dtype"] = "float32"
    return {"class_name": "Dense", "config": cfg}
