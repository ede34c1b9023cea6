"""MetaGraphDef ``.meta`` files and frozen GraphDefs read without TensorFlow, against TF's own parse."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.errors import TFModelKitError
from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb
from tfmodelkit.formats.tensor_proto import to_array

META = FIXTURES / "checkpoint/v1_saver/model.ckpt.meta"
CNN_META = FIXTURES / "checkpoint/tf1_cnn/model.ckpt.meta"
FROZEN = FIXTURES / "graphdef/frozen.pb"
FROZEN_TEXT = FIXTURES / "graphdef/frozen.pbtxt"

needs_tf = pytest.mark.skipif(not tf_available(), reason="TensorFlow not installed (the convert extra)")


def _tf_graph_def(path):
    import tensorflow as tf
    from google.protobuf import text_format

    g = tf.compat.v1.GraphDef()
    if path.suffix == ".pbtxt":
        text_format.Parse(path.read_text(), g)
    else:
        g.ParseFromString(path.read_bytes())
    return g


def _census(graph) -> Counter:
    c = Counter(n.op for n in graph.node)
    for f in graph.library.function:
        c.update(n.op for n in f.node_def)
    return c


@needs_tf
@pytest.mark.parametrize("path", [FROZEN, FROZEN_TEXT], ids=["binary", "text"])
def test_frozen_graph_matches_tf(path):
    import tensorflow as tf

    desc = tfmodelkit.read(path)
    assert tfmodelkit.detect(path) == "graphdef" and desc.format == "graphdef"
    graph = _tf_graph_def(path)
    assert desc.ops == dict(_census(graph))
    # The tf.cond is there (as If/StatelessIf with its branch functions, or Switch/Merge).
    assert {"If", "StatelessIf", "Switch"} & set(desc.ops)
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    assert {w.name for w in desc.weights} == set(consts)
    for w in desc.weights:
        np.testing.assert_array_equal(w.read(), consts[w.name], err_msg=w.name)
    (sig,) = desc.signatures
    assert [(t.name, t.dtype, t.shape, t.tensor) for t in sig.inputs] == [("x", "float32", (None, 3), "x:0")]
    assert [t.tensor for t in sig.outputs] == ["y:0"]
    assert desc.metadata["inputs_with_defaults"] == ["flag"]
    assert tfmodelkit.check(path).ok


@needs_tf
def test_metagraph_matches_tf():
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    theirs = meta_graph_pb2.MetaGraphDef()
    theirs.ParseFromString(META.read_bytes())
    desc = tfmodelkit.read(META)
    assert desc.format == "metagraph"
    assert desc.ops == dict(_census(theirs.graph_def))
    assert (desc.producer.tensorflow or "") == theirs.meta_info_def.tensorflow_version
    assert sorted(desc.metadata["collections"]) == sorted(theirs.collection_def)
    assert desc.metadata["saver"]["version"] == "V1"
    assert desc.metadata["saver"]["restore_op"] == theirs.saver_def.restore_op_name
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.import_meta_graph(str(META))
        declared = {
            v.op.name: (v.dtype.base_dtype.name, v.shape.as_list()) for v in tf.compat.v1.global_variables()
        }
    ours = {v["name"]: (v["dtype"], v["shape"]) for v in desc.metadata["variables"]}
    assert ours == declared
    # The checkpoint beside it gives the weights, each naming the graph variables it restores.
    assert desc.weight("emb").extra["graph_variable"] == "emb/part_0, emb/part_1, emb/part_2"
    assert desc.weight("dense/kernel").extra["graph_variable"] == "dense/kernel"
    assert desc.weight("emb").path == "emb/part_0, emb/part_1, emb/part_2"
    assert tfmodelkit.check(META).ok


def test_serving_export_meta(corpus):
    desc = tfmodelkit.read(corpus / "savedmodel/tfserving_bad_half_plus_two/00000123/export.meta")
    assert [w.name for w in desc.weights] == ["Variable", "Variable_1"]
    assert desc.metadata["saver"]["version"] == "LEGACY"
    (sig,) = desc.signatures
    assert [t.tensor for t in sig.inputs] == ["Placeholder:0"]


def test_cnn_meta_signature():
    (sig,) = tfmodelkit.read(CNN_META).signatures
    assert [(t.tensor, t.shape) for t in sig.inputs] == [("images:0", (None, 8, 8, 1))]
    assert [t.tensor for t in sig.outputs] == ["probs:0"]


@needs_tf
@pytest.mark.parametrize(
    "value",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1.5, -2.0], np.float16),
        np.array([[1, -2]], np.int8),
        np.array([2**40], np.int64),
        np.array([True, False]),
        np.array([1 + 2j], np.complex64),
        np.array([3, 4], np.uint32),
        np.array([b"a", b""], dtype=object),
    ],
    ids=lambda v: str(v.dtype),
)
def test_tensor_proto_round_trip(value):
    import tensorflow as tf

    dtype = (
        "string" if value.dtype == object else {"float16": "float16"}.get(str(value.dtype), str(value.dtype))
    )
    for proto_tf in (
        tf.make_tensor_proto(value),
        tf.make_tensor_proto(value.reshape(-1)[:1], shape=value.shape),
    ):
        proto = pb.TensorProto()
        proto.ParseFromString(proto_tf.SerializeToString())
        np.testing.assert_array_equal(to_array(proto, dtype, value.shape, "t"), tf.make_ndarray(proto_tf))


def test_damaged_graphs_fail_in_one_line(tmp_path):
    for src in (FROZEN, META):
        data = src.read_bytes()
        for cut in (1, 7, len(data) // 3, len(data) - 1):
            bad = tmp_path / f"cut{cut}{src.suffix}"
            bad.write_bytes(data[:cut])
            try:
                desc = tfmodelkit.read(bad)
                for w in desc.weights:
                    w.read()
                tfmodelkit.check(bad)
            except TFModelKitError as e:
                assert "\n" not in str(e)


def _tf_feeds(meta):
    """TF's own pairing: checkpoint key -> the graph variables its Saver restores from it."""
    import tensorflow as tf

    graph = tf.Graph()
    feeds: dict[str, list[str]] = {}
    with graph.as_default():
        tf.compat.v1.train.import_meta_graph(str(meta))
        for v in tf.compat.v1.global_variables():
            info = v._save_slice_info  # noqa: SLF001 (TF's own record of a partitioned variable)
            feeds.setdefault(info.full_name if info else v.op.name, []).append(v.op.name)
    return {k: ", ".join(sorted(v)) for k, v in feeds.items()}


