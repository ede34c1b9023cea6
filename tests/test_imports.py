"""Every module of the package imports with TensorFlow, Keras and tf_keras unimportable, and the
public API stays light: TensorFlow loads only when a conversion or verification runs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError(f'{name} is blocked in this test')
        return None
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_block_works():
    p = _run(BLOCK + "import tensorflow\n")
    assert p.returncode != 0 and "blocked" in p.stderr


def test_every_submodule_imports_without_tensorflow():
    code = BLOCK + (
        "import importlib, pkgutil, tfmodelkit\n"
        "names = [m.name for m in pkgutil.walk_packages(tfmodelkit.__path__, 'tfmodelkit.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    p = _run(code)
    assert p.returncode == 0, p.stderr[-3000:]
    assert int(p.stdout.split()[-1]) > 50  # every module was found, not just the top package


def test_touching_the_public_api_does_not_import_tensorflow():
    code = (
        "import tfmodelkit, sys\n"
        "tfmodelkit.convert; tfmodelkit.verify; tfmodelkit.lint; tfmodelkit.diff; tfmodelkit.read; tfmodelkit.check\n"
        "assert callable(tfmodelkit.convert) and callable(tfmodelkit.verify) and callable(tfmodelkit.lint)\n"
        "import tfmodelkit.convert.route, tfmodelkit.verify.gate\n"
        "assert callable(tfmodelkit.convert)  # still the callable package after its submodules load\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    p = _run(code)
    assert p.returncode == 0, p.stderr[-3000:]
