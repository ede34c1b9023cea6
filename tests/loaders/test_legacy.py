"""Keras 1 / legacy Keras 2 ``.h5`` loading (tfmodelkit.loaders.legacy and its weight conversion).

Ground truth comes from outside this module: predictions Keras 1.2.2 itself stored next to the
dl4j_oracle models, and forward passes written here in numpy straight from the HDF5 weights
(Keras 1 gate order, hard_sigmoid = clip(0.2x + 0.5, 0, 1), Theano's true convolution).
"""

from __future__ import annotations

import json
import marshal
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import CORPUS
from tfmodelkit.errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError, UserError
from tfmodelkit.loaders.legacy import (
    LOADER_KERAS1,
    LOADER_KERAS2,
    is_keras1,
    legacy_reason,
    load_legacy_model,
)

from ._legacy_files import k1_dense, write_keras1

H5 = CORPUS / "keras_h5"
ORACLE = H5 / "dl4j_oracle"
DL4J = H5 / "dl4j"

needs_corpus = pytest.mark.skipif(not H5.is_dir(), reason=f"corpus not found at {CORPUS}")


# ------------------------------------------------------------------------------ numpy references


def hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


ACT = {
    "tanh": np.tanh,
    "hard_sigmoid": hard_sigmoid,
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
}


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACT["softmax"] = softmax


def np_lstm(x, gates, act="tanh", inner="hard_sigmoid", return_sequences=False):
    """Keras 1/2 LSTM: ``gates`` maps i/f/c/o to (W, U, b)."""
    f_act, f_in = ACT[act], ACT[inner]
    n, steps, _ = x.shape
    units = gates["i"][1].shape[0]
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    seq = []
    for t in range(steps):
        xt = x[:, t]

        def z(g, xt=xt, h=h):
            W, U, b = gates[g]
            return xt @ W + h @ U + b

        i, f, o = f_in(z("i")), f_in(z("f")), f_in(z("o"))
        c = f * c + i * f_act(z("c"))
        h = o * f_act(c)
        seq.append(h)
    return np.stack(seq, 1) if return_sequences else h


def np_gru(x, gates, act="tanh", inner="hard_sigmoid"):
    """Keras 1 GRU (reset gate applied before the recurrent product)."""
    f_act, f_in = ACT[act], ACT[inner]
    units = gates["z"][1].shape[0]
    h = np.zeros((x.shape[0], units))
    for t in range(x.shape[1]):
        xt = x[:, t]
        Wz, Uz, bz = gates["z"]
        Wr, Ur, br = gates["r"]
        Wh, Uh, bh = gates["h"]
        zg = f_in(xt @ Wz + h @ Uz + bz)
        r = f_in(xt @ Wr + h @ Ur + br)
        hh = f_act(xt @ Wh + (r * h) @ Uh + bh)
        h = zg * h + (1 - zg) * hh
    return h


def true_conv2d_nhwc(x, k, b):
    """Theano semantics: a real convolution, kernel (rows, cols, in, out), 'valid', stride 1."""
    kr, kc = k.shape[:2]
    n, H, W, _ = x.shape
    out = np.zeros((n, H - kr + 1, W - kc + 1, k.shape[3]))
    for a in range(kr):
        for c in range(kc):
            out += np.einsum(
                "nhwi,io->nhwo", x[:, a : a + H - kr + 1, c : c + W - kc + 1], k[kr - 1 - a, kc - 1 - c]
            )
    return out + b


def cross_corr2d_nhwc(x, k, b):
    kr, kc = k.shape[:2]
    n, H, W, _ = x.shape
    out = np.zeros((n, H - kr + 1, W - kc + 1, k.shape[3]))
    for a in range(kr):
        for c in range(kc):
            out += np.einsum("nhwi,io->nhwo", x[:, a : a + H - kr + 1, c : c + W - kc + 1], k[a, c])
    return out + b


def h5_array(path, name):
    with h5py.File(path, "r") as f:
        return np.asarray(f[name][()], dtype=np.float64)


# ------------------------------------------------------------------------------ shared loading

_CACHE: dict[tuple, object] = {}


@pytest.fixture(scope="module")
def tfk():
    pytest.importorskip("tensorflow")
    from tfmodelkit.loaders.tf import import_tf_keras

    tf_keras = import_tf_keras("tests")
    if tf_keras is None:
        pytest.skip("tf_keras is not installed")
    return tf_keras


def legacy(path, **kw):
    key = (str(path), tuple(sorted((k, str(v)) for k, v in kw.items())))
    if key not in _CACHE:
        _CACHE[key] = load_legacy_model(path, **kw)
    return _CACHE[key]


