"""Where each format's structure lies in a real file: boundaries to cut at and numeric fields
(lengths, offsets, counts, sizes) to set to extreme values.

Every function here parses a file we trust (a fixture or a corpus file) once; the mutators
then damage it in one chosen place. Positions are absolute offsets into the file.
"""

from __future__ import annotations

import io
import re
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .wire import SSTable, block_entries, decode_varint


@dataclass(frozen=True)
class Site:
    """A numeric field: ``width`` bytes little-endian (1, 2, 4, 8), or 0 for a varint."""

    pos: int
    width: int
    label: str


@dataclass
class Layout:
    boundaries: set[int] = field(default_factory=set)
    sites: list[Site] = field(default_factory=list)

    def add(self, pos: int, width: int, label: str, size: int) -> None:
        if 0 <= pos and pos + max(width, 1) <= size:
            self.sites.append(Site(pos, width, label))
            self.boundaries.add(pos)

    def shifted(self, by: int) -> Layout:
        return Layout(
            {b + by for b in self.boundaries}, [Site(s.pos + by, s.width, s.label) for s in self.sites]
        )


def write_site(data: bytes, site: Site, value: int) -> bytes:
    """``data`` with the field at ``site`` set to ``value`` (a varint is re-encoded in place,
    so the bytes after it shift: that is the point of a lying varint)."""
    from .wire import encode_varint

    if site.width == 0:
        got = decode_varint(data, site.pos)
        end = got[1] if got else site.pos + 1
        return data[: site.pos] + encode_varint(value) + data[end:]
    mask = (1 << (8 * site.width)) - 1
    raw = (value & mask).to_bytes(site.width, "little")
    return data[: site.pos] + raw + data[site.pos + site.width :]


def interesting(width: int, size: int) -> list[int]:
    """Values that break parsers: zero, sign boundaries, all ones, the file size and near it."""
    bits = 64 if width in (0, 8) else 8 * width
    vals = {
        0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
        0xFFFFFFFF, 1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1,
        size - 1, size, size + 1, 2 * size, 1000 * size,
    }  # fmt: skip
    return sorted(v for v in vals if 0 <= v < 1 << bits)


# ---------------------------------------------------------------------------------------
# Checkpoint .index (an sstable)


def sstable_layout(data: bytes) -> Layout:
    lay = Layout({0, len(data)})
    n = len(data)
    f = n - 48
    lay.boundaries |= {f, n - 8}
    pos = f
    for what in ("metaindex offset", "metaindex size", "index offset", "index size"):
        lay.add(pos, 0, f"footer {what}", n)
        got = decode_varint(data, pos)
        if got is None:
            break
        pos = got[1]
    table = SSTable.parse(data)
    for name, b in [("metaindex", table.meta), ("index", table.index)] + [
        (f"data block {k}", b) for k, b in enumerate(table.blocks)
    ]:
        end = b.offset + b.size
        lay.boundaries |= {b.offset, end, end + 1, end + 5}
        lay.add(end + 1, 4, f"{name} crc", n)
        if b.btype == 0 and b.size >= 4:
            lay.add(end - 4, 4, f"{name} restart count", n)
            _, spans = block_entries(b.contents)
            for j, (start, vstart, vend, hend) in enumerate(spans):
                lay.boundaries |= {b.offset + start, b.offset + vstart, b.offset + vend, b.offset + hend}
                p = b.offset + start
                for what in ("shared", "non_shared", "value_len"):
                    lay.add(p, 0, f"{name} entry {j} {what}", n)
                    got = decode_varint(data, p)
                    if got is None:
                        break
                    p = got[1]
        elif b.btype == 1:
            lay.add(b.offset, 0, f"{name} snappy length", n)
    return lay


# ---------------------------------------------------------------------------------------
# TFLite flatbuffers

