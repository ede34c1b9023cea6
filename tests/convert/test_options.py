"""Options of the public calls are checked by name before any work starts: a misspelt one is a
user error naming it (never dropped, never a TypeError), and one the route does not use is refused."""

from __future__ import annotations

import sys

import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.errors import UserError

SRC = FIXTURES / "keras_h5/keras3_legacy.h5"


def test_misspelt_option_names_itself_and_the_intended_one(tmp_path):
    with pytest.raises(UserError, match=r"unknown option 'quantise' \(did you mean 'quantize'\?\)"):
        tfmodelkit.convert(SRC, tmp_path / "m.tflite", quantise="int8")
    assert not (tmp_path / "m.tflite").exists()


def test_an_option_the_route_does_not_use_is_refused(tmp_path):
    with pytest.raises(UserError, match="--quantize does not apply to a keras_h5 -> savedmodel conversion"):
        tfmodelkit.convert(SRC, tmp_path / "sm", quantize="int8")


def test_verify_and_diff_check_their_options_too():
    with pytest.raises(UserError, match=r"verify: unknown option 'sead' \(did you mean 'seed'\?\)"):
        tfmodelkit.verify(SRC, SRC, sead=1)


def test_refusals_come_before_tensorflow_loads():
    if "tensorflow" in sys.modules:
        pytest.skip("TensorFlow already imported by an earlier test in this process")
    with pytest.raises(UserError):
        tfmodelkit.convert(SRC, "x.tflite", quantise="int8")
    assert "tensorflow" not in sys.modules
