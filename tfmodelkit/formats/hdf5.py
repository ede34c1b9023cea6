"""Running the HDF5 library at arm's length: a forked child, a watchdog, a pickle protocol.

libhdf5 can loop forever or crash on damaged files (seen on the corpus: one flipped bit in
a global heap makes reading a string attribute spin, holding the GIL). So every h5py call
runs in a forked child that streams its results back through a pipe, and tells the parent
it is alive (:func:`alive`) between library calls: after each object, attribute or block.
The parent kills a child that shows no progress for ``timeout`` seconds and reports a hang
or a crash as a damaged file; a large healthy file takes as long as it needs, since every
library call on it returns and progress resumes. Without fork (Windows) the work runs
in-process.

The wait (:func:`default_timeout`) is, first to last: the readers' ``timeout`` option, the
command's ``--timeout`` (:func:`timeout_scope`), ``TFMODELKIT_HDF5_TIMEOUT``, then
:data:`DEFAULT_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import contextvars
import faulthandler
import math
import os
import select
import signal
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any

from .. import frames
from ..errors import InternalError, TFModelKitError, UserError

#: What h5py raises on damaged files (it maps HDF5 errors onto builtin exceptions).
H5_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    OverflowError,
    MemoryError,
)

#: Seconds the HDF5 library may work without progress before the file is declared damaged.
#: Measured on healthy files, on a loaded 2-core machine: the longest silence over every .h5
#: and .keras of the corpus and the fixtures (read, every value, check) was 0.07 s; a 512 MiB
#: gzip-compressed dataset (read in 64 MiB blocks) went 2.2 s between blocks, while its check
#: took 11 s in all. 10 s leaves a healthy file four times that margin.
DEFAULT_TIMEOUT = 10.0
#: The environment variable that sets the wait (seconds) when no option or flag does.
TIMEOUT_ENV = "TFMODELKIT_HDF5_TIMEOUT"
#: How the wait is set, for messages.
TIMEOUT_HINT = f"--timeout SECONDS or {TIMEOUT_ENV} sets the wait"

_scoped_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("hdf5_timeout", default=None)


def parse_timeout(value: object, where: str) -> float:
    """``value`` as a positive, finite number of seconds, or a :class:`UserError` naming ``where``."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (seconds > 0 and math.isfinite(seconds)):
        raise UserError(f"{where} {value!r}: give a positive number of seconds")
    return seconds


@contextlib.contextmanager
def timeout_scope(seconds: float | None) -> Iterator[None]:
    """Within the block, HDF5 reads that get no ``timeout`` option wait ``seconds`` (None: no change)."""
    token = _scoped_timeout.set(parse_timeout(seconds, "--timeout") if seconds is not None else _scoped_timeout.get())
    try:
        yield
    finally:
        _scoped_timeout.reset(token)


def default_timeout() -> float:
    """The wait when no ``timeout`` option is given: the scope's, the environment's, or the default."""
    scoped = _scoped_timeout.get()
    if scoped is not None:
        return scoped
    env = os.environ.get(TIMEOUT_ENV, "").strip()
    return parse_timeout(env, TIMEOUT_ENV) if env else DEFAULT_TIMEOUT


def one_line(e: BaseException) -> str:
    """An exception's message on one line (h5py's messages can span several)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def option_timeout(options: dict[str, object]) -> float:
    """The ``timeout`` option (a positive number of seconds), else :func:`default_timeout`."""
    t = options.get("timeout")
    return default_timeout() if t is None else parse_timeout(t, "timeout")


#: True in a forked child: work asked for there runs in-process (no child of a child).
_in_child = False
#: In a forked child: the pipe to the parent, and when it last heard from us.
_pipe: int | None = None
_last_beat = 0.0
#: Seconds between two "alive" messages at most (fewer messages, same liveness).
BEAT_INTERVAL = 0.05


def alive() -> None:
    """Tell the watching parent that the work is progressing (no-op outside a child).

    Call it between library calls: a call that never returns never calls it, so a hang
    stays a hang, while a long run of calls that each return never looks like one."""
    global _last_beat
    if _pipe is None:
        return
    now = time.monotonic()
    if now - _last_beat >= BEAT_INTERVAL:
        _last_beat = now
        frames.send(_pipe, ("beat", None))


def _child(fd: int, work: Callable[..., Iterator[Any]], args: tuple[Any, ...]) -> None:
    global _in_child, _pipe
    _in_child = True
    _pipe = fd
    faulthandler.disable()  # a crash here is reported by the parent, not dumped on stderr
    try:
        for item in work(*args):
            frames.send(fd, ("item", item))
        frames.send(fd, ("end", None))
    except TFModelKitError as e:
        frames.send(fd, ("error", e))
    except BaseException as e:  # a bug in tfmodelkit: report it, do not hide it
        frames.send(fd, ("bug", f"{type(e).__name__}: {e}"))


def isolated(
    work: Callable[..., Iterator[Any]], args: tuple[Any, ...], timeout: float
) -> tuple[list[Any], str | None]:
    """The items ``work(*args)`` yields, computed in a child process.

    Returns ``(items, failure)``: ``failure`` says how the child died (hang or crash) after
    the items it delivered, or is None. Errors it raised are raised here.
    """
    items: list[Any] = []
    results = isolated_stream(work, args, timeout)
    while True:
        try:
            items.append(next(results))
        except StopIteration as stop:
            return items, stop.value


def isolated_stream(
    work: Callable[..., Iterator[Any]], args: tuple[Any, ...], timeout: float
) -> Generator[Any, None, str | None]:
    """Like :func:`isolated`, but each item is handed on as soon as it arrives, so a
    consumer can process a large dataset block by block; the generator's return value is
    the failure. Closing the generator early kills the child."""
    if _in_child or not hasattr(os, "fork"):
        yield from work(*args)
        return None
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            _child(w, work, args)
        finally:
            os._exit(0)
    os.close(w)
    buf = bytearray()
    status: str | None = None
    failure: str | None = None
    try:
        while status is None:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                failure = f"made no progress for {timeout:g} s (the HDF5 library hung; {TIMEOUT_HINT})"
                break
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            buf += chunk
            for kind, value in frames.take(buf):
                if kind == "beat":
                    continue
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                elif kind == "bug":
                    raise InternalError(f"bug while reading HDF5: {value}")
                else:
                    status = kind
                    break
    finally:
        os.close(r)
        if status is None:  # hung, crashed, or we were interrupted: never wait on a live child
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, wait_status = os.waitpid(pid, 0)
    if failure is None and status is None:
        sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
        name = signal.Signals(sig).name if sig else f"exit status {os.WEXITSTATUS(wait_status)}"
        failure = f"crashed ({name}) inside the HDF5 library"
    return failure
