"""Checkpoint reader: index table, slice keys, folder resolution, damage detection."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

import tfmodelkit
from tfmodelkit.errors import CorruptFileError, NotFoundError, TFModelKitError
from tfmodelkit.formats import checkpoint, checkpoint_bundle, sstable

MNIST = "checkpoint/tf_mnist_stale_state"
STRINGS = "checkpoint/tf_old_string_tensors/foo"
TWO_SHARDS = "checkpoint/tfkeras_lso_ckpt_tf2.2/ckpt"


def _copy_prefix(src_prefix: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for f in src_prefix.parent.iterdir():
        if f.name.startswith(src_prefix.name + "."):
            shutil.copy(f, dst_dir / f.name)
    return dst_dir / src_prefix.name


def _encode_signed(v: int) -> bytes:
    """OrderedCode's signed encoding, written independently from the reader (for tests)."""
    x = ~v if v < 0 else v
    for n in range(1, 11):
        if x < (1 << (7 * n - 1)) if n < 9 else True:
            break
    body = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "big")
    header_bits = (0xFF << (8 * n - n)) & ((1 << (8 * n)) - 1)  # n leading ones
    value = int.from_bytes(body, "big") ^ header_bits
    return value.to_bytes(n, "big")


@pytest.mark.parametrize("v", [0, 1, 63, 64, 250, 8191, 8192, 1 << 20, (1 << 40) + 7, -1, -64, -65, -9000])
def test_signed_number_round_trip(v):
    enc = _encode_signed(v)
    got, pos = checkpoint_bundle._read_signed(enc, 0)
    assert (got, pos) == (v, len(enc))


def test_slice_key_from_formats_doc():
    # a [1000, 16] variable's first slice: rank 2, dim0 start 0 length 250, dim1 0..16
    key = b"\x00embedding\x00\x01" + b"\x01\x02" + b"\x80\xc0\xfa\x80\x90"
    assert checkpoint.decode_slice_key(key) == ("embedding", ((0, 250), (0, 16)))
    key = b"\x00emb\x00\xffx\x00\x01" + b"\x01\x01" + b"\xc0\xfa\x7f"
    assert checkpoint.decode_slice_key(key) == ("emb\x00x", ((250, -1),))


def test_mask_round_trip():
    for c in (0, 1, 0xFFFFFFFF, 0x12345678):
        assert sstable.unmask_crc(sstable.mask_crc(c)) == c


def test_snappy_index_block(corpus):
    # This TF 1.x index stores its data block Snappy-compressed.
    desc = tfmodelkit.read(corpus / MNIST / "model.ckpt-46900.index")
    assert len(desc.weights) == 27
    assert desc.weight("global_step").read() == 46900


def test_roles_tf1_slots(corpus):
    desc = tfmodelkit.read(corpus / MNIST)
    roles = {w.name: w.role for w in desc.weights}
    assert roles["dense/kernel"] == "model"
    assert roles["dense/kernel/Adam"] == roles["dense/kernel/Adam_1"] == "optimizer"
    assert roles["beta1_power"] == "optimizer"
    assert roles["global_step"] == "other"


def test_roles_object_graph(corpus):
    desc = tfmodelkit.read(corpus / TWO_SHARDS)
    by = {w.path: w for w in desc.weights}
    assert by["layer_with_weights-0/kernel"].role == "model"
    assert by["layer_with_weights-0/kernel"].extra["variable_name"] == "sequential/dense/kernel"
    assert by["layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/base_optimizer/momentum"].role == "optimizer"
    assert by["optimizer/base_optimizer/iter"].role == "optimizer"
    assert desc.metadata["shards"] == 2


def test_strings(corpus):
    desc = tfmodelkit.read(corpus / STRINGS)
    strs = desc.weight("strs").read()
    assert strs.shape == (4,) and all(isinstance(s, bytes) for s in strs)
    assert tfmodelkit.check(corpus / STRINGS).ok


def test_every_path_form_resolves_to_the_same_prefix(corpus, tmp_path):
    prefix = _copy_prefix(corpus / MNIST / "model.ckpt-46900", tmp_path / "ck")
    forms = [prefix, Path(str(prefix) + ".index"), Path(str(prefix) + ".data-00000-of-00001"), prefix.parent]
    assert {checkpoint.resolve(f).prefix for f in forms} == {prefix}


