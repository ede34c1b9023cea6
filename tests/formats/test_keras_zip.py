"""The Keras 3 ``.keras`` reader: the corpus against Keras 3's answers, archives built here
(unsafe names, zip bombs, compressed members, damaged CRCs), no extraction, and mutants."""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import corpus_entries
from tests.formats.test_keras_h5 import _keras3_weights, exercise, mutants
from tfmodelkit.description import ROLE_MODEL, ROLE_OPTIMIZER
from tfmodelkit.dtypes import numpy_dtype
from tfmodelkit.errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError
from tfmodelkit.formats import keras_zip

ENTRIES = corpus_entries("keras_zip")
OK = [(k, v) for k, v in ENTRIES if v.get("ok")]
MLX = "keras_zip/keras_mlx_branch_model.keras"


def _model_weights(desc):
    return [w for w in desc.weights if w.role == ROLE_MODEL]


def _member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def _make_keras(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _values_match_h5(desc, archive: Path) -> None:
    """Every weight loads with its declared shape/dtype and equals h5py's own reading."""
    with h5py.File(io.BytesIO(_member(archive, "model.weights.h5")), "r") as f:
        for w in desc.weights:
            a = w.read()
            assert a.shape == w.shape and a.dtype == numpy_dtype(w.dtype) and a.nbytes == w.nbytes, w.name
            direct = np.asarray(f[w.name][()])
            if w.dtype == "bfloat16":
                direct = direct.view(numpy_dtype("bfloat16"))
            assert np.array_equal(np.asarray(a), direct), w.name


# ---------------------------------------------------------------------------------------
# The corpus


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), OK, ids=[k for k, _ in OK])
def test_corpus_agrees_with_keras(corpus, rel, expected):
    desc = keras_zip.read(corpus / rel)
    ours = Counter((w.dtype, tuple(w.shape)) for w in _model_weights(desc))
    theirs = Counter((e["dtype"], tuple(e["shape"])) for e in expected["weights"])
    assert ours == theirs
    assert sum(w.size for w in _model_weights(desc)) == expected["param_count"]
    assert set(expected["layers"]) <= {x.name for x in desc.layers if x.depth == 0}
    assert desc.metadata["class_name"] == expected["class_name"]
    # Keras 3 variable paths, recovered from the unnamed `vars/<i>` datasets.
    assert [w.path for w in _model_weights(desc)] == [e["path"] for e in expected["weights"]]


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), ENTRIES, ids=[k for k, _ in ENTRIES])
def test_every_corpus_file_reads_checks_and_loads(corpus, rel, expected):
    path = corpus / rel
    desc = keras_zip.read(path)
    assert desc.format == "keras_zip"
    assert desc.metadata["kind"] == "full model" and desc.metadata["keras_generation"] == 3
    assert desc.producer.keras and desc.producer.keras.startswith("3.")
    assert "date_saved" in desc.producer.other
    assert desc.weights
    assert all(w.location == f"{w.name} ({path}:model.weights.h5)" for w in desc.weights)
    report = keras_zip.check(path)
    assert report.ok, report.findings
    assert report.checked["members"] == 3 and report.checked["datasets"] == len(desc.weights)
    _values_match_h5(desc, path)


@pytest.mark.corpus
def test_subclassed_models_are_named_from_the_weights(corpus):
    """Custom model classes have no layer list in config.json: layers and variable names
    come from the `vars` groups' `name` attributes and the container classes."""
    desc = keras_zip.read(corpus / "keras_zip/keras_fixed_model.keras")
    assert desc.metadata["class_name"] == "TestModel" and desc.metadata["optimizer"] == "Adam"
    assert [w.path for w in _model_weights(desc)][:2] == [
        "test_layer/dense_6/kernel",
        "test_layer/dense_6/bias",
    ]
    assert [(x.name, x.depth, x.params) for x in desc.layers][:2] == [
        ("test_layer", 0, 4522),
        ("dense_6", 1, 2112),
    ]
    opt = [w for w in desc.weights if w.role == ROLE_OPTIMIZER]
    assert [w.path for w in opt[:3]] == ["adam/iteration", "adam/learning_rate", "adam/2"]
    nested = keras_zip.read(corpus / "keras_zip/keras_pre_pr22362_nested_container.keras")
    assert [w.path for w in nested.weights] == [
        "d_0/kernel",
        "d_1/kernel",
        "d_2/kernel",
        "dense/kernel",
        "dense/bias",
    ]


