"""TensorFlow steps that can kill the process, run in a child process of their own.

TF 2.21's TFLite converter dies of SIGSEGV while calibrating RNN models for int8 (see
docs/format-notes.md). In-process, that ended ``modelconv`` with exit 139, no message, and its
staged output and temporary folders left behind. :func:`spawn` starts such a step in a fresh
Python process (spawned, not forked: TensorFlow's thread pools do not survive a fork, and the
parent has usually run TensorFlow already); its progress lines, its result or its error come
back through a pipe, and a child that dies becomes one :class:`ChildCrashed` line naming the
stage and the signal.

A caller that knows a child will be needed later can start it ahead with :func:`standby`:
it imports what it will need (TensorFlow: seconds) while the caller works, and the next
:func:`spawn` in that block hands it its job.

What the child gets: its own temporary folder (``TMPDIR``; TF's converter writes temporary
SavedModels there and leaks them when it dies), removed by the parent whatever happened; its
stdout/stderr captured in an unnamed file (replayed on failure with ``TFMODELKIT_DEBUG=1``);
and no life of its own: it is killed when the parent dies (``PR_SET_PDEATHSIG`` on Linux),
and Ctrl-C or SIGTERM of the parent kill it before the parent cleans up and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import importlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .. import frames
from ..errors import InternalError, TFModelKitError, UserError
from ..util import first_line

#: Runs in the child: the parent's import path, then the child's side of the protocol.
_BOOTSTRAP = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from tfmodelkit.convert.isolate import child_main; child_main()"
)
#: The child started ahead by :func:`standby`, per thread, until a :func:`spawn` takes it.
_waiting = threading.local()
_PR_SET_PDEATHSIG = 1


class ChildCrashed(UserError):
    """A step run in a child process died (killed by a signal, or exited without a result)."""


class ChildProgress:
    """What a step running in the child reports through: progress lines for the parent's sink,
    and the stage it is in (what a crash message names)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def say(self, text: str) -> None:
        frames.send(self._fd, ("say", text))

    def stage(self, name: str, what: str, hint: str = "") -> None:
        """From now on the step is in stage ``name``, where ``what`` runs; ``hint`` is said
        after a crash there."""
        frames.send(self._fd, ("stage", (name, what, hint)))


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies, even by SIGKILL (Linux). The signal fires when the
    parent *thread* that started us ends; :meth:`Child.result` waits in that same thread."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def child_main() -> None:  # pragma: no cover - runs in the child process
    """The child's side: read the job from stdin, run it, send its result, exit at once.

    Messages go to the parent over the stdout it was given; fd 1 itself then joins stderr in
    the parent's log, so that nothing TensorFlow prints can get into a message."""
    _die_with_parent(int(sys.argv[2]))
    fd = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if os.environ.get("TFMODELKIT_DEBUG"):
        faulthandler.enable()  # where it crashed, in the output the parent replays
    if sys.argv[3]:  # started ahead: import what the job will need while the parent works
        with contextlib.suppress(Exception):  # the job itself says what is wrong
            module, name = sys.argv[3].split(":")
            getattr(importlib.import_module(module), name)()
    target, args = pickle.load(sys.stdin.buffer)
    module, name = target.split(":")
    try:
        step = getattr(importlib.import_module(module), name)
        message: tuple[str, Any] = ("done", step(*args, ChildProgress(fd)))
    except TFModelKitError as e:
        message = ("error", _relayable(e))
    except BaseException as e:  # a bug of ours: said as such by the parent
        message = ("bug", f"{type(e).__name__}: {first_line(e)}")
    try:
        frames.send(fd, message)
    except Exception as e:  # a result or error that does not pickle
        frames.send(fd, ("bug", f"{type(e).__name__} while sending the {message[0]!r} message: {first_line(e)}"))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip TensorFlow's slow teardown: the parent has what it needs


def _relayable(e: TFModelKitError) -> TFModelKitError:
    """``e``, or a plain error with its message and exit code if ``e`` would not unpickle."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        plain = TFModelKitError(str(e))
        plain.exit_code = e.exit_code
        return plain


def _signal_name(number: int) -> str:
    """``SIGSEGV (segmentation fault)``."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    text = signal.strsignal(number)
    return f"{name} ({text[0].lower()}{text[1:]})" if text and not text.startswith("Unknown") else name


def _interruption(signum: int) -> BaseException:
    """What a signal of the user's becomes in the parent: Ctrl-C a KeyboardInterrupt, SIGTERM
    a SystemExit with the status a process killed by it reports (128 + 15). Either unwinds the
    stack, so the staged output and the temporary folders are removed on the way out."""
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