def predict(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


def rng(seed=0):
    return np.random.default_rng(seed)


# ============================================================================== detection


@needs_corpus
@pytest.mark.parametrize(
    "rel, expected",
    [
        ("dl4j/weights_dense_tensorflow_1.h5", True),
        ("dl4j/weights_conv2d_theano_1.h5", True),
        ("dl4j/weights_lstm_tensorflow_1.h5", True),
        ("dl4j_oracle/simple_lstm_th_keras_1_model.h5", True),
        ("dl4j_oracle/simple_lstm_tf_keras_1_weights.h5", True),  # weights only, no attributes at all
        ("dl4j/weights_dense_tensorflow_2.h5", False),
        ("dl4j/weights_embedding_conv1d_flatten_theano_2.h5", False),
        ("dl4j_oracle/simple_lstm_tf_keras_2_weights.h5", False),
        ("dl4j_oracle/simple_lstm_tf_keras_1_inputs_and_outputs.h5", False),  # data, not a model
    ],
)
def test_is_keras1(rel, expected):
    assert is_keras1(H5 / rel) is expected


def test_is_keras1_without_version_attrs(tmp_path):
    cfg = {"class_name": "Sequential", "config": [k1_dense("d", 2, batch_input_shape=[None, 3])]}
    p = write_keras1(
        tmp_path / "k1.h5", cfg, {"d": [("d_W:0", np.ones((3, 2))), ("d_b:0", np.ones(2))]}, version=None
    )
    assert is_keras1(p)
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    assert not is_keras1(tmp_path / "x.h5")
    with pytest.raises(NotFoundError):
        is_keras1(tmp_path / "missing.h5")


@needs_corpus
def test_legacy_reason():
    assert "Keras 1" in legacy_reason(DL4J / "weights_dense_tensorflow_1.h5")
    assert "Theano" in legacy_reason(DL4J / "weights_embedding_conv1d_flatten_theano_2.h5")
    assert "hard_sigmoid" in legacy_reason(DL4J / "examples_functional_lstm_lstm_functional_tf_keras_2.h5")
    assert legacy_reason(DL4J / "weights_dense_tensorflow_2.h5") is None


# ============================================================================== ground truth 1: the MLP


@needs_corpus
@pytest.mark.parametrize("source", ["model", "json"])
def test_mlp_reproduces_stored_predictions(tfk, source):
    stem = ORACLE / "simple_sparse_xent_mlp_keras_2"
    if source == "model":
        loaded = legacy(f"{stem}_model.h5")
    else:
        loaded = legacy(f"{stem}_weights.h5", architecture=f"{stem}_config.json")
    assert loaded.loader == LOADER_KERAS2
    x = h5_array(f"{stem}_inputs_and_outputs.h5", "inputs/dense_1_input").astype(np.float32)
    want = h5_array(f"{stem}_inputs_and_outputs.h5", "outputs/activation_1")
    np.testing.assert_allclose(predict(loaded.model, x), want, atol=1e-6, rtol=0)


# ============================================================================== ground truth 2: the LSTMs


def lstm_reference(stem):
    """An independent forward pass of the stored LSTM + Dense, straight from the HDF5 weights."""
    path = Path(f"{stem}_model.h5")
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        keras1 = str(f.attrs["keras_version"]).startswith("1.")
        g = f["model_weights/lstm_1"]
        names = [n.decode() for n in g.attrs["weight_names"]]
        data = {n: np.asarray(g[n][()], dtype=np.float64) for n in names}
        d = f["model_weights/dense_1"]
        dnames = [n.decode() for n in d.attrs["weight_names"]]
        W, b = (np.asarray(d[n][()], dtype=np.float64) for n in dnames)
    lstm_cfg = cfg["config"][0]["config"]
    if keras1:
        # Keras 1 names each matrix by gate: lstm_1_W_i(:0), lstm_1_U_c, lstm_1_b_f...
        def get(kind, gate):
            (value,) = [v for n, v in data.items() if n.split(":")[0].endswith(f"_{kind}_{gate}")]
            return value

        gates = {g_: (get("W", g_), get("U", g_), get("b", g_)) for g_ in "ifco"}
        act, inner = lstm_cfg["activation"], lstm_cfg["inner_activation"]
    else:
        # Keras 2 fuses them: kernel/recurrent_kernel/bias, columns in gate order i, f, c, o.
        kernel, rec, bias = (data[n] for n in names)
        u = rec.shape[0]
        gates = {
            g_: (kernel[:, k * u : (k + 1) * u], rec[:, k * u : (k + 1) * u], bias[k * u : (k + 1) * u])
            for k, g_ in enumerate("ifco")
        }
        act, inner = lstm_cfg["activation"], lstm_cfg["recurrent_activation"]
    assert inner == "hard_sigmoid" and not lstm_cfg["return_sequences"]

    def forward(x):
        h = np_lstm(x.astype(np.float64), gates, act, inner)
        return h, h @ W + b

    return forward


def run_in_batches(model, x, batch):
    if batch is None:
        return predict(model, x)
    return np.concatenate([predict(model, x[i : i + batch]) for i in range(0, len(x), batch)])


LSTMS = [
    ("simple_lstm_tf_keras_1", "lstm_input_1", LOADER_KERAS1),
    ("simple_lstm_th_keras_1", "lstm_input_1", LOADER_KERAS1),
    ("simple_lstm_tf_keras_2", "lstm_1_input", LOADER_KERAS2),
]


@needs_corpus
@pytest.mark.parametrize("source", ["model", "json"])
@pytest.mark.parametrize("stem_name, input_name, loader", LSTMS)
def test_lstm_matches_numpy_forward_pass(tfk, stem_name, input_name, loader, source):
    stem = ORACLE / stem_name
    if source == "model":
        loaded = legacy(f"{stem}_model.h5")
    else:
        loaded = legacy(f"{stem}_weights.h5", architecture=f"{stem}_config.json")
    assert loaded.loader == loader
    # The stored "outputs" are training targets: only the inputs are used here.
    x = h5_array(f"{stem}_inputs_and_outputs.h5", f"inputs/{input_name}").astype(np.float32)
    _, want = lstm_reference(stem)(x)
    batch = loaded.model.inputs[0].shape[0]  # simple_lstm_tf_keras_2 was saved with batch size 25
    got = run_in_batches(loaded.model, x, batch)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-6)


