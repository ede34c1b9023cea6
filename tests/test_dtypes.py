"""dtype tables: sizes known without numpy or ml_dtypes, storage integers for the types numpy lacks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tfmodelkit.dtypes import (
    _TF_NAMES,
    _TFLITE_NAMES,
    ML_DTYPES,
    element_bytes,
    itemsize,
    numpy_dtype,
    packed_nbytes,
    storage_dtype,
)
from tfmodelkit.errors import UnsupportedError

NAMES = sorted({*_TF_NAMES.values(), *_TFLITE_NAMES.values(), "unknown_dtype_77"})


@pytest.mark.parametrize("name", NAMES)
def test_element_bytes_is_the_numpy_itemsize(name):
    try:
        expected: int | str = numpy_dtype(name).itemsize
    except UnsupportedError as e:
        expected = str(e)
    try:
        got: int | str = element_bytes(name)
    except UnsupportedError as e:
        got = str(e)
    assert got == expected


@pytest.mark.parametrize("name", sorted(ML_DTYPES))
def test_storage_integers_hold_the_bits_of_each_ml_dtype(name):
    dt = numpy_dtype(name)
    stored = storage_dtype(name)
    assert stored.kind in "iu" and stored.itemsize == dt.itemsize
    values = np.arange(-2, 3).astype(dt)
    assert np.array_equal(values.view(stored).view(dt).astype(np.float32), values.astype(np.float32))


def test_storage_dtype_of_numpy_types_is_the_type_itself():
    for name in ("float32", "int8", "bool", "complex64", "qint8"):
        assert storage_dtype(name) == numpy_dtype(name)


def test_sizes_need_neither_numpy_nor_ml_dtypes():
    code = (
        "import sys\n"
        "from tfmodelkit.dtypes import element_bytes, itemsize, packed_nbytes\n"
        "assert element_bytes('bfloat16') == 2 and itemsize('float8_e4m3fn') == 1\n"
        "assert packed_nbytes('int4', 5) == 3 and packed_nbytes('float32', 3) == 12\n"
        "print(sorted(m for m in ('numpy', 'ml_dtypes') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_sub_byte_and_variable_sizes():
    assert itemsize("int4") is None and itemsize("string") is None and itemsize("resource") is None
    assert packed_nbytes("uint2", 9) == 3
    with pytest.raises(UnsupportedError, match="no numpy equivalent"):
        element_bytes("variant")
