"""SavedModel reader: folder forms, text format, serving layout, functions, refusals."""

from __future__ import annotations

import shutil

import pytest

import tfmodelkit
from tfmodelkit.errors import CorruptFileError, FormatError, UnsupportedError
from tfmodelkit.formats import savedmodel

TWO_VERSIONS = "savedmodel/tfserving_saved_model_half_plus_two_2_versions"
TF2 = "savedmodel/tfserving_saved_model_half_plus_two_tf2_cpu/00000123"


def test_serving_base_folder_uses_highest_version(corpus):
    desc = tfmodelkit.read(corpus / TWO_VERSIONS)
    assert desc.path.endswith("00000124")
    assert any("highest version 00000124" in w for w in desc.warnings)


def test_saved_model_pb_file_path_means_its_folder(corpus):
    desc = tfmodelkit.read(corpus / TF2 / "saved_model.pb")
    assert desc.format == "savedmodel" and desc.path.endswith("00000123")


def test_text_format(corpus):
    text = tfmodelkit.read(corpus / "savedmodel/tf_half_plus_two_pbtxt/00000123")
    binary = tfmodelkit.read(corpus / "savedmodel/tf_half_plus_two/00000123")
    assert text.metadata["encoding"].startswith("text")
    assert [(s.key, s.inputs, s.outputs) for s in text.signatures] == [
        (s.key, s.inputs, s.outputs) for s in binary.signatures
    ]
    assert dict(text.ops) == dict(binary.ops)


def test_tf2_model_facts(corpus):
    desc = tfmodelkit.read(corpus / TF2)
    assert desc.producer.tensorflow
    assert desc.metadata["fingerprint"]["saved_model_checksum"] > 0
    assert desc.functions and all(f.path for f in desc.functions)
    assert [a.path for a in desc.assets] == ["assets/foo.txt"]
    assert any(s.hidden for s in desc.signatures) and "__saved_model_init_op" not in [
        s.key for s in desc.visible_signatures()
    ]


def test_keras_metadata_layers(corpus):
    desc = tfmodelkit.read(corpus / "savedmodel/tfkeras_lso_savedmodel_tf2.2")
    assert desc.layers and desc.metadata.get("class_name")


def test_chunked_savedmodel_is_refused_clearly(tmp_path):
    (tmp_path / "saved_model.cpb").write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedError, match="chunked SavedModel"):
        tfmodelkit.read(tmp_path)


def test_damaged_graph(corpus, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(corpus / TF2, folder)
    (folder / "saved_model.pb").write_bytes((folder / "saved_model.pb").read_bytes()[:500])
    with pytest.raises(CorruptFileError, match="saved_model.pb"):
        tfmodelkit.read(folder)
    report = tfmodelkit.check(folder)
    assert not report.ok


def test_variables_without_graph(tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(FormatError, match="saved_model.pb"):
        tfmodelkit.read(tmp_path)


def test_tag_set_selection(corpus):
    desc = tfmodelkit.read(corpus / TF2, tags="serve")
    assert desc.metadata["selected_tags"] == ["serve"]
    with pytest.raises(tfmodelkit.NotFoundError, match="tag set"):
        tfmodelkit.read(corpus / TF2, tags="train")


def test_op_census_counts_function_bodies(corpus):
    model = savedmodel.load_proto(corpus / TF2)
    graph_only = len(model.meta_graphs[0].graph_def.node)
    assert sum(savedmodel.op_census(model.meta_graphs[0]).values()) > graph_only


def test_constants_tensorflow_cannot_load_are_named(tmp_path):
    """A Const without its `value` (a misspelt attribute, as TF's fuzz-generated models have)
    or with a negative dimension: described with a warning naming the node, and check fails."""
    from tests.conftest import FIXTURES
    from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb

    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "savedmodel/keras3_two_io", folder)
    model = pb.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    graph = model.meta_graphs[0].graph_def
    fn = next(f for f in graph.library.function if any(n.op == "Const" for n in f.node_def))
    consts = [n for n in fn.node_def if n.op == "Const"]
    top = next(n for n in graph.node if n.op == "Const")
    consts[0].attr["valwe"].CopyFrom(consts[0].attr["value"])
    del consts[0].attr["value"]
    top.attr["value"].tensor.tensor_shape.dim.add().size = -3
    (folder / "saved_model.pb").write_bytes(model.SerializeToString())

    desc = tfmodelkit.read(folder)
    first = f"function {fn.signature.name}: node {consts[0].name}"
    damaged = [w for w in desc.warnings if w.endswith("TensorFlow cannot load this graph")]
    assert len(damaged) == 2
    assert damaged[0].startswith(f"node {top.name}: Const whose value has shape [") and "-3]" in damaged[0]
    assert damaged[1].startswith(f"{first}: Const without a tensor 'value' attribute") and "valwe" in damaged[1]
    report = tfmodelkit.check(folder)
    errors = [f.subject for f in report.findings if f.severity == "error"]
    assert errors == [f"node {top.name}", first]
    assert tfmodelkit.check(FIXTURES / "savedmodel/keras3_two_io").ok


# ---------------------------------------------------------------------------------------
# Several meta graphs (TF1's SavedModelBuilder: `serve` and `train` over one set of variables)

TAG_SETS = "savedmodel/tag_sets"


def test_each_tag_set_lists_only_its_own_signatures(fixtures_dir):
    default = tfmodelkit.read(fixtures_dir / TAG_SETS)
    assert [(s.key, s.tags) for s in default.signatures] == [("serving_default", ("serve",))]
    train = tfmodelkit.read(fixtures_dir / TAG_SETS, tags="train")
    assert [(s.key, s.tags) for s in train.signatures] == [("train", ("train",))]
    assert [t.name for t in train.signatures[0].inputs] == ["labels", "x"]
    assert train.signatures[0].method == "tensorflow/supervised/training"
    for desc in (default, train):
        assert desc.metadata["tag_sets"] == ["serve", "train"]
        assert [mg["signatures"] for mg in desc.metadata["meta_graphs"]] == [["serving_default"], ["train"]]
    assert train.metadata["selected_tags"] == ["train"] and default.metadata["selected_tags"] == ["serve"]
    assert [w.name for w in train.weights] == [w.name for w in default.weights]  # one set of variables


def test_an_absent_tag_set_is_refused_naming_those_there(fixtures_dir):
    with pytest.raises(tfmodelkit.TFModelKitError, match=r"no meta graph with tag set gpu \(tag sets: serve; train\)"):
        tfmodelkit.read(fixtures_dir / TAG_SETS, tags="gpu")