@needs_corpus
@pytest.mark.parametrize("stem_name", ["simple_lstm_tf_keras_1", "simple_lstm_th_keras_1"])
def test_keras1_lstm_matches_keras_1_own_predictions(tfk, stem_name):
    """The Keras 1 oracle files also hold ``predictions``/``activations`` Keras 1.2.2 computed itself
    (TensorFlow and Theano backends): the rebuilt model reproduces both the LSTM state and the output."""
    stem = ORACLE / stem_name
    io = f"{stem}_inputs_and_outputs.h5"
    x = h5_array(io, "inputs/lstm_input_1").astype(np.float32)
    model = legacy(f"{stem}_model.h5").model
    np.testing.assert_allclose(predict(model, x), h5_array(io, "predictions/dense_1"), atol=5e-5, rtol=1e-6)
    tfk_model = tfk.Model(model.inputs, model.get_layer("lstm_1").output)
    np.testing.assert_allclose(predict(tfk_model, x), h5_array(io, "activations/lstm_1"), atol=1e-6, rtol=0)
    # ...and the targets are not what the model computes (why they cannot serve as an oracle).
    assert np.abs(h5_array(io, "outputs/dense_1") - h5_array(io, "predictions/dense_1")).max() > 1


@needs_corpus
def test_gate_order_and_activation_matter(tfk):
    """The LSTM oracle can tell a wrong gate order or a Keras 3 hard_sigmoid apart."""
    stem = ORACLE / "simple_lstm_tf_keras_1"
    x = h5_array(f"{stem}_inputs_and_outputs.h5", "inputs/lstm_input_1")
    truth = lstm_reference(stem)(x)[0]
    with h5py.File(f"{stem}_model.h5", "r") as f:
        g = f["model_weights/lstm_1"]
        w = {
            k: np.asarray(g[f"lstm_1_{k}:0"][()], dtype=np.float64)
            for k in ("W_i", "U_i", "b_i", "W_c", "U_c", "b_c", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o")
        }
    swapped = {
        "i": (w["W_i"], w["U_i"], w["b_i"]),
        "f": (w["W_c"], w["U_c"], w["b_c"]),
        "c": (w["W_f"], w["U_f"], w["b_f"]),
        "o": (w["W_o"], w["U_o"], w["b_o"]),
    }
    ACT["keras3_hard_sigmoid"] = lambda v: np.clip(v / 6 + 0.5, 0, 1)
    assert np.abs(np_lstm(x, swapped) - truth).max() > 0.05
    right = {g_: (w[f"W_{g_}"], w[f"U_{g_}"], w[f"b_{g_}"]) for g_ in "ifco"}
    assert np.abs(np_lstm(x, right, inner="keras3_hard_sigmoid") - truth).max() > 0.05


@needs_corpus
def test_rebuilt_lstm_uses_keras1_hard_sigmoid(tfk):
    import tensorflow as tf

    layer = legacy(ORACLE / "simple_lstm_tf_keras_1_model.h5").model.get_layer("lstm_1")
    v = np.array([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0], dtype=np.float32)
    got = np.asarray(layer.cell.recurrent_activation(tf.constant(v)))
    np.testing.assert_allclose(got, hard_sigmoid(v), atol=1e-7)
    assert np.abs(got - np.clip(v / 6 + 0.5, 0, 1)).max() > 0.05


@needs_corpus
def test_keras3_changes_a_keras2_hard_sigmoid_lstm(tfk):
    """A Keras 2.0.8 file Keras 3 *does* load computes other numbers there: the legacy loader does not."""
    keras = pytest.importorskip("keras")
    path = DL4J / "examples_functional_lstm_lstm_functional_tf_keras_2.h5"
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        kernel, rec, bias = (
            np.asarray(g[f"lstm/lstm/{n}:0"][()], np.float64) for n in ("kernel", "recurrent_kernel", "bias")
        )
        W, b = (
            np.asarray(g[f"outputLayer_a/outputLayer_a/{n}:0"][()], np.float64) for n in ("kernel", "bias")
        )
    u = rec.shape[0]
    gates = {
        g_: (kernel[:, k * u : (k + 1) * u], rec[:, k * u : (k + 1) * u], bias[k * u : (k + 1) * u])
        for k, g_ in enumerate("ifco")
    }
    x = rng(1).normal(0, 2, (6, 10, 4))
    want = softmax(np_lstm(x, gates) @ W + b)
    ours = legacy(path)
    np.testing.assert_allclose(predict(ours.model, x.astype(np.float32)), want, atol=1e-6)
    k3 = keras.saving.load_model(str(path), compile=False)
    assert np.abs(np.asarray(k3([x.astype(np.float32)])) - want).max() > 1e-3


# ============================================================================== ground truth 4: Theano convolutions


@needs_corpus
def test_theano_conv2d_is_a_true_convolution(tfk):
    path = DL4J / "weights_conv2d_theano_1.h5"
    loaded = legacy(path)
    assert loaded.loader == LOADER_KERAS1 and loaded.backend == "theano"
    k = h5_array(path, "model_weights/convolution2d_1/convolution2d_1_W")  # (3, 3, 5, 6): dim_ordering tf
    b = h5_array(path, "model_weights/convolution2d_1/convolution2d_1_b")
    x = rng(2).normal(size=(4, 5, 5, 5))
    want = true_conv2d_nhwc(x, k, b)
    assert np.abs(cross_corr2d_nhwc(x, k, b) - want).max() > 0.05  # the flip matters for this kernel
    # The kernel's values reach the hundreds: float32 rounding sets the tolerance.
    np.testing.assert_allclose(predict(loaded.model, x.astype(np.float32)), want, rtol=1e-5, atol=1e-4)
    # The same file read as TensorFlow-written gives the cross-correlation.
    as_tf = load_legacy_model(path, backend="tensorflow")
    got = predict(as_tf.model, x.astype(np.float32))
    np.testing.assert_allclose(got, cross_corr2d_nhwc(x, k, b), rtol=1e-5, atol=1e-4)


@needs_corpus
def test_theano_embedding_conv1d_flatten(tfk):
    path = DL4J / "weights_embedding_conv1d_flatten_theano_2.h5"
    loaded = legacy(path)
    assert loaded.loader == LOADER_KERAS2 and loaded.backend == "theano"
    emb = h5_array(path, "model_weights/embedding_1/embedding_1/embeddings")  # (4, 5)
    k = h5_array(path, "model_weights/conv1d_1/conv1d_1/kernel")  # (3, 5, 6) = (length, in, out)
    b = h5_array(path, "model_weights/conv1d_1/conv1d_1/bias")
    ids = rng(3).integers(0, 4, size=(5, 10))
    e = emb[ids]  # (5, 10, 5)
    want = np.zeros((5, 8, 6))
    for a in range(3):
        want += np.einsum("nti,io->nto", e[:, a : a + 8], k[2 - a])
    want = (want + b).reshape(5, -1)  # Flatten: (time, channel) order
    np.testing.assert_allclose(predict(loaded.model, ids.astype(np.float32)), want, atol=1e-5)


# ============================================================================== ground truth 3: every corpus file

# Which loader KerasRunner (and so modelconv) uses for each file, and what this module alone
# does with it. KerasRunner sends a file here when legacy_reason() names one (Keras 1, Theano
# kernels, Keras 2's hard_sigmoid), and to tf_keras when Keras 3 refuses the file or rebuilds
# its inputs with the wrong rank (simple_sparse_xent_mlp).
CORPUS_TABLE = {
    "dl4j/examples_custom_loss.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/examples_functional_lstm_lstm_functional_tf_keras_2.h5": (LOADER_KERAS2, LOADER_KERAS2),
    "dl4j/examples_lambda_sequential_lambda.h5": ("refused", "refused"),
    "dl4j/tfkeras_rnn_9.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/tfkeras_some_loss.h5": ("keras", LOADER_KERAS2),
    "dl4j/weights_batch_to_conv2d_tensorflow_2.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/weights_bidirectional_lstm_tensorflow_2.h5": (LOADER_KERAS2, LOADER_KERAS2),
    "dl4j/weights_conv2d_tensorflow_2.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/weights_conv2d_theano_1.h5": (LOADER_KERAS1, LOADER_KERAS1),
    "dl4j/weights_dense_tensorflow_1.h5": (LOADER_KERAS1, LOADER_KERAS1),
    "dl4j/weights_dense_tensorflow_2.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/weights_embedding_conv1d_flatten_theano_2.h5": (LOADER_KERAS2, LOADER_KERAS2),
    "dl4j/weights_keras-attention.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j/weights_lstm_tensorflow_1.h5": (LOADER_KERAS1, LOADER_KERAS1),
    "dl4j/weights_lstm_tensorflow_2.h5": (LOADER_KERAS2, LOADER_KERAS2),
    "dl4j/weights_sepconv2d_tensorflow_2.h5": ("tf_keras", LOADER_KERAS2),
    "dl4j_oracle/simple_lstm_tf_keras_1_model.h5": (LOADER_KERAS1, LOADER_KERAS1),
    "dl4j_oracle/simple_lstm_tf_keras_2_model.h5": (LOADER_KERAS2, LOADER_KERAS2),
    "dl4j_oracle/simple_lstm_th_keras_1_model.h5": (LOADER_KERAS1, LOADER_KERAS1),
    "dl4j_oracle/simple_sparse_xent_mlp_keras_2_model.h5": ("tf_keras", LOADER_KERAS2),
}
# TensorFlow-written Keras 2 files tf_keras itself loads correctly (no Theano kernels).
TF_KERAS_LOADS = [
    "dl4j/examples_custom_loss.h5",
    "dl4j/tfkeras_rnn_9.h5",
    "dl4j/weights_batch_to_conv2d_tensorflow_2.h5",
    "dl4j/weights_bidirectional_lstm_tensorflow_2.h5",
    "dl4j/weights_conv2d_tensorflow_2.h5",
    "dl4j/weights_dense_tensorflow_2.h5",
    "dl4j/weights_keras-attention.h5",
    "dl4j/weights_lstm_tensorflow_2.h5",
    "dl4j/weights_sepconv2d_tensorflow_2.h5",
    "dl4j_oracle/simple_lstm_tf_keras_2_model.h5",
]


@needs_corpus
def test_corpus_table_lists_every_model_file():
    with_config = []
    for p in sorted(H5.glob("*/*.h5")):
        with h5py.File(p, "r") as f:
            if "model_config" in f.attrs:
                with_config.append(str(p.relative_to(H5)))
    assert with_config == sorted(CORPUS_TABLE)


@needs_corpus
@pytest.mark.parametrize("rel", sorted(CORPUS_TABLE))
def test_corpus_file_loads_somewhere(tfk, rel):
    from tfmodelkit.verify.runners import KerasRunner

    runner_expect, legacy_expect = CORPUS_TABLE[rel]
    path = H5 / rel
    if runner_expect == "refused":
        with pytest.raises(UserError) as err:
            KerasRunner(path)
        assert "Python code" in str(err.value) or "no Keras can load it" in str(err.value)
    else:
        assert KerasRunner(path).loader == runner_expect
    if legacy_expect == "refused":
        with pytest.raises(UserError, match="Python bytecode"):
            load_legacy_model(path)
    else:
        loaded = legacy(path)
        assert loaded.loader == legacy_expect
        assert loaded.model.inputs and loaded.model.outputs


@needs_corpus
@pytest.mark.parametrize("rel", TF_KERAS_LOADS)
def test_keras2_files_agree_with_tf_keras(tfk, rel):
    """Where tf_keras loads a TensorFlow-written Keras 2 file itself, this module computes the same."""
    path = H5 / rel
    ref = tfk.models.load_model(str(path), compile=False)
    ours = legacy(path).model
    feeds = []
    for t in ref.inputs:
        shape = [d if d is not None else 3 for d in t.shape]
        shape[0] = t.shape[0] or 2
        if t.dtype.is_integer or "embedding" in ref.layers[0].name:
            feeds.append(rng(4).integers(0, 7, size=shape).astype(np.float32))
        else:
            feeds.append(rng(4).normal(size=shape).astype(np.float32))
    x = feeds if len(feeds) > 1 else feeds[0]
    np.testing.assert_allclose(predict(ours, x), predict(ref, x), atol=1e-6)


@needs_corpus
def test_weights_only_file_needs_architecture(tfk):
    with pytest.raises(UserError, match="weights only.*architecture"):
        load_legacy_model(ORACLE / "simple_lstm_tf_keras_1_weights.h5")
    with pytest.raises(FormatError, match="not a Keras model or weights file"):
        load_legacy_model(ORACLE / "simple_lstm_tf_keras_1_inputs_and_outputs.h5")


@needs_corpus
def test_lambda_file_refused_then_explained_when_unsafe(tfk, tmp_path):
    copy = tmp_path / "lambda.h5"
    shutil.copy(DL4J / "examples_lambda_sequential_lambda.h5", copy)
    with pytest.raises(UserError, match=r"lambda_1 \(Lambda\), lambda_2 \(Lambda\).*unsafe=True"):
        load_legacy_model(copy)
    # Its bytecode is Python 2 marshal data: Python 3 cannot load it, even unsafely.
    with pytest.raises(UnsupportedError, match="another Python version"):
        load_legacy_model(copy, unsafe=True)


# ============================================================================== synthetic Keras 1 files


def test_keras1_lambda_loads_only_when_unsafe(tfk, tmp_path):
    code = marshal.dumps((lambda x: x * 2.0 + 1.0).__code__).decode("raw_unicode_escape")
    lam = {
        "class_name": "Lambda",
        "config": {
            "name": "lambda_1",
            "trainable": True,
            "function": [code, None, None],
            "function_type": "lambda",
            "output_shape": None,
            "output_shape_type": "raw",
            "arguments": {},
        },
    }
    cfg = {
        "class_name": "Sequential",
        "config": [k1_dense("dense_1", 3, input_dim=4, batch_input_shape=[None, 4]), lam],
    }
    W, b = rng(5).normal(size=(4, 3)), rng(6).normal(size=3)
    p = write_keras1(
        tmp_path / "lam.h5", cfg, {"dense_1": [("dense_1_W:0", W), ("dense_1_b:0", b)], "lambda_1": []}
    )
    with pytest.raises(UserError, match="Python bytecode"):
        load_legacy_model(p)
    loaded = load_legacy_model(p, unsafe=True)
    x = rng(7).normal(size=(2, 4))
    np.testing.assert_allclose(predict(loaded.model, x.astype(np.float32)), (x @ W + b) * 2 + 1, atol=1e-5)


def test_theano_th_conv_pool_flatten_dense(tfk, tmp_path):
    """Keras 1 + Theano + dim_ordering 'th': (out, in, rows, cols) kernels, true convolution, and a
    Dense reading the channel-major Flatten: the model keeps taking NCHW inputs."""
    r = rng(8)
    K = r.normal(size=(3, 2, 3, 3))  # (out, in, rows, cols), as Keras 1 'th' stored it
    bk = r.normal(size=3)
    W = r.normal(size=(3 * 2 * 2, 4))
    bd = r.normal(size=4)
    conv = {
        "class_name": "Convolution2D",
        "config": {
            "name": "convolution2d_1",
            "trainable": True,
            "batch_input_shape": [None, 2, 6, 6],
            "input_dtype": "float32",
            "nb_filter": 3,
            "nb_row": 3,
            "nb_col": 3,
            "init": "glorot_uniform",
            "activation": "relu",
            "border_mode": "valid",
            "subsample": [1, 1],
            "dim_ordering": "th",
            "W_regularizer": None,
            "b_regularizer": None,
            "activity_regularizer": None,
            "W_constraint": None,
            "b_constraint": None,
            "bias": True,
        },
    }
    pool = {
        "class_name": "MaxPooling2D",
        "config": {
            "name": "maxpooling2d_1",
            "trainable": True,
            "pool_size": [2, 2],
            "strides": [2, 2],
            "border_mode": "valid",
            "dim_ordering": "th",
        },
    }
    flat = {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}}
    cfg = {
        "class_name": "Sequential",
        "config": [conv, pool, flat, k1_dense("dense_1", 4, "linear", input_dim=12)],
    }
    weights = {
        "convolution2d_1": [("convolution2d_1_W", K), ("convolution2d_1_b", bk)],
        "maxpooling2d_1": [],
        "flatten_1": [],
        "dense_1": [("dense_1_W", W), ("dense_1_b", bd)],
    }
    p = write_keras1(tmp_path / "th.h5", cfg, weights, split_names=True, str_attrs=True)
    try:
        loaded = load_legacy_model(p)
    except UnsupportedError as e:
        if "oneDNN" in str(e):  # a TensorFlow build without CPU kernels for NCHW convolutions
            pytest.skip(str(e))
        raise
    assert loaded.backend == "theano"
    assert any("rotated 180" in n for n in loaded.notes) and any("transposed" in n for n in loaded.notes)

    x = r.normal(size=(3, 2, 6, 6))  # NCHW, as the Theano model took it
    conv_out = np.zeros((3, 3, 4, 4))
    for a in range(3):
        for c in range(3):
            conv_out += np.einsum("nihw,oi->nohw", x[:, :, a : a + 4, c : c + 4], K[:, :, 2 - a, 2 - c])
    conv_out = np.maximum(conv_out + bk[None, :, None, None], 0)
    pooled = conv_out.reshape(3, 3, 2, 2, 2, 2).max(axis=(3, 5))
    want = pooled.reshape(3, -1) @ W + bd  # channel-major flatten (linear: a softmax could saturate)
    np.testing.assert_allclose(predict(loaded.model, x.astype(np.float32)), want, atol=1e-5)


