"""The TFLite converter runs in a child process: when it dies, the user gets one line, exit 2,
and nothing is left anywhere (destination, staged sibling, temporary folders).

TF 2.21's converter really does die of SIGSEGV in int8 calibration of LSTM models; the tests
that must not depend on that bug make TensorFlow's calibrator kill its own process with a
signal instead (a ``sitecustomize`` on the child's PYTHONPATH patches it), which is what the
real crash looks like from outside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, tf_available
from tfmodelkit.convert import isolate
from tfmodelkit.errors import EXIT_INTERNAL, EXIT_USAGE, InternalError, UserError

needs_tf = pytest.mark.skipif(not tf_available(), reason="needs TensorFlow (the convert extra)")
SAVEDMODEL = FIXTURES / "savedmodel/keras3_two_io"

# Makes a process kill itself with $CRASH_SIGNAL where $CRASH_AT says: in TensorFlow's int8
# calibrator as soon as it feeds a batch ("calibrator"), or when LiteRT's interpreter is made
# ("litert").
CRASHING_HOOK = """
import importlib.machinery, os, signal, sys

WHERE = {
    "calibrator": ("tensorflow.lite.python.optimize.calibrator", "Calibrator", "_feed_tensors"),
    "litert": ("ai_edge_litert.interpreter", "Interpreter", "__init__"),
}
MODULE, CLASS, METHOD = WHERE[os.environ.get("CRASH_AT", "calibrator")]


class _Crash:
    def find_spec(self, name, path=None, target=None):
        if name != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)

            def crash(*args, **kwargs):
                os.kill(os.getpid(), getattr(signal, os.environ["CRASH_SIGNAL"]))

            setattr(getattr(module, CLASS), METHOD, crash)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Crash())
"""


@pytest.fixture
def crashing(tmp_path):
    """Environment for a process whose TensorFlow calibrator (or LiteRT) dies of a signal; its
    temporary files go to a folder of the test's own, which must be empty afterwards."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASHING_HOOK)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(hook), "TMPDIR": str(tmp), "CRASH_SIGNAL": "SIGSEGV"}
    env.pop("TFMODELKIT_DEBUG", None)
    return env, tmp


def _modelconv(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def _assert_one_crash_line(p: subprocess.CompletedProcess, signal_name: str, stage: str = "convert") -> str:
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    (line,) = lines
    assert line.startswith("modelconv: error:") and "Traceback" not in p.stderr
    assert f"the {stage} stage crashed" in line and f"killed by {signal_name}" in line, line
    return line


@needs_tf
@pytest.mark.tf
@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGABRT"])
def test_int8_converter_killed_by_a_signal_is_one_line_and_leaves_nothing(crashing, tmp_path, signal_name):
    env, tmp = crashing
    out = tmp_path / "out"
    out.mkdir()
    p = _modelconv(
        "savedmodel-to-tflite", str(SAVEDMODEL), str(out / "m.tflite"), "--quantize", "int8",
        "--allow-generated-calibration", "-q", env={**env, "CRASH_SIGNAL": signal_name},
    )  # fmt: skip
    line = _assert_one_crash_line(p, signal_name)
    assert str(SAVEDMODEL) in line and "TFLite converter" in line
    assert list(out.iterdir()) == []  # no destination, no staged sibling
    assert list(tmp.iterdir()) == []  # no temporary folder: the child's, TensorFlow's


@needs_tf
@pytest.mark.tf
def test_a_crash_while_verifying_names_the_verify_stage(crashing, tmp_path):
    env, tmp = crashing
    out = tmp_path / "out"
    out.mkdir()
    p = _modelconv("savedmodel-to-tflite", str(SAVEDMODEL), str(out / "m.tflite"), "-q", env={**env, "CRASH_AT": "litert"})
    line = _assert_one_crash_line(p, "SIGSEGV", stage="verify")
    assert "LiteRT" in line and "int8" not in line  # no calibration hint outside int8 conversion
    assert list(out.iterdir()) == [] and list(tmp.iterdir()) == []


@needs_tf
@pytest.mark.tf
def test_crash_in_the_keras_route_removes_its_temporary_savedmodel(crashing, tmp_path):
    env, tmp = crashing
    src = FIXTURES / "keras_h5/keras3_legacy.h5"
    out = tmp_path / "out"
    out.mkdir()
    p = _modelconv("convert", str(src), str(out / "m.tflite"), "--quantize", "int8", "--allow-generated-calibration",
                   "-q", env=env)  # fmt: skip
    line = _assert_one_crash_line(p, "SIGSEGV")
    assert f"{src} (as a SavedModel)" in line  # the source, not the temporary folder
    assert list(out.iterdir()) == []
    assert list(tmp.iterdir()) == []  # the route's tfmodelkit-convert-* folder included


@needs_tf
@pytest.mark.tf
def test_library_call_raises_the_crash_as_a_user_error(crashing, tmp_path, monkeypatch):
    from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite

    env, tmp = crashing
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])  # the child inherits it; this process is past startup
    monkeypatch.setenv("CRASH_SIGNAL", "SIGSEGV")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    lines: list[str] = []
    with pytest.raises(isolate.ChildCrashed, match=r"the convert stage crashed: .* killed by SIGSEGV") as caught:
        savedmodel_to_tflite(
            SAVEDMODEL, tmp_path / "m.tflite", quantize="int8", allow_generated_calibration=True, progress=lines.append
        )
    assert caught.value.exit_code == EXIT_USAGE and isinstance(caught.value, UserError)
    assert "int8 calibration" in str(caught.value)  # the hint for this mode
    # the child's warning reached the caller's progress before it died
    assert any(line.startswith("warning: int8 calibration on generated inputs") for line in lines)
    assert not (tmp_path / "m.tflite").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hook", "tmp"] and list(tmp.iterdir()) == []


