"""Messages between tfmodelkit and a child process of its own, over a pipe: each one a pickle
behind its length (8 bytes, little-endian). Used by the HDF5 watchdog (:mod:`.formats.hdf5`)
and the converter's child (:mod:`.convert.isolate`); both sides are our code, so unpickling
what the child sends runs nothing a model file chose."""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator
from typing import Any

_LENGTH = struct.Struct("<Q")


def send(fd: int, message: Any) -> None:
    """Write ``message`` to ``fd`` whole (the length, then the pickle: no copy of a large
    message to join them)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (_LENGTH.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def take(buf: bytearray) -> Iterator[Any]:
    """The complete messages at the start of ``buf``, each removed from it as it is taken; a
    message still arriving stays for the next read."""
    while len(buf) >= _LENGTH.size:
        (n,) = _LENGTH.unpack_from(buf)
        end = _LENGTH.size + n
        if len(buf) < end:
            return
        with memoryview(buf) as view:
            message = pickle.loads(view[_LENGTH.size : end])
        del buf[:end]
        yield message
