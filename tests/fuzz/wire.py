"""Byte-level building blocks of the mutators: varints, a protobuf wire-format tree whose
fields can be edited with every enclosing length fixed up, and LevelDB-style table blocks.

Test code only: it parses files we trust (fixtures, the corpus) to find where their
structure lies, so that the mutants it makes are damaged in exactly one chosen place.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

U64 = (1 << 64) - 1


def encode_varint(value: int) -> bytes:
    value &= U64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes, pos: int, limit: int | None = None) -> tuple[int, int] | None:
    """(value, position after) or None when the bytes are not a complete varint."""
    limit = len(buf) if limit is None else limit
    result = shift = 0
    while pos < limit and shift <= 63:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    return None


# ---------------------------------------------------------------------------------------
# Protobuf wire format


@dataclass(eq=False)
class PField:
    """One field of a serialized message, with where its parts lie in the buffer."""

    num: int
    wire_type: int
    start: int  # the tag
    vstart: int  # the value (after the length prefix for LEN fields)
    end: int
    len_pos: int | None = None  # LEN fields: where the length varint starts
    parent: PField | None = None
    children: list[PField] | None = field(default=None, repr=False)

    def ancestors(self) -> list[PField]:
        """Enclosing LEN fields, innermost first."""
        out = []
        p = self.parent
        while p is not None:
            out.append(p)
            p = p.parent
        return out


def parse_message(
    buf: bytes, start: int = 0, end: int | None = None, parent: PField | None = None, depth: int = 0
) -> list[PField] | None:
    """The fields of the message in ``buf[start:end]``, nested messages parsed where the
    bytes of a LEN field happen to be a well-formed message; None if not a message."""
    end = len(buf) if end is None else end
    fields: list[PField] = []
    pos = start
    while pos < end:
        got = decode_varint(buf, pos, end)
        if got is None:
            return None
        tag, vpos = got
        num, wt = tag >> 3, tag & 7
        if num == 0 or num >= 1 << 29:
            return None
        if wt == 0:
            got = decode_varint(buf, vpos, end)
            if got is None:
                return None
            f = PField(num, wt, pos, vpos, got[1], parent=parent)
        elif wt == 1 or wt == 5:
            width = 8 if wt == 1 else 4
            if vpos + width > end:
                return None
            f = PField(num, wt, pos, vpos, vpos + width, parent=parent)
        elif wt == 2:
            got = decode_varint(buf, vpos, end)
            if got is None:
                return None
            length, data = got
            if data + length > end:
                return None
            f = PField(num, wt, pos, data, data + length, len_pos=vpos, parent=parent)
            if length and depth < 64:
                f.children = parse_message(buf, data, data + length, f, depth + 1)
        else:
            return None
        fields.append(f)
        pos = f.end
    return fields


def walk(fields: list[PField] | None):
    for f in fields or ():
        yield f
        yield from walk(f.children)


def splice(buf: bytes, f: PField | None, start: int, end: int, replacement: bytes) -> bytes:
    """Replace ``buf[start:end]`` (inside ``f``'s value, or at top level if ``f`` is None) and
    rewrite the length prefix of ``f`` and of every message enclosing it to match."""
    out = bytearray(buf)
    out[start:end] = replacement
    delta = len(replacement) - (end - start)
    chain = ([f] if f is not None else []) + (f.ancestors() if f is not None else [])
    for anc in chain:
        assert anc.len_pos is not None
        new = encode_varint(anc.end - anc.vstart + delta)
        old_size = anc.vstart - anc.len_pos
        out[anc.len_pos : anc.vstart] = new
        delta += len(new) - old_size
    return bytes(out)


def set_number(buf: bytes, f: PField, value: int) -> bytes:
    """``f``'s value replaced by ``value`` (a varint, fixed32 or fixed64), lengths fixed up."""
    if f.wire_type == 0:
        new = encode_varint(value)
    elif f.wire_type == 5:
        new = struct.pack("<I", value & 0xFFFFFFFF)
    elif f.wire_type == 1:
        new = struct.pack("<Q", value & U64)
    else:
        raise ValueError("not a number field")
    return splice(buf, f.parent, f.vstart, f.end, new)


def set_length_prefix(buf: bytes, f: PField, value: int) -> bytes:
    """A LEN field whose length prefix lies: nothing else is adjusted."""
    assert f.len_pos is not None
    return buf[: f.len_pos] + encode_varint(value) + buf[f.vstart :]


def delete_field(buf: bytes, f: PField) -> bytes:
    return splice(buf, f.parent, f.start, f.end, b"")


def duplicate_field(buf: bytes, f: PField) -> bytes:
    return splice(buf, f.parent, f.end, f.end, buf[f.start : f.end])


def cut_inside(buf: bytes, f: PField, at: int) -> bytes:
    """``f``'s value cut short at ``at`` with every length fixed up: a well-formed message
    that simply lacks the rest (a shape without its dims, a node without its attrs)."""
    return splice(buf, f, at, f.end, b"")


# ---------------------------------------------------------------------------------------
# LevelDB-style tables (checkpoint .index files)

FOOTER = 48
MAGIC = struct.pack("<II", 0x8B80FB57, 0xDB477524)
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def block_entries(contents: bytes) -> tuple[list[tuple[bytes, bytes]], list[tuple[int, int, int, int]]]:
    """(key, value) pairs of a block and, per entry, (start, value start, value end, header
    end): enough to rewrite any of them."""
    n = len(contents)
    (restarts,) = struct.unpack_from("<I", contents, n - 4)
    limit = n - 4 - 4 * restarts
    pos = 0
    key = b""
    out, spans = [], []
    while pos < limit:
        start = pos
        shared, pos = decode_varint(contents, pos)  # type: ignore[misc]
        non_shared, pos = decode_varint(contents, pos)  # type: ignore[misc]
        vlen, pos = decode_varint(contents, pos)  # type: ignore[misc]
        header_end = pos
        key = key[:shared] + contents[pos : pos + non_shared]
        pos += non_shared
        out.append((key, contents[pos : pos + vlen]))
        spans.append((start, pos, pos + vlen, header_end))
        pos += vlen
    return out, spans


def encode_block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    out = bytearray()
    restarts = []
    prev = b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        out += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        out += key[shared:] + value
        prev = key
    for r in restarts or [0]:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts or [0]))
    return bytes(out)