# Per table: vtable slot -> ("s", width) scalar, ("str",), ("vec", element width),
# ("tvec", table) vector of tables, ("tab", table or None).
_TFL = {
    "Model": {4: ("s", 4), 6: ("tvec", "OperatorCode"), 8: ("tvec", "SubGraph"), 10: ("str",),
              12: ("tvec", "Buffer"), 14: ("vec", 4), 16: ("tvec", "Metadata"), 18: ("tvec", "SignatureDef")},
    "OperatorCode": {4: ("s", 1), 6: ("str",), 8: ("s", 4), 10: ("s", 4)},
    "SubGraph": {4: ("tvec", "Tensor"), 6: ("vec", 4), 8: ("vec", 4), 10: ("tvec", "Operator"), 12: ("str",)},
    "Tensor": {4: ("vec", 4), 6: ("s", 1), 8: ("s", 4), 10: ("str",), 12: ("tab", "Quant"), 14: ("s", 1),
               16: ("tab", "Sparsity"), 18: ("vec", 4)},
    "Quant": {4: ("vec", 4), 6: ("vec", 4), 8: ("vec", 4), 10: ("vec", 8), 12: ("s", 1), 14: ("tab", None),
              16: ("s", 4)},
    "Sparsity": {4: ("vec", 4), 6: ("vec", 4), 8: ("tvec", "DimMeta")},
    "DimMeta": {4: ("s", 1), 6: ("s", 4), 8: ("s", 1), 10: ("tab", "IndexVec"), 12: ("s", 1),
                14: ("tab", "IndexVec")},
    "IndexVec": {4: ("vec", 1)},
    "Buffer": {4: ("vec", 1), 6: ("s", 8), 8: ("s", 8)},
    "Operator": {4: ("s", 4), 6: ("vec", 4), 8: ("vec", 4), 10: ("s", 1), 12: ("tab", None), 14: ("vec", 1),
                 16: ("s", 1), 18: ("vec", 1), 20: ("vec", 4), 22: ("s", 8), 24: ("s", 8)},
    "Metadata": {4: ("str",), 6: ("s", 4)},
    "SignatureDef": {4: ("tvec", "TensorMap"), 6: ("tvec", "TensorMap"), 8: ("str",), 12: ("s", 4)},
    "TensorMap": {4: ("str",), 6: ("s", 4)},
}  # fmt: skip


def flatbuffer_layout(data: bytes) -> Layout:
    n = len(data)
    lay = Layout({0, 4, 8, n})
    u32 = lambda p: struct.unpack_from("<I", data, p)[0]  # noqa: E731
    seen: set[int] = set()

    def table(t: int, kind: str | None, label: str) -> None:
        if t in seen or not 0 <= t <= n - 4:
            return
        seen.add(t)
        vt = t - struct.unpack_from("<i", data, t)[0]
        if not 0 <= vt <= n - 4:
            return
        vsize, tsize = struct.unpack_from("<HH", data, vt)
        lay.boundaries |= {t, vt, vt + vsize, t + tsize}
        lay.add(t, 4, f"{label} vtable offset", n)
        lay.add(vt, 2, f"{label} vtable size", n)
        lay.add(vt + 2, 2, f"{label} table size", n)
        spec = _TFL.get(kind or "", {})
        for slot in range(4, min(vsize, 64), 2):
            if vt + slot + 2 > n:
                break
            off = struct.unpack_from("<H", data, vt + slot)[0]
            lay.add(vt + slot, 2, f"{label} field {slot} offset", n)
            if not off:
                continue
            pos = t + off
            what = spec.get(slot)
            if what is None or what[0] == "s":
                lay.add(pos, what[1] if what else 4, f"{label} field {slot}", n)
                continue
            lay.add(pos, 4, f"{label} field {slot} uoffset", n)
            if pos + 4 > n:
                continue
            target = pos + u32(pos)
            if what[0] == "tab":
                table(target, what[1], f"{label}.{slot}")
                continue
            if not 0 <= target <= n - 4:
                continue
            count = u32(target)
            width = {"str": 1, "vec": what[1] if what[0] == "vec" else 4, "tvec": 4}[what[0]]
            lay.add(target, 4, f"{label} field {slot} length", n)
            lay.boundaries |= {target + 4, min(n, target + 4 + count * width)}
            if what[0] == "tvec":
                for i in range(min(count, 4096)):
                    elem = target + 4 + 4 * i
                    if elem + 4 > n:
                        break
                    lay.add(elem, 4, f"{label}.{slot}[{i}] uoffset", n)
                    table(elem + u32(elem), what[1], f"{what[1]}[{i}]")

    if n >= 8:
        lay.add(0, 4, "root offset", n)
        table(u32(0), "Model", "Model")
    return lay


# ---------------------------------------------------------------------------------------
# HDF5


