"""tfmodelkit.diff: the public call behind ``modelinspect diff``, returning a DiffReport."""

from __future__ import annotations

import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.errors import UserError
from tfmodelkit.inspect.diff import DiffReport


def test_a_model_against_itself_is_identical():
    path = FIXTURES / "tflite/mlp_int8.tflite"
    report = tfmodelkit.diff(path, path)
    assert isinstance(report, DiffReport) and report.identical and report.same > 0
    assert report.as_dict()["identical"] is True


def test_descriptions_are_taken_as_they_are():
    a = tfmodelkit.read(FIXTURES / "tflite/mlp_int8.tflite")
    b = tfmodelkit.read(FIXTURES / "tflite/mlp_float16.tflite")
    report = tfmodelkit.diff(a, b)
    assert not report.identical and report.a == a.path and report.b == b.path


def test_unknown_option_is_refused():
    with pytest.raises(UserError, match="unknown option 'tol'"):
        tfmodelkit.diff("a", "b", tol=1)
