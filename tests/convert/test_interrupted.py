"""A conversion killed at any moment leaves nothing at its destination.

``modelconv`` runs as a subprocess and is SIGKILLed at seeded random points of its run
(delays spread over the duration of a first, un-killed run, and moments just after its
staged output appeared). Each time: the destination is absent, or holds the complete,
verified result when the kill came after the commit (while the process was exiting); with
--overwrite over an existing destination it holds its previous content byte for byte until
that complete result replaces it. Anything left beside it is a
``.<name>.tfmodelkit-partial-<pid>`` sibling of a killed run, which the next run removes.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

CASES = [
    ("h5-to-savedmodel", FIXTURES / "keras_h5/keras3_legacy.h5", "sm"),
    ("savedmodel-to-tflite", FIXTURES / "savedmodel/keras3_two_io", "model.tflite"),
]
KILLS = 3  # per case, into an empty destination
OVERWRITE_KILLS = 2  # per case, over an existing destination with --overwrite


def _command(cmd: str, src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tfmodelkit.cli.modelconv", cmd, str(src), str(dst), "-q", *extra]


def _snapshot(path: Path) -> dict[str, bytes] | bytes | None:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
        }
    return path.read_bytes() if path.exists() else None


def _leftovers(dst: Path) -> list[str]:
    return sorted(p.name for p in dst.parent.iterdir() if p.name != dst.name)


def _assert_only_partials_of(dst: Path, killed: set[int], old_too: bool = False) -> list[str]:
    marks = "partial|old" if old_too else "partial"
    left = _leftovers(dst)
    for name in left:
        m = re.fullmatch(rf"\.{re.escape(dst.name)}\.tfmodelkit-({marks})-(\d+)", name)
        assert m, f"unexpected leftover {name!r} beside {dst.name}"
        assert int(m.group(2)) in killed, f"{name}: not from a run we killed"
    return left


def _run_watching(argv: list[str], dst: Path) -> tuple[subprocess.Popen, float, float]:
    """Run ``argv`` to the end; (process, seconds it took, seconds its staged output lived)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = dst.parent / f".{dst.name}.tfmodelkit-partial-{proc.pid}"
    start = time.monotonic()
    first = last = None
    while proc.poll() is None:
        if partial.exists():
            last = time.monotonic()
            first = first or last
        time.sleep(0.005)
    proc.wait()
    return proc, time.monotonic() - start, (last - first) if first and last else 0.0


def _kill_at_random(
    argv: list[str], dst: Path, rng: random.Random, duration: float, window: float, staged: bool
) -> tuple[int, bool]:
    """Start ``argv`` and SIGKILL it at a seeded moment: somewhere in its run, or (``staged``)
    while its staged output exists. Returns (pid, whether it finished before the kill)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = dst.parent / f".{dst.name}.tfmodelkit-partial-{proc.pid}"
    if staged:
        deadline = time.monotonic() + 2 * duration
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.8) * window)
    else:
        time.sleep(rng.uniform(0.3, 1.1) * duration)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return proc.pid, finished


def _is_complete_result(path: Path) -> bool:
    import tfmodelkit

    return path.exists() and tfmodelkit.check(path).ok and bool(tfmodelkit.read(path).signatures)


@pytest.mark.parametrize(("cmd", "src", "name"), CASES, ids=[c[0] for c in CASES])
def test_killed_conversion_leaves_nothing_at_the_destination(cmd, src, name, tmp_path):
    rng = random.Random(f"interrupted-{cmd}")

    # An un-killed run: how long a run takes, and how long its staged output lives.
    ref = tmp_path / "ref" / name
    ref.parent.mkdir()
    done, duration, window = _run_watching(_command(cmd, src, ref), ref)
    assert done.returncode == 0, done.stderr.read() if done.stderr else ""
    assert _leftovers(ref) == [] and window > 0

    # Into an empty destination: nothing there after a kill, only our partials beside it.
    dst = tmp_path / "fresh" / name
    dst.parent.mkdir()
    killed: set[int] = set()
    saw_partial = False
    for k in range(KILLS):
        pid, finished = _kill_at_random(
            _command(cmd, src, dst), dst, rng, duration, window, staged=k % 2 == 1
        )
        if finished:  # it beat the kill: a whole result, which the next round must not see
            assert _is_complete_result(dst)
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            continue
        killed.add(pid)
        saw_partial |= bool(_assert_only_partials_of(dst, killed))
        if dst.exists() or dst.is_symlink():
            # Killed after its commit (while exiting): only a whole, verified result may be there.
            assert _is_complete_result(dst), f"killed run {pid} left a damaged {name}"
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    assert saw_partial, "no kill landed while the staged output existed; the test proved nothing"

    # The next run removes the partials of killed runs and writes the result.
    done = subprocess.run(_command(cmd, src, dst), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _leftovers(dst) == [] and _is_complete_result(dst)

    # Over an existing destination with --overwrite: the previous content stays, byte for
    # byte, until the complete new result replaces it.
    dst = tmp_path / "existing" / name
    dst.parent.mkdir()
    if name.endswith(".tflite"):
        dst.write_bytes(b"previous content, not a model\n")
    else:
        dst.mkdir()
        (dst / "saved_model.pb").write_bytes(b"previous content")
        (dst / "notes.txt").write_text("kept until replaced\n")
    previous = _snapshot(dst)
    for k in range(OVERWRITE_KILLS):
        argv = _command(cmd, src, dst, "--overwrite")
        pid, _ = _kill_at_random(argv, dst, rng, duration, 1.5 * window, staged=k % 2 == 0)
        killed.add(pid)
        now = _snapshot(dst)
        if now != previous:
            assert _is_complete_result(dst), f"run {pid} left a destination that is neither old nor new"
            previous = now
        _assert_only_partials_of(dst, killed, old_too=True)


_DIE_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from tfmodelkit.convert.base import staged_output

dst = Path(sys.argv[1])
real_replace = os.replace
calls = []

def replace_then_die(a, b):
    real_replace(a, b)
    calls.append((a, b))
    if len(calls) == 1:  # SIGKILL can land here: after the first rename of the commit
        os._exit(9)

os.replace = replace_then_die
with staged_output(dst, overwrite=True) as stage:
    stage.path.write_bytes(b"new model")
    stage.commit()
"""


def test_kill_inside_the_commit_keeps_the_previous_destination(tmp_path):
    from tfmodelkit.convert.base import clean_leftovers

    dst = tmp_path / "model.tflite"
    dst.write_bytes(b"previous model")
    p = subprocess.run(
        [sys.executable, "-c", _DIE_BETWEEN_RENAMES, str(dst)], capture_output=True, timeout=120
    )
    assert p.returncode == 9, p.stderr
    clean_leftovers(dst)  # what the next conversion to the same destination does first
    assert dst.read_bytes() == b"previous model"
