"""V1 checkpoints (TensorSliceWriter tables) read without TensorFlow, against TF's own readers:
``NewCheckpointReader`` where it can (it refuses V1 files with slices), a Saver restore where not."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.errors import CorruptFileError, FormatError, TFModelKitError
from tfmodelkit.formats import checkpoint_v1

SAVER = FIXTURES / "checkpoint/v1_saver/model.ckpt"
SHARDED = FIXTURES / "checkpoint/v1_sharded/model.ckpt-00000-of-00001"
SERVING = "savedmodel/tfserving_bad_half_plus_two/00000123"

needs_tf = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")


def _values(path) -> dict:
    return {w.name: w.read() for w in tfmodelkit.read(path).weights}


def _same(ours: dict, theirs: dict) -> None:
    assert sorted(ours) == sorted(theirs)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], np.asarray(value), err_msg=name)


def _tf_reader(path) -> dict:
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_serving_export_lists_variables(corpus):
    desc = tfmodelkit.read(corpus / SERVING / "export")
    assert tfmodelkit.detect(corpus / SERVING / "export") == "checkpoint_v1"
    assert desc.format == "checkpoint" and desc.metadata["kind"].startswith("V1")
    assert [(w.name, w.dtype, w.shape) for w in desc.weights] == [
        ("Variable", "float32", ()),
        ("Variable_1", "float32", ()),
    ]
    assert [float(w.read()) for w in desc.weights] == [0.5, 2.0]
    # The folder's checkpoint state file names the export by an absolute path of another machine.
    assert tfmodelkit.detect(corpus / SERVING) == "checkpoint_v1"
    assert tfmodelkit.check(corpus / SERVING / "export").ok


@needs_tf
def test_serving_export_matches_tf_reader(corpus):
    _same(_values(corpus / SERVING / "export"), _tf_reader(corpus / SERVING / "export"))


@needs_tf
def test_sharded_with_strings_matches_tf_reader():
    desc = tfmodelkit.read(SHARDED)
    assert desc.weight("labels").dtype == "string"
    assert list(desc.weight("labels").read()) == [b"cat", b"", "\u00e9t\u00e9".encode(), b"\x00\xff"]
    _same(_values(SHARDED), _tf_reader(SHARDED))


@needs_tf
def test_partitioned_matches_a_saver_restore():
    """TF's checkpoint reader refuses sliced V1 files; restoring the graph gives the values."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as s:
        saver = tf.compat.v1.train.import_meta_graph(str(SAVER) + ".meta")
        saver.restore(s, str(SAVER))
        parts: dict[str, list] = {}
        for v in tf.compat.v1.global_variables():
            info = v._save_slice_info
            name = info.full_name if info else v.op.name
            parts.setdefault(name, []).append(((info.var_offset if info else [0]), s.run(v)))
    theirs = {k: np.concatenate([p for _, p in sorted(v, key=lambda x: list(x[0]))]) if len(v) > 1 else v[0][1]
              for k, v in parts.items()}  # fmt: skip
    desc = tfmodelkit.read(SAVER)
    assert desc.weight("emb").extra["slices"] == 3
    _same(_values(SAVER), theirs)


def test_detection_and_naming():
    assert tfmodelkit.detect(SAVER) == "checkpoint_v1"
    assert tfmodelkit.detect(SAVER.parent) == "checkpoint_v1"
    pattern = SHARDED.parent / "model.ckpt-?????-of-00001"
    assert tfmodelkit.detect(pattern) == "checkpoint_v1"
    assert tfmodelkit.detect(SHARDED.parent / "model.ckpt") == "checkpoint_v1"
    assert tfmodelkit.read(pattern).path == str(pattern)
    # The V2 fixtures are still V2.
    assert tfmodelkit.detect(FIXTURES / "checkpoint/tf1_cnn/model.ckpt") == "checkpoint"


def test_check_passes_and_counts():
    report = tfmodelkit.check(SAVER)
    assert report.ok
    assert report.checked == {"tensors": 5, "slices": 7, "shards": 1}


def test_damage_is_reported_not_raised(tmp_path):
    data = bytearray(SAVER.read_bytes())
    damaged = tmp_path / "model.ckpt"
    data[0x200] ^= 0x40  # inside the data blocks: a checksum mismatch
    damaged.write_bytes(bytes(data))
    report = tfmodelkit.check(damaged)
    assert not report.ok
    assert any("checksum" in f.message for f in report.findings)
    truncated = tmp_path / "t.ckpt"
    truncated.write_bytes(SAVER.read_bytes()[:-3])
    with pytest.raises(TFModelKitError):
        checkpoint_v1.read(truncated)


def test_missing_shard_named(tmp_path):
    for k in range(2):
        shutil.copy(SHARDED, tmp_path / f"m.ckpt-0000{k}-of-00002")
    (tmp_path / "m.ckpt-00001-of-00002").unlink()
    with pytest.raises(TFModelKitError, match="shards missing: m.ckpt-00001-of-00002"):
        checkpoint_v1.read(tmp_path / "m.ckpt-00000-of-00002")


def test_renamed_savedmodel_proto_is_told_apart(tmp_path, corpus):
    pb = tmp_path / "model.pb"
    shutil.copy(corpus / "savedmodel/tfserving_saved_model_half_plus_three/00000123/saved_model.pb", pb)
    with pytest.raises(FormatError, match="SavedModel protobuf outside its folder"):
        tfmodelkit.detect(pb)


def test_every_shape_bound_is_checked(tmp_path):
    """A meta record claiming a huge shape is refused before allocating."""
    from tfmodelkit.formats.checkpoint_v1 import Checkpoint, TensorMeta, read_tensor

    ckpt = Checkpoint([SAVER], [checkpoint_v1.Shard(SAVER)], {}, None)
    with pytest.raises(CorruptFileError, match="cannot be stored"):
        read_tensor(ckpt, TensorMeta("big", "float32", (1 << 20, 1 << 20)))


def test_serving_base_folder_of_a_session_bundle(corpus):
    """``<base>/<version>/export``: the base folder means its highest version's export, as for
    SavedModels, and the export's graph (export.meta) is named beside it."""
    base = corpus / SERVING.split("/00000123")[0]
    assert tfmodelkit.detect(base) == "checkpoint_v1"
    desc = tfmodelkit.read(base)
    assert [w.name for w in desc.weights] == ["Variable", "Variable_1"]
    assert desc.metadata["graph"].endswith("00000123/export.meta")
    assert [w.extra["graph_variable"] for w in desc.weights] == ["Variable", "Variable_1"]


def test_signatures_of_a_checkpoint_point_at_its_graph(corpus, capsys):
    from tfmodelkit.cli.modelinspect import main

    assert main(["signatures", str(corpus / SERVING)]) == 0
    out, err = capsys.readouterr()
    assert "no signatures" in out and "modelinspect signatures" in err and "export.meta" in err
