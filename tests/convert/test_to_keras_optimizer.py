"""``to-keras --include-optimizer``: the source's Adam, SGD (momentum) or RMSprop state goes into the
``.keras`` so that training continues: plain Keras 3 in a fresh process (tfmodelkit unimportable)
gives back the source's step counter and every slot value, read here from the source file itself."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.convert.plain_keras import plain_keras_optimizer

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

pytestmark = pytest.mark.tf

MODELS = FIXTURES / "models"
SUBCLASSED_CKPT = FIXTURES / "checkpoint" / "keras3_subclassed" / "ckpt"
#: Keras 3 slot names, from tf_keras's.
KERAS3_SLOT = {"m": "momentum", "v": "velocity", "vhat": "velocity_hat", "velocity": "velocity",
               "momentum": "momentum", "average_gradient": "average_gradient"}  # fmt: skip


def _to_keras():
    from tfmodelkit.convert.to_keras import to_keras

    return to_keras


def _no_verify():
    from tfmodelkit.convert.base import VerifyOptions

    return VerifyOptions(enabled=False)


def _h5_optimizer(path):
    with h5py.File(path, "r") as f:
        group = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        return {n: np.asarray(group[n][()]) for n in names}


def _keras3_name(tf_keras_name):
    """``Adam/m/dense/kernel:0`` -> ``dense_kernel_momentum`` (``iteration:0`` -> ``iteration``)."""
    parts = tf_keras_name.removesuffix(":0").split("/")
    if len(parts) == 1:
        return parts[0]
    return "_".join(parts[2:]) + "_" + KERAS3_SLOT[parts[1]]


def _assert_continues(answer, source, name_of):
    """Every source value is the loaded optimizer's variable of the same name."""
    loaded = {p.split("/", 1)[-1]: v for p, v in zip(answer["paths"], answer["values"], strict=True)}
    for name, value in source.items():
        key = name_of(name)
        assert key in loaded, (key, sorted(loaded))
        np.testing.assert_array_equal(loaded[key], value, err_msg=name)


def test_tf_keras_adam_h5_continues(tmp_path):
    src = FIXTURES / "keras_h5" / "tfkeras_full_adam.h5"
    dst = tmp_path / "m.keras"
    report = _to_keras()(src, dst, include_optimizer=True)
    assert report.ok, (report.verification, report.warnings)
    assert report.details["optimizer"] == {"class": "Adam", "iterations": 1, "slots": 8, "loss": "mse"}
    check = next(v for v in report.verification if v["label"].startswith("optimizer state"))
    assert check["ok"] and check["compared"] == 10
    assert not any("optimizer state was dropped" in w for w in report.warnings)
    answer = plain_keras_optimizer({"model": str(dst)}, tmp_path)
    source = _h5_optimizer(src)
    assert answer["class"] == "Adam" and answer["iterations"] == int(source["iteration:0"]) == 1
    assert answer["config"]["learning_rate"] == pytest.approx(0.01) and answer["loss"] == "mse"
    _assert_continues(answer, source, _keras3_name)


def test_keras3_legacy_h5_continues(tmp_path):
    src = FIXTURES / "keras_h5" / "keras3_legacy.h5"
    dst = tmp_path / "m.keras"
    report = _to_keras()(src, dst, include_optimizer=True)
    assert report.ok and report.details["optimizer"]["class"] == "Adam"
    answer = plain_keras_optimizer({"model": str(dst)}, tmp_path)
    source = _h5_optimizer(src)
    assert answer["iterations"] == int(source["adam/iteration"])
    # Keras 3 names slots after the variable paths, which in a loaded Sequential lack the model name.
    _assert_continues(answer, source, lambda n: n.split("/", 1)[-1].removeprefix("keras3_sequential_"))


def test_keras3_file_continues(tmp_path):
    """A .keras of an older Keras 3 (re-saved by the current one) keeps its optimizer too."""
    import zipfile

    src = FIXTURES / "keras_zip" / "conv_bn.keras"
    dst = tmp_path / "m.keras"
    report = _to_keras()(src, dst, include_optimizer=True)
    assert report.ok, (report.verification, report.warnings)
    assert report.details["optimizer"]["iterations"] >= 1
    answer = plain_keras_optimizer({"model": str(dst)}, tmp_path)
    with zipfile.ZipFile(src) as z, z.open("model.weights.h5") as member, h5py.File(member, "r") as f:
        group = f["optimizer/vars"]
        source = [np.asarray(group[str(i)][()]) for i in range(len(group))]
    assert answer["class"] == report.details["optimizer"]["class"] and len(answer["values"]) == len(source)
    for mine, theirs in zip(answer["values"], source, strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "optimizer, slots",
    [
        ("SGD(learning_rate=0.05, momentum=0.9)", 4),
        ("RMSprop(learning_rate=0.01, momentum=0.5, centered=True)", 12),
    ],
)
def test_tf_keras_sgd_and_rmsprop_continue(tmp_path, optimizer, slots):
    """tf_keras models trained two steps, saved as .h5: SGD's momentum and RMSprop's velocity,
    momentum and average gradient slots all continue."""
    tf_keras = pytest.importorskip("tf_keras")
    rng = np.random.default_rng(5)
    inputs = tf_keras.Input((4,), name="features")
    hidden = tf_keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    outputs = tf_keras.layers.Dense(2, name="scores")(hidden)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=eval(f"tf_keras.optimizers.{optimizer}"), loss="mse")
    model.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 2)), batch_size=4, epochs=1, verbose=0)
    src = tmp_path / "src.h5"
    model.save(str(src), save_format="h5")
    dst = tmp_path / "m.keras"
    report = _to_keras()(src, dst, include_optimizer=True)
    name = optimizer.split("(")[0]
    assert report.ok, (report.verification, report.warnings)
    assert report.details["optimizer"]["class"] == name and report.details["optimizer"]["slots"] == slots
    answer = plain_keras_optimizer({"model": str(dst)}, tmp_path)
    source = _h5_optimizer(src)
    assert answer["class"] == name and answer["iterations"] == int(source["iteration:0"]) == 2
    assert answer["config"]["momentum"] == pytest.approx(0.9 if name == "SGD" else 0.5)
    _assert_continues(answer, source, _keras3_name)


