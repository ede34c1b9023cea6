"""End to end: legacy Keras files of the corpus convert to SavedModels that compute what the
original Keras computed (its stored predictions), through the real command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CORPUS

tf = pytest.importorskip("tensorflow")
h5py = pytest.importorskip("h5py")

ORACLE = CORPUS / "keras_h5" / "dl4j_oracle"
pytestmark = pytest.mark.corpus

# (model file, input dataset, prediction dataset): Keras 1.2.2 / 2.0.6's own predictions
CASES = [
    ("simple_sparse_xent_mlp_keras_2", "inputs/dense_1_input", "predictions/activation_1"),
    ("simple_lstm_tf_keras_1", "inputs/lstm_input_1", "predictions/dense_1"),
    ("simple_lstm_th_keras_1", "inputs/lstm_input_1", "predictions/dense_1"),
]


@pytest.mark.parametrize("name, x_key, y_key", CASES)
def test_converted_legacy_model_reproduces_original_predictions(corpus, name, x_key, y_key, tmp_path):
    src = ORACLE / f"{name}_model.h5"
    p = subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", "h5-to-savedmodel", str(src), str(tmp_path / "sm"), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    with h5py.File(ORACLE / f"{name}_inputs_and_outputs.h5", "r") as f:
        x, y = f[x_key][()].astype(np.float32), f[y_key][()]
    fn = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    (key,) = fn.structured_input_signature[1]
    (out,) = fn(**{key: tf.constant(x)}).values()
    np.testing.assert_allclose(out.numpy(), y, atol=2e-5)


def test_weights_only_keras1_with_architecture_json(corpus, tmp_path):
    from tfmodelkit.convert.keras_to_savedmodel import keras_to_savedmodel

    report = keras_to_savedmodel(
        ORACLE / "simple_lstm_tf_keras_1_weights.h5", tmp_path / "sm",
        architecture=str(ORACLE / "simple_lstm_tf_keras_1_config.json"),
    )  # fmt: skip
    assert report.ok and report.loader == "keras1-upgrade"


def test_lambda_file_is_refused_safely(corpus, tmp_path):
    from tfmodelkit.convert.keras_to_savedmodel import keras_to_savedmodel
    from tfmodelkit.errors import UnsupportedError, UserError

    src = CORPUS / "keras_h5/dl4j/examples_lambda_sequential_lambda.h5"
    with pytest.raises(UserError, match="Python code"):
        keras_to_savedmodel(src, tmp_path / "a")
    # Its bytecode is Python 2 marshal data: even --unsafe cannot run it, and says so.
    with pytest.raises(UnsupportedError, match="Python 2"):
        keras_to_savedmodel(src, tmp_path / "b", unsafe=True)
    assert list(tmp_path.iterdir()) == []