#: The signals the parent turns into an unwinding exception while a child lives, and the
#: handler each must still have (someone else's own handler is left alone).
_CAUGHT = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class Child:
    """A child process (started ahead with ``preload``, see :func:`standby`) running the step
    :meth:`submit` gives it; :meth:`result` waits for it, :meth:`close` ends it.

    ``stage`` and ``what`` name it in a crash message (``subject: the convert stage crashed:
    TensorFlow's TFLite converter was killed by SIGSEGV``), followed by ``hint`` if given; the
    step updates all three as it goes (:meth:`ChildProgress.stage`).
    """

    def __init__(self, preload: str = "") -> None:
        self.stage, self.what, self.hint = "load", "the child process", ""
        self.subject: object = ""
        self.folder = Path(tempfile.mkdtemp(prefix="tfmodelkit-child-"))
        self._log: IO[bytes] = tempfile.TemporaryFile()
        self._handlers: dict[int, Any] = {}  # the handlers ours replaced
        self._signalled = 0  # the user's signal, once it came
        self._closing = False
        self.closed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: IO[bytes] | None = None  # the child's messages
        try:
            self._catch_signals()
            self._proc = self._start(preload)
        except BaseException:
            self.close()
            raise
        self._channel = self._proc.stdout

    def submit(self, target: str, args: tuple[Any, ...], *, stage: str, what: str, subject: object,
               hint: str = "") -> None:  # fmt: skip
        """Hand the child its job: ``target`` (``"module:function"``) called with ``args``."""
        self.stage, self.what, self.subject, self.hint = stage, what, subject, hint
        with contextlib.suppress(BrokenPipeError):  # a child that died already is said by result()
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL))
            self._proc.stdin.close()

    def _start(self, preload: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "TMPDIR": str(self.folder)}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        argv = [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), str(os.getpid()), preload]
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=os.getcwd()
        )

    def _catch_signals(self) -> None:
        """While the child lives, Ctrl-C and SIGTERM kill it and unwind the parent."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; PR_SET_PDEATHSIG still holds
        for signum, default in _CAUGHT.items():
            if signal.getsignal(signum) == default:
                self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signalled = signum
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        if not self._closing:  # else it is raised once the child is cleaned up
            raise _interruption(signum)

    def _raise_if_signalled(self) -> None:
        # The handler's exception is lost when it runs inside a finalizer or a callback from
        # native code (Python prints "Exception ignored in ..." and goes on: the likeliest
        # reason a SIGTERM once let a conversion run to its end). The child is dead by then;
        # raise it again.
        if self._signalled:
            signum, self._signalled = self._signalled, 0
            raise _interruption(signum)

    def result(self, progress: Any) -> Any:
        """The step's return value; its progress lines go to ``progress.say`` as they come.
        Raises the step's own error, or :class:`ChildCrashed` if it died."""
        self._raise_if_signalled()
        assert self._channel is not None
        buf = bytearray()
        while True:
            chunk = os.read(self._channel.fileno(), 1 << 16)
            if not chunk:
                break
            buf += chunk
            for kind, value in frames.take(buf):  # our child's bytes
                if kind == "say":
                    progress.say(value)
                elif kind == "stage":
                    self.stage, self.what, self.hint = value
                else:
                    self.close(grace=5.0)  # it exits right after its last message
                    self._raise_if_signalled()
                    return self._outcome(kind, value)
        self.close(grace=5.0)  # the pipe closed: it is exiting, or died
        self._raise_if_signalled()
        return self._outcome("died", None)

    def _outcome(self, kind: str, value: Any) -> Any:
        if kind == "done":
            return value
        if kind == "error":
            raise value
        if kind == "bug":
            raise InternalError(f"{self.subject}: bug in the {self.stage} stage (child process): {value}")
        code = self._proc.returncode if self._proc is not None else None
        if code is not None and code < 0:
            how = f"was killed by {_signal_name(-code)}"
        else:
            how = f"exited with status {code} without a result"
        self._replay()
        hint = f"; {self.hint}" if self.hint else ""
        raise ChildCrashed(f"{self.subject}: the {self.stage} stage crashed: {self.what} {how}; nothing was written{hint}")

    def _replay(self) -> None:
        if os.environ.get("TFMODELKIT_DEBUG"):
            with contextlib.suppress(OSError, ValueError):
                self._log.seek(0)
                sys.stderr.write(self._log.read().decode(errors="replace")[-20000:])

    def close(self, grace: float = 0.0) -> None:
        """End the child (killed if it has not exited after ``grace`` seconds), reap it, remove
        its folder, give the signal handlers back."""
        self.closed = self._closing = True
        try:
            proc = self._proc
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                proc.wait()
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
            shutil.rmtree(self.folder, ignore_errors=True)
        finally:
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler)
            self._handlers.clear()
            self._closing = False

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        finally:
            with contextlib.suppress(OSError, ValueError):
                self._log.close()
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            self._signalled = 0  # already on its way out
        else:
            self._raise_if_signalled()  # it wins over whatever else is on its way out


def spawn(target: str, *args: Any, stage: str, what: str, subject: object, hint: str = "") -> Child:
    """Start ``target`` (``"module:function"``, called as ``function(*args, progress)`` with a
    :class:`ChildProgress`) in a child process (the one :func:`standby` started, if any); use
    the returned :class:`Child` as a context manager, so that the child never outlives the block."""
    child = getattr(_waiting, "child", None)
    _waiting.child = None
    if child is None or child.closed:
        child = Child()
    child.submit(target, tuple(args), stage=stage, what=what, subject=subject, hint=hint)
    return child


@contextlib.contextmanager
def standby(preload: str) -> Iterator[None]:
    """Start the next :func:`spawn`'s child now; it calls ``preload`` (``"module:function"``,
    no arguments) while the block works. Ended with the block if no :func:`spawn` took it."""
    child = Child(preload)
    _waiting.child = child
    try:
        yield
    finally:
        if getattr(_waiting, "child", None) is child:
            _waiting.child = None
            child.__exit__(None, None, None)


__all__ = ["Child", "ChildCrashed", "ChildProgress", "child_main", "spawn", "standby"]
