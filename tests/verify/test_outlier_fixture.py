"""The outlier-channels fixture does what its maker says: full int8 of it fails verification on
inputs from its real range, while its float32 path (the .h5 against itself through Keras) holds."""

from __future__ import annotations

import numpy as np

import tfmodelkit
from tests.conftest import FIXTURES

H5 = FIXTURES / "keras_h5/outlier_channels.h5"
INT8 = FIXTURES / "tflite/outlier_channels_int8.tflite"
VERIFY = FIXTURES / "inputs/outlier_channels.verify.npz"
CALIBRATION = FIXTURES / "inputs/outlier_channels.calibration.npz"


def test_calibration_and_verification_samples_come_from_the_real_range_and_differ():
    with np.load(CALIBRATION) as c, np.load(VERIFY) as v:
        cal, ver = c["x"], v["x"]
    assert cal.shape == (256, 16) and ver.shape == (64, 16)
    assert 0.0 <= min(cal.min(), ver.min()) and max(cal.max(), ver.max()) < 1.0
    assert not np.isin(ver, cal).any()


def test_full_int8_fails_verification():
    report = tfmodelkit.verify(H5, INT8, inputs=str(VERIFY))
    assert not report.ok
    (head,) = report.outputs
    assert head.failing > head.size // 2
    assert head.max_abs_error > 1.0