def trailer(contents: bytes, btype: int = 0) -> bytes:
    return bytes([btype]) + struct.pack("<I", masked_crc(contents + bytes([btype])))


def footer(meta: tuple[int, int], index: tuple[int, int]) -> bytes:
    handles = b"".join(encode_varint(v) for v in (*meta, *index))
    return handles.ljust(40, b"\0") + MAGIC


@dataclass
class StoredBlock:
    offset: int
    size: int
    btype: int
    stored: bytes  # the bytes on disk, without the trailer
    contents: bytes  # decompressed


@dataclass
class SSTable:
    """A parsed index file: its data blocks, index entries and footer."""

    data: bytes
    meta: StoredBlock
    index: StoredBlock
    index_entries: list[tuple[bytes, bytes]]
    blocks: list[StoredBlock]

    @classmethod
    def parse(cls, data: bytes) -> SSTable:
        f = len(data) - FOOTER
        mo, p = decode_varint(data, f)  # type: ignore[misc]
        ms, p = decode_varint(data, p)  # type: ignore[misc]
        io, p = decode_varint(data, p)  # type: ignore[misc]
        isz, p = decode_varint(data, p)  # type: ignore[misc]
        meta, index = _stored(data, mo, ms), _stored(data, io, isz)
        entries, _ = block_entries(index.contents)
        blocks = []
        for _sep, handle in entries:
            off, q = decode_varint(handle, 0)  # type: ignore[misc]
            size, _ = decode_varint(handle, q)  # type: ignore[misc]
            blocks.append(_stored(data, off, size))
        return cls(data, meta, index, entries, blocks)

    def relayout(
        self,
        contents: dict[int, bytes] | None = None,
        index_contents: bytes | None = None,
        handle_override: tuple[int, int, int] | None = None,
    ) -> bytes:
        """The file written again with some data blocks' contents replaced (stored raw, with
        correct checksums and handles), or with the index block replaced as given, or with
        one data block's handle (block, 0 = offset / 1 = size, value) set to a lie."""
        contents = contents or {}
        out = bytearray()
        handles = []
        for k, b in enumerate(self.blocks):
            if k in contents:
                body, btype = contents[k], 0
            else:
                body, btype = b.stored, b.btype
            handles.append([len(out), len(body)])
            out += body + trailer(body, btype)
        if handle_override is not None:
            k, which, value = handle_override
            handles[k][which] = value
        meta_off = len(out)
        out += self.meta.stored + trailer(self.meta.stored, self.meta.btype)
        if index_contents is None:
            index_contents = encode_block(
                [
                    (sep, encode_varint(h[0]) + encode_varint(h[1]))
                    for (sep, _), h in zip(self.index_entries, handles, strict=True)
                ],
                restart_interval=1,
            )
        index_off = len(out)
        out += index_contents + trailer(index_contents)
        out += footer((meta_off, len(self.meta.stored)), (index_off, len(index_contents)))
        return bytes(out)


def _stored(data: bytes, off: int, size: int) -> StoredBlock:
    stored = data[off : off + size]
    btype = data[off + size]
    if btype == 1:
        import cramjam

        contents = bytes(cramjam.snappy.decompress_raw(stored))
    else:
        contents = stored
    return StoredBlock(off, size, btype, stored, contents)


# ---------------------------------------------------------------------------------------
# Checkpoint slice keys (OrderedCode): written from the format notes, not from the reader


def encode_signed(v: int) -> bytes:
    """OrderedCode's order-preserving signed number (|v| < 2**55)."""
    x = v if v >= 0 else ~v
    n = next(n for n in range(1, 9) if x < 1 << (7 * n - 1))
    raw = (((0xFF << (8 - n)) & 0xFF) << (8 * (n - 1))) | x
    if v < 0:
        raw ^= (1 << (8 * n)) - 1
    return raw.to_bytes(n, "big")


def encode_slice_key(name: bytes, extents: list[tuple[int, int]]) -> bytes:
    """The key of one slice of a partitioned tensor: name, rank, (start, length) per dim."""
    escaped = b"".join({0: b"\x00\xff", 0xFF: b"\xff\x00"}.get(c, bytes([c])) for c in name)
    rank = len(extents).to_bytes(max(1, (len(extents).bit_length() + 7) // 8), "big")
    key = b"\x00" + escaped + b"\x00\x01" + bytes([len(rank)]) + rank
    for start, length in extents:
        key += encode_signed(start) + encode_signed(length)
    return key
