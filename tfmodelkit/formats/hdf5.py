"""Running the HDF5 library at arm's length: a forked child, a watchdog, a pickle protocol.

libhdf5 can loop forever or crash on damaged files (seen on the corpus: one flipped bit in
a global heap makes reading a string attribute spin, holding the GIL). So every h5py call
runs in a forked child that streams its results back through a pipe; the parent kills a
child that shows no progress for ``timeout`` seconds, and reports a hang or a crash as
a damaged file. Without fork (Windows) the work runs in-process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import select
import signal
import struct
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any

from ..errors import InternalError, TFModelKitError

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

#: Seconds the HDF5 library may work without progress before the file is declared damaged
#: (option ``timeout``).
DEFAULT_TIMEOUT = 60.0


def one_line(e: BaseException) -> str:
    """An exception's message on one line (h5py's messages can span several)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def option_timeout(options: dict[str, object]) -> float:
    """The ``timeout`` option, or the default when it is absent or not a positive number."""
    t = options.get("timeout", DEFAULT_TIMEOUT)
    return float(t) if isinstance(t, int | float) and t > 0 else DEFAULT_TIMEOUT


#: True in a forked child: work asked for there runs in-process (no child of a child).
_in_child = False


def _send(fd: int, msg: Any) -> None:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _child(fd: int, work: Callable[..., Iterator[Any]], args: tuple[Any, ...]) -> None:
    global _in_child
    _in_child = True
    faulthandler.disable()  # a crash here is reported by the parent, not dumped on stderr
    try:
        for item in work(*args):
            _send(fd, ("item", item))
        _send(fd, ("end", None))
    except TFModelKitError as e:
        _send(fd, ("error", e))
    except BaseException as e:  # a bug in tfmodelkit: report it, do not hide it
        _send(fd, ("bug", f"{type(e).__name__}: {e}"))


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
                failure = f"made no progress for {timeout:g} s (the HDF5 library hung)"
                break
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                (n,) = struct.unpack_from("<Q", buf)
                if len(buf) < 8 + n:
                    break
                kind, value = pickle.loads(bytes(buf[8 : 8 + n]))  # our own child's bytes
                del buf[: 8 + n]
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