def h5_layout(data: bytes) -> Layout:
    """Superblock, object headers (v1: messages and their size fields, dataspace dims, layout
    addresses/sizes, attribute sizes), B-trees, symbol table nodes, local and global heaps."""
    import h5py

    n = len(data)
    lay = Layout({0, 8, n})
    u16 = lambda p: struct.unpack_from("<H", data, p)[0]  # noqa: E731
    u32 = lambda p: struct.unpack_from("<I", data, p)[0]  # noqa: E731
    u64 = lambda p: struct.unpack_from("<Q", data, p)[0]  # noqa: E731
    if n >= 96 and data[8] == 0:
        for pos, w, what in [(13, 1, "size of offsets"), (14, 1, "size of lengths"), (16, 2, "leaf K"),
                             (18, 2, "internal K"), (24, 8, "base address"), (32, 8, "free-space address"),
                             (40, 8, "end-of-file address"), (48, 8, "driver address"),
                             (56, 8, "root link name offset"), (64, 8, "root object header address"),
                             (72, 4, "root cache type"), (80, 8, "root B-tree address"),
                             (88, 8, "root heap address")]:  # fmt: skip
            lay.add(pos, w, f"superblock {what}", n)
    elif n >= 48 and data[8] in (2, 3):
        for pos, w, what in [(9, 1, "size of offsets"), (10, 1, "size of lengths"), (12, 8, "base address"),
                             (20, 8, "extension address"), (28, 8, "end-of-file address"),
                             (36, 8, "root object header address"), (44, 4, "checksum")]:  # fmt: skip
            lay.add(pos, w, f"superblock {what}", n)
    headers: set[int] = set()
    data_spans: list[tuple[int, int]] = []
    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(data)
        tmp.flush()
        with h5py.File(tmp.name, "r") as f:
            headers.add(h5py.h5o.get_info(f.id).addr)

            def visit(_name: str, obj: object) -> None:
                headers.add(h5py.h5o.get_info(obj.id).addr)  # type: ignore[attr-defined]
                if isinstance(obj, h5py.Dataset):
                    off = obj.id.get_offset()
                    if off is not None:
                        data_spans.append((off, obj.id.get_storage_size()))

            f.visititems(visit)
    for off, size in data_spans:
        lay.boundaries |= {off, off + size}

    def messages(start: int, end: int, label: str, budget: list[int]) -> None:
        p = start
        while p + 8 <= min(end, n) and budget[0] > 0:
            budget[0] -= 1
            mtype, msize = u16(p), u16(p + 2)
            d = p + 8
            lay.boundaries |= {p, d, d + msize}
            lay.add(p + 2, 2, f"{label} message {mtype:#x} size", n)
            if d + msize > n:
                break
            if mtype == 0x1 and msize >= 8:  # dataspace
                rank = data[d + 1]
                first = d + 8 if data[d] == 1 else d + 4
                for i in range(min(rank, 32)):
                    lay.add(first + 8 * i, 8, f"{label} dataspace dim {i}", n)
            elif mtype == 0x3 and msize >= 8:  # datatype
                lay.add(d + 4, 4, f"{label} datatype size", n)
            elif mtype == 0x8 and msize >= 4 and data[d] == 3:  # layout v3
                cls = data[d + 1]
                if cls == 1:
                    lay.add(d + 2, 8, f"{label} contiguous data address", n)
                    lay.add(d + 10, 8, f"{label} contiguous data size", n)
                elif cls == 0:
                    lay.add(d + 2, 2, f"{label} compact data size", n)
                elif cls == 2:
                    lay.add(d + 3, 8, f"{label} chunk B-tree address", n)
            elif mtype == 0xC and msize >= 8:  # attribute
                lay.add(d + 2, 2, f"{label} attribute name size", n)
                lay.add(d + 4, 2, f"{label} attribute datatype size", n)
                lay.add(d + 6, 2, f"{label} attribute dataspace size", n)
            elif mtype == 0x10 and msize >= 16:  # continuation
                lay.add(d, 8, f"{label} continuation address", n)
                lay.add(d + 8, 8, f"{label} continuation length", n)
                c, clen = u64(d), u64(d + 8)
                if c < n:
                    messages(c, c + clen, f"{label} continuation", budget)
            elif mtype == 0x11 and msize >= 16:  # symbol table
                lay.add(d, 8, f"{label} group B-tree address", n)
                lay.add(d + 8, 8, f"{label} group heap address", n)
            p = d + msize

    for addr in sorted(headers):
        if addr + 16 > n or data[addr] != 1:
            lay.boundaries.add(addr)
            continue
        label = f"object header @{addr}"
        lay.boundaries |= {addr, addr + 16}
        lay.add(addr + 2, 2, f"{label} message count", n)
        lay.add(addr + 4, 4, f"{label} reference count", n)
        lay.add(addr + 8, 4, f"{label} header size", n)
        messages(addr + 16, addr + 16 + u32(addr + 8), label, [512])

    for m in re.finditer(rb"HEAP|GCOL|TREE|SNOD", data):
        q = m.start()
        sig = m.group()
        if sig == b"HEAP" and q + 32 <= n:
            lay.boundaries.add(q)
            lay.add(q + 8, 8, "local heap data size", n)
            lay.add(q + 16, 8, "local heap free-list offset", n)
            lay.add(q + 24, 8, "local heap data address", n)
            a, s = u64(q + 24), u64(q + 8)
            if a < n:
                lay.boundaries |= {a, min(n, a + s)}
        elif sig == b"GCOL" and q + 16 <= n:
            lay.boundaries.add(q)
            lay.add(q + 8, 8, "global heap collection size", n)
            end = min(n, q + u64(q + 8))
            o = q + 16
            for _ in range(4096):
                if o + 16 > end or u16(o) == 0:
                    break
                lay.boundaries |= {o, o + 16}
                lay.add(o + 8, 8, "global heap object size", n)
                o += 16 + ((u64(o + 8) + 7) & ~7)
        elif sig == b"TREE" and q + 24 <= n:
            lay.boundaries.add(q)
            lay.add(q + 6, 2, "B-tree entries used", n)
            lay.add(q + 8, 8, "B-tree left sibling", n)
            lay.add(q + 16, 8, "B-tree right sibling", n)
        elif sig == b"SNOD" and q + 8 <= n:
            lay.boundaries.add(q)
            lay.add(q + 6, 2, "symbol table node symbol count", n)
            for i in range(min(u16(q + 6), 64)):
                e = q + 8 + 40 * i
                lay.add(e, 8, "symbol link name offset", n)
                lay.add(e + 8, 8, "symbol object header address", n)
    return lay


