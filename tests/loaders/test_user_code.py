"""loaders.user_code: the ``--model MODULE:CALLABLE`` factories that rebuild a checkpoint's model."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import FIXTURES
from tfmodelkit.errors import NotFoundError, UserError
from tfmodelkit.loaders.user_code import load_model_factory

MODELS = FIXTURES / "models"
SUBCLASSED = f"{MODELS / 'subclassed.py'}"


@pytest.mark.parametrize(
    ("spec", "error", "says"),
    [
        ("no_colon_here", UserError, "expected pkg.module:callable or path/to/file.py:callable"),
        (f"{MODELS / 'absent.py'}:build", NotFoundError, "no such file"),
        (f"{SUBCLASSED}:nope", NotFoundError, "has no attribute 'nope'"),
        ("tfmodelkit_no_such_module_xyz:build", UserError, "cannot import tfmodelkit_no_such_module_xyz"),
        ("math:pi", UserError, "pi is a float, not a callable"),
    ],
)
def test_bad_model_specs(tmp_path, spec, error, says):
    with pytest.raises(error, match=None) as e:
        load_model_factory(spec)
    assert says in str(e.value)


def test_model_file_import_leaves_sys_path_alone():
    before = list(sys.path)
    factory, folder = load_model_factory(f"{SUBCLASSED}:build")
    assert sys.path == before and folder == MODELS.resolve()
    assert factory.__name__ == "build"
