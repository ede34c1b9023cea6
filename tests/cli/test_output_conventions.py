"""What a user of modelinspect expects of its output: results on stdout, warnings and
progress on stderr (``-q`` silences them), tables that fit the terminal, no bar residue."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from tests.bundle import write_checkpoint
from tests.inspect.test_views import STALE, stale_checkpoint
from tfmodelkit.cli import modelinspect, progress
from tfmodelkit.cli.modelinspect import main

LONG_NAME = "encoder/layer_with_a_rather_long_name/multi_head_attention/query/kernel"
WARNED = ["summary", "signatures", "weights", "layers", "ops", "tensor", "diff"]


def _argv(command: str, folder: Path) -> list[str]:
    return {"tensor": ["tensor", str(folder), "w"], "diff": ["diff", str(folder), str(folder)]}.get(
        command, [command, str(folder)]
    )


def _expected_stderr(command: str, folder: Path) -> str:
    if command == "diff":  # two files: each warning names its file
        return f"modelinspect: warning: {folder}/ckpt: {STALE}\n" * 2
    return f"modelinspect: warning: {STALE}\n"


@pytest.fixture
def warned(tmp_path) -> Path:
    return stale_checkpoint(tmp_path / "warned")


@pytest.fixture
def long_names(tmp_path) -> Path:
    return write_checkpoint(
        tmp_path / "ckpt", {LONG_NAME: np.zeros(3, np.float32), "b": np.zeros(1, np.float32)}
    )


def _no_columns() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args],
        capture_output=True, text=True, timeout=120, env=env if env is not None else _no_columns(),
    )  # fmt: skip


def test_every_subcommand_takes_quiet():
    parser = modelinspect.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        flags = {o for a in p._actions for o in a.option_strings}
        assert {"-q", "--quiet"} <= flags, name


@pytest.mark.parametrize("output", ["table", "markdown"])
@pytest.mark.parametrize("command", WARNED)
def test_warnings_go_to_stderr_not_into_the_output(warned, command, output, capsys):
    assert main([*_argv(command, warned), "--format", output]) == 0
    captured = capsys.readouterr()
    assert "stale" not in captured.out.replace(str(warned), "") and "warning" not in captured.out.replace(
        str(warned), ""
    )
    assert captured.err == _expected_stderr(command, warned)


@pytest.mark.parametrize("command", WARNED)
def test_quiet_silences_warnings(warned, command, capsys):
    assert main([*_argv(command, warned), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out and captured.err == ""


@pytest.mark.parametrize("command", WARNED)
def test_json_stays_json_and_carries_warnings_where_its_view_has_the_field(warned, command, capsys):
    assert main([*_argv(command, warned), "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    if "warnings" in doc:  # told in the document: not repeated on stderr
        assert doc["warnings"] == [STALE] and captured.err == ""
    else:
        assert captured.err == _expected_stderr(command, warned)


def test_errors_still_print_when_quiet(tmp_path):
    p = run("summary", str(tmp_path / "missing"), "-q")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelinspect: error:")


def test_streams_are_apart_in_a_real_process(warned):
    p = run("summary", str(warned))
    assert p.returncode == 0
    assert p.stdout.splitlines()[0].startswith(f"{warned}/ckpt") and "warning" not in p.stdout
    assert p.stderr == f"modelinspect: warning: {STALE}\n"
    p = run("check", str(warned))  # a check's findings are its result: they stay in its table
    assert (
        p.returncode == 0
        and p.stderr == ""
        and re.search(r"^warning +checkpoint +state file", p.stdout, re.M)
    )


# ----------------------------------------------------------------------------------------
# width


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_columns_sets_the_table_width(long_names):
    p = run("weights", str(long_names), env={**_no_columns(), "COLUMNS": "60"})
    assert p.returncode == 0 and _widest(p.stdout) <= 60, p.stdout
    assert LONG_NAME not in p.stdout
    assert "".join(LONG_NAME.split("/")) in "".join(
        line.split()[0].replace("/", "") for line in p.stdout.splitlines()[2:-2] if line.strip()
    )
    for output in ("markdown", "json"):  # the full text, whatever the width
        p = run("weights", str(long_names), "--format", output, env={**_no_columns(), "COLUMNS": "60"})
        assert p.returncode == 0 and LONG_NAME in p.stdout


def test_no_limit_when_stdout_is_not_a_terminal(long_names):
    p = run("weights", str(long_names))
    assert p.returncode == 0 and any(line.startswith(LONG_NAME + " ") for line in p.stdout.splitlines())


def test_the_terminal_width_when_stdout_is_one(long_names):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 64, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", "weights", str(long_names)],
        stdout=slave, stderr=subprocess.PIPE, env=_no_columns(),
    )  # fmt: skip
    os.close(slave)
    text = _read_all(master)
    assert proc.wait(timeout=120) == 0
    lines = text.replace("\r\n", "\n").splitlines()
    assert lines and all(len(line) <= 64 for line in lines), text
    assert any(line.startswith("encoder/") for line in lines) and LONG_NAME not in text


def _read_all(master: int) -> str:
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        out += data
    os.close(master)
    return out.decode(errors="replace")


# ----------------------------------------------------------------------------------------
# progress bars


class _Terminal(io.StringIO):
    """stdout and stderr of one terminal: everything written, in order."""

    def isatty(self) -> bool:
        return True


def screen(transcript: str) -> list[str]:
    """The lines a terminal shows after ``transcript``: carriage returns overwrite the line."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", transcript):
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            line = lines[-1]
            line[col : col + 1] = [ch]
            col += 1
    return ["".join(line).rstrip() for line in lines]


@pytest.mark.parametrize(
    "args, first",
    [
        (["weights", "--stats"], "name "),
        (["check"], "{prefix}  [checkpoint]"),
        (["tensor", "--out", "{out}"], "name "),
    ],
    ids=["weights-stats", "check", "tensor-out"],
)
def test_the_bar_is_cleared_before_the_output(tmp_path, monkeypatch, args, first):
    prefix = write_checkpoint(tmp_path / "ckpt", {"w": np.linspace(0, 1, 4096, dtype=np.float32)})
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "THRESHOLD_BYTES", 1)  # a bar even for this small read
    monkeypatch.setenv("COLUMNS", "100")
    argv = [a.format(out=tmp_path / "w.npy") for a in args]
    if argv[0] == "tensor":
        argv[1:1] = [str(prefix), "w"]
    else:
        argv.insert(1, str(prefix))
    assert main(argv) == 0
    text = terminal.getvalue()
    assert "%|" in text, text  # a bar was drawn
    shown = [line for line in screen(text) if line]
    assert not any("%|" in line for line in shown), shown
    assert shown[0].startswith(first.format(prefix=prefix)), shown