@pytest.mark.corpus
def test_nothing_is_extracted(corpus, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tfmodelkit wrote something to disk")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for rel, _ in ENTRIES:
        desc = keras_zip.read(corpus / rel)
        for w in desc.weights:
            w.read()
        assert keras_zip.check(corpus / rel).ok
    assert list(work.iterdir()) == []


# ---------------------------------------------------------------------------------------
# Archives built here


def _config(layers: list[dict]) -> bytes:
    return json.dumps(
        {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
    ).encode()


def test_containers_matched_by_class_numbering_and_config_flags(tmp_path):
    """Keras < 3.8 does not record layer names on `vars`: containers are matched to the
    config's layers by Keras' per-class numbering, variables named from their config flags."""
    weights = tmp_path / "w.h5"
    with h5py.File(weights, "w") as f:
        f["layers/dense/vars/0"] = np.ones((4, 3), np.float32)  # fc: use_bias=False
        f["layers/batch_normalization/vars/0"] = np.ones(3, np.float32)  # center=False: no beta
        f["layers/batch_normalization/vars/1"] = np.zeros(3, np.float32)
        f["layers/batch_normalization/vars/2"] = np.ones(3, np.float32)
        f["layers/dense_1/vars/0"] = np.ones((3, 2), np.float32)
        f["layers/dense_1/vars/1"] = np.ones(2, np.float32)
        f.create_group("layers/dropout/vars")
        f.create_group("vars")
    layers = [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_shape": [None, 4]}},
        {"class_name": "Dense", "config": {"name": "fc", "units": 3, "use_bias": False}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "center": False, "scale": True}},
        {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5}},
        {"class_name": "Dense", "config": {"name": "out", "units": 2, "use_bias": True}},
    ]
    path = _make_keras(
        tmp_path / "m.keras",
        {
            "metadata.json": b'{"keras_version": "3.3.3"}',
            "config.json": _config(layers),
            "model.weights.h5": weights.read_bytes(),
        },
    )
    desc = keras_zip.read(path)
    assert [(w.name, w.path, w.layer) for w in desc.weights] == [
        ("layers/dense/vars/0", "fc/kernel", "fc"),
        ("layers/batch_normalization/vars/0", "bn/gamma", "bn"),
        ("layers/batch_normalization/vars/1", "bn/moving_mean", "bn"),
        ("layers/batch_normalization/vars/2", "bn/moving_variance", "bn"),
        ("layers/dense_1/vars/0", "out/kernel", "out"),
        ("layers/dense_1/vars/1", "out/bias", "out"),
    ]
    assert [(x.name, x.class_name, x.params) for x in desc.layers] == [
        ("x", "InputLayer", 0),
        ("fc", "Dense", 12),
        ("bn", "BatchNormalization", 9),
        ("drop", "Dropout", 0),
        ("out", "Dense", 8),
    ]
    assert desc.producer.keras == "3.3.3" and desc.metadata["model_name"] == "seq"
    assert keras_zip.check(path).ok