def test_stale_and_foreign_state_files_fall_back_to_newest(corpus, tmp_path):
    folder = tmp_path / "ck"
    old = _copy_prefix(corpus / MNIST / "model.ckpt-46900", folder)
    newer = folder / "model.ckpt-50000"
    for f in folder.iterdir():
        if f.name.startswith(old.name + "."):
            shutil.copy(f, folder / f.name.replace(old.name, newer.name))
    os.utime(str(newer) + ".index", (time.time() + 10, time.time() + 10))
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-99999"\n')
    r = checkpoint.resolve(folder)
    assert r.prefix == newer and "does not exist" in r.notes[0]
    (folder / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/train/model.ckpt-46900"\n')
    r = checkpoint.resolve(folder)
    assert r.prefix == old and "elsewhere" in r.notes[0]
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-46900"\n')
    assert checkpoint.resolve(folder) == checkpoint.Resolved(old)
    assert checkpoint.prefixes(folder) == [old, newer]


def test_missing_paths(tmp_path):
    with pytest.raises(NotFoundError):
        tfmodelkit.read(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TFModelKitError):
        tfmodelkit.read(tmp_path / "empty", format="checkpoint")


def test_missing_shard_is_named(corpus, tmp_path):
    prefix = _copy_prefix(corpus / TWO_SHARDS, tmp_path / "ck")
    os.remove(str(prefix) + ".data-00001-of-00002")
    report = tfmodelkit.check(prefix)
    assert not report.ok
    assert any("data-00001-of-00002" in f.subject for f in report.findings)
    desc = tfmodelkit.read(prefix)  # listing needs only the index
    with pytest.raises(NotFoundError, match="data shard missing"):
        desc.weight("layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE").read()


def test_single_byte_flip_in_every_tensor_is_found_and_named(corpus, tmp_path):
    """Flip one byte inside each tensor in turn: check must fail and name that tensor."""
    src = corpus / MNIST / "model.ckpt-46900"
    index = checkpoint.read_index(src)
    rng = random.Random(7)
    for name, entry in sorted(index.entries.items()):
        if entry.size == 0:
            continue
        prefix = _copy_prefix(src, tmp_path / name.replace("/", "_"))
        data = Path(str(prefix) + ".data-00000-of-00001")
        raw = bytearray(data.read_bytes())
        raw[entry.offset + rng.randrange(entry.size)] ^= 0x10
        data.write_bytes(bytes(raw))
        report = tfmodelkit.check(prefix)
        assert not report.ok
        assert [f.subject for f in report.findings if f.severity == "error"] == [name]


def test_truncated_shard(corpus, tmp_path):
    prefix = _copy_prefix(corpus / MNIST / "model.ckpt-46900", tmp_path / "ck")
    data = Path(str(prefix) + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1000])
    report = tfmodelkit.check(prefix)
    assert not report.ok and len([f for f in report.findings if f.severity == "error"]) > 10
    with pytest.raises(CorruptFileError, match="truncated"):
        tfmodelkit.read(prefix).weight("dense/kernel").read()


def test_damaged_index_bytes_never_escape_as_other_errors(corpus, tmp_path):
    """Every truncation and many bit flips of an index: only our errors, quickly."""
    src = corpus / TWO_SHARDS
    raw = Path(str(src) + ".index").read_bytes()
    prefix = _copy_prefix(src, tmp_path / "ck")
    index = Path(str(prefix) + ".index")
    rng = random.Random(3)
    mutants = [raw[:n] for n in range(0, len(raw), 7)]
    for _ in range(300):
        b = bytearray(raw)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        mutants.append(bytes(b))
    for m in mutants:
        index.write_bytes(m)
        start = time.monotonic()
        try:
            desc = tfmodelkit.read(prefix)
            for w in desc.weights:
                w.read()
            tfmodelkit.check(prefix)
        except TFModelKitError:
            pass
        assert time.monotonic() - start < 2


def test_orphans_of_interrupted_saves_are_reported(corpus, tmp_path):
    prefix = _copy_prefix(corpus / MNIST / "model.ckpt-46900", tmp_path / "ck")
    Path(str(prefix) + ".index.tempstate123456").write_bytes(b"x")
    desc = tfmodelkit.read(prefix)
    assert any("interrupted save" in w for w in desc.warnings)
    report = tfmodelkit.check(prefix)
    assert report.ok and any(f.severity == "warning" for f in report.findings)


def _graph(spec):
    """A TrackableObjectGraph from {node: ([(child name, child id)], [checkpoint keys])}."""
    from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb

    g = pb.TrackableObjectGraph()
    for nid in range(len(spec)):
        children, keys = spec[nid]
        node = g.nodes.add()
        for name, cid in children:
            node.children.add(node_id=cid, local_name=name)
        for key in keys:
            node.attributes.add(name="VARIABLE_VALUE", checkpoint_key=key)
    return g


def test_model_weight_keyed_under_optimizer_is_model_state():
    # Keys are the shortest path: Keras 3's optimizer lists the variables it trains, so a
    # deeply nested model kernel gets the key optimizer/_trainable_variables/0/...
    k = "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"
    it = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    g = _graph({
        0: ([("model", 1), ("optimizer", 2)], []),
        1: ([("block", 3)], []),
        2: ([("_trainable_variables", 4), ("_iterations", 6)], []),
        3: ([("inner", 7)], []),
        4: ([("0", 5)], []),
        5: ([], [k]),
        6: ([], [it]),
        7: ([("kernel", 5)], []),
    })  # fmt: skip
    _, optimizer_keys, roots = checkpoint.object_paths(g)
    assert roots == ["model", "optimizer"]
    assert optimizer_keys == {it}


# ---------------------------------------------------------------------------------------
# An empty prefix: `Saver.save(session, "<folder>/")` writes .index, .data-*, .meta


