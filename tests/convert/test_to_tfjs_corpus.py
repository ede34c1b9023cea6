"""Every Keras model of the shared corpus (keras_h5/, keras_zip/) that TF.js can run converts to a
TF.js layers model that verifies in TF.js itself; the others are named by ``check --target tfjs``
(layer, subclassed model, weights-only file) and refused with the same names."""

from __future__ import annotations

import pytest

from tests.conftest import CORPUS, corpus_available, tf_available
from tfmodelkit.errors import UnsupportedError
from tfmodelkit.lint import lint

pytestmark = [pytest.mark.corpus, pytest.mark.tf]

FILES = sorted(
    [*(CORPUS / "keras_h5").rglob("*.h5"), *(CORPUS / "keras_zip").glob("*.keras")] if corpus_available() else []
)
#: What TF.js lacks in the corpus, by file: the subject check --target tfjs names.
REFUSED = {
    "examples_lambda_sequential_lambda.h5": "lambda_1 (Lambda)",
    "weights_keras-attention.h5": "attention (Attention)",
    "keras_bugged_model.keras": "model",
    "keras_fixed_model.keras": "model",
    "keras_pre_pr22362_nested_container.keras": "model",
}


def _tfjs_ready() -> bool:
    from tfmodelkit.verify.runners.tfjs import TFJSUnavailable, find_tfjs

    try:
        find_tfjs()
    except TFJSUnavailable:
        return False
    return True


@pytest.fixture(scope="module")
def to_tfjs():
    if not (corpus_available() and tf_available() and _tfjs_ready()):
        pytest.skip("needs the corpus, TensorFlow and Node.js with @tensorflow/tfjs")
    from tfmodelkit.convert.to_tfjs import to_tfjs

    return to_tfjs


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_keras_model(path, to_tfjs, tmp_path):
    findings = [f for f in lint(path, "tfjs").findings if f.severity == "error"]
    weights_only = any("weights only" in f.message for f in findings)
    if path.name in REFUSED or weights_only:
        expected = "model" if weights_only else REFUSED[path.name]
        assert expected in [f.subject for f in findings]
        with pytest.raises(UnsupportedError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            to_tfjs(path, tmp_path / "m" / "model.json")
        assert not (tmp_path / "m").exists()
        return
    assert findings == []
    report = to_tfjs(path, tmp_path / "m" / "model.json")
    assert report.ok and [v["label"] for v in report.verification] == ["Keras vs TF.js"]
    assert (tmp_path / "m" / "model.json").is_file()


def test_most_of_the_corpus_converts():
    if not corpus_available():
        pytest.skip("corpus not present")
    convertible = [p for p in FILES if not [f for f in lint(p, "tfjs").findings if f.severity == "error"]]
    assert len(convertible) >= 17, [p.name for p in convertible]


#: Corpus SavedModels as TF.js graph models: scalar inputs, int64 constants (held as int32),
#: several outputs, a while loop, a TF Serving base folder; and one TF.js cannot run.
SAVEDMODELS = {
    "tf_half_plus_two": None,
    "tfjs_int64_multiply": None,
    "tfjs_model_multi_output": None,
    "tf_c_SimpleWhileLoop": None,
    "tfserving_saved_model_half_plus_two_cpu": None,
    "tf_AssetModule": "ReadFile",
}


@pytest.mark.parametrize("name", sorted(SAVEDMODELS))
def test_corpus_savedmodel_as_graph_model(name, to_tfjs, tmp_path):
    dst = tmp_path / "m" / "model.json"
    refused = SAVEDMODELS[name]
    if refused:
        with pytest.raises(UnsupportedError, match=refused):
            to_tfjs(CORPUS / "savedmodel" / name, dst)
        assert not dst.parent.exists()
        return
    report = to_tfjs(CORPUS / "savedmodel" / name, dst)
    assert report.ok and [v["label"] for v in report.verification] == ["SavedModel vs TF.js"]
    assert report.details["tfjs_format"] == "graph-model"


def test_a_layer_tfjs_layers_lacks_runs_as_a_graph_model(to_tfjs, tmp_path):
    """Attention is no tfjs-layers class, but its ops are TF.js's: --graph converts and verifies it."""
    path = next(p for p in FILES if p.name == "weights_keras-attention.h5")
    report = to_tfjs(path, tmp_path / "g" / "model.json", graph=True)
    assert report.ok and [v["label"] for v in report.verification] == ["Keras vs TF.js (graph model)"]
    assert report.details["tfjs_format"] == "graph-model" and (tmp_path / "g" / "model.json").is_file()
