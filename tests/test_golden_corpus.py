"""Golden tests over the real-world corpus: our readers agree with TensorFlow, Keras and
LiteRT (their answers are stored in EXPECTED.json), and fail cleanly where they fail."""

from __future__ import annotations

import pytest

import tfmodelkit
from tests.conftest import CORPUS, load_expected
from tests.golden import mismatches

EXPECTED = load_expected()
OK = sorted(k for k, v in EXPECTED.items() if v.get("ok"))
FAILED = sorted(k for k, v in EXPECTED.items() if not v.get("ok"))

pytestmark = pytest.mark.corpus


@pytest.mark.parametrize("entry", OK)
def test_matches_reference_tools(corpus, entry):
    expected = EXPECTED[entry]
    desc = tfmodelkit.read(CORPUS / entry)
    assert desc.format == expected["kind"]
    assert mismatches(desc, expected) == []


@pytest.mark.parametrize("entry", FAILED)
def test_reference_failures_are_reported_cleanly(corpus, entry):
    """Where TF/Keras/LiteRT fail, we describe the file or fail with our own error."""
    try:
        desc = tfmodelkit.read(CORPUS / entry)
    except tfmodelkit.TFModelKitError as e:
        assert str(e).strip() and "\n" not in str(e).strip()
        return
    # Described: every listed tensor must be readable or refuse with our error.
    for w in desc.weights:
        try:
            w.read()
        except tfmodelkit.TFModelKitError:
            pass


@pytest.mark.parametrize("entry", sorted(EXPECTED))
def test_check_runs_on_every_entry(corpus, entry):
    try:
        report = tfmodelkit.check(CORPUS / entry)
    except tfmodelkit.TFModelKitError:
        return
    assert report.format in ("checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite")


def test_corpus_is_covered(corpus):
    """Every kind of the corpus has at least one entry our readers agree on."""
    kinds = {EXPECTED[k]["kind"] for k in OK}
    assert kinds == {"checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite"}
