"""Property: whatever damage a model file has, only tfmodelkit's own errors come out of
``read``, of reading every weight and of ``check``, within a time bound.

Mutants of real files (fixtures, and the corpus when present): truncations at every
structural boundary (sstable footer, block handles and trailers; protobuf field
boundaries; flatbuffer tables and vectors; zip headers and central directory; HDF5
superblock, object headers, heaps, B-trees), lengths/offsets/counts set to extreme values
(index varints, protobuf length prefixes, flatbuffer vector lengths, zip sizes, HDF5
sizes), bit flips, random bytes, and format-aware edits that keep checksums and enclosing
lengths valid so that the damage reaches the deep parts of each reader.

Examples per reader: ``TFMODELKIT_FUZZ_EXAMPLES`` (default: a CI-sized number each);
seconds per input: ``TFMODELKIT_FUZZ_TIME_LIMIT`` (default 5). Runs are derandomized:
the same examples every time. Figures go to ``out/fuzz-figures.json``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .harness import TIME_LIMIT, Scratch
from .mutators import FORMATS, Mutant, bases, mutants

#: Default examples per reader: enough to reach every operation on every base a few times,
#: small enough for CI (the HDF5 readers fork a child per step, so they get fewer).
DEFAULT_EXAMPLES = {"checkpoint": 500, "savedmodel": 300, "keras_h5": 200, "keras_zip": 150, "tflite": 800}
# Mutated text-format SavedModels make protobuf's unescaping warn about bad escapes.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:google.protobuf")


def _examples(fmt: str) -> int:
    env = os.environ.get("TFMODELKIT_FUZZ_EXAMPLES")
    return int(env) if env else DEFAULT_EXAMPLES[fmt]


@pytest.fixture(scope="module")
def scratch():
    s = Scratch()
    yield s
    s.close()


def _settings(fmt: str) -> settings:
    return settings(
        max_examples=_examples(fmt),
        # Our own assertion below names the slow input; this only stops a runaway.
        deadline=timedelta(seconds=2 * TIME_LIMIT + 5),
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


def _check(fmt: str, scratch: Scratch, m: Mutant) -> None:
    out = scratch.run(fmt, m.files, m.base.target, f"{m.base.name}: {m.label}")
    assert out.seconds < TIME_LIMIT, f"{m!r} took {out.seconds:.2f} s"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bases_are_sound(fmt, scratch):
    """Unmutated, every base reads and checks cleanly: the mutants start from good files."""
    assert bases(fmt)
    for b in bases(fmt):
        out = scratch.run(fmt, b.files, b.target, f"{b.name}: unmutated", record=False)
        assert not out.errors and not out.findings, (b.name, out)


def _make(fmt: str):
    @_settings(fmt)
    @given(m=mutants(fmt))
    def test(scratch, m):
        _check(fmt, scratch, m)

    test.__name__ = f"test_{fmt}_mutants_fail_cleanly"
    test.__doc__ = f"Damaged {fmt} inputs: only TFModelKitError, within the time limit."
    return test


test_checkpoint_mutants_fail_cleanly = _make("checkpoint")
test_savedmodel_mutants_fail_cleanly = _make("savedmodel")
test_keras_h5_mutants_fail_cleanly = _make("keras_h5")
test_keras_zip_mutants_fail_cleanly = _make("keras_zip")
test_tflite_mutants_fail_cleanly = _make("tflite")