def test_weights_h5_layout_reused_inside_a_zip_with_bfloat16(tmp_path):
    weights = tmp_path / "w.h5"
    values = _keras3_weights(weights)
    path = _make_keras(
        tmp_path / "m.keras", {"config.json": _config([]), "model.weights.h5": weights.read_bytes()}
    )
    desc = keras_zip.read(path)
    by_name = {w.name: w for w in desc.weights}
    assert by_name["layers/dense_1/vars/0"].dtype == "bfloat16"
    for name, want in values.items():
        np.testing.assert_array_equal(by_name[name].read(), want)
    assert any("metadata.json" in f.subject for f in keras_zip.check(path).findings)  # missing: a warning
    assert keras_zip.check(path).ok


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/evil", "C:\\evil", "..\\evil"])
def test_unsafe_member_names_are_refused(tmp_path, name):
    path = _make_keras(tmp_path / "evil.keras", {"config.json": _config([]), name: b"boo"})
    for op in (keras_zip.read, keras_zip.check):
        with pytest.raises(CorruptFileError, match=r"evil\.keras: member .*absolute or '\.\.'"):
            op(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.keras"]


def _set_declared_size(raw: bytes, name: bytes, size: int) -> bytes:
    """Rewrite a member's uncompressed size in the central directory (offset 24 of its entry)."""
    b = bytearray(raw)
    i = b.find(b"PK\x01\x02")
    while i >= 0:
        n = int.from_bytes(b[i + 28 : i + 30], "little")
        if b[i + 46 : i + 46 + n] == name:
            b[i + 24 : i + 28] = size.to_bytes(4, "little")
            return bytes(b)
        i = b.find(b"PK\x01\x02", i + 4)
    raise AssertionError("member not found")


def test_zip_bombs_are_refused_before_decompressing(tmp_path):
    honest = _make_keras(
        tmp_path / "honest.keras",
        {"config.json": _config([]), "model.weights.h5": b"\0" * 4096},
        compression=zipfile.ZIP_DEFLATED,
    )
    lying = tmp_path / "lying.keras"
    lying.write_bytes(_set_declared_size(honest.read_bytes(), b"model.weights.h5", 0xFFFFFFF0))
    real = _make_keras(
        tmp_path / "real.keras",
        {"config.json": _config([]), "model.weights.h5": b"\0" * (80 << 20)},
        compression=zipfile.ZIP_DEFLATED,
    )
    for path in (lying, real):
        for op in (keras_zip.read, keras_zip.check):
            t0 = time.monotonic()
            with pytest.raises(
                CorruptFileError, match=rf"{path.name}: member 'model.weights.h5' declares .*zip bomb"
            ):
                op(path)
            assert time.monotonic() - t0 < 2


@pytest.mark.corpus
def test_compressed_weights_member_is_read_in_memory_with_a_limit(corpus, tmp_path):
    src = corpus / MLX
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    path = _make_keras(tmp_path / "deflated.keras", members, compression=zipfile.ZIP_DEFLATED)
    stored = keras_zip.read(src)
    desc = keras_zip.read(path)
    assert [(w.name, w.path, w.dtype, w.shape) for w in desc.weights] == [
        (w.name, w.path, w.dtype, w.shape) for w in stored.weights
    ]
    for a, b in zip(desc.weights, stored.weights, strict=True):
        np.testing.assert_array_equal(a.read(), b.read())
    assert keras_zip.check(path).ok
    with pytest.raises(UnsupportedError, match="deflated.keras: member 'model.weights.h5' is .* limit"):
        keras_zip.read(path, max_inflate_bytes=1000)


@pytest.mark.corpus
def test_damaged_member_crc_is_found_by_check(corpus, tmp_path):
    src = corpus / MLX
    desc = keras_zip.read(src)
    w = desc.weights[0]
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("model.weights.h5")
    raw = bytearray(src.read_bytes())
    start = keras_zip._data_offset(src, info)
    with h5py.File(io.BytesIO(_member(src, "model.weights.h5")), "r") as f:
        offset = f[w.name].id.get_offset()
    raw[start + offset] ^= 0x40  # one bit of the first weight's first value
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(raw))
    report = keras_zip.check(path)
    assert not report.ok
    assert any(f.subject == "model.weights.h5" and "CRC" in f.message for f in report.findings)
    # read() maps the stored bytes without re-checking the CRC: the damage shows in the value.
    assert not np.array_equal(keras_zip.read(path).weights[0].read(), w.read())


def test_not_a_keras_archive(tmp_path):
    with pytest.raises(NotFoundError):
        keras_zip.read(tmp_path / "missing.keras")
    with pytest.raises(FormatError, match="folder"):
        keras_zip.read(tmp_path)
    text = tmp_path / "text.keras"
    text.write_text("hello")
    with pytest.raises(FormatError, match="text.keras: not a zip"):
        keras_zip.read(text)
    other = _make_keras(tmp_path / "other.keras", {"readme.txt": b"hi"})
    with pytest.raises(FormatError, match="other.keras: a zip without config.json"):
        keras_zip.read(other)
    bad_json = _make_keras(tmp_path / "badjson.keras", {"config.json": b"{not json"})
    with pytest.raises(CorruptFileError, match="badjson.keras: config.json is not valid JSON"):
        keras_zip.read(bad_json)
    assert not keras_zip.check(bad_json).ok
    weights_only = tmp_path / "w.h5"
    _keras3_weights(weights_only)
    no_config = _make_keras(tmp_path / "noconfig.keras", {"model.weights.h5": weights_only.read_bytes()})
    desc = keras_zip.read(no_config)
    assert desc.metadata["kind"] == "weights only" and any("no config.json" in w for w in desc.warnings)
    assert desc.weight("fc/kernel").shape == (4, 3)


def test_truncated_archive_is_corrupt(tmp_path):
    weights = tmp_path / "w.h5"
    _keras3_weights(weights)
    path = _make_keras(
        tmp_path / "cut.keras", {"config.json": _config([]), "model.weights.h5": weights.read_bytes()}
    )
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CorruptFileError, match="cut.keras: damaged zip"):
        keras_zip.read(path)


# ---------------------------------------------------------------------------------------
# Mutants


MUTANT_SOURCES = [MLX, "keras_zip/keras_fixed_model.keras"]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", MUTANT_SOURCES)
def test_mutants_fail_cleanly_and_fast(corpus, tmp_path, rel):
    data = (corpus / rel).read_bytes()
    path = tmp_path / "mutant.keras"
    timeout = 2.0
    for i, mutant in enumerate(mutants(data, seed=4321 + MUTANT_SOURCES.index(rel), count=150)):
        path.write_bytes(mutant)
        t0 = time.monotonic()
        exercise(keras_zip, path, timeout)
        assert time.monotonic() - t0 < 3 * timeout + 5, f"mutant {i} took too long"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mutant.keras"]
