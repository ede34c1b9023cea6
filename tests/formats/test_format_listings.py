"""Every place that lists the formats tfmodelkit reads lists the same ones: the description's
``FORMATS``, the registry, ``--as``'s help and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tfmodelkit import formats
from tfmodelkit.cli import modelinspect
from tfmodelkit.description import FORMATS
from tfmodelkit.errors import FormatError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_formats_are_the_registered_readers():
    assert set(FORMATS) == set(formats._MODULES)  # noqa: SLF001 (the registry's own table)
    assert len(FORMATS) == len(set(FORMATS))
    assert {formats.normalize_format(name) for name in FORMATS} == set(FORMATS)


def test_as_help_lists_every_format():
    listed = modelinspect.FORMATS_HELP.split(" (also")[0].split(", ")
    assert listed == list(FORMATS)
    for alias in re.findall(r"\w+", modelinspect.FORMATS_HELP.split("(also:")[1]):
        assert formats.normalize_format(alias) in FORMATS


def test_unknown_format_error_lists_tfjs():
    with pytest.raises(FormatError, match="tfjs"):
        formats.normalize_format("onnx")


def test_readme_table_has_a_row_per_format():
    text = README.read_text()
    table = text.split("## What it reads", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == list(FORMATS)
