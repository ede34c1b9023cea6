"""The renderers' table layouts draw exactly what ``tabulate`` draws, without its import cost."""

from __future__ import annotations

import random

import pytest

from tfmodelkit.inspect.render import fit_rows
from tfmodelkit.inspect.table import tabulate

reference = pytest.importorskip("tabulate")

PIECES = [
    "", " ", "a", "bb", "  lead", "trail  ", "x\ny", "  m\n  n ", "long value here", "é", None, True, False,
    3, 1.5, "\n", "p\n\nq", "a/b,c d", "(2, 3)", "z\n", "    nested layer", "model/dense/kernel:0",
]  # fmt: skip
HEADERS = ["", "h", "name", "a longer header", "x y"]


def _theirs(rows, headers, fmt, keep):
    return reference.tabulate(
        rows, headers=headers, tablefmt=fmt, disable_numparse=True, preserve_whitespace=keep
    )


@pytest.mark.parametrize("seed", range(4))
def test_same_text_as_tabulate(seed):
    rnd = random.Random(seed)
    for _ in range(1000):
        fmt = rnd.choice(["simple", "github", "plain"])
        ncols = rnd.randint(1, 6)
        lengths = [
            rnd.randint(1, ncols) if fmt == "plain" else ncols for _ in range(rnd.randint(fmt == "plain", 5))
        ]
        rows = [[rnd.choice(PIECES) for _ in range(n)] for n in lengths]
        headers = [] if fmt == "plain" else [rnd.choice(HEADERS) for _ in range(ncols)]
        keep = rnd.random() < 0.3
        assert tabulate(rows, headers, fmt, preserve_whitespace=keep) == _theirs(rows, headers, fmt, keep), (
            rows,
            headers,
        )


def test_wrapped_rows_as_the_renderer_makes_them():
    rows = [
        ["  encoder/block_0/attention/query/kernel", "float32", "(512, 512)", "1.0 MiB"],
        ["encoder/block_0/attention/output/bias", "bfloat16", "(512,)", "1.0 KiB"],
    ]
    headers = ["name", "dtype", "shape", "size"]
    for width in (30, 44, 60, 200):
        fitted = fit_rows(rows, headers, width, [0, 2])
        for keep in (False, True):
            for fmt in ("simple", "github"):
                assert tabulate(fitted, headers, fmt, preserve_whitespace=keep) == _theirs(
                    fitted, headers, fmt, keep
                )
    pairs = fit_rows(
        [["producer", "tensorflow 2.21.0, keras 3.15"], ["weights", "4 tensors (4 model)"]], None, 24, [1]
    )
    assert tabulate(pairs, tablefmt="plain") == _theirs(pairs, (), "plain", False)
    assert tabulate(pairs, ["", ""], "github") == _theirs(pairs, ["", ""], "github", False)


def test_only_the_layouts_the_renderers_use():
    with pytest.raises(ValueError, match="unsupported"):
        tabulate([["a"]], ["h"], "grid")
    with pytest.raises(ValueError, match="needs headers"):
        tabulate([["a"]], (), "simple")
