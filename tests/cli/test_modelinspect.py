"""modelinspect as users run it: real processes, JSON contract, exit codes, stderr lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tfmodelkit.cli import modelinspect
from tfmodelkit.cli.modelinspect import main

HALF_PLUS_TWO = "savedmodel/tf_half_plus_two/00000123"
MNIST = "checkpoint/tf_mnist_stale_state"
SUBCOMMANDS = ["summary", "signatures", "weights", "variables", "layers", "ops", "tensor", "check", "diff"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def jrun(*args: str) -> dict:
    p = run(*args, "--format", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_every_subcommand_has_help():
    parser = modelinspect.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.description or any(c.dest == name for c in sub._choices_actions) or name == "variables"
        assert p.format_help()
    assert all(c.help for c in sub._choices_actions)


def test_readme_documents_every_subcommand():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in SUBCOMMANDS:
        assert f"modelinspect {name}" in readme, name


def test_signatures_json_contract(corpus):
    out = jrun("signatures", str(corpus / HALF_PLUS_TWO))
    assert set(out) >= {"path", "format", "signatures"}
    assert out["format"] == "savedmodel"
    sig = next(s for s in out["signatures"] if s["key"] == "serving_default")
    assert sig["tags"] == ["serve"] and sig["method"] == "tensorflow/serving/predict"
    assert sig["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 1], "tensor": "x:0"}]
    string_input = next(s for s in out["signatures"] if s["key"] == "classify_x_to_y")["inputs"][0]
    assert string_input["dtype"] == "string" and string_input["shape"] is None


def test_init_op_signature_hidden_unless_all(corpus):
    path = str(corpus / "savedmodel/tf_half_plus_two_v2/00000123")
    keys = [s["key"] for s in jrun("signatures", path)["signatures"]]
    assert "__saved_model_init_op" not in keys
    keys = [s["key"] for s in jrun("signatures", path, "--all")["signatures"]]
    assert "__saved_model_init_op" in keys


def test_weights_json_contract_and_optimizer_flag(corpus):
    out = jrun("weights", str(corpus / MNIST))
    names = [w["name"] for w in out["weights"]]
    assert "dense/kernel" in names and "dense/kernel/Adam" not in names
    assert out["hidden_optimizer_weights"] == 18
    w = next(w for w in out["weights"] if w["name"] == "conv2d/kernel")
    assert w == {**w, "dtype": "float32", "shape": [3, 3, 1, 32], "nbytes": 1152}
    full = jrun("weights", str(corpus / MNIST), "--include-optimizer")
    assert len(full["weights"]) == 27
    matched = jrun("weights", str(corpus / MNIST), "--match", "^dense_1/")
    assert [w["name"] for w in matched["weights"]] == ["dense_1/bias", "dense_1/kernel"]


def test_weights_stats_match_numpy(corpus):
    import tfmodelkit

    out = jrun("variables", str(corpus / MNIST), "--stats", "--match", "conv2d_1/kernel$")
    (w,) = out["weights"]
    values = tfmodelkit.read(corpus / MNIST).weight("conv2d_1/kernel").read().astype(np.float64)
    assert w["min"] == pytest.approx(values.min()) and w["max"] == pytest.approx(values.max())
    assert w["mean"] == pytest.approx(values.mean()) and w["std"] == pytest.approx(values.std())
    assert w["nan"] == 0 and w["inf"] == 0


def test_tensor_out_writes_npy(corpus, tmp_path):
    out = tmp_path / "k.npy"
    p = run("tensor", str(corpus / MNIST), "dense_1/bias", "--out", str(out))
    assert p.returncode == 0, p.stderr
    import tfmodelkit

    expected = tfmodelkit.read(corpus / MNIST).weight("dense_1/bias").read()
    np.testing.assert_array_equal(np.load(out), expected)
    assert [f.name for f in tmp_path.iterdir()] == ["k.npy"]  # no temporary left behind
    printed = jrun("tensor", str(corpus / MNIST), "global_step")
    assert printed["values"] == 46900 and printed["shape"] == []


def test_check_exit_codes(corpus, tmp_path):
    p = run("check", str(corpus / MNIST))
    assert p.returncode == 0 and "OK" in p.stdout
    folder = tmp_path / "ck"
    shutil.copytree(corpus / MNIST, folder)
    data = folder / "model.ckpt-46900.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5000] ^= 0xFF
    data.write_bytes(bytes(raw))
    p = run("check", str(folder), "--format", "json")
    assert p.returncode == 1
    report = json.loads(p.stdout)
    assert report["ok"] is False
    assert any(f["severity"] == "error" for f in report["findings"])


def test_diff(corpus, tmp_path):
    a = str(corpus / "savedmodel/tfserving_saved_model_half_plus_two_2_versions/00000123")
    b = str(corpus / "savedmodel/tfserving_saved_model_half_plus_three/00000123")
    p = run("diff", a, a)
    assert p.returncode == 0, p.stderr
    p = run("diff", a, b, "--format", "json")
    assert p.returncode == 1
    report = json.loads(p.stdout)
    assert report["identical"] is False
    changed = {c["name"]: c for c in report["changed"]}
    # half_plus_two: y = 0.5x + 2; half_plus_three: y = 0.5x + 3 (scalar variables a, b)
    assert changed["b"]["what"] == "values" and changed["b"]["max_abs_diff"] == pytest.approx(1.0)
    assert "a" not in changed
    assert "serving_default: input 'x' is float32 (?, 1) in A, float32 () in B" in report["signature_changes"]


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
@pytest.mark.parametrize("command", ["summary", "signatures", "weights", "layers", "ops", "check"])
def test_every_view_renders_in_every_format(corpus, command, fmt, capsys):
    assert main([command, str(corpus / HALF_PLUS_TWO), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if fmt == "json":
        json.loads(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "/no/such/model"], "no such file"),
        (["weights", "{tmp}/garbage.bin"], "not a format"),
        (["weights", "{tmp}/bad.h5", "--as", "tflite"], "TFLite"),
        (["summary", "{tmp}", "--as", "savedmodel"], "saved_model.pb"),
        (["weights", "{tmp}/garbage.bin", "--as", "nonsense"], "unknown format"),
        (["weights", "{corpus}/" + MNIST, "--match", "("], "regular expression"),
        (["tensor", "{corpus}/" + MNIST, "no/such/tensor"], "no tensor named"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, corpus):
    (tmp_path / "garbage.bin").write_bytes(os.urandom(100))
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    args = [a.format(tmp=tmp_path, corpus=corpus) for a in args]
    p = run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelinspect: error:"), p.stderr
    assert message.lower() in lines[0].lower()
    assert "Traceback" not in p.stderr


def test_runs_with_tensorflow_and_keras_unimportable(corpus, tmp_path):
    """modelinspect never imports tensorflow, keras or tf_keras."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys
            class _Block:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                        raise ImportError(f"{name} is blocked in this test")
                    return None
            sys.meta_path.insert(0, _Block())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    paths = [corpus / HALF_PLUS_TWO, corpus / MNIST]
    for kind in ("keras_h5", "keras_zip", "tflite"):
        paths.extend(sorted((corpus / kind).rglob("*.*"))[:3])
    for path in paths:
        for command in ("summary", "signatures", "weights", "layers", "ops", "check"):
            p = run(command, str(path), env=env)
            assert p.returncode in (0, 1, 2), (path, command, p.stderr)
            assert "blocked" not in p.stderr and "Traceback" not in p.stderr, (path, command, p.stderr)
