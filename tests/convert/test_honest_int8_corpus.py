"""An int8 conversion of a real model says what it rests on: generated calibration is marked and
its saturation shown (or it fails), and calibration data from the model's real input range
verifies on samples held out of it.

The model is a tf.keras MNIST classifier (Flatten of 28x28 pixels, Dense 128, Dense 10 logits)
from the corpus; its pixels are in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tf_available

pytestmark = [pytest.mark.tf, pytest.mark.corpus, pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")]
MODEL = "keras_h5/dl4j/tfkeras_some_loss.h5"


@pytest.fixture
def model(corpus):
    path = corpus / MODEL
    if not path.is_file():
        pytest.skip(f"{MODEL} is not in this corpus")
    return path


def test_generated_calibration_is_never_a_plain_verified(model, tmp_path):
    from tfmodelkit import convert
    from tfmodelkit.convert.base import summary_line

    report = convert(model, tmp_path / "m.tflite", quantize="int8", allow_generated_calibration=True, keep_failed=True)
    line = summary_line(report)
    tflite = report.verification[-1]
    assert tflite["context"]["samples"] >= 32
    if report.ok:
        assert report.calibration == {"source": "generated", "samples": 128}
        assert "int8 calibrated on generated data" in line
        # Its saturation is shown: measured on every output (the float logits come out of a
        # DEQUANTIZE of the last int8 tensor).
        for output in tflite["outputs"]:
            assert output["saturated_fraction"] is not None and output["representable_fraction"] is not None
    else:
        assert "FAILED verification" in line


def test_calibration_on_the_real_input_range_verifies_on_held_out_samples(model, tmp_path):
    from tfmodelkit import convert
    from tfmodelkit.convert.base import summary_line
    from tfmodelkit.verify import save_arrays

    rng = np.random.default_rng(0)
    data = save_arrays(tmp_path / "pixels.npz", {"flatten_input": rng.uniform(0, 1, (160, 28, 28)).astype(np.float32)})
    report = convert(model, tmp_path / "m.tflite", quantize="int8", calibration_data=str(data))
    assert report.ok, summary_line(report)
    assert report.calibration == {"source": "given", "samples": 128, "data": str(data), "held_out": 32}
    tflite = report.verification[-1]
    assert tflite["context"]["inputs_source"] == "calibration" and tflite["context"]["samples"] == 32
    assert not any(o["saturation_finding"] for o in tflite["outputs"])
    line = summary_line(report)
    assert "on 32 held-out calibration samples" in line and "generated data" not in line