# ---------------------------------------------------------------------------------------
# Zip (.keras)


@dataclass
class ZipLayout:
    layout: Layout
    #: member name -> (data start, size) for members stored uncompressed
    stored: dict[str, tuple[int, int]]


def zip_layout(data: bytes) -> ZipLayout:
    n = len(data)
    lay = Layout({0, n})
    eocd = data.rfind(b"PK\x05\x06")
    stored: dict[str, tuple[int, int]] = {}
    if eocd < 0:
        return ZipLayout(lay, stored)
    lay.boundaries |= {eocd, eocd + 22}
    for off, w, what in [(8, 2, "entries on disk"), (10, 2, "total entries"), (12, 4, "central directory size"),
                         (16, 4, "central directory offset"), (20, 2, "comment length")]:  # fmt: skip
        lay.add(eocd + off, w, f"end record {what}", n)
    cd = struct.unpack_from("<I", data, eocd + 16)[0]
    p = cd
    while p + 46 <= n and data[p : p + 4] == b"PK\x01\x02":
        nlen, elen, clen = struct.unpack_from("<HHH", data, p + 28)
        name = data[p + 46 : p + 46 + nlen].decode("utf-8", "replace")
        lay.boundaries |= {p, p + 46, p + 46 + nlen}
        for off, w, what in [(8, 2, "flags"), (10, 2, "method"), (16, 4, "crc"), (20, 4, "compressed size"),
                             (24, 4, "size"), (28, 2, "name length"), (30, 2, "extra length"),
                             (32, 2, "comment length"), (42, 4, "local header offset")]:  # fmt: skip
            lay.add(p + off, w, f"central entry {name!r} {what}", n)
        local = struct.unpack_from("<I", data, p + 42)[0]
        if local + 30 <= n and data[local : local + 4] == b"PK\x03\x04":
            lnlen, lelen = struct.unpack_from("<HH", data, local + 26)
            start = local + 30 + lnlen + lelen
            csize = struct.unpack_from("<I", data, p + 20)[0]
            method = struct.unpack_from("<H", data, p + 10)[0]
            lay.boundaries |= {local, local + 30, local + 30 + lnlen, start, start + csize}
            for off, w, what in [(6, 2, "flags"), (8, 2, "method"), (14, 4, "crc"), (18, 4, "compressed size"),
                                 (22, 4, "size"), (26, 2, "name length"), (28, 2, "extra length")]:  # fmt: skip
                lay.add(local + off, w, f"local header {name!r} {what}", n)
            if method == 0:
                stored[name] = (start, csize)
        p += 46 + nlen + elen + clen
    return ZipLayout(lay, stored)


def zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def build_zip(members: list[tuple[zipfile.ZipInfo | str, bytes, int]]) -> bytes:
    import warnings

    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are made on purpose
        for info, payload, compression in members:
            name = info.filename if isinstance(info, zipfile.ZipInfo) else info
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = compression
            zf.writestr(zi, payload)
    return out.getvalue()


def h5_attributes(data: bytes) -> list[tuple[str, str]]:
    """(object path, attribute name) of every attribute in an HDF5 file."""
    import h5py

    out: list[tuple[str, str]] = []
    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(data)
        tmp.flush()
        with h5py.File(tmp.name, "r") as f:
            out.extend(("/", k) for k in f.attrs)
            f.visititems(lambda name, obj: out.extend((name, k) for k in obj.attrs) and None)
    return out


def get_h5_attribute(data: bytes, obj: str, name: str) -> object:
    import h5py

    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(data)
        tmp.flush()
        with h5py.File(tmp.name, "r") as f:
            return f[obj].attrs[name]


def set_h5_attribute(data: bytes, obj: str, name: str, value: object) -> bytes:
    import h5py

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.h5"
        path.write_bytes(data)
        with h5py.File(path, "r+") as f:
            target = f[obj]
            if value is None:
                del target.attrs[name]
            else:
                target.attrs[name] = value
        return path.read_bytes()
