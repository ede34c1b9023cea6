"""Inputs that once made a reader crash, hang or lie, replayed through the same exercise as
the fuzzers (read, every weight's values, check): regression cases.

Files are ``crashers/<reader>-<what>.bin`` in the packed form of ``harness.pack``
(a single file for keras_h5, keras_zip and tflite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import TIME_LIMIT, exercise, materialize, pack, unpack
from .mutators import FORMATS, bases

CRASHERS = sorted((Path(__file__).parent / "crashers").glob("*.bin"))

@pytest.mark.parametrize("path", CRASHERS, ids=[p.stem for p in CRASHERS])
def test_crasher_fails_cleanly(path, tmp_path):
    fmt = path.name.split("-")[0]
    assert fmt in FORMATS, f"{path.name}: name it <reader>-<what>.bin"
    files, target = unpack(fmt, path.read_bytes())
    materialize(files, tmp_path)
    out = exercise(fmt, tmp_path / target if target else tmp_path, tmp_path, record=False)
    assert out.seconds < TIME_LIMIT
    assert out.errors or out.findings, "a crasher is damaged: something should say so"


@pytest.mark.parametrize("fmt", FORMATS)
def test_packing_round_trips(fmt, tmp_path):
    """The packed form the fuzzers and the crasher files use holds the whole model (but a
    SavedModel's assets, which no reader parses)."""
    for b in bases(fmt):
        files, target = unpack(fmt, pack(fmt, b.files, b.target))
        folder = tmp_path / b.name.replace("/", "_")
        materialize(files, folder)
        out = exercise(fmt, folder / target if target else folder, folder, record=False)
        findings = [f for f in out.findings if not f.startswith("assets/")]
        assert not out.errors and not findings, (b.name, out)


def test_a_lying_shard_count_gives_a_short_report(tmp_path):
    """One changed varint in the header (num_shards 1 -> 20000) renames every shard: the
    report says so in a few findings, not one per absent file and tensor."""
    import time

    import tfmodelkit

    path = Path(__file__).parent / "crashers" / "checkpoint-header-claims-20000-shards.bin"
    files, target = unpack("checkpoint", path.read_bytes())
    materialize(files, tmp_path)
    start = time.perf_counter()
    report = tfmodelkit.check(tmp_path / target)
    assert not report.ok
    assert len(report.findings) <= 5 and time.perf_counter() - start < 1.0, report.findings
    text = " ".join(f.message for f in report.findings)
    assert "19999 of 20000 data shards missing" in text or "20000 of 20000" in text, text
    assert "data-00000-of-00001" in text  # what the folder does hold


def _overlapping_slices(tmp_path):
    """The slice (200, 24) of a partitioned [600] vector moved to (176, 24): elements 176..199
    are stored twice, 200..223 nowhere; the slices' sizes still add up to 600."""
    path = Path(__file__).parent / "crashers" / "checkpoint-overlapping-slices.bin"
    files, target = unpack("checkpoint", path.read_bytes())
    materialize(files, tmp_path)
    return tmp_path / target


def test_overlapping_slices_are_refused_when_read(tmp_path):
    import tfmodelkit
    from tfmodelkit.errors import CorruptFileError

    weight = tfmodelkit.read(_overlapping_slices(tmp_path)).weight("vector/.ATTRIBUTES/VARIABLE_VALUE")
    with pytest.raises(CorruptFileError, match="vector.*overlap"):
        weight.read()


def test_value_errors_name_the_checkpoint(tmp_path):
    """Value errors name the tensor; `modelinspect tensor` over several files needs the file too."""
    import tfmodelkit
    from tfmodelkit.errors import CorruptFileError

    path = _overlapping_slices(tmp_path)
    with pytest.raises(CorruptFileError) as info:
        tfmodelkit.read(path).weight("vector/.ATTRIBUTES/VARIABLE_VALUE").read()
    assert str(tmp_path) in str(info.value)


def test_overlapping_slices_fail_check(tmp_path):
    """check verifies how the slices tile the tensor, not only each slice's checksum."""
    import tfmodelkit

    report = tfmodelkit.check(_overlapping_slices(tmp_path))
    assert [f.subject for f in report.findings if f.severity == "error"] == [
        "vector/.ATTRIBUTES/VARIABLE_VALUE"
    ]


def test_slice_with_another_dtype_is_refused(tmp_path):
    """A slice stored as uint32 under a float32 tensor is refused, not cast value by value."""
    import tfmodelkit
    from tfmodelkit.errors import CorruptFileError

    path = Path(__file__).parent / "crashers" / "checkpoint-slice-dtype-differs.bin"
    files, target = unpack("checkpoint", path.read_bytes())
    materialize(files, tmp_path)
    try:
        desc = tfmodelkit.read(tmp_path / target)
    except CorruptFileError as e:
        assert "uint32" in str(e)
        return
    with pytest.raises(CorruptFileError, match="uint32"):
        desc.weight("table/.ATTRIBUTES/VARIABLE_VALUE").read()
    assert not tfmodelkit.check(tmp_path / target).ok
