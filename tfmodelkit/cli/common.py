"""What both commands share: error handling, exit codes, output, atomic file writes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable

from ..errors import EXIT_INTERNAL, TFModelKitError
from ..util import atomic_write

__all__ = [
    "EXIT_CODES_HELP",
    "TIMEOUT_HELP",
    "WIDTH_HELP",
    "atomic_write",
    "run",
    "say",
    "seconds",
    "table_width",
    "with_timeout",
    "write",
]

EXIT_CODES_HELP = """exit codes:
  0  ok
  1  a check or verification found problems (or diff found differences)
  2  bad input or usage: missing path, unknown or damaged file, unsupported feature
  3  internal error in tfmodelkit (please report it)
  A damaged file under `modelinspect check`, whatever its format: 1 when the file was read and
  damage was found in it (cut short, a checksum mismatch, a missing shard or member, the HDF5
  library hanging or crashing on it); 2 when it cannot be read at all (missing, unreadable, or
  not the format it claims: garbage or a text file named model.h5). Other commands, and
  every conversion, stop with 2 on a damaged input."""

#: What --help says about --timeout (kept beside the option's parsing).
TIMEOUT_HELP = (
    "seconds the HDF5 library may work on a .h5/.keras file without progress before the file "
    "counts as hung and damaged (default 10; or set TFMODELKIT_HDF5_TIMEOUT)"
)


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def with_timeout(timeout: float | None, fn: Callable[[], int]) -> Callable[[], int]:
    """``fn`` run with ``--timeout`` as the HDF5 wait of every read it makes (None: the default)."""

    def body() -> int:
        if timeout is None:
            return fn()
        from ..formats.hdf5 import timeout_scope

        with timeout_scope(timeout):
            return fn()

    return body


def run(prog: str, fn: Callable[[], int]) -> int:
    """Run a command body; turn our errors into one stderr line and an exit code."""
    try:
        return fn()
    except TFModelKitError as e:
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
    except Exception as e:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("TFMODELKIT_DEBUG"):
            raise
        print(
            f"{prog}: internal error: {type(e).__name__}: {_one_line(str(e))} "
            "(this is a bug in tfmodelkit; rerun with TFMODELKIT_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _one_line(text: str) -> str:
    return " ".join(text.split())


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def say(prog: str, kind: str, messages: Iterable[str]) -> None:
    """One stderr line per message: ``prog: kind: message`` (warnings, notes)."""
    for message in messages:
        print(f"{prog}: {kind}: {_one_line(message)}", file=sys.stderr)


#: What --help says about table width (kept beside the code that decides it).
WIDTH_HELP = (
    "Tables fit the terminal's width, wrapping long cells; COLUMNS sets the width.\n"
    "  When stdout is not a terminal (a pipe, a file), tables are not wrapped unless COLUMNS is set"
)


def table_width() -> int | None:
    """Columns a table may take: COLUMNS when set, else the terminal's when stdout is one.

    When stdout is a pipe or file and COLUMNS is unset, None (no limit): the reader of a
    file has no terminal whose width would matter, and full lines are easier to grep.
    """
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        interactive = sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        interactive = False
    if not interactive:
        return None
    import shutil  # with its compression modules: only a terminal's width needs it

    return shutil.get_terminal_size().columns
