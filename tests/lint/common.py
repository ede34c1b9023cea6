"""Files and helpers the lint tests share: corpus and fixture models, report filters, and
copies of models edited through their own schema."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tests.conftest import CORPUS, FIXTURES

HALF_PLUS_TWO = CORPUS / "savedmodel/tf_half_plus_two/00000123"
CYCLIC = CORPUS / "savedmodel/tf_CyclicModule"
HASH_TABLE = CORPUS / "savedmodel/tf_StaticHashTableModule"
LITERT = CORPUS / "tflite/litert"
LAMBDA_H5 = CORPUS / "keras_h5/dl4j/examples_lambda_sequential_lambda.h5"
MULTISIG = FIXTURES / "savedmodel/module_multisig"
FIXTURE_SAVEDMODELS = sorted(
    p
    for p in (FIXTURES / "savedmodel").rglob("*")
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()
)

HAS_TF = importlib.util.find_spec("tensorflow") is not None


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (corpus absent?)")
    return path


def errors(report):
    return [f for f in report.findings if f.severity == "error"]


def warnings(report):
    return [f for f in report.findings if f.severity == "warning"]


def edited_savedmodel(src: Path, dst: Path, edit) -> Path:
    """A copy of the SavedModel ``src`` whose proto went through ``edit(meta_graph)``."""
    from tfmodelkit.formats.savedmodel import load_proto

    shutil.copytree(src, dst)
    model = load_proto(dst)
    edit(model.meta_graphs[0])
    (dst / "saved_model.pb").write_bytes(model.SerializeToString())
    return dst


def edited_tflite(src: Path, dst: Path, edit) -> Path:
    """A copy of ``src`` rewritten through LiteRT's schema object API after ``edit(ModelT)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst
