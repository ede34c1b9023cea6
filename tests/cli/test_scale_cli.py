"""A 128 MiB checkpoint through the real commands: bounded memory, progress bars on a TTY only."""

from __future__ import annotations

import fcntl
import io
import json
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from tests.bundle import write_checkpoint
from tfmodelkit.cli import progress

MIB = 1 << 20
BIG = 20 * MIB  # float32 elements: an 80 MiB tensor
ROWS, COLS = 1536, 4096  # each slice of "part" is 24 MiB
#: What our commands may hold above the interpreter with its imports. One tensor read
#: whole (80 MiB) or the sliced one assembled (48 MiB, 96 MiB as float64) is over it.
HEADROOM = 64 * MIB

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

# Peak memory as the process itself sees it (VmHWM of its own address space): ru_maxrss
# of a child also counts the parent's memory at fork time, which under pytest is large.
WRAP = """
import sys
from tfmodelkit.cli.modelinspect import main
code = main(sys.argv[1:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
sys.stderr.write(f"VmHWM {hwm}\\n")
sys.exit(code)
"""
BASELINE = """
import sys
import google_crc32c, ml_dtypes, numpy
import tfmodelkit.cli.modelinspect, tfmodelkit.formats.checkpoint, tfmodelkit.inspect.tensor
import tfmodelkit.inspect.views, tfmodelkit.inspect.render
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
sys.stderr.write(f"VmHWM {hwm}\\n")
"""


@pytest.fixture(scope="module")
def big_ckpt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    big = np.linspace(-1.0, 1.0, BIG, dtype=np.float32)
    part = [
        np.full((ROWS, COLS), 0.25, np.float32),
        np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS),
    ]
    return write_checkpoint(folder / "ckpt", {"big": big, "part": part})


def _peak(script: str, *args: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    lines = [line for line in p.stderr.splitlines() if line.startswith("VmHWM")]
    assert lines, p.stderr
    return int(lines[-1].split()[1]) * 1024, p


@pytest.mark.parametrize(
    "args",
    [
        ["check", "{ckpt}"],
        ["weights", "--stats", "{ckpt}", "--format", "json"],
        ["tensor", "{ckpt}", "big", "--out", "{out}/big.npy"],
        ["tensor", "{ckpt}", "part", "--out", "{out}/part.npy"],
    ],
    ids=["check", "stats", "tensor-out", "tensor-out-sliced"],
)
def test_large_reads_stay_in_bounded_memory(big_ckpt, tmp_path, args):
    baseline, _ = _peak(BASELINE)
    argv = [a.format(ckpt=big_ckpt, out=tmp_path) for a in args]
    peak, p = _peak(WRAP, *argv)
    assert p.returncode == 0, p.stderr
    assert peak - baseline < HEADROOM, (
        f"{argv[0]} peaked {(peak - baseline) / MIB:.0f} MiB above the baseline"
    )
    if argv[0] == "weights":
        stats = {w["name"]: w for w in json.loads(p.stdout)["weights"]}
        ref = np.linspace(-1.0, 1.0, BIG, dtype=np.float32).astype(np.float64)
        assert stats["big"]["mean"] == pytest.approx(ref.mean(), abs=1e-12)
        assert stats["big"]["std"] == pytest.approx(ref.std(), rel=1e-9)
        assert (stats["part"]["min"], stats["part"]["max"]) == (0.0, ROWS * COLS - 1.0)
    if argv[0] == "tensor":
        name = argv[2]
        got = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
        if name == "big":
            assert got.shape == (BIG,) and got[0] == -1.0 and got[-1] == 1.0
        else:
            assert got.shape == (2 * ROWS, COLS)
            assert (got[:ROWS] == 0.25).all()
            assert np.array_equal(got[ROWS:].reshape(-1), np.arange(ROWS * COLS, dtype=np.float32))


# Bytes read through system calls by the command's second run in one process (the first
# one imports what it needs), and the process's peak memory.
COUNT_READS = """
import sys
from tfmodelkit.cli.modelinspect import main

def io():
    return dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())

main(sys.argv[1:])
before = int(io()["rchar"])
code = main(sys.argv[1:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
sys.stderr.write(f"read {int(io()['rchar']) - before}\\nVmHWM {hwm}\\n")
sys.exit(code)
"""


@pytest.mark.parametrize("command", ["weights", "summary", "signatures"])
def test_listing_reads_only_the_index(big_ckpt, command):
    baseline, _ = _peak(BASELINE)
    peak, p = _peak(COUNT_READS, command, str(big_ckpt))
    assert p.returncode == 0, p.stderr
    read = int(next(line for line in p.stderr.splitlines() if line.startswith("read")).split()[1])
    index = Path(f"{big_ckpt}.index").stat().st_size
    assert read < index + 4096  # the index, and not one byte of tensor data
    assert peak - baseline < 8 * MIB


def _run_with_stderr_on_a_tty(*args: str) -> tuple[int, str]:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    text = _drain(master, proc)
    return proc.wait(timeout=120), text


def _drain(master: int, proc: subprocess.Popen) -> str:
    """Everything the child writes to the terminal ``master``, until it closes its end."""
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
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


def test_progress_bar_on_a_terminal_and_not_with_q(big_ckpt):
    code, text = _run_with_stderr_on_a_tty("check", str(big_ckpt))
    assert code == 0
    assert "check" in text and "%" in text and "B/s" in text
    code, text = _run_with_stderr_on_a_tty("check", "-q", str(big_ckpt))
    assert code == 0 and text == ""
    code, text = _run_with_stderr_on_a_tty("weights", "--stats", str(big_ckpt))
    assert code == 0 and "stats" in text and "%" in text


def test_bar_leaves_no_residue_above_the_table_on_one_terminal(big_ckpt):
    """stdout and stderr on the same terminal, as a person runs it: the bar is gone before
    the table prints."""
    from tests.cli.test_output_conventions import screen

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfmodelkit.cli.modelinspect", "weights", "--stats", str(big_ckpt)],
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    text = _drain(master, proc)
    assert proc.wait(timeout=120) == 0
    assert "stats" in text and "%|" in text  # a bar was drawn
    shown = [line for line in screen(text.replace("\r\n", "\n")) if line]
    assert shown[0].startswith("name ") and not any("%|" in line for line in shown), shown


def test_no_progress_bar_when_stderr_is_not_a_terminal(big_ckpt, tmp_path):
    for args in (
        ["check", str(big_ckpt)],
        ["tensor", str(big_ckpt), "big", "--out", str(tmp_path / "b.npy")],
    ):
        p = subprocess.run(
            [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0 and p.stderr == ""


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_drawn_only_for_large_work_on_a_terminal(monkeypatch):
    fake = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    with progress.progress_bar("check", quiet=False) as bar:
        bar(10, 1000)  # small work: no bar
        assert fake.getvalue() == ""
        bar(50 * MIB, 200 * MIB)
        bar(200 * MIB, 200 * MIB)
    assert "check" in fake.getvalue()
    quiet = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", quiet)
    with progress.progress_bar("check", quiet=True) as bar:
        bar(200 * MIB, 200 * MIB)
    assert quiet.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not progress.progress_bar("check", quiet=False).enabled