def test_keras1_functional_merge(tfk, tmp_path):
    r = rng(9)
    W1, b1, W2, b2 = r.normal(size=(3, 4)), r.normal(size=4), r.normal(size=(2, 4)), r.normal(size=4)
    W3, b3 = r.normal(size=(8, 2)), r.normal(size=2)

    def node(cls, name, inbound, **config):
        return {"class_name": cls, "name": name, "config": {"name": name, **config}, "inbound_nodes": inbound}

    def dense(name, units, act, src):
        d = k1_dense(name, units, act)["config"]
        d.pop("name")
        return node("Dense", name, [[[src, 0, 0]]], **d)

    merge_cfg = {
        "concat_axis": -1,
        "dot_axes": -1,
        "output_shape": None,
        "output_shape_type": "raw",
        "output_mask": None,
        "output_mask_type": "raw",
        "arguments": {},
        "mode_type": "raw",
    }
    cfg = {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                node(
                    "InputLayer",
                    "input_1",
                    [],
                    batch_input_shape=[None, 3],
                    input_dtype="float32",
                    sparse=False,
                ),
                node(
                    "InputLayer",
                    "input_2",
                    [],
                    batch_input_shape=[None, 2],
                    input_dtype="float32",
                    sparse=False,
                ),
                dense("dense_1", 4, "tanh", "input_1"),
                dense("dense_2", 4, "relu", "input_2"),
                node(
                    "Merge", "merge_1", [[["dense_1", 0, 0], ["dense_2", 0, 0]]], mode="concat", **merge_cfg
                ),
                node("Merge", "merge_2", [[["dense_1", 0, 0], ["dense_2", 0, 0]]], mode="sum", **merge_cfg),
                dense("dense_3", 2, "linear", "merge_1"),
            ],
            "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
            "output_layers": [["dense_3", 0, 0], ["merge_2", 0, 0]],
        },
    }
    weights = {
        "input_1": [],
        "input_2": [],
        "dense_1": [("dense_1_W:0", W1), ("dense_1_b:0", b1)],
        "dense_2": [("dense_2_W:0", W2), ("dense_2_b:0", b2)],
        "merge_1": [],
        "merge_2": [],
        "dense_3": [("dense_3_W:0", W3), ("dense_3_b:0", b3)],
    }
    loaded = load_legacy_model(write_keras1(tmp_path / "f.h5", cfg, weights))
    a, c = r.normal(size=(5, 3)), r.normal(size=(5, 2))
    h1, h2 = np.tanh(a @ W1 + b1), np.maximum(c @ W2 + b2, 0)
    out, summed = loaded.model([a.astype(np.float32), c.astype(np.float32)], training=False)
    np.testing.assert_allclose(np.asarray(out), np.concatenate([h1, h2], 1) @ W3 + b3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(summed), h1 + h2, atol=1e-5)


