"""Verification without TensorFlow: code in Keras configs found before any loader sees them,
imports that stay light, and a clear error when TensorFlow is missing."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT
from tfmodelkit.formats.keras_config import code_sites


def code_layers(config):
    """The layers the loaders refuse, as they name them."""
    return list(dict.fromkeys(f"{s.layer} ({s.class_name})" for s in code_sites(config)))


def _layer(cls, name, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


def test_clean_config_has_no_code():
    model = {"class_name": "Functional", "config": {"name": "m", "layers": [_layer("Dense", "d", units=3)]}}
    assert code_layers(model) == []


def test_lambda_found_in_nested_models():
    inner = {
        "class_name": "Sequential",
        "config": {
            "name": "block",
            "layers": [_layer("Lambda", "sq", function=["YQ==", None, None], function_type="lambda")],
        },
    }
    model = {"class_name": "Functional", "config": {"name": "m", "layers": [_layer("Dense", "d"), inner]}}
    assert code_layers(model) == ["sq (Lambda)"]


def test_keras3_lambda_objects_anywhere():
    act = {"class_name": "__lambda__", "config": {"code": "YQ==", "defaults": None, "closure": None}}
    model = {
        "class_name": "Sequential",
        "config": {"name": "m", "layers": [_layer("Dense", "d", activation=act)]},
    }
    assert code_layers(model) == ["d (Dense)"]
    # A custom layer class that stores a lambda the Keras 2 way is caught by its function_type.
    custom = _layer("MyLayer", "mine", output_shape=["YQ=="], output_shape_type="lambda")
    assert code_layers({"class_name": "Functional", "config": {"layers": [custom]}}) == ["mine (MyLayer)"]


def test_importing_verify_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import tfmodelkit.verify, tfmodelkit.verify.runners, tfmodelkit.verify.core\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_missing_tensorflow_is_a_user_error():
    # A process where TensorFlow looks uninstalled: the runners must say which extra to install.
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name.split('.')[0] == 'tensorflow' else real(name, *a)\n"
        "from tfmodelkit.errors import UserError\n"
        "from tfmodelkit.verify import SavedModelRunner, KerasRunner\n"
        "for make, path in ((SavedModelRunner, 'fixtures/savedmodel/pbtxt_module'),\n"
        "                   (KerasRunner, 'fixtures/keras_zip/conv_bn.keras')):\n"
        "    try:\n"
        "        make(path)\n"
        "    except UserError as e:\n"
        "        assert \"pip install 'tfmodelkit[convert]'\" in str(e) and e.exit_code == 2, e\n"
        "        print(e)\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("convert extra") == 2