def _write_v2_partitioned(prefix):
    """A TF1 graph with a partitioned and a plain variable, saved by a default (V2) Saver."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        table = tf.compat.v1.get_variable(
            "table", [6, 4], partitioner=tf.compat.v1.fixed_size_partitioner(2)
        )
        w = tf.compat.v1.get_variable("head/w", [4, 2])
        tf.matmul(x + tf.reduce_sum(tf.convert_to_tensor(table), 0), w, name="y")
        with tf.compat.v1.Session(graph=graph) as s:
            s.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(s, str(prefix))


@needs_tf
@pytest.mark.parametrize("kind", ["v2", "v1"])
def test_checkpoint_beside_its_meta_names_the_graph_variable_each_tensor_feeds(tmp_path, kind, capsys):
    """``modelinspect weights CKPT`` (not the .meta): V2 (.index/.data) and V1 checkpoints alike."""
    from tfmodelkit.cli.modelinspect import main

    if kind == "v2":
        prefix = tmp_path / "model.ckpt"
        _write_v2_partitioned(prefix)
    else:
        prefix = META.with_suffix("")
    meta = prefix.with_name(prefix.name + ".meta")
    desc = tfmodelkit.read(prefix)
    assert desc.metadata["graph"] == str(meta)
    ours = {w.name: w.extra["graph_variable"] for w in desc.weights}
    assert ours == _tf_feeds(meta)
    partitioned = "table" if kind == "v2" else "emb"
    assert ours[partitioned].count("/part_") >= 2
    assert main(["weights", str(prefix)]) == 0
    out = capsys.readouterr().out
    assert "graph variable" in out.splitlines()[0] and ours[partitioned] in out
    # The variable names find their tensor: --match searches them too.
    assert main(["weights", str(prefix), "--match", "part_1", "--format", "json"]) == 0
    import json

    (entry,) = json.loads(capsys.readouterr().out)["weights"]
    assert entry["name"] == partitioned and entry["graph_variable"] == ours[partitioned]


def test_checkpoint_without_meta_and_with_a_damaged_one(tmp_path):
    import shutil

    src = FIXTURES / "checkpoint/tf1_cnn"
    for f in src.iterdir():
        if f.name.startswith("model.ckpt.") and f.suffix != ".meta":
            shutil.copy(f, tmp_path / f.name)
    desc = tfmodelkit.read(tmp_path / "model.ckpt")
    assert "graph" not in desc.metadata and all("graph_variable" not in w.extra for w in desc.weights)
    (tmp_path / "model.ckpt.meta").write_bytes(b"\xff" * 40)
    desc = tfmodelkit.read(tmp_path / "model.ckpt")  # the checkpoint still reads; the graph is a warning
    assert len(desc.weights) == 4
    assert any("model.ckpt.meta" in w and "cannot be read" in w for w in desc.warnings)


# --------------------------------------------- signatures named at read time (--input-tensors/--output-tensors)


def test_named_signature_of_a_frozen_graph_and_a_meta():
    from tfmodelkit.errors import NotFoundError, UserError

    (sig,) = tfmodelkit.read(FROZEN, input_tensors="x", output_tensors=["y", "add:0"]).signatures
    assert sig.key == "serving_default" and sig.method.startswith("named by the caller")
    assert [(t.name, t.dtype, t.shape, t.tensor) for t in sig.inputs] == [("x", "float32", (None, 3), "x:0")]
    assert [(t.name, t.tensor) for t in sig.outputs] == [("y", "y:0"), ("add", "add:0")]
    # One side named, the other inferred; a .meta the same way (its checkpoint still read beside it).
    (sig,) = tfmodelkit.read(META, input_tensors="x,flag").signatures
    assert [t.name for t in sig.inputs] == ["x", "flag"] and [t.tensor for t in sig.outputs] == ["y:0"]
    assert len(tfmodelkit.read(META, output_tensors="y").weights) == 5
    with pytest.raises(NotFoundError, match=r"--output-tensors yy:0: no node 'yy' in the graph \(did you mean 'y'\?\)"):
        tfmodelkit.read(FROZEN, output_tensors="yy")
    with pytest.raises(UserError, match="NAME or NAME:INDEX"):
        tfmodelkit.read(FROZEN, output_tensors="y:first")
    with pytest.raises(UserError, match="name tensors of a TF1 graph .* not of a checkpoint"):
        tfmodelkit.read(META.with_suffix(""), input_tensors="x")
    with pytest.raises(UserError, match="did you mean 'input_tensors'"):
        tfmodelkit.read(FROZEN, inputs="x")


@needs_tf
def test_named_signature_is_what_graph_to_savedmodel_writes(tmp_path, capsys):
    """modelinspect's keys, dtypes and tensors for given names are those of the SavedModel that
    graph-to-savedmodel writes from the same names."""
    import json

    from tfmodelkit.cli.modelconv import main as modelconv
    from tfmodelkit.cli.modelinspect import main as modelinspect

    names = ["--input-tensors", "x,flag", "--output-tensors", "y:0,add"]
    assert modelinspect(["signatures", str(FROZEN), *names, "--format", "json"]) == 0
    (ours,) = json.loads(capsys.readouterr().out)["signatures"]
    assert modelconv(["graph-to-savedmodel", str(FROZEN), str(tmp_path / "sm"), *names, "-q"]) == 0
    capsys.readouterr()
    (theirs,) = [s for s in tfmodelkit.read(tmp_path / "sm").signatures if s.key == "serving_default"]

    def keyed(side):
        return sorted((t["name"], t["dtype"]) for t in side)

    assert keyed(ours["inputs"]) == sorted((t.name, t.dtype) for t in theirs.inputs)
    assert keyed(ours["outputs"]) == sorted((t.name, t.dtype) for t in theirs.outputs)
    assert sorted(t["tensor"] for t in ours["inputs"]) == sorted(t.tensor for t in theirs.inputs)


# ------------------------------------------------------------------- old graphs: TF's legacy Placeholder shape


@needs_tf
@pytest.mark.parametrize("producer", [11, 21, 22])
def test_scalar_placeholder_shape_of_old_graphs_is_unknown_as_in_tf(tmp_path, producer):
    """TF quirk: in graphs of producer <= 21 a Placeholder's scalar shape means 'unknown'."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        s = tf.compat.v1.placeholder(tf.float32, [], name="s")
        tf.identity(s * 2.0, name="out")
    graph_def = graph.as_graph_def()
    graph_def.versions.producer = producer
    graph_def.versions.min_consumer = 0
    path = tmp_path / "old.pb"
    path.write_bytes(graph_def.SerializeToString())
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph_def, name="")
        rank = g.get_tensor_by_name("s:0").shape.rank
    (sig,) = tfmodelkit.read(path).signatures
    assert sig.inputs[0].shape == (None if rank is None else ())
    assert (rank is None) == (producer <= 21)


