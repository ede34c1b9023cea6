"""Streaming reads: chunks where the bytes lie, slices never assembled for check and stats."""

from __future__ import annotations

import shutil
import struct

import ml_dtypes
import numpy as np
import pytest

import tfmodelkit
from tests.bundle import write_checkpoint
from tfmodelkit.formats import checkpoint, stream
from tfmodelkit.inspect.stats import array_stats, weight_stats
from tfmodelkit.inspect.tensor import savable, write_npy
from tfmodelkit.inspect.views import weights_view

SLICED = ["checkpoint/sharded/ckpt", "checkpoint/partitioned_tf1/model.ckpt"]


def _same_stats(a, b) -> None:
    assert (a.count, a.nan, a.inf) == (b.count, b.nan, b.inf)
    for k in ("min", "max", "mean", "std"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9, abs=1e-12), k


@pytest.fixture
def no_assembly(monkeypatch):
    """Fail if anything assembles a partitioned tensor."""

    def refuse(*a, **k):
        raise AssertionError("a partitioned tensor was assembled")

    monkeypatch.setattr(checkpoint, "_assemble", refuse)


@pytest.mark.parametrize("rel", SLICED)
def test_stats_of_sliced_variables_stream_slice_by_slice(fixtures_dir, rel, monkeypatch):
    desc = tfmodelkit.read(fixtures_dir / rel)
    expected = {w.name: array_stats(w.read()) for w in desc.weights if w.dtype != "string"}
    assert any(w.extra.get("slices") for w in desc.weights)

    def refuse(*a, **k):
        raise AssertionError("a partitioned tensor was assembled")

    monkeypatch.setattr(checkpoint, "_assemble", refuse)
    for w in desc.weights:
        if w.dtype == "string":
            continue
        _same_stats(weight_stats(w, chunk=7), expected[w.name])
        _same_stats(weight_stats(w), expected[w.name])