def test_keras1_sequential_starting_with_merge(tfk, tmp_path):
    r = rng(10)
    Wa, ba, Wb, bb, Wo, bo = (r.normal(size=s) for s in ((3, 4), 4, (5, 4), 4, (4, 2), 2))
    branch_a = {
        "class_name": "Sequential",
        "config": [k1_dense("dense_a", 4, "tanh", input_dim=3, batch_input_shape=[None, 3])],
    }
    branch_b = {
        "class_name": "Sequential",
        "config": [k1_dense("dense_b", 4, "linear", input_dim=5, batch_input_shape=[None, 5])],
    }
    merge = {
        "class_name": "Merge",
        "config": {
            "name": "merge_1",
            "layers": [branch_a, branch_b],
            "mode": "mul",
            "concat_axis": -1,
            "dot_axes": -1,
            "output_shape": None,
            "output_shape_type": "raw",
            "mode_type": "raw",
            "arguments": {},
        },
    }
    cfg = {"class_name": "Sequential", "config": [merge, k1_dense("dense_out", 2, "linear", input_dim=4)]}
    weights = {  # Keras 1 saved the branches' layers first (Sequential.flattened_layers)
        "dense_a": [("dense_a_W:0", Wa), ("dense_a_b:0", ba)],
        "dense_b": [("dense_b_W:0", Wb), ("dense_b_b:0", bb)],
        "merge_1": [],
        "dense_out": [("dense_out_W:0", Wo), ("dense_out_b:0", bo)],
    }
    loaded = load_legacy_model(write_keras1(tmp_path / "m.h5", cfg, weights))
    assert any("rebuilt as a functional model" in n for n in loaded.notes)
    a, c = r.normal(size=(4, 3)), r.normal(size=(4, 5))
    want = (np.tanh(a @ Wa + ba) * (c @ Wb + bb)) @ Wo + bo
    np.testing.assert_allclose(
        predict(loaded.model, [a.astype(np.float32), c.astype(np.float32)]), want, atol=1e-5
    )