def test_checkpoint_slots_continue_with_a_compiled_model(tmp_path):
    """The checkpoint's Adam slots, restored into the optimizer the model code compiles with; the
    loaded .keras holds TensorFlow's own reading of ``optimizer/_variables/N``."""
    import tensorflow as tf

    dst = tmp_path / "m.keras"
    report = _to_keras()(
        SUBCLASSED_CKPT, dst, model=f"{MODELS / 'subclassed.py'}:build_compiled", input_specs=("x:float32:-1,3",),
        include_optimizer=True,
    )  # fmt: skip
    assert report.ok, (report.verification, report.warnings)
    assert report.details["optimizer"]["class"] == "Adam" and report.details["optimizer"]["slots"] == 8
    answer = plain_keras_optimizer(
        {"model": str(dst), "sys_path": [str(MODELS)], "setup": "import subclassed"}, tmp_path
    )
    reader = tf.train.load_checkpoint(str(SUBCLASSED_CKPT))
    assert (
        answer["iterations"]
        == int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
        == 1
    )
    for i in range(2, len(answer["values"])):
        expected = reader.get_tensor(f"optimizer/_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(answer["values"][i], expected, err_msg=answer["paths"][i])


@pytest.mark.parametrize(
    "src, kwargs, reason",
    [
        ("checkpoint/keras3_subclassed/ckpt", {"model": "subclassed.py:build"}, "return the model compiled"),
        ("keras_h5/keras2_hard_sigmoid.h5", {}, "the source holds none"),
    ],
)
def test_state_that_cannot_be_carried_is_dropped_with_the_reason(tmp_path, src, kwargs, reason):
    if "model" in kwargs:
        kwargs = {"model": f"{MODELS / kwargs['model']}", "input_specs": ("x:float32:-1,3",)}
    report = _to_keras()(
        FIXTURES / src, tmp_path / "m.keras", include_optimizer=True, verify=_no_verify(), **kwargs
    )
    assert report.details["optimizer"] == "not carried"
    assert any("optimizer state was dropped" in w and reason in w for w in report.warnings), report.warnings


def test_slots_of_rescaled_weights_are_not_carried(tmp_path):
    """A hard_sigmoid Dense is kept by scaling its kernel by 1.2, which scales its gradients by
    1/1.2: the Adam moments of the source would not continue, so they are dropped, saying why."""
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((3,), name="x")
    outputs = tf_keras.layers.Dense(2, activation="hard_sigmoid", name="gate")(inputs)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    model.save(str(tmp_path / "src.h5"), save_format="h5")
    report = _to_keras()(tmp_path / "src.h5", tmp_path / "m.keras", include_optimizer=True)
    assert report.ok and report.details["optimizer"] == "not carried"
    assert any("optimizer state was dropped" in w and "rescaled weights" in w for w in report.warnings)


@pytest.mark.corpus
def test_unnamed_keras2_slots_are_not_carried(corpus, tmp_path):
    from tests.conftest import CORPUS

    src = CORPUS / "keras_h5" / "dl4j_oracle" / "simple_lstm_tf_keras_2_model.h5"
    report = _to_keras()(src, tmp_path / "m.keras", include_optimizer=True, verify=_no_verify())
    assert report.details["optimizer"] == "not carried"
    assert any("dropped" in w and "creation order" in w for w in report.warnings), report.warnings


def test_without_the_option_the_state_is_dropped_and_said(tmp_path):
    report = _to_keras()(
        FIXTURES / "keras_h5/tfkeras_full_adam.h5", tmp_path / "m.keras", verify=_no_verify()
    )
    assert report.details["optimizer"] == "not carried"
    assert any("dropped" in w and "--include-optimizer" in w for w in report.warnings)


def test_cli_option(tmp_path, capsys):
    from tfmodelkit.cli.modelconv import main

    dst = tmp_path / "m.keras"
    rc = main(
        ["convert", str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"), str(dst), "--include-optimizer", "-q"]
    )
    assert rc == 0, capsys.readouterr().err
    rc = main(
        [
            "convert",
            str(FIXTURES / "keras_h5/tfkeras_full_adam.h5"),
            str(tmp_path / "s"),
            "--include-optimizer",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--include-optimizer does not apply" in err
