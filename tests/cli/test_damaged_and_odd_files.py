"""Files as users meet them, through both commands run as processes: an empty-prefix TF1
checkpoint folder, a SavedModel with two tag sets, a text file named ``model.h5``, damaged
files of every format under ``check`` (exit 1 when read and found damaged, 2 when they cannot
be read at all), and an HDF5 file that hangs libhdf5 (the wait is the no-progress timeout)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

EMPTY_PREFIX = FIXTURES / "checkpoint/tf1_empty_prefix"
TAG_SETS = FIXTURES / "savedmodel/tag_sets"
ATTENTION = "keras_h5/dl4j/weights_keras-attention.h5"

#: Runs a command's module and reports on stderr which frameworks it imported.
_PROBE = (
    "import sys, runpy\n"
    "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
    "try:\n"
    "    runpy.run_module('tfmodelkit.cli.' + sys.argv[0], run_name='__main__')\n"
    "finally:\n"
    "    bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
    "    print('imported:', ','.join(bad) or '-', file=sys.stderr)\n"
)


def run(prog: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TFMODELKIT_HDF5_TIMEOUT"}
    full_env.update({"COLUMNS": "400", **(env or {})})
    return subprocess.run(
        [sys.executable, "-c", _PROBE, prog, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=full_env
    )


def error_lines(p: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the probe's last line (after checking TensorFlow stayed out)."""
    lines = p.stderr.strip().splitlines()
    assert lines[-1] == "imported: -", p.stderr
    assert "Traceback" not in p.stderr
    return lines[:-1]


# ---------------------------------------------------------------------------------------
# An empty checkpoint prefix, with another machine's path in its state file


@pytest.mark.parametrize("form", ["", "/", "/.index", "/.data-00000-of-00001", "/checkpoint"])
def test_an_empty_prefix_folder_is_listed_and_checked_from_any_of_its_paths(form):
    path = str(EMPTY_PREFIX) + form
    p = run("modelinspect", "weights", path, "--format", "json", "--include-optimizer")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["path"] == str(EMPTY_PREFIX) + "/"
    assert len(doc["weights"]) == 7 and {"hidden/kernel", "logits/kernel/Momentum"} <= {w["name"] for w in doc["weights"]}
    assert not any("internal error" in line for line in error_lines(p))
    p = run("modelinspect", "check", path)
    assert p.returncode == 0, p.stderr
    assert "OK: checked 7 tensors, 1 shard" in p.stdout


# ---------------------------------------------------------------------------------------
# Tag sets


def test_tag_set_train_lists_only_train_signatures_and_the_summary_lists_every_tag_set():
    p = run("modelinspect", "signatures", str(TAG_SETS), "--tag-set", "train", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert [(s["key"], s["tags"]) for s in json.loads(p.stdout)["signatures"]] == [("train", ["train"])]
    p = run("modelinspect", "signatures", str(TAG_SETS), "--format", "json")
    assert [(s["key"], s["tags"]) for s in json.loads(p.stdout)["signatures"]] == [("serving_default", ["serve"])]
    p = run("modelinspect", "summary", str(TAG_SETS))
    assert p.returncode == 0, p.stderr
    rows = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in p.stdout.splitlines()[2:] if line.strip()}
    assert rows["tag_sets"] == '["serve", "train"]' and rows["signatures"] == "serving_default"
    p = run("modelinspect", "summary", str(TAG_SETS), "--tag-set", "train", "--format", "json")
    doc = json.loads(p.stdout)
    assert doc["metadata"]["tag_sets"] == ["serve", "train"] and doc["metadata"]["selected_tags"] == ["train"]
    assert doc["signatures"] == ["train"]


# ---------------------------------------------------------------------------------------
# One reader, one message: a file that is not what its name says


