"""modelconv's shell: parsing, the one library call, exit codes and one-line errors.

These stop before any conversion runs, so they need no TensorFlow; conversions themselves are
tested in tests/convert/.
"""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES
from tests.conftest import modelconv_reporting_imports as run
from tfmodelkit.cli.modelconv import build_parser, main

SUBCOMMANDS = ["h5-to-savedmodel", "keras-to-savedmodel", "ckpt-to-savedmodel", "savedmodel-to-tflite", "convert", "verify"]


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]  # noqa: SLF001
    assert set(SUBCOMMANDS) <= set(actions[0].choices)
    for command in actions[0].choices:
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0
        assert "usage: modelconv " + command in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: modelconv" in capsys.readouterr().err


def test_version(capsys):
    from tfmodelkit import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"modelconv {__version__}"


def test_an_option_the_route_does_not_use_is_refused_before_tensorflow_loads(tmp_path):
    p = run("convert", str(FIXTURES / "keras_h5/keras3_legacy.h5"), str(tmp_path / "sm"), "--quantize", "int8")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines[0] == f"modelconv: error: {FIXTURES / 'keras_h5/keras3_legacy.h5'}: --quantize does not apply to a keras_h5 -> savedmodel conversion"
    assert lines[-1] == "imported: -" and not (tmp_path / "sm").exists()


def test_the_wrong_kind_of_keras_file_names_the_command_that_takes_it(tmp_path):
    p = run("h5-to-savedmodel", str(FIXTURES / "keras_zip/conv_bn.keras"), str(tmp_path / "sm"))
    assert p.returncode == 2 and "use `modelconv keras-to-savedmodel`" in p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1] == "imported: -"


def test_missing_source_is_one_line(tmp_path):
    p = run("verify", str(tmp_path / "nope.h5"), str(tmp_path / "nope.tflite"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and "no such file" in lines[0] and lines[1] == "imported: -"


def test_checkpoint_options_without_a_checkpoint_are_refused():
    p = run("verify", str(FIXTURES / "tflite/two_io_float32.tflite"), str(FIXTURES / "tflite/two_io_float32.tflite"),
            "--root-key", "net")  # fmt: skip
    assert p.returncode == 2 and "--root-key: for a checkpoint" in p.stderr


def test_verify_of_a_tflite_pair_passes_without_tensorflow():
    model = str(FIXTURES / "tflite/two_io_float32.tflite")
    p = run("verify", model, model, "-q")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"PASS: 2 outputs of {model} match {model} on 32 generated samples"
    assert p.stderr.strip().splitlines()[-1] == "imported: -"
