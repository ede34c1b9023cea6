"""The protocol buffer wire format read without a schema: varints and (field, value) pairs.

Used where a reader needs fields the project's own proto subset leaves out (list-valued
attributes, collections, saveable objects survive parsing as unknown fields and come back
in ``SerializeToString()``) and by the checkpoint index's table blocks. Every length is
checked against the buffer before it is used.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import CorruptFileError

#: Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit (3 and 4, the
#: deprecated groups, end a walk).
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def read_varint(
    buf: bytes | memoryview, pos: int, limit: int | None = None, what: str = "varint"
) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos`` (at most 10 bytes, never past ``limit``, which
    defaults to the buffer's end): the value and the position after it."""
    end = len(buf) if limit is None else limit
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise CorruptFileError(f"truncated or overlong {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a serialized message, in order; a varint or
    fixed-width field gives an int, a length-delimited one its bytes. Stops at damage."""
    pos = 0
    try:
        while pos < len(buf):
            key, pos = read_varint(buf, pos)
            number, wire = key >> 3, key & 7
            value: int | bytes
            if wire == VARINT:
                value, pos = read_varint(buf, pos)
            elif wire in (FIXED64, FIXED32):
                width = 8 if wire == FIXED64 else 4
                if pos + width > len(buf):
                    return
                value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
            elif wire == LENGTH_DELIMITED:
                n, pos = read_varint(buf, pos)
                if pos + n > len(buf):
                    return
                value, pos = buf[pos : pos + n], pos + n
            else:
                return
            yield number, value
    except CorruptFileError:
        return


def submessages(buf: bytes, number: int) -> Iterator[bytes]:
    """The length-delimited values of field ``number`` (sub-messages, strings, packed lists)."""
    for n, v in fields(buf):
        if n == number and isinstance(v, bytes):
            yield v
