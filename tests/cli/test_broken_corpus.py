"""The corpus's broken files, through the real ``modelinspect`` command: each gives one clear
result: a description with a warning naming the problem, or our error on one stderr line
naming the file and the problem. Exit codes: 0 described, 1 check found damage, 2 refused.
Never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.corpus

FUZZ = "savedmodel/tf_fuzz_generated"
RESTORE_FN = "function __inference__traced_restore_33090: node RestoreV2/tensor_names"
CANNOT_LOAD = "; TensorFlow cannot load this graph"
NOT_FLATBUFFER = "not a valid TFLite flatbuffer (no 'TFL3' identifier at bytes 4-8, found {!r})"
NO_SUBGRAPHS = "has no subgraphs: LiteRT cannot run it"

# path -> (summary: exit code, warnings (described) or the error after "<path>: " (refused);
#          check: exit code, [(subject, message)] of its error findings, or the error after
#          "<path>: " when it cannot be read at all (exit 2))
CASES = {
    f"{FUZZ}/bad_node_attr": (
        (0, [f"{RESTORE_FN}: Const without a tensor 'value' attribute (attributes: _output_shapes, dtype, valwe)"
             f"{CANNOT_LOAD}"]),
        (1, [(RESTORE_FN, f"Const without a tensor 'value' attribute (attributes: _output_shapes, dtype, valwe)"
                          f"{CANNOT_LOAD}")]),
    ),
    f"{FUZZ}/const_with_no_value": (
        (0, [f"node Assign/value: Const without a tensor 'value' attribute (attributes: _output_shapes, dtype, "
             f"valee){CANNOT_LOAD}"]),
        (1, [("node Assign/value", "Const without a tensor 'value' attribute (attributes: _output_shapes, dtype, "
                                   f"valee){CANNOT_LOAD}"),
             ("assets/foo.txt", "asset file is missing")]),
    ),
    f"{FUZZ}/negative_shape": (
        (0, [f"node b/initial_value: Const whose value has shape [-1, 1]; a constant's shape must be known"
             f"{CANNOT_LOAD}"]),
        (1, [("node b/initial_value", "Const whose value has shape [-1, 1]; a constant's shape must be known"
                                      f"{CANNOT_LOAD}"),
             ("assets/foo.txt", "asset file is missing")]),
    ),
    "tflite/litert/test_model_broken.tflite": (
        (2, NOT_FLATBUFFER.format(b"\x00\x00\x0e\x00")),
        (2, NOT_FLATBUFFER.format(b"\x00\x00\x0e\x00")),
    ),
    "tflite/litert/java_invalid_model.tflite": (
        (2, NOT_FLATBUFFER.format(b" is ")),
        (2, NOT_FLATBUFFER.format(b" is ")),
    ),
    "tflite/litert/0_subgraphs.tflite": (
        (0, ["{path} " + NO_SUBGRAPHS]),
        (1, [("model", NO_SUBGRAPHS)]),
    ),
    "tflite/litert/no_subgraphs.tflite": (
        (0, ["{path} " + NO_SUBGRAPHS]),
        (1, [("model", NO_SUBGRAPHS)]),
    ),
}  # fmt: skip


def modelinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert "internal error" not in p.stderr


@pytest.mark.parametrize("rel", sorted(CASES))
def test_broken_file_gives_one_clear_result(corpus, rel):
    path = str(corpus / rel)
    (code, expected), (check_code, check_errors) = CASES[rel]

    p = modelinspect("summary", path)
    _no_traceback(p)
    assert p.returncode == code, p.stderr
    if code == 2:
        assert p.stdout == ""
        assert p.stderr.splitlines() == [f"modelinspect: error: {path}: {expected}"]
    else:
        # Warnings go to stderr, one line each, never into the table.
        warnings = [w.format(path=path) for w in expected]
        lines = p.stdout.splitlines()
        assert lines[0].startswith(path) and not any("warning" in line for line in lines)
        assert p.stderr.splitlines() == [f"modelinspect: warning: {w}" for w in warnings]
        p = modelinspect("summary", "--format", "json", path)
        assert p.returncode == 0 and json.loads(p.stdout)["warnings"] == warnings

    p = modelinspect("check", "--format", "json", path)
    _no_traceback(p)
    assert p.returncode == check_code, p.stderr
    if check_code == 2:  # not a file of its format at all: nothing was checked
        assert p.stdout == ""
        assert p.stderr.splitlines() == [f"modelinspect: error: {path}: {check_errors}"]
        return
    assert p.stderr == ""
    report = json.loads(p.stdout)
    assert report["ok"] is False
    assert [
        (f["subject"], f["message"]) for f in report["findings"] if f["severity"] == "error"
    ] == check_errors


STALE = "checkpoint/tf_mnist_stale_state"


def test_stale_state_file_still_finds_the_checkpoint(corpus):
    """The state file names model.ckpt-46900 (present) and model.ckpt-0 (long gone): the
    folder resolves to the present prefix, described and checked OK."""
    path = str(corpus / STALE)
    p = modelinspect("summary", "--format", "json", path)
    _no_traceback(p)
    assert p.returncode == 0 and p.stderr == ""
    desc = json.loads(p.stdout)
    assert desc["path"] == f"{path}/model.ckpt-46900" and desc["weights"]["count"] == 27
    p = modelinspect("check", path)
    assert p.returncode == 0 and p.stderr == "" and "OK: checked 27 tensors, 1 shard" in p.stdout


def test_stale_state_file_entry_is_warned_about(corpus):
    path = str(corpus / STALE)
    p = modelinspect("summary", "--format", "json", path)
    warnings = json.loads(p.stdout)["warnings"]
    assert any("model.ckpt-0" in w for w in warnings), warnings
    p = modelinspect("check", "--format", "json", path)
    findings = json.loads(p.stdout)["findings"]
    assert any(f["severity"] == "warning" and "model.ckpt-0" in f["message"] for f in findings), findings


def test_check_of_an_unparseable_file_says_what_it_checked(tmp_path):
    # The TFLite identifier, then an offset to nowhere: a TFLite file, damaged past reading.
    path = tmp_path / "damaged.tflite"
    path.write_bytes(b"\xff\xff\x00\x00TFL3" + b"\0" * 56)
    p = modelinspect("check", str(path))
    assert p.returncode == 1
    assert "(checked nothing)" in p.stdout
