"""The LevelDB-style table behind a checkpoint's ``.index`` file (docs/FORMATS.md §1).

``[data blocks][metaindex block][index block][footer: 48 bytes]``; each block on disk is
``contents | type:uint8 | masked crc32c:uint32``, type 0 = raw, 1 = raw Snappy.
Every length and offset is checked against the buffer before use.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptFileError
from .wire import read_varint

FOOTER_SIZE = 48
MAGIC = 0xDB4775248B80FB57
BLOCK_TRAILER = 5
#: Largest block we will decompress; TF writes 4 KiB-ish blocks, so this is generous.
MAX_BLOCK_BYTES = 256 << 20
_MASK_DELTA = 0xA282EAD8


def mask_crc(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def crc32c(data: Any, crc: int = 0) -> int:
    """Extend ``crc`` over ``data``: bytes or a contiguous numpy array (not copied)."""
    import google_crc32c

    try:
        return google_crc32c.extend(crc, data)
    except TypeError:  # the C extension refuses memoryviews and bytearrays
        return google_crc32c.extend(crc, bytes(data))


@dataclass(frozen=True)
class BlockHandle:
    offset: int
    size: int


@dataclass(frozen=True)
class BlockProblem:
    """A block whose checksum did not match (reported by ``check``)."""

    offset: int
    message: str


class Table:
    """A parsed table over an in-memory buffer (index files are small)."""

    def __init__(self, data: bytes, name: str, verify_checksums: bool = True) -> None:
        self.data = data
        self.name = name
        self.verify = verify_checksums
        self.problems: list[BlockProblem] = []
        if len(data) < FOOTER_SIZE:
            raise CorruptFileError(f"{name}: {len(data)} bytes is too short for a checkpoint index")
        lo, hi = struct.unpack_from("<II", data, len(data) - 8)
        if (hi << 32) | lo != MAGIC:
            raise CorruptFileError(f"{name}: not a checkpoint index (bad table magic number)")
        footer = len(data) - FOOTER_SIZE
        _metaindex, pos = self._handle(footer, len(data) - 8)
        self.index_handle, _ = self._handle(pos, len(data) - 8)

    def _handle(self, pos: int, limit: int) -> tuple[BlockHandle, int]:
        off, pos = read_varint(self.data, pos, limit, "block handle")
        size, pos = read_varint(self.data, pos, limit, "block handle")
        if off + size + BLOCK_TRAILER > len(self.data) - FOOTER_SIZE:
            raise CorruptFileError(f"{self.name}: block at {off} (+{size}) lies outside the file")
        return BlockHandle(off, size), pos

    def block(self, handle: BlockHandle) -> bytes:
        """The contents of a block, checksum-verified and decompressed."""
        end = handle.offset + handle.size
        raw = self.data[handle.offset : end]
        btype = self.data[end]
        if self.verify:
            (stored,) = struct.unpack_from("<I", self.data, end + 1)
            actual = mask_crc(crc32c(self.data[handle.offset : end + 1]))
            if stored != actual:
                msg = f"block at offset {handle.offset}: checksum mismatch (index file damaged)"
                self.problems.append(BlockProblem(handle.offset, msg))
                raise CorruptFileError(f"{self.name}: {msg}")
        if btype == 0:
            return bytes(raw)
        if btype == 1:
            return self._snappy(raw, handle)
        raise CorruptFileError(f"{self.name}: block at offset {handle.offset} has unknown type {btype}")

    def _snappy(self, raw: bytes, handle: BlockHandle) -> bytes:
        # Raw Snappy starts with the uncompressed length as a varint: bound it first.
        length, _ = read_varint(raw, 0, len(raw), "snappy length")
        if length > MAX_BLOCK_BYTES:
            raise CorruptFileError(f"{self.name}: block at {handle.offset} claims {length} bytes uncompressed")
        import cramjam

        try:
            return bytes(cramjam.snappy.decompress_raw(raw))
        except Exception as e:  # cramjam raises its own DecompressionError
            raise CorruptFileError(f"{self.name}: block at {handle.offset}: bad Snappy data ({e})") from None

    def _entries(self, block: bytes) -> Iterator[tuple[bytes, bytes]]:
        n = len(block)
        if n < 4:
            raise CorruptFileError(f"{self.name}: block too short")
        (num_restarts,) = struct.unpack_from("<I", block, n - 4)
        limit = n - 4 - 4 * num_restarts
        if num_restarts == 0 or limit < 0:
            raise CorruptFileError(f"{self.name}: block has an impossible restart count {num_restarts}")
        pos = 0
        key = b""
        while pos < limit:
            shared, pos = read_varint(block, pos, limit)
            non_shared, pos = read_varint(block, pos, limit)
            value_len, pos = read_varint(block, pos, limit)
            if shared > len(key) or pos + non_shared + value_len > limit:
                raise CorruptFileError(f"{self.name}: entry at {pos} runs past its block")
            key = key[:shared] + block[pos : pos + non_shared]
            pos += non_shared
            yield key, block[pos : pos + value_len]
            pos += value_len

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in key order."""
        index = self.block(self.index_handle)
        previous = b""
        for _sep, handle_bytes in self._entries(index):
            handle, _ = self._handle_from(handle_bytes)
            for key, value in self._entries(self.block(handle)):
                if key < previous:
                    raise CorruptFileError(f"{self.name}: keys out of order at {key[:40]!r}")
                previous = key
                yield key, value

    def _handle_from(self, value: bytes) -> tuple[BlockHandle, int]:
        off, pos = read_varint(value, 0, len(value), "block handle")
        size, pos = read_varint(value, pos, len(value), "block handle")
        if off + size + BLOCK_TRAILER > len(self.data) - FOOTER_SIZE:
            raise CorruptFileError(f"{self.name}: data block at {off} (+{size}) lies outside the file")
        return BlockHandle(off, size), pos
