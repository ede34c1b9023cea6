"""A legacy .h5 whose Lambda layer would write a marker file if its code ever ran, end to end
through both commands: inspection shows it and never runs it, conversion refuses it, and
only ``--unsafe`` converts it (running the code, as documented)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    from tfmodelkit.loaders.tf import import_tf_keras, quiet_fds

    tf_keras = import_tf_keras()
    folder = tmp_path_factory.mktemp("payload")
    marker = folder / "payload-ran.txt"
    # Compiled from source so that the function's bytecode carries the marker's path.
    source = (
        "def write_marker(x):\n"
        f"    __import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"
        "    return x * 2.0\n"
    )
    ns: dict = {}
    exec(compile(source, "/elsewhere/model_code.py", "exec"), ns)
    inp = tf_keras.Input((3,), name="x")
    out = tf_keras.layers.Dense(2, name="head")(
        tf_keras.layers.Lambda(ns["write_marker"], name="double")(inp)
    )
    path = folder / "payload.h5"
    with quiet_fds():
        tf_keras.Model(inp, out).save(path)
    assert marker.exists()  # building the model called it once: the payload works
    marker.unlink()
    return path, marker


def _run(module: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"tfmodelkit.cli.{module}", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_inspection_shows_the_lambda_and_never_runs_it(payload):
    path, marker = payload
    p = _run("modelinspect", "layers", "--format", "json", str(path))
    assert p.returncode == 0, p.stderr
    layers = {layer["name"]: layer for layer in json.loads(p.stdout)["layers"]}
    assert layers["double"]["class_name"] == "Lambda" and layers["double"]["code"] == "write_marker"
    p = _run("modelinspect", "layers", str(path))
    row = next(line for line in p.stdout.splitlines() if line.startswith("double"))
    assert "Lambda" in row and "write_marker" in row
    assert "Python code" in p.stderr and "never runs it" in p.stderr  # warnings go to stderr
    for command in ("summary", "check", "weights"):
        p = _run("modelinspect", command, str(path), "-q")  # -q silences the warning
        assert p.returncode == 0 and p.stderr == "", (command, p.stderr)
    assert "head/kernel" in p.stdout  # weights listed
    assert not marker.exists()


def test_conversion_refuses_it_unless_unsafe(payload, tmp_path):
    path, marker = payload
    p = _run("modelconv", "h5-to-savedmodel", str(path), str(tmp_path / "sm"), "-q")
    assert p.returncode == 2
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"modelconv: error: {path}: refusing to load: double (Lambda) carries Python code")
    assert "--unsafe" in line
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []  # no destination, no partial

    p = _run("modelconv", "h5-to-savedmodel", str(path), "sm", "--unsafe", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "sm" / "saved_model.pb").is_file()
    assert marker.exists()  # --unsafe runs the file's code: that is what it is for
    marker.unlink()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sm"]