@needs_tf
@pytest.mark.tf
def test_a_real_converter_crash_is_reported(tmp_path):
    """TF 2.21's converter dies of SIGSEGV calibrating this LSTM for int8 (see
    docs/format-notes.md); with a TensorFlow that does not, the conversion simply works."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("TFMODELKIT_DEBUG", None)
    out = tmp_path / "out"
    out.mkdir()
    p = _modelconv("convert", str(FIXTURES / "keras_h5/keras3_lstm.h5"), str(out / "m.tflite"),
                   "--quantize", "int8", "--allow-generated-calibration", "-q", env=env)  # fmt: skip
    if p.returncode == 0:
        assert [f.name for f in out.iterdir()] == ["m.tflite"]
    else:
        _assert_one_crash_line(p, "SIGSEGV")
        assert list(out.iterdir()) == []
    assert list(tmp.iterdir()) == []


# --------------------------------------------------------------------------- interruption


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(c) for c in path.read_text().split()]
    except OSError:
        return []


def _gone(pid: int, within: float = 20.0) -> bool:
    """Whether ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _start_until_converting(dst: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """A modelconv run, once its child process is importing TensorFlow (to convert and verify
    next): (process, the child's pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", "savedmodel-to-tflite", str(SAVEDMODEL), str(dst)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "[load] importing TensorFlow's converter" in line:
            break
    else:
        pytest.fail(f"modelconv ended before converting (exit {proc.wait()})")
    (child,) = _children(proc.pid)
    assert not _gone(child, within=0)
    return proc, child


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@needs_tf
@pytest.mark.tf
@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("sigterm", 128 + signal.SIGTERM)])
def test_interrupting_the_parent_kills_the_child_and_leaves_nothing(tmp_path, how, code):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    proc, child = _start_until_converting(out / "m.tflite", {**os.environ, "TMPDIR": str(tmp)})
    if how == "ctrl-c":  # the terminal signals the whole foreground group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == code
    rest = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in rest
    if how == "ctrl-c":
        assert rest.strip().splitlines()[-1] == "modelconv: interrupted"
    assert _gone(child)
    assert list(out.iterdir()) == [] and list(tmp.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child's parent-death signal is Linux's")
@needs_tf
@pytest.mark.tf
def test_a_killed_parent_takes_the_child_with_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc, child = _start_until_converting(out / "m.tflite", dict(os.environ))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert _gone(child), "the converter child outlived its parent"
    # what a kill can leave: the staged sibling named by the dead parent, removed by the next run
    for left in out.iterdir():
        assert left.name == f".m.tflite.tfmodelkit-partial-{proc.pid}"


# --------------------------------------------------------------------------- the mechanism


def say_and_return(value: object, progress: isolate.ChildProgress) -> object:
    progress.say("working")
    progress.say("warning: careful")
    return {"value": value, "tmp": tempfile.gettempdir(), "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}


def raise_user_error(text: str, progress: isolate.ChildProgress) -> None:
    raise isolate.ChildCrashed(text)  # any TFModelKitError subclass, its class kept


def raise_bug(progress: isolate.ChildProgress) -> None:
    raise ValueError("a bug")


PRELOADED = False


def preload() -> None:
    global PRELOADED
    PRELOADED = True


def was_preloaded(progress: isolate.ChildProgress) -> bool:
    return PRELOADED


def die_in_a_later_stage(progress: isolate.ChildProgress) -> None:
    progress.stage("later", "the later step", "try the other way")
    os.kill(os.getpid(), signal.SIGSEGV)


def leave_temp_and_die(how: str, progress: isolate.ChildProgress) -> None:
    Path(tempfile.mkdtemp(prefix="left-")).joinpath("x").write_text("x")
    if how == "exit":
        os._exit(5)
    os.kill(os.getpid(), getattr(signal, how))


class Lines:
    """A stand-in for a conversion's Progress."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """This process's temporary folder, for the test alone: empty again after each child."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _run(target: str, *args: object, progress: Lines | None = None) -> object:
    with isolate.spawn(f"{__name__}:{target}", *args, stage="demo", what="the demo step", subject="model") as child:
        return child.result(progress or Lines())


def test_result_and_progress_come_back_from_the_child(own_tmp):
    progress = Lines()
    got = _run("say_and_return", [1, "two"], progress=progress)
    assert got["value"] == [1, "two"]
    assert Path(got["tmp"]).parent == own_tmp and Path(got["tmp"]).name.startswith("tfmodelkit-child-")
    assert list(own_tmp.iterdir()) == []  # the child's temporary folder is gone
    assert got["sigint_ignored"]  # Ctrl-C is the parent's to handle
    assert progress.lines == ["working", "warning: careful"]


def test_errors_of_the_child_keep_their_class_and_bugs_are_bugs(own_tmp):
    with pytest.raises(isolate.ChildCrashed, match="^said in the child$"):
        _run("raise_user_error", "said in the child")
    with pytest.raises(InternalError, match="model: bug in the demo stage .*ValueError: a bug") as caught:
        _run("raise_bug")
    assert caught.value.exit_code == EXIT_INTERNAL
    assert list(own_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("how", "said"),
    [("SIGSEGV", "was killed by SIGSEGV (segmentation fault)"), ("SIGABRT", "was killed by SIGABRT (aborted)"),
     ("SIGKILL", "was killed by SIGKILL (killed)"), ("exit", "exited with status 5 without a result")],
)  # fmt: skip
def test_a_dying_child_is_one_line_and_its_temporary_files_go(own_tmp, how, said):
    with pytest.raises(isolate.ChildCrashed) as caught:
        _run("leave_temp_and_die", how)
    message = str(caught.value)
    assert message == f"model: the demo stage crashed: the demo step {said}; nothing was written"
    assert caught.value.exit_code == EXIT_USAGE
    assert list(own_tmp.iterdir()) == []  # what the child left in its temporary folder included


def test_the_crash_names_the_stage_the_child_announced_last(own_tmp):
    with pytest.raises(isolate.ChildCrashed) as caught:
        _run("die_in_a_later_stage")
    assert str(caught.value) == (
        "model: the later stage crashed: the later step was killed by SIGSEGV (segmentation fault); "
        "nothing was written; try the other way"
    )


def test_a_child_started_ahead_takes_the_next_job_and_an_unused_one_ends_with_its_block(own_tmp):
    with isolate.standby(f"{__name__}:preload"):
        assert len(list(own_tmp.iterdir())) == 1  # its temporary folder: it runs already
        assert _run("was_preloaded") is True
        assert _run("was_preloaded") is False  # the next one is a fresh child
    assert _run("was_preloaded") is False
    with isolate.standby(f"{__name__}:preload"):
        pass
    assert list(own_tmp.iterdir()) == []


def test_sigterm_is_handled_only_while_a_child_lives_and_only_if_nobody_else_does():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with isolate.spawn(f"{__name__}:say_and_return", 0, stage="s", what="w", subject="m") as child:
            assert callable(signal.getsignal(signal.SIGTERM))
            child.result(Lines())
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def mine(signum, frame):  # an application's own handler stays in place
            pass

        signal.signal(signal.SIGTERM, mine)
        with isolate.spawn(f"{__name__}:say_and_return", 0, stage="s", what="w", subject="m") as child:
            assert signal.getsignal(signal.SIGTERM) is mine
            child.result(Lines())
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_child_imports_what_the_parent_imports(tmp_path):
    """The child gets the parent's import path, not just the installed package."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tfmodelkit.convert import isolate
        from tests.convert.test_isolation import Lines
        with isolate.spawn("tests.convert.test_isolation:say_and_return", 7, stage="s", what="w", subject="m") as c:
            print(c.result(Lines())["value"])
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "7", p.stderr
