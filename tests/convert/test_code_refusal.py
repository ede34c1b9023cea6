"""Keras files whose only Python code sits where the old safety lint did not look (a marshalled
``output_shape``, a Keras 1 ``Merge`` mode): the safety check fails naming the layer, every
conversion refuses them with exit 2, and their code never runs."""

from __future__ import annotations

import base64
import marshal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.lint.test_keras_code import _keras1_h5, _merge


def _marker_code(marker, name: str, src: str) -> str:
    ns: dict = {}
    exec(compile(src.format(marker=str(marker)), "/home/someone/model.py", "exec"), ns)  # our own bytecode
    return base64.b64encode(marshal.dumps(ns[name].__code__)).decode()


@pytest.fixture(params=["output_shape", "mode"])
def payload(request, tmp_path):
    marker = tmp_path / "ran.txt"
    src = "def f(x):\n    open({marker!r}, 'w').write('ran')\n    return x\n"
    code = _marker_code(marker, "f", src)
    merge = (
        _merge(output_shape=code, output_shape_type="lambda")
        if request.param == "output_shape"
        else _merge(mode=code, mode_type="lambda")
    )
    path, _ = _keras1_h5(tmp_path / f"{request.param}.h5", merge)
    return path, marker, request.param


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_check_fails_conversion_refuses_nothing_runs(payload, tmp_path):
    path, marker, field = payload
    p = _run("tfmodelkit.cli.modelinspect", "check", str(path), "--target", "safety")
    assert p.returncode == 1 and "merge_1" in p.stdout and field in p.stdout
    for command, dst in (("h5-to-savedmodel", "sm"), ("convert", "m.tflite")):
        p = _run("tfmodelkit.cli.modelconv", command, str(path), str(tmp_path / dst), "-q")
        assert p.returncode == 2, p.stderr
        (line,) = p.stderr.strip().splitlines()
        assert line.startswith(f"modelconv: error: {path}: refusing to load: merge_1 (Merge) carries Python code")
        assert not (tmp_path / dst).exists()
    p = _run("tfmodelkit.cli.modelconv", "verify", str(path), str(path))
    assert p.returncode == 2 and "merge_1 (Merge)" in p.stderr
    assert not marker.exists()