def test_serving_export_placeholder_has_unknown_shape(corpus):
    (sig,) = tfmodelkit.read(corpus / "savedmodel/tfserving_bad_half_plus_two/00000123/export.meta").signatures
    assert sig.inputs[0].shape is None  # a TF 0.x graph (producer 11): TF itself gives <unknown>


def test_a_pb_that_is_no_graph_says_what_to_try(tmp_path):
    from tfmodelkit.errors import FormatError

    path = tmp_path / "weights.pb"
    path.write_bytes(b"\x00\x01\x02 plainly not a protobuf message")
    with pytest.raises(FormatError, match="neither a frozen GraphDef") as e:
        tfmodelkit.read(path)
    assert "not supported" not in str(e.value)


@needs_tf
def test_a_saver_that_renames_is_paired_by_its_save_op(tmp_path):
    """``Saver({"old/w": w})`` writes ``new/w`` under another key; the VariableDef does not say
    so, the saver's save op does: the pairing must be the one TF's restore uses."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        w = tf.compat.v1.get_variable("new/w", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
        b = tf.compat.v1.get_variable("new/b", initializer=np.ones(3, np.float32))
        tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        with tf.compat.v1.Session(graph=graph) as s:
            s.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver({"old/w": w, "old/b": b}).save(s, str(tmp_path / "model.ckpt"))
    desc = tfmodelkit.read(tmp_path / "model.ckpt")
    ours = {w.name: w.extra["graph_variable"] for w in desc.weights}
    assert ours == {"old/w": "new/w", "old/b": "new/b"}
    assert not any("no tensor in the checkpoint" in x for x in desc.warnings)
    # TF's own restore from the .meta puts each checkpoint value into the variable we name.
    with tf.Graph().as_default(), tf.compat.v1.Session() as s:
        tf.compat.v1.train.import_meta_graph(str(tmp_path / "model.ckpt.meta")).restore(s, str(tmp_path / "model.ckpt"))
        live = {v.op.name: v for v in tf.compat.v1.global_variables()}
        for key, var in ours.items():
            np.testing.assert_array_equal(s.run(live[var]), desc.weight(key).read())
