"""What both commands share: error handling, exit codes, output, atomic file writes."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import EXIT_INTERNAL, TFModelKitError

EXIT_CODES_HELP = """exit codes:
  0  ok
  1  a check or verification found problems (or diff found differences)
  2  bad input or usage: missing path, unknown or damaged file, unsupported feature
  3  internal error in tfmodelkit (please report it)"""


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


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` on a temporary sibling, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
    try:
        writer(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