def _not_keras_files(tmp_path: Path) -> dict[str, Path]:
    text = "version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 1234\n"
    h5 = tmp_path / "model.h5"
    h5.write_text(text)
    keras = tmp_path / "model.keras"
    keras.write_text(text)
    return {"h5": h5, "keras": keras}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("h5", "not an HDF5 file (no HDF5 signature); is it really a Keras .h5?"),
        ("keras", "not a zip archive, so not a Keras 3 .keras file"),
    ],
)
def test_a_text_file_under_a_keras_name_gets_the_same_words_from_both_commands(tmp_path, kind, message):
    path = _not_keras_files(tmp_path)[kind]
    expected = f"{path}: {message}"
    p = run("modelinspect", "summary", str(path))
    assert p.returncode == 2 and error_lines(p) == [f"modelinspect: error: {expected}"]
    command = "h5-to-savedmodel" if kind == "h5" else "keras-to-savedmodel"
    p = run("modelconv", command, "-q", str(path), str(tmp_path / "out"))
    assert p.returncode == 2 and error_lines(p) == [f"modelconv: error: {expected}"]  # before TensorFlow loads
    weights_only = FIXTURES / "keras_h5/tfkeras_weights_only.h5"
    p = run("modelconv", "h5-to-savedmodel", "-q", "--architecture", str(path), str(weights_only), str(tmp_path / "out"))
    assert p.returncode == 2 and error_lines(p) == [f"modelconv: error: {expected}"]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# Damaged files under check: 1 when read and found damaged, 2 when unreadable at all


def _cut(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _garbage(path: Path) -> None:
    rng = random.Random(path.name)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(max(path.stat().st_size, 4096))))


#: The path given to check, in the copied folder, where it is not the folder itself.
_CHECKED = {
    "checkpoint": "model.ckpt-1",
    "checkpoint_data": "model.ckpt-1",
    "metagraph": "model.ckpt.meta",
    "checkpoint_v1": "model.ckpt",
}


