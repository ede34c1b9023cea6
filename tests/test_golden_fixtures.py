"""Golden tests over our own fixtures: TensorFlow's view of each file, computed in this run
with TF/Keras/LiteRT themselves, must equal what our TF-free readers report; so must the
view stored in fixtures/expected.json when the fixtures were generated."""

from __future__ import annotations

import json

import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tests.golden import mismatches

STORED = json.loads((FIXTURES / "expected.json").read_text())
OK = sorted(k for k, v in STORED.items() if v.get("ok"))


@pytest.mark.parametrize("entry", OK)
def test_fixture_matches_stored_reference(entry):
    desc = tfmodelkit.read(FIXTURES / entry)
    assert desc.format == STORED[entry]["kind"]
    assert mismatches(desc, STORED[entry]) == []


@pytest.fixture(scope="module")
def live_reference():
    if not tf_available():
        pytest.skip("TensorFlow not installed (the convert extra)")
    from tests.reference_tf import reference

    cache: dict[str, dict] = {}

    def get(entry: str) -> dict:
        if entry not in cache:
            cache[entry] = reference(FIXTURES / entry, STORED[entry]["kind"])
        return cache[entry]

    return get


@pytest.mark.tf
@pytest.mark.parametrize("entry", sorted(STORED))
def test_fixture_matches_tensorflow_now(entry, live_reference):
    expected = live_reference(entry)
    if not expected["ok"]:
        # TF/Keras refuse it (e.g. a weights-only .h5); we must still read it or fail cleanly.
        try:
            tfmodelkit.read(FIXTURES / entry)
        except tfmodelkit.TFModelKitError:
            pass
        return
    assert mismatches(tfmodelkit.read(FIXTURES / entry), expected) == []


def test_every_format_has_fixtures():
    assert {v["kind"] for v in STORED.values()} == {"checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite"}
