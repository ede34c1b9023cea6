"""``to-keras`` of models with custom layers: with ``--custom-objects MODULE`` the ``.keras`` records
their registered names and the report says the module is needed to load it (checked in a fresh
process, tfmodelkit unimportable); without it, each custom class is named and nothing is written."""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest

from tests.convert.plain_keras import plain_keras_run

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.tf

#: A user's module: one layer it registers with Keras, one it does not.
MY_LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="mylayers")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="w")

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Shift(keras.layers.Layer):
    def __init__(self, by=0.5, **kwargs):
        super().__init__(**kwargs)
        self.by = by

    def call(self, x):
        return x + self.by

    def get_config(self):
        return {**super().get_config(), "by": self.by}
"""
LINE = "keras.saving.register_keras_serializable(package='mylayers')(mylayers.Shift)"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The module on sys.path (imported as --custom-objects imports it) and a .keras and a
    Keras 3 .h5 of a model using both layers, with its outputs on fixed inputs."""
    work = tmp_path_factory.mktemp("custom_layers")
    (work / "mods").mkdir()
    (work / "mods" / "mylayers.py").write_text(MY_LAYERS)
    sys.path.insert(0, str(work / "mods"))
    sys.modules.pop("mylayers", None)
    import mylayers

    inputs = keras.Input((3,), name="features")
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    outputs = mylayers.Shift(by=0.25, name="shift")(mylayers.Scale(factor=3.0, name="scale")(hidden))
    model = keras.Model(inputs, outputs, name="custom")
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    np.savez(work / "x.npz", features=x)
    model.save(str(work / "src.keras"))
    model.save(str(work / "src.h5"))
    yield work, np.asarray(model(x))
    sys.path.remove(str(work / "mods"))


def test_custom_objects_module_is_recorded_and_named(sources, tmp_path):
    from tfmodelkit.convert.to_keras import to_keras

    work, expected = sources
    dst = tmp_path / "m.keras"
    report = to_keras(work / "src.keras", dst, custom_objects="mylayers")
    assert report.ok, (report.verification, report.warnings)
    assert report.details["needs_module"] == "mylayers"
    by_class = {c["class"]: c for c in report.details["custom_classes"]}
    assert by_class["mylayers.Scale"]["registered_by"] == "its module"
    assert by_class["mylayers.Shift"]["registered_by"] == LINE
    assert {c["registered_name"] for c in by_class.values()} == {"mylayers>Scale", "mylayers>Shift"}
    assert all(c["sys_path"] == str(work / "mods") for c in by_class.values())
    warning = next(w for w in report.warnings if "module mylayers is imported first" in w)
    assert LINE in warning and "does not register Shift itself" in warning
    # The file names both by their registered names.
    names = {
        layer["registered_name"]
        for layer in json.loads(zipfile.ZipFile(dst).read("config.json"))["config"]["layers"]
    }
    assert {"mylayers>Scale", "mylayers>Shift"} <= names
    # A fresh process with the module importable, doing what the report says, computes the same.
    (job,) = jobs = [
        {"model": str(dst), "inputs": str(work / "x.npz"), "sys_path": [str(work / "mods")],
         "setup": f"import keras, mylayers; {LINE}"}
    ]  # fmt: skip
    assert plain_keras_run(jobs, tmp_path)["importable"] is False
    np.testing.assert_allclose(job["outputs"]["shift"], expected, atol=1e-6)


def test_keras3_h5_with_custom_objects_converts(sources, tmp_path):
    from tfmodelkit.convert.to_keras import to_keras

    work, _ = sources
    report = to_keras(work / "src.h5", tmp_path / "m.keras", custom_objects="mylayers")
    assert report.ok and report.details["needs_module"] == "mylayers"


@pytest.mark.parametrize("name", ["src.keras", "src.h5"])
def test_without_custom_objects_each_class_is_named(sources, tmp_path, capsys, name):
    from tfmodelkit.cli.modelconv import main

    work, _ = sources
    rc = main(["to-keras", str(work / name), str(tmp_path / "m.keras"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "custom classes no Keras defines" in err and "--custom-objects MODULE" in err
    assert "Scale (layer 'scale')" in err and "Shift (layer 'shift')" in err
    assert list(tmp_path.iterdir()) == []


def test_standard_layers_need_no_module(tmp_path):
    from tests.conftest import FIXTURES
    from tfmodelkit.convert.to_keras import to_keras

    report = to_keras(FIXTURES / "keras_zip/conv_bn.keras", tmp_path / "m.keras")
    assert report.ok and report.details["custom_classes"] == [] and "needs_module" not in report.details


def test_custom_layers_verified_on_both_backends(sources, tmp_path):
    """With --keras-backend tensorflow,jax the fresh processes of both backends import the module
    and register what the report says, and compute the source's numbers."""
    pytest.importorskip("jax", reason="the jax extra is not installed (pip install 'tfmodelkit[jax]')")
    from tfmodelkit.convert.to_keras import to_keras

    work, _ = sources
    report = to_keras(
        work / "src.keras",
        tmp_path / "m.keras",
        custom_objects="mylayers",
        keras_backends=("tensorflow", "jax"),
    )
    assert report.ok, report.verification
    assert [v["label"].rsplit(" ", 1)[-1] for v in report.verification] == ["tensorflow", "jax"]
