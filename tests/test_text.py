"""The shared wording helper: a count and the noun that agrees with it."""

from __future__ import annotations

import pytest

from tfmodelkit.text import plural


@pytest.mark.parametrize(
    "n, expected",
    [(0, "0 tensors"), (1, "1 tensor"), (2, "2 tensors"), (1000, "1000 tensors"), (-1, "-1 tensors")],
)
def test_plural_agrees_with_the_count(n, expected):
    assert plural(n, "tensor") == expected


def test_irregular_plural():
    assert plural(1, "index", "indices") == "1 index"
    assert plural(3, "index", "indices") == "3 indices"
    assert plural(2, "NaN/Inf mismatch", "NaN/Inf mismatches") == "2 NaN/Inf mismatches"
