"""The project's errors and the exit codes the commands map them to.

Every expected failure raises a subclass of :class:`TFModelKitError`; its message is one
line that names the file and says what is wrong and what to do. The commands print it to
stderr and exit with ``exit_code``. Anything else escaping is a bug (exit 3).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a check or a verification found a problem
EXIT_USAGE = 2  # bad input, bad usage, unsupported file
EXIT_INTERNAL = 3  # a bug in tfmodelkit


#: Control characters (names read from damaged files can hold any byte) shown escaped, so
#: that every message stays one line on a terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


class TFModelKitError(Exception):
    """Base of every error tfmodelkit raises on purpose."""

    exit_code = EXIT_USAGE

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(str(message).translate(_CONTROL), *args)


class UserError(TFModelKitError):
    """Bad input or usage: a missing path, a wrong option, a file we cannot use."""


class NotFoundError(UserError):
    """A path, prefix, tensor or signature that does not exist."""


class FormatError(UserError):
    """The path is not in a format we know, or not in the format it was said to be."""


class CorruptFileError(UserError):
    """The file is in a known format but its bytes are damaged or inconsistent."""


class UnsupportedError(UserError):
    """A real feature of the format that tfmodelkit does not handle (yet)."""


class CheckFailed(TFModelKitError):
    """An integrity check or a verification found problems."""

    exit_code = EXIT_FAILED


class InternalError(TFModelKitError):
    """A bug in tfmodelkit itself."""

    exit_code = EXIT_INTERNAL


def describe_path(path: object) -> str:
    """How a path appears in messages."""
    return str(path)