def _damaged_copies(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """format -> (a copy cut short, a copy replaced by random bytes), each under its own name."""
    out: dict[str, tuple[Path, Path]] = {}
    for fmt, rel, member in [
        ("keras_h5", "keras_h5/tfkeras_lstm.h5", None),
        ("keras_zip", "keras_zip/conv_bn.keras", None),
        ("checkpoint", "checkpoint/tf1_graph", "model.ckpt-1.index"),
        ("checkpoint_data", "checkpoint/tf1_graph", "model.ckpt-1.data-00000-of-00001"),
        ("savedmodel", "savedmodel/module_multisig", "saved_model.pb"),
        ("savedmodel_variables", "savedmodel/module_multisig", "variables/variables.index"),
        ("tflite", "tflite/mlp_int8.tflite", None),
        ("graphdef", "graphdef/frozen.pb", None),
        ("metagraph", "checkpoint/tf1_cnn", "model.ckpt.meta"),
        ("checkpoint_v1", "checkpoint/v1_saver", "model.ckpt"),
    ]:
        pair = []
        for how, damage in (("cut", _cut), ("garbage", _garbage)):
            target = tmp_path / fmt / how / Path(rel).name
            target.parent.mkdir(parents=True)
            src = FIXTURES / rel
            if src.is_dir():
                shutil.copytree(src, target)
                damage(target / member)
            else:
                shutil.copy(src, target)
                damage(target)
            pair.append(target / _CHECKED.get(fmt, "") if fmt in _CHECKED else target)
        out[fmt] = (pair[0], pair[1])
    return out


#: (exit code of the cut copy, of the garbage copy). Garbage in the data shard or in the
#: variables of a SavedModel is damage found in a file that was read (its index, its graph).
#: A file that opens as its format does (a TFLite identifier, a protobuf field tag) and is
#: then cut short is damaged; random bytes are no file of that format at all.
EXPECTED_CODES = {
    "keras_h5": (1, 2),
    "keras_zip": (1, 2),
    "checkpoint": (1, 2),
    "checkpoint_data": (1, 1),
    "savedmodel": (1, 2),
    "savedmodel_variables": (1, 1),
    "tflite": (1, 2),
    "graphdef": (1, 2),
    "metagraph": (1, 2),
    # A V1 checkpoint is told by the table magic at its end: cut short, it is no longer
    # recognisable as one (or as anything), so it cannot be read at all.
    "checkpoint_v1": (2, 2),
}


def test_damaged_files_exit_1_when_read_and_found_damaged_and_2_when_unreadable(tmp_path):
    got = {}
    for fmt, (cut, garbage) in _damaged_copies(tmp_path).items():
        codes = []
        for path in (cut, garbage):
            p = run("modelinspect", "check", "-q", str(path))
            assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
            if p.returncode == 1:
                assert "FAILED:" in p.stdout and error_lines(p) == []
            elif p.returncode == 2:
                [line] = error_lines(p)
                assert line.startswith(f"modelinspect: error: {path}")
            codes.append(p.returncode)
        got[fmt] = tuple(codes)
    assert got == EXPECTED_CODES


def test_a_cut_short_keras_archive_names_the_members_that_survived(tmp_path):
    path = tmp_path / "conv_bn.keras"
    shutil.copy(FIXTURES / "keras_zip/conv_bn.keras", path)
    _cut(path)
    p = run("modelinspect", "check", str(path), "--format", "json")
    assert p.returncode == 1
    [finding] = json.loads(p.stdout)["findings"]
    assert finding["subject"] == "archive"
    assert "central directory cannot be read" in finding["message"]
    assert "2 complete member(s) precede the damage: metadata.json, config.json" in finding["message"]
    assert "'model.weights.h5' is cut short" in finding["message"]


def test_the_rule_is_in_both_commands_help():
    for prog in ("modelinspect", "modelconv"):
        p = run(prog, "--help")
        text = " ".join(p.stdout.split())
        assert "1 when the file was read and damage was found in it" in text, prog
        assert "2 when it cannot be read at all" in text, prog
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "1 when the file was read and damage was found in it" in readme
    assert "2 when it cannot be read at all" in readme


# ---------------------------------------------------------------------------------------
# A file that hangs libhdf5: the wait is the no-progress timeout, settable


@pytest.fixture
def hanging_h5(corpus, tmp_path) -> Path:
    """The mutation the fuzz tests found: one global-heap object's size field enlarged (16 ->
    80) makes libhdf5 1.14 spin forever reading a string attribute, holding the GIL."""
    raw = bytearray((corpus / ATTENTION).read_bytes())
    i = raw.find(b"\x10\x00\x00\x00\x00\x00\x00\x00outputs/kernel:0")
    assert i > 0
    raw[i] = 0x50
    path = tmp_path / "hangs.h5"
    path.write_bytes(bytes(raw))
    return path


def _timed(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    p = run(*args, env=env)
    return p, time.monotonic() - t0


@pytest.mark.corpus
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the watchdog needs fork")
def test_a_hanging_h5_fails_after_the_no_progress_timeout_from_flag_environment_or_default(hanging_h5):
    p, took = _timed("modelinspect", "summary", str(hanging_h5), "--timeout", "1")
    [line] = error_lines(p)
    assert p.returncode == 2 and "made no progress for 1 s (the HDF5 library hung" in line and str(hanging_h5) in line
    assert 1 <= took < 8
    p, took = _timed("modelinspect", "check", str(hanging_h5), env={"TFMODELKIT_HDF5_TIMEOUT": "1.5"})
    assert p.returncode == 1 and "made no progress for 1.5 s" in p.stdout  # read, and found hung: damage
    assert 1.5 <= took < 8
    # The flag wins over the environment; modelconv reads the config the same guarded way.
    p, took = _timed("modelconv", "h5-to-savedmodel", "-q", "--timeout", "1", str(hanging_h5), str(hanging_h5.parent / "o"),
                     env={"TFMODELKIT_HDF5_TIMEOUT": "300"})  # fmt: skip
    [line] = error_lines(p)
    assert p.returncode == 2 and "made no progress for 1 s" in line and 1 <= took < 30
    # No flag, no environment: the default wait (10 s), not a fixed minute.
    p, took = _timed("modelinspect", "layers", str(hanging_h5))
    [line] = error_lines(p)
    assert p.returncode == 2 and "made no progress for 10 s" in line
    assert 10 <= took < 30


def test_a_bad_timeout_is_refused_in_one_line(tmp_path):
    p = run("modelinspect", "summary", str(FIXTURES / "keras_h5/tfkeras_lstm.h5"), "--timeout", "-3")
    assert p.returncode == 2 and "argument --timeout: '-3' is not a positive number of seconds" in p.stderr
    p = run("modelinspect", "summary", str(FIXTURES / "keras_h5/tfkeras_lstm.h5"), env={"TFMODELKIT_HDF5_TIMEOUT": "soon"})
    assert p.returncode == 2
    assert error_lines(p) == ["modelinspect: error: TFMODELKIT_HDF5_TIMEOUT 'soon': give a positive number of seconds"]
