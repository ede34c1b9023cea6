"""The lint entry points: targets by name, a description or a path, the CLI's ``check --target``,
and no TensorFlow on the way."""

from __future__ import annotations

import json

import pytest

import tfmodelkit.lint as lint_module
from tests.conftest import FIXTURES
from tests.lint.common import CYCLIC, MULTISIG, need
from tfmodelkit.cli import modelinspect
from tfmodelkit.errors import UserError
from tfmodelkit.lint import lint, parse_targets


def test_parse_targets():
    assert parse_targets(["serving,tflite", "serving", " Safety "]) == ("serving", "tflite", "safety")
    assert parse_targets("tflite") == ("tflite",)
    with pytest.raises(UserError, match="choose from serving, tflite, safety"):
        parse_targets(["serving,gpu"])
    with pytest.raises(UserError):
        parse_targets([","])


def test_lint_accepts_a_description():
    import tfmodelkit

    desc = tfmodelkit.read(MULTISIG)
    assert [f.subject for f in lint(desc, ["safety"]).findings] == [
        f.subject for f in lint(MULTISIG, ["safety"]).findings
    ]


# ---------------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv):
    code = modelinspect.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_shape_and_exit_codes(capsys):
    code, out, _ = run_cli(
        capsys, "check", str(MULTISIG), "--target", "serving", "--target", "safety,tflite", "--format", "json"
    )
    assert code == 0  # warnings only
    doc = json.loads(out)
    assert set(doc) == {"path", "format", "ok", "checked", "findings", "targets"}
    assert doc["ok"] is True and doc["targets"] == ["serving", "safety", "tflite"]
    assert {f["target"] for f in doc["findings"]} == {"serving", "safety"}
    assert all(set(f) == {"severity", "subject", "message", "target"} for f in doc["findings"])

    code, out, _ = run_cli(capsys, "check", str(need(CYCLIC)), "--target", "serving", "--format", "json")
    assert code == 1 and json.loads(out)["ok"] is False

    # without --target, check stays the integrity check and its JSON is unchanged
    code, out, _ = run_cli(capsys, "check", str(MULTISIG), "--format", "json")
    assert code == 0 and "targets" not in json.loads(out)


def test_cli_table_and_markdown(capsys):
    code, out, _ = run_cli(capsys, "check", str(need(CYCLIC)), "--target", "serving")
    assert code == 1
    assert "targets: serving" in out and "signature 'serving_default'" in out
    assert "FAILED: 1 error," in out  # counts are singular when one
    code, out, _ = run_cli(capsys, "check", str(MULTISIG), "--target", "safety", "--format", "markdown")
    assert code == 0 and out.startswith("## ") and "| warning" in out and "OK: no errors (1 warning)" in out


def test_cli_bad_target_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "check", str(MULTISIG), "--target", "phone")
    assert code == 2 and "modelinspect: error: --target 'phone': choose from serving, tflite, safety" in err


def test_check_help_documents_target():
    parser = modelinspect.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["check"].format_help()
    assert "--target" in text and "serving" in text and "safety" in text


def test_lint_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from tfmodelkit.lint import lint; "
        f"lint({str(MULTISIG)!r}, ['serving', 'tflite', 'safety']); "
        f"lint({str(FIXTURES / 'tflite/mlp_int8.tflite')!r}, ['tflite', 'safety']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_module_docstring_names_the_targets():
    assert all(t in lint_module.__doc__ for t in ("serving", "tflite", "safety"))
