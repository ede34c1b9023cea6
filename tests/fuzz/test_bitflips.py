"""One damaged byte anywhere in a checkpoint's tensor bytes: ``check`` fails and names exactly
the tensor (or the partitioned tensor's slice) whose bytes those are.

Over the fixtures with every dtype (strings included: their length varints, the lengths'
CRC and the element bytes) and with a partitioned variable split over seven shards.
By default each tensor's first and last bytes, its string structure and a few seeded
positions are flipped; ``TFMODELKIT_FUZZ_EXHAUSTIVE=1`` flips every byte of every tensor.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import tfmodelkit
from tests.conftest import FIXTURES
from tfmodelkit.formats import checkpoint

EXHAUSTIVE = os.environ.get("TFMODELKIT_FUZZ_EXHAUSTIVE") == "1"
SAMPLES = 6  # seeded positions per tensor, beyond the structural ones


def _parts(index):
    """(subject check reports, stored entry) of every tensor with bytes in a data shard."""
    for name, e in sorted(index.entries.items()):
        if e.partitioned:
            for _, part in e.slices:
                yield f"{name} (slice)", part
        else:
            yield name, e


def _positions(e, raw: bytes, rng: random.Random) -> list[int]:
    """Offsets inside ``e``'s bytes to damage."""
    if EXHAUSTIVE or e.size <= 16:
        return list(range(e.size))
    chosen = {0, 1, e.size // 2, e.size - 2, e.size - 1}
    if e.dtype == "string":
        # the length varints, the 4 CRC bytes after them, the first element byte
        _, pos = checkpoint.string_lengths(raw[e.offset : e.offset + e.size], e.count, e.name)
        chosen |= set(range(pos)) | {pos}
    chosen |= {rng.randrange(e.size) for _ in range(SAMPLES)}
    return sorted(p for p in chosen if 0 <= p < e.size)


@pytest.mark.parametrize("fixture", ["all_dtypes", "sharded"])
def test_every_damaged_tensor_byte_is_found_and_named(fixture, tmp_path):
    src = FIXTURES / "checkpoint" / fixture
    shutil.copytree(src, tmp_path / fixture)
    prefix = tmp_path / fixture / "ckpt"
    assert tfmodelkit.check(prefix).ok
    index = checkpoint.read_index(prefix)
    rng = random.Random(f"bitflips-{fixture}")
    tried = 0
    dtypes = set()
    for subject, e in _parts(index):
        if e.size == 0:
            continue
        shard = Path(index.shard_path(e.shard))
        raw = shard.read_bytes()
        for offset in _positions(e, raw, rng):
            pos = e.offset + offset
            damaged = bytearray(raw)
            damaged[pos] ^= rng.randrange(1, 256)
            shard.write_bytes(bytes(damaged))
            try:
                report = tfmodelkit.check(prefix)
            finally:
                shard.write_bytes(raw)
            errors = [f.subject for f in report.findings if f.severity == "error"]
            assert errors == [subject], f"{shard.name} byte {pos} ({subject}, {e.dtype}): {report.findings}"
            tried += 1
        dtypes.add(e.dtype)
    assert tfmodelkit.check(prefix).ok
    assert tried > 50
    if fixture == "all_dtypes":
        assert {"string", "bfloat16", "float8_e4m3fn", "int4", "complex128", "bool"} <= dtypes
    else:
        assert any(s.endswith("(slice)") for s, _ in _parts(index))
        assert len({e.shard for _, e in _parts(index)}) == 7