EMPTY_PREFIX = "checkpoint/tf1_empty_prefix"
EMPTY_PREFIX_KEYS = {
    "global_step": ("int64", ()),
    "hidden/bias": ("float32", (5,)),
    "hidden/bias/Momentum": ("float32", (5,)),
    "hidden/kernel": ("float32", (4, 5)),
    "hidden/kernel/Momentum": ("float32", (4, 5)),
    "logits/kernel": ("float32", (5, 3)),
    "logits/kernel/Momentum": ("float32", (5, 3)),
}


def _empty_prefix_forms(folder: Path) -> list[Path | str]:
    return [folder, str(folder) + os.sep, folder / ".index", folder / ".data-00000-of-00001", folder / "checkpoint"]


def test_empty_prefix_is_read_from_the_folder_and_from_each_of_its_files(fixtures_dir):
    folder = fixtures_dir / EMPTY_PREFIX
    assert "/home/someone/train/" in (folder / "checkpoint").read_text()  # another machine's path
    for form in _empty_prefix_forms(folder):
        assert tfmodelkit.detect(form) == "checkpoint", form
        resolved = checkpoint.resolve(form)
        assert str(resolved.prefix) == str(folder) + os.sep, form
        assert resolved.prefix.name == "" and resolved.prefix.parent == folder
        desc = tfmodelkit.read(form)
        assert desc.path == str(folder) + os.sep
        assert {w.name: (w.dtype, w.shape) for w in desc.weights} == EMPTY_PREFIX_KEYS
        assert {w.name for w in desc.weights if w.role == "optimizer"} == {k for k in EMPTY_PREFIX_KEYS if "Momentum" in k}
        assert desc.weight("hidden/kernel").read().shape == (4, 5)
        report = tfmodelkit.check(form)
        assert report.ok and report.checked == {"tensors": 7, "shards": 1}, form
    notes = checkpoint.resolve(folder).notes
    assert len(notes) == 1 and "/home/someone/train/" in notes[0] and "the empty prefix" in notes[0]


def test_empty_prefix_without_a_state_file_and_beside_other_prefixes(fixtures_dir, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(fixtures_dir / EMPTY_PREFIX, folder)
    (folder / "checkpoint").unlink()
    assert tfmodelkit.detect(folder) == "checkpoint"
    assert str(checkpoint.resolve(folder).prefix) == str(folder) + os.sep
    assert checkpoint.prefixes(folder) == [checkpoint_bundle.EmptyPrefix(folder)]
    # The state file of the machine that trained it, written with save_relative_paths=False:
    # once this folder's own absolute path, it names the prefix exactly (no note).
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "{folder}/"\n')
    assert checkpoint.resolve(folder) == checkpoint.Resolved(checkpoint_bundle.EmptyPrefix(folder))
    # A prefix next to it is listed too, and a state file naming it wins.
    for f in (fixtures_dir / EMPTY_PREFIX).iterdir():
        if f.name.startswith((".index", ".data-")):
            shutil.copy(f, folder / f"model.ckpt-9{f.name}")
    (folder / "checkpoint").write_text('model_checkpoint_path: "C:\\\\train\\\\model.ckpt-9"\n')
    r = checkpoint.resolve(folder)
    assert r.prefix == folder / "model.ckpt-9" and "elsewhere" in r.notes[0]
    assert set(checkpoint.prefixes(folder)) == {folder / "model.ckpt-9", checkpoint_bundle.EmptyPrefix(folder)}
    # `--all` covers each prefix once, the empty one too (its name as text is the folder's).
    from tfmodelkit.inspect.views import expand_paths

    covered = sorted(tfmodelkit.read(p).path for p in expand_paths(folder, every_prefix=True))
    assert covered == [str(folder) + os.sep, str(folder / "model.ckpt-9")]
    # An interrupted save of the empty prefix leaves `.index.tempstate<digits>`.
    (folder / ".index.tempstate123").write_bytes(b"x")
    assert any(".index.tempstate123" in w for w in tfmodelkit.read(folder / ".index").warnings)


def test_empty_prefix_data_file_without_its_index(fixtures_dir, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(fixtures_dir / EMPTY_PREFIX, folder)
    (folder / ".index").unlink()
    with pytest.raises(NotFoundError, match=r"expected .*train/\.index"):
        tfmodelkit.read(folder / ".data-00000-of-00001")


@pytest.mark.tf
def test_empty_prefix_values_are_tensorflows(fixtures_dir):
    """Our values are those of TensorFlow's reader given the prefix ``<folder>/``; TF's own
    folder lookup fails on the foreign state file, and given the ``.index`` it lists nothing
    (docs/format-notes.md)."""
    tf = pytest.importorskip("tensorflow")
    import numpy as np

    folder = fixtures_dir / EMPTY_PREFIX
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)
    desc = tfmodelkit.read(folder)
    assert sorted(reader.get_variable_to_shape_map()) == sorted(EMPTY_PREFIX_KEYS)
    for w in desc.weights:
        np.testing.assert_array_equal(w.read(), reader.get_tensor(w.name))
    with pytest.raises(ValueError, match="Couldn't find 'checkpoint' file"):
        tf.train.load_checkpoint(str(folder))
    assert tf.train.list_variables(str(folder / ".index")) == []