def test_keras1_embedding_gru_batchnorm(tfk, tmp_path):
    r = rng(11)
    vocab, dim, units, steps = 9, 3, 4, 5
    E = r.normal(size=(vocab, dim))
    gru_w = {
        f"{m}_{g}": r.normal(size=s)
        for g in "zrh"
        for m, s in (("W", (dim, units)), ("U", (units, units)), ("b", (units,)))
    }
    gamma, beta, mean, var = (
        r.normal(size=units),
        r.normal(size=units),
        r.normal(size=units),
        r.uniform(0.5, 2, units),
    )
    emb = {
        "class_name": "Embedding",
        "config": {
            "name": "embedding_1",
            "input_dim": vocab,
            "output_dim": dim,
            "init": "uniform",
            "input_length": steps,
            "mask_zero": False,
            "W_regularizer": None,
            "activity_regularizer": None,
            "W_constraint": None,
            "dropout": 0.0,
            "batch_input_shape": [None, steps],
            "input_dtype": "int32",
            "trainable": True,
        },
    }
    gru = {
        "class_name": "GRU",
        "config": {
            "name": "gru_1",
            "output_dim": units,
            "init": "glorot_uniform",
            "inner_init": "orthogonal",
            "activation": "tanh",
            "inner_activation": "hard_sigmoid",
            "W_regularizer": None,
            "U_regularizer": None,
            "b_regularizer": None,
            "dropout_W": 0.0,
            "dropout_U": 0.0,
            "return_sequences": False,
            "go_backwards": False,
            "stateful": False,
            "unroll": False,
            "consume_less": "cpu",
            "input_dim": dim,
            "input_length": steps,
            "trainable": True,
        },
    }
    bn = {
        "class_name": "BatchNormalization",
        "config": {
            "name": "batchnormalization_1",
            "epsilon": 0.001,
            "mode": 0,
            "axis": -1,
            "gamma_regularizer": None,
            "beta_regularizer": None,
            "momentum": 0.99,
            "trainable": True,
        },
    }
    cfg = {"class_name": "Sequential", "config": [emb, gru, bn]}
    order = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W_h", "U_h", "b_h")  # Keras 1's storage order
    weights = {
        "embedding_1": [("embedding_1_W:0", E)],
        "gru_1": [(f"gru_1_{k}:0", gru_w[k]) for k in order],
        "batchnormalization_1": [
            ("batchnormalization_1_gamma:0", gamma),
            ("batchnormalization_1_beta:0", beta),
            ("batchnormalization_1_running_mean:0", mean),
            ("batchnormalization_1_running_std:0", var),  # holds the variance despite its name
        ],
    }
    loaded = load_legacy_model(write_keras1(tmp_path / "g.h5", cfg, weights))
    ids = r.integers(0, vocab, size=(6, steps))
    h = np_gru(E[ids], {g: (gru_w[f"W_{g}"], gru_w[f"U_{g}"], gru_w[f"b_{g}"]) for g in "zrh"})
    want = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    assert loaded.model.inputs[0].dtype.name == "int32"
    assert loaded.model.get_layer("embedding_1").weights[0].dtype.name == "float32"
    np.testing.assert_allclose(predict(loaded.model, ids.astype(np.int32)), want, atol=1e-5)