@pytest.mark.parametrize("rel", SLICED)
def test_check_streams_every_slice_where_it_lies(fixtures_dir, rel, no_assembly):
    seen: list[tuple[int, int]] = []
    report = tfmodelkit.check(fixtures_dir / rel, progress=lambda done, total: seen.append((done, total)))
    assert report.ok, report.findings
    index = checkpoint.read_index(checkpoint.resolve(fixtures_dir / rel).prefix)
    parts = [p for e in index.entries.values() for p in ([q for _, q in e.slices] if e.partitioned else [e])]
    assert report.checked["tensors"] == len(parts)
    total = sum(p.size for p in parts)
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_damage_inside_a_slice_is_found_and_named(fixtures_dir, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(fixtures_dir / "checkpoint/sharded", folder)
    index = checkpoint.read_index(folder / "ckpt")
    entry = index.entries["table/.ATTRIBUTES/VARIABLE_VALUE"]
    _, part = entry.slices[2]
    shard = index.shard_path(part.shard)
    data = bytearray(shard.read_bytes())
    data[part.offset + part.size // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    report = tfmodelkit.check(folder / "ckpt")
    assert not report.ok
    [finding] = report.findings
    assert finding.subject == "table/.ATTRIBUTES/VARIABLE_VALUE (slice)"
    assert "checksum mismatch" in finding.message


@pytest.mark.parametrize("rel", SLICED)
def test_ordered_chunks_are_row_major_and_unordered_ones_a_permutation(fixtures_dir, rel):
    desc = tfmodelkit.read(fixtures_dir / rel)
    for w in desc.weights:
        if w.dtype == "string":
            continue
        full = w.read().reshape(-1)
        ordered = np.concatenate(list(w.iter_chunks(max_bytes=12)))
        assert np.array_equal(ordered, full)
        stored = np.concatenate(list(w.iter_chunks(max_bytes=12, ordered=False)))
        assert np.array_equal(np.sort(stored), np.sort(full))
        assert all(c.nbytes <= 12 for c in w.iter_chunks(max_bytes=12, ordered=False))


def test_nan_and_inf_counted_from_a_real_checkpoint(fixtures_dir):
    # all_dtypes holds a float32 tensor with one NaN and two Infs, written by TensorFlow.
    view = weights_view(tfmodelkit.read(fixtures_dir / "checkpoint/all_dtypes/ckpt"), stats=True)
    by = {w["dtype"]: w for w in view["weights"]}
    assert (by["float32"]["nan"], by["float32"]["inf"]) == (1, 2)
    values = (
        tfmodelkit.read(fixtures_dir / "checkpoint/all_dtypes/ckpt")
        .weight(next(w["name"] for w in view["weights"] if w["dtype"] == "float32"))
        .read()
    )
    finite = values[np.isfinite(values)].astype(np.float64)
    assert by["float32"]["mean"] == pytest.approx(finite.mean())
    assert by["float32"]["max"] == finite.max()


def test_every_dtype_of_a_real_checkpoint_streams_like_it_reads(fixtures_dir):
    desc = tfmodelkit.read(fixtures_dir / "checkpoint/all_dtypes/ckpt")
    for w in desc.weights:
        if w.dtype == "string":
            continue
        full = w.read()
        chunks = list(w.iter_chunks(max_bytes=3))
        assert all(c.dtype == full.dtype for c in chunks), w.dtype
        assert np.concatenate(chunks).tobytes() == full.tobytes()
        _same_stats(weight_stats(w, chunk=2), array_stats(full))


def test_big_endian_bundles_are_swapped_chunk_by_chunk(tmp_path, fixtures_dir):
    values = np.linspace(-3, 3, 1001, dtype=np.float32)
    prefix = write_checkpoint(tmp_path / "be", {"x": values.astype(">f4").view("<f4")})
    # Flip the header's endianness to BIG (field 2): the bytes are then read as big-endian.
    index = checkpoint.read_index(prefix)
    assert not index.big_endian
    index.big_endian = True
    desc = checkpoint.describe_index(index, str(prefix))
    got = np.concatenate(list(desc.weight("x").iter_chunks(max_bytes=64)))
    assert got.dtype.isnative and np.array_equal(got, values)


def test_chunks_never_exceed_the_budget_and_cover_the_tensor(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "a": rng.standard_normal(100_003).astype(np.float32),
        "b": rng.standard_normal(5001).astype(ml_dtypes.bfloat16),
        "p": [
            rng.standard_normal((70, 33)).astype(np.float32),
            rng.standard_normal((9000, 33)).astype(np.float32),
        ],
    }
    prefix = write_checkpoint(tmp_path / "c", tensors)
    desc = tfmodelkit.read(prefix)
    for w in desc.weights:
        for budget in (1, 1000, 4099, 1 << 20):
            chunks = list(w.iter_chunks(max_bytes=budget, ordered=False))
            item = chunks[0].itemsize
            assert all(c.nbytes <= max(budget - budget % item, item) for c in chunks)
            assert sum(c.size for c in chunks) == w.size
    assert tfmodelkit.check(prefix).ok


@pytest.mark.parametrize(
    "name", ["embedding", "layer/matrix"]
)  # row blocks are streamed; slices along dim 1 fall back to assembling
def test_write_npy_streams_and_matches_np_save(fixtures_dir, tmp_path, name):
    desc = tfmodelkit.read(fixtures_dir / "checkpoint/partitioned_tf1/model.ckpt")
    w = desc.weight(name)
    seen = []
    assert write_npy(w, tmp_path / "a.npy", progress=lambda d, t: seen.append((d, t))) is None
    np.save(tmp_path / "b.npy", w.read())
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


def test_write_npy_widens_bfloat16_and_keeps_strings(fixtures_dir, tmp_path):
    desc = tfmodelkit.read(fixtures_dir / "checkpoint/all_dtypes/ckpt")
    for w in desc.weights:
        if w.dtype in (
            "int2",
            "uint2",
            "int4",
            "uint4",
            "float8_e4m3fn",
            "float8_e5m2",
            "bfloat16",
            "string",
        ):
            note = write_npy(w, tmp_path / f"{w.dtype}.npy")
            expected, expected_note = savable(w.read())
            got = np.load(tmp_path / f"{w.dtype}.npy")
            assert note == expected_note
            assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()


def test_write_npy_of_a_large_tensor_reports_progress(tmp_path):
    values = np.arange(3_000_001, dtype=np.int64)
    prefix = write_checkpoint(tmp_path / "c", {"v": values})
    w = tfmodelkit.read(prefix).weight("v")
    seen = []
    write_npy(w, tmp_path / "v.npy", progress=lambda d, t: seen.append((d, t)))
    assert np.array_equal(np.load(tmp_path / "v.npy"), values)
    assert seen[-1] == (values.nbytes, values.nbytes) and len(seen) >= 2


def test_mapped_file_bounds_and_truncation(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    m = stream.MappedFile(path)
    got = b"".join(c.tobytes() for c in m.chunks(1000, 1_500_000, max_bytes=300_000))
    assert got == path.read_bytes()[1000:1_501_000]
    with pytest.raises(tfmodelkit.CorruptFileError, match="truncated"):
        list(m.chunks(2_000_000, 200_000))
    small = b"".join(c.tobytes() for c in stream.byte_chunks(path, 5, 100, max_bytes=7))
    assert small == path.read_bytes()[5:105]
    with pytest.raises(tfmodelkit.NotFoundError):
        list(stream.byte_chunks(tmp_path / "missing", 0, 10))
    m.close()


def test_crc_over_numpy_views_matches_bytes():
    from tfmodelkit.formats.sstable import crc32c

    data = np.frombuffer(struct.pack("<1000d", *range(1000)), dtype=np.uint8)
    assert (
        crc32c(data[8:4008]) == crc32c(data[8:4008].tobytes()) == crc32c(memoryview(data[8:4008].tobytes()))
    )


def test_google_crc32c_uses_its_c_extension():
    import google_crc32c

    assert google_crc32c.implementation == "c"


@pytest.mark.parametrize(
    "rel",
    [
        "keras_h5/tfkeras_full_adam.h5",
        "keras_h5/keras3.weights.h5",
        "keras_zip/conv_bn.keras",
        "tflite/mlp_int8.tflite",
        "tflite/mlp_float16.tflite",
        "tflite/multi_signature.tflite",
    ],
)
def test_other_formats_stream_what_they_read(fixtures_dir, rel):
    desc = tfmodelkit.read(fixtures_dir / rel)
    assert desc.weights
    for w in desc.weights:
        assert w._chunker is not None
        full = w.read()
        chunks = list(w.iter_chunks(max_bytes=40))
        assert sum(c.size for c in chunks) == full.size
        assert (
            np.concatenate(chunks).tobytes()
            == np.ascontiguousarray(full, full.dtype.newbyteorder("=")).tobytes()
        )
        _same_stats(weight_stats(w, chunk=5), array_stats(full))


def test_hdf5_chunked_compressed_data_streams_in_row_blocks_from_the_child(tmp_path):
    import h5py

    values = np.arange(1000 * 37, dtype=">f4").reshape(1000, 37)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("a/kernel", data=values, chunks=(10, 37), compression="gzip")
    w = tfmodelkit.read(tmp_path / "c.h5").weight("a/kernel")
    chunks = list(w.iter_chunks(max_bytes=37 * 4 * 30))
    assert len(chunks) == 34 and all(c.dtype.isnative for c in chunks)
    assert np.array_equal(np.concatenate(chunks), values.reshape(-1))
    # Abandoning the stream kills the reading child instead of waiting on it.
    it = w.iter_chunks(max_bytes=200)
    next(it)
    it.close()
    _same_stats(weight_stats(w), array_stats(values))
