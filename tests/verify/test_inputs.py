"""Seeded input generation and .npz input files: numpy only."""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import pytest

from tfmodelkit.description import Quantization, TensorSpec
from tfmodelkit.errors import CorruptFileError, NotFoundError, UserError
from tfmodelkit.verify import DEFAULT_DIM, generate_inputs, load_inputs, save_arrays

X = TensorSpec("x", "float32", (None, 3))
IDS = TensorSpec("ids", "int32", (None, None))


def test_deterministic_per_seed_and_name():
    a = generate_inputs([X, IDS], seed=7)
    b = generate_inputs([X, IDS], seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = generate_inputs([X, IDS], seed=8)
    assert not np.array_equal(a["x"], c["x"])
    # A name's values do not depend on which other inputs the model has.
    alone = generate_inputs([X], seed=7)
    assert np.array_equal(alone["x"], a["x"])
    other = generate_inputs([TensorSpec("y", "float32", (None, 3))], seed=7)
    assert not np.array_equal(other["y"], a["x"])


def test_dynamic_dims():
    out = generate_inputs([TensorSpec("t", "float32", (None, None, 3))])
    assert out["t"].shape == (2, DEFAULT_DIM, 3)
    assert generate_inputs([TensorSpec("t", "float32", (None, None, 3))], batch=5)["t"].shape == (5, 8, 3)
    full = generate_inputs([TensorSpec("t", "float32", (None, None, 3))], shapes={"t": [1, 4, 3]})
    assert full["t"].shape == (1, 4, 3)
    assert generate_inputs([TensorSpec("s", "float32", ())])["s"].shape == ()
    with pytest.raises(UserError, match="dimension 2"):
        generate_inputs([TensorSpec("t", "float32", (None, None, 3))], shapes={"t": [1, 4, 5]})
    with pytest.raises(UserError, match="rank"):
        generate_inputs([TensorSpec("t", "float32", (None, 3))], shapes={"t": [3]})


def test_unknown_rank_asks_for_a_shape():
    spec = TensorSpec("blob", "float32", None)
    with pytest.raises(UserError, match="--shape blob="):
        generate_inputs([spec])
    assert generate_inputs([spec], shapes={"blob": [2, 2]})["blob"].shape == (2, 2)


def test_value_ranges_by_dtype():
    specs = [
        TensorSpec("f", "float32", (64, 64)),
        TensorSpec("i", "int32", (64, 64)),
        TensorSpec("u", "uint8", (64,)),
        TensorSpec("b", "bool", (64,)),
        TensorSpec("s", "string", (16,)),
        TensorSpec("h", "bfloat16", (8,)),
        TensorSpec("d", "float64", (8,)),
    ]
    out = generate_inputs(specs, seed=3)
    assert out["f"].dtype == np.float32 and -1 <= out["f"].min() and out["f"].max() < 1
    assert out["f"].std() > 0.3  # spread over the range, not constant
    assert out["i"].dtype == np.int32 and out["i"].min() == 0 and out["i"].max() == 9
    assert out["u"].dtype == np.uint8 and out["u"].max() < 10
    assert out["b"].dtype == np.bool_ and 0 < out["b"].sum() < 64
    assert out["s"].dtype == object and all(
        isinstance(v, bytes) and 1 <= len(v) <= 8 and v.isascii() for v in out["s"]
    )
    assert out["h"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert out["d"].dtype == np.float64


def test_ranges_option():
    out = generate_inputs(
        [TensorSpec("f", "float32", (100,)), TensorSpec("i", "int64", (100,))],
        ranges={"f": (5.0, 6.0), "i": (-3, 3)},
    )
    assert 5 <= out["f"].min() and out["f"].max() < 6
    assert out["i"].min() == -3 and out["i"].max() == 2
    with pytest.raises(UserError, match="low < high"):
        generate_inputs([X], ranges={"x": (1.0, 1.0)})
    with pytest.raises(UserError, match="does not have"):
        generate_inputs([X], ranges={"nope": (0.0, 1.0)})
    with pytest.raises(UserError, match="does not fit"):
        generate_inputs([TensorSpec("u", "uint8", (3,))], ranges={"u": (-5, 5)})


def test_quantized_integer_inputs_span_their_dtype():
    spec = TensorSpec("q", "int8", (1000,), quantization=Quantization(scale=(0.02,), zero_point=(3,)))
    q = generate_inputs([spec])["q"]
    assert q.dtype == np.int8 and q.min() < -100 and q.max() > 100


def test_bad_seed_and_batch():
    with pytest.raises(UserError):
        generate_inputs([X], seed=-1)
    with pytest.raises(UserError):
        generate_inputs([X], batch=0)


def test_save_and_load_round_trip(tmp_path):
    arrays = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.array([b"ab", b"", b"xyz"], dtype=object),
        "b": np.array([True, False]),
    }
    path = save_arrays(tmp_path / "in.npz", arrays)
    assert path == tmp_path / "in.npz"
    loaded = load_inputs(path)
    assert set(loaded) == set(arrays)
    assert np.array_equal(loaded["x"], arrays["x"]) and loaded["x"].dtype == np.float32
    assert loaded["s"].dtype == object and list(loaded["s"]) == [b"ab", b"", b"xyz"]
    assert os.listdir(tmp_path) == ["in.npz"]  # no temporary left behind
    save_arrays(path, {"x": np.zeros(1)})  # replaces the old file
    assert list(load_inputs(path)) == ["x"]


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(UserError):
        save_arrays(tmp_path / "bad.npz", {"o": np.array([object()], dtype=object)})
    assert os.listdir(tmp_path) == []
    with pytest.raises(NotFoundError):
        save_arrays(tmp_path / "missing" / "x.npz", {"x": np.zeros(1)})


def test_load_checks_inputs(tmp_path):
    path = save_arrays(tmp_path / "in.npz", {"x": np.zeros((2, 3), np.float32), "junk": np.zeros(1)})
    assert list(load_inputs(path, [X])) == ["x"]  # extra arrays are dropped
    with pytest.raises(UserError, match="'ids'.*holds: x, junk"):
        load_inputs(path, [X, IDS])
    positional = tmp_path / "pos.npz"
    np.savez(positional, np.ones((2, 3)), np.zeros((2, 2)))
    loaded = load_inputs(positional, [X, IDS])
    assert loaded["x"].shape == (2, 3) and loaded["ids"].shape == (2, 2)


def test_load_errors(tmp_path):
    with pytest.raises(NotFoundError):
        load_inputs(tmp_path / "nope.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(CorruptFileError):
        load_inputs(garbage)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="pickled"):
        load_inputs(pickled)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(UserError, match="npz"):
        load_inputs(single)