@needs_corpus
def test_unnamed_keras1_weights_fall_back_to_storage_order(tfk, tmp_path):
    """``param_N`` names (no role in the name): the LSTM still matches Keras 1's own predictions."""
    src = ORACLE / "simple_lstm_tf_keras_1_model.h5"
    with h5py.File(src, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        weights = {}
        for lname in ("lstm_1", "dense_1"):
            g = f[f"model_weights/{lname}"]
            names = [n.decode() for n in g.attrs["weight_names"]]
            weights[lname] = [(f"param_{i}", g[n][()]) for i, n in enumerate(names)]
    loaded = load_legacy_model(write_keras1(tmp_path / "p.h5", cfg, weights))
    assert any("storage order" in n for n in loaded.notes)
    io = ORACLE / "simple_lstm_tf_keras_1_inputs_and_outputs.h5"
    x = h5_array(io, "inputs/lstm_input_1").astype(np.float32)
    np.testing.assert_allclose(
        predict(loaded.model, x), h5_array(io, "predictions/dense_1"), atol=5e-5, rtol=1e-6
    )


def test_weight_shape_mismatch_is_a_clear_error(tfk, tmp_path):
    cfg = {
        "class_name": "Sequential",
        "config": [k1_dense("dense_1", 3, input_dim=4, batch_input_shape=[None, 4])],
    }
    p = write_keras1(
        tmp_path / "bad.h5", cfg, {"dense_1": [("dense_1_W:0", np.ones((5, 3))), ("dense_1_b:0", np.ones(3))]}
    )
    with pytest.raises(CorruptFileError, match=r"dense_1.*\[5, 3\].*\[4, 3\]"):
        load_legacy_model(p)
    p2 = write_keras1(tmp_path / "extra.h5", cfg, {"dense_9": [("dense_9_W:0", np.ones((4, 3)))]})
    with pytest.raises(CorruptFileError, match="dense_9"):
        load_legacy_model(p2)


def test_module_does_not_import_tensorflow():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import sys, tfmodelkit.loaders.legacy, tfmodelkit.loaders.legacy_config, tfmodelkit.loaders.legacy_weights\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def k1_lstm(name, units, **extra):
    cfg = {
        "name": name,
        "trainable": True,
        "return_sequences": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "consume_less": "cpu",
        "output_dim": units,
        "init": "glorot_uniform",
        "inner_init": "orthogonal",
        "forget_bias_init": "one",
        "activation": "tanh",
        "inner_activation": "hard_sigmoid",
        "W_regularizer": None,
        "U_regularizer": None,
        "b_regularizer": None,
        "dropout_W": 0.0,
        "dropout_U": 0.0,
        **extra,
    }
    return {"class_name": "LSTM", "config": cfg}


def test_keras1_bidirectional_lstm(tfk, tmp_path):
    r = rng(12)
    dim, units, steps = 3, 4, 5
    shapes = {"W": (dim, units), "U": (units, units), "b": (units,)}
    fwd = {f"{m}_{g}": r.normal(size=shapes[m]) for g in "icfo" for m in "WUb"}
    bwd = {f"{m}_{g}": r.normal(size=shapes[m]) for g in "icfo" for m in "WUb"}
    bi = {
        "class_name": "Bidirectional",
        "config": {
            "name": "bidirectional_1",
            "trainable": True,
            "batch_input_shape": [None, steps, dim],
            "input_dtype": "float32",
            "layer": k1_lstm("lstm_1", units),
            "merge_mode": "concat",
        },
    }
    order = [f"{m}_{g}" for g in "icfo" for m in "WUb"]  # W_i, U_i, b_i, W_c, ...
    weights = {
        "bidirectional_1": [(f"forward_lstm_1_{k}:0", fwd[k]) for k in order]
        + [(f"backward_lstm_1_{k}:0", bwd[k]) for k in order]
    }
    loaded = load_legacy_model(
        write_keras1(tmp_path / "bi.h5", {"class_name": "Sequential", "config": [bi]}, weights)
    )
    x = r.normal(size=(3, steps, dim))

    def gates(w):
        return {g: (w[f"W_{g}"], w[f"U_{g}"], w[f"b_{g}"]) for g in "ifco"}

    want = np.concatenate([np_lstm(x, gates(fwd)), np_lstm(x[:, ::-1], gates(bwd))], axis=1)
    np.testing.assert_allclose(predict(loaded.model, x.astype(np.float32)), want, atol=1e-5)


def test_keras1_nested_sequential_without_name(tfk, tmp_path):
    r = rng(13)
    W1, b1, W2, b2 = r.normal(size=(3, 4)), r.normal(size=4), r.normal(size=(4, 2)), r.normal(size=2)
    inner = {
        "class_name": "Sequential",
        "config": [k1_dense("inner_1", 4, "tanh", input_dim=3, batch_input_shape=[None, 3])],
    }
    cfg = {"class_name": "Sequential", "config": [inner, k1_dense("outer", 2, input_dim=4)]}
    weights = {  # Keras 1 saved the nested model as one group, under a name its config does not carry
        "sequential_1": [("inner_1_W:0", W1), ("inner_1_b:0", b1)],
        "outer": [("outer_W:0", W2), ("outer_b:0", b2)],
    }
    loaded = load_legacy_model(write_keras1(tmp_path / "n.h5", cfg, weights))
    x = r.normal(size=(2, 3))
    np.testing.assert_allclose(
        predict(loaded.model, x.astype(np.float32)), np.tanh(x @ W1 + b1) @ W2 + b2, atol=1e-5
    )


@needs_corpus
def test_keras1_tensorflow_conv_names_mean_no_flip(tfk, tmp_path):
    """The same Keras 1 conv with TensorFlow-style ``:0`` names is read as TF-written: no rotation."""
    src = DL4J / "weights_conv2d_theano_1.h5"
    with h5py.File(src, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        g = f["model_weights/convolution2d_1"]
        k, b = g["convolution2d_1_W"][()], g["convolution2d_1_b"][()]
    weights = {"convolution2d_1": [("convolution2d_1_W:0", k), ("convolution2d_1_b:0", b)]}
    loaded = load_legacy_model(write_keras1(tmp_path / "tf.h5", cfg, weights))
    assert loaded.backend == "tensorflow" and not any("rotated" in n for n in loaded.notes)
    x = rng(14).normal(size=(2, 5, 5, 5))
    want = cross_corr2d_nhwc(x, k.astype(np.float64), b)
    np.testing.assert_allclose(predict(loaded.model, x.astype(np.float32)), want, rtol=1e-5, atol=1e-4)
