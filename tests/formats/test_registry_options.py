"""The format registry refuses options no reader takes, by name, before reading anything."""

from __future__ import annotations

import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.errors import UserError

MODEL = FIXTURES / "tflite/mlp_int8.tflite"


@pytest.mark.parametrize("call", [tfmodelkit.read, tfmodelkit.check])
def test_unknown_option_is_a_user_error_naming_it(call):
    with pytest.raises(UserError, match=r"unknown option 'tag' \(did you mean 'tags'\?\)"):
        call(MODEL, tag="serve")


def test_known_options_pass():
    assert tfmodelkit.read(MODEL, timeout=5, tags=None).format == "tflite"
    seen = []
    assert tfmodelkit.check(MODEL, progress=seen.append).format == "tflite"
