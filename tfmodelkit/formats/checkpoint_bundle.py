"""The tensor bundle on disk: which prefix a path means, the ``P.index`` sstable of
``BundleEntryProto`` records (partitioned variables' slice keys decoded), and the stored
bytes of each entry in the ``P.data-0000K-of-0000N`` shards, every range checked first.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dtypes import NON_NUMERIC, numpy_dtype, storage_dtype, tf_dtype_name
from ..errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError
from . import sstable, stream, wire

if TYPE_CHECKING:
    import numpy as np

#: Bytes a value may have before we memory-map instead of reading it.
MMAP_THRESHOLD = 1 << 20
#: Upper bound on elements of one tensor we are willing to describe (2^40).
MAX_ELEMENTS = 1 << 40

_DATA_RE = re.compile(r"^(?P<prefix>.*)\.data-(?P<k>\d{5})-of-(?P<n>\d{5})$")


# ----------------------------------------------------------------------------------------
# Resolving what the user pointed at


if TYPE_CHECKING:
    _PathBase = Path
else:
    _PathBase = type(Path())  # PosixPath or WindowsPath: pathlib's concrete class here


class EmptyPrefix(_PathBase):
    """The prefix of a checkpoint saved as ``<folder>/``: its files are named ``.index``,
    ``.data-00000-of-00001`` (and ``.meta``) inside the folder, as TF 1.x training scripts that
    passed a folder to ``Saver.save`` left them. pathlib cannot spell a path whose last component
    is empty, so this one writes itself as ``<folder>/``: ``str(p) + ".index"`` names the index,
    ``p.name`` is ``""`` and ``p.parent`` the folder, as for any other prefix."""

    def __str__(self) -> str:
        return os.path.join(super().__str__(), "")

    def __fspath__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"EmptyPrefix({super().__str__()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmptyPrefix) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def name(self) -> str:
        return ""

    @property
    def stem(self) -> str:
        return ""

    @property
    def suffix(self) -> str:
        return ""

    @property
    def parent(self) -> Path:  # type: ignore[override]  # a plain Path, as every derived path
        return Path(super().__str__())

    def __truediv__(self, key: str | os.PathLike[str]) -> Path:  # type: ignore[override]
        return Path(super().__str__()) / key


def prefix_in(folder: Path, stem: str) -> Path:
    """The prefix named ``stem`` in ``folder`` (``""``: the files ``.index``, ``.data-*``)."""
    return folder / stem if stem else EmptyPrefix(folder)


def prefix_label(prefix: Path) -> str:
    """How messages name a prefix within its folder."""
    return prefix.name or "the empty prefix (files .index, .data-*)"


@dataclass(frozen=True)
class Resolved:
    prefix: Path
    notes: tuple[str, ...] = ()


def _prefixes_in(folder: Path) -> list[Path]:
    """Every checkpoint prefix in ``folder``, oldest first (by index mtime, then name)."""
    found = []
    for child in folder.iterdir():
        if child.name.endswith(".index") and child.is_file() and ".tempstate" not in child.name:
            found.append(prefix_in(folder, child.name[: -len(".index")]))

    def key(p: Path) -> tuple[float, list[Any]]:
        parts = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]
        try:
            mtime = os.stat(str(p) + ".index").st_mtime
        except OSError:
            mtime = 0.0
        return (mtime, parts)

    return sorted(found, key=key)


def prefixes(path: str | os.PathLike[str]) -> list[Path]:
    """All prefixes in the folder ``path`` (or the folder holding the prefix ``path``)."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    return _prefixes_in(folder)


def _split_named(named: str) -> tuple[str, str]:
    """A state-file entry as (folder part, prefix stem). Either separator counts, so that a
    path written on Windows splits too; an entry ending in a separator has an empty stem."""
    cut = max(named.rfind("/"), named.rfind("\\")) + 1
    return named[:cut], named[cut:]


def _as_named(folder: Path, named: str) -> Path:
    """The prefix a state-file entry names, taken as written (relative to ``folder``)."""
    head, stem = _split_named(named)
    return prefix_in(Path(head) if os.path.isabs(named) else folder / head, stem)


def _exists_here(folder: Path, named: str) -> Path | None:
    """The prefix a state-file entry means: as written, or (absolute paths written on
    another machine) the same name in this folder."""
    candidate = _as_named(folder, named)
    stem = _split_named(named)[1]
    if Path(str(candidate) + ".index").is_file():
        return candidate
    local = prefix_in(folder, stem)
    return local if Path(str(local) + ".index").is_file() else None


def _state_file_prefix(folder: Path) -> tuple[Path | None, tuple[str, ...]]:
    """The prefix the ``checkpoint`` state file names, and notes on what in it is unusable."""
    state = folder / "checkpoint"
    if not state.is_file():
        return None, ()
    from google.protobuf import text_format

    from .protos import tfmodelkit_pb2 as pb

    msg = pb.CheckpointState()
    try:
        text_format.Parse(state.read_text(errors="replace"), msg, allow_unknown_field=True)
    except text_format.ParseError as e:
        return None, (f"{state}: unreadable state file ({e}); using the newest prefix",)
    # Savers keep the last N prefixes in all_model_checkpoint_paths; files deleted by hand
    # (or a copy of only the newest) leave entries naming nothing. TF lists them as if present.
    stale = [n for n in msg.all_model_checkpoint_paths if n and _exists_here(folder, n) is None]
    notes = [f"state file also lists {', '.join(stale)}, not in the folder (stale entries)"] if stale else []
    named = msg.model_checkpoint_path
    if not named:
        return None, tuple(notes)
    found = _exists_here(folder, named)
    if found is None:
        notes.insert(0, f"state file names {named}, which does not exist; using the newest prefix in the folder")
    elif str(found) != str(_as_named(folder, named)):
        notes.insert(0, f"state file names {named}, which is elsewhere; using {prefix_label(found)} in this folder")
    return found, tuple(notes)


def resolve(path: str | os.PathLike[str]) -> Resolved:
    """The prefix meant by a prefix, an ``.index``/``.data`` file, a state file or a folder."""
    p = Path(path)
    if p.name == "checkpoint" and p.is_file():
        p = p.parent
    if p.is_dir():
        named, notes = _state_file_prefix(p)
        if named is not None:
            return Resolved(named, notes)
        found = _prefixes_in(p)
        if not found:
            raise NotFoundError(f"{p}: no checkpoint (no .index file) in this folder")
        return Resolved(found[-1], notes)
    name = p.name
    if name.endswith(".index"):
        p = prefix_in(p.parent, name[: -len(".index")])
    else:
        m = _DATA_RE.match(name)
        if m:
            p = prefix_in(p.parent, m.group("prefix"))
    if not Path(str(p) + ".index").is_file():
        if p.exists() and not isinstance(p, EmptyPrefix):
            raise CorruptFileError(f"{path}: no {p.name}.index beside it; not a usable checkpoint")
        raise NotFoundError(f"{path}: no such checkpoint (expected {p}.index)")
    # A prefix named directly: the state file beside it still tells of stale entries.
    _, notes = _state_file_prefix(p.parent)
    return Resolved(p, tuple(n for n in notes if n.startswith("state file also lists")))


# ----------------------------------------------------------------------------------------
# Slice keys


def _read_signed(key: bytes, pos: int) -> tuple[int, int]:
    """Decode OrderedCode's order-preserving signed number at ``pos``."""
    if pos >= len(key):
        raise CorruptFileError("truncated slice key")
    negative = not key[pos] & 0x80
    inv = 0xFF if negative else 0
    n = 0
    # Count the leading 1 bits of the (inverted, for negatives) header: the byte length.
    for i in range(2):
        if pos + i >= len(key):
            raise CorruptFileError("truncated slice key")
        b = key[pos + i] ^ inv
        ones = 8 - (b ^ 0xFF).bit_length()
        n += ones
        if ones < 8:
            break
    if n == 0 or n > 10 or pos + n > len(key):
        raise CorruptFileError("malformed slice key")
    raw = bytes(b ^ inv for b in key[pos : pos + n])
    bits = 8 * n - (n + 1)
    value = int.from_bytes(raw, "big") & ((1 << bits) - 1)
    return (~value if negative else value), pos + n


def decode_slice_key(key: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """(tensor name, ((start, length), ...)) of a slice entry's key; length -1 = whole dim."""
    if not key.startswith(b"\x00"):
        raise CorruptFileError("not a slice key")
    pos = 1
    name = bytearray()
    while True:
        if pos + 1 >= len(key):
            raise CorruptFileError("unterminated name in slice key")
        b = key[pos]
        if b == 0x00:
            nxt = key[pos + 1]
            if nxt == 0x01:
                pos += 2
                break
            if nxt == 0xFF:
                name.append(0)
                pos += 2
                continue
            raise CorruptFileError("bad escape in slice key")
        if b == 0xFF:
            if key[pos + 1] != 0x00:
                raise CorruptFileError("bad escape in slice key")
            name.append(0xFF)
            pos += 2
            continue
        name.append(b)
        pos += 1
    if pos >= len(key):
        raise CorruptFileError("truncated slice key")
    nlen = key[pos]
    if nlen > 8 or pos + 1 + nlen > len(key):
        raise CorruptFileError("bad rank in slice key")
    rank = int.from_bytes(key[pos + 1 : pos + 1 + nlen], "big")
    pos += 1 + nlen
    if rank > 64:
        raise CorruptFileError("bad rank in slice key")
    extents = []
    for _ in range(rank):
        start, pos = _read_signed(key, pos)
        length, pos = _read_signed(key, pos)
        extents.append((start, length))
    return name.decode("utf-8", errors="replace"), tuple(extents)


# ----------------------------------------------------------------------------------------
# The index


@dataclass
class Entry:
    """One tensor of the index (or one slice of a partitioned tensor)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int
    #: For partitioned tensors: (extents, Entry) of each slice.
    slices: list[tuple[tuple[tuple[int, int], ...], Entry]] = field(default_factory=list)
    partitioned: bool = False

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Index:
    prefix: Path
    num_shards: int
    big_endian: bool
    producer: int | None
    entries: dict[str, Entry]
    orphans: list[str]

    def shard_path(self, k: int) -> Path:
        return Path(f"{self.prefix}.data-{k:05d}-of-{self.num_shards:05d}")


def _shape(proto: Any, where: str) -> tuple[int, ...]:
    if proto.unknown_rank:
        raise CorruptFileError(f"{where}: stored tensor has unknown rank")
    dims = tuple(int(d.size) for d in proto.dim)
    total = 1
    for d in dims:
        if d < 0:
            raise CorruptFileError(f"{where}: negative dimension {d}")
        total *= d
        if total > MAX_ELEMENTS:
            raise CorruptFileError(f"{where}: implausible shape {list(dims)}")
    return dims


def _starts_with_header(data: bytes) -> bool:
    """Whether ``data`` opens as a tensor bundle index does: the first entry of the first
    (uncompressed) block has the empty key and a ``BundleHeaderProto`` value (``08`` = num_shards)."""
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    if data[:2] != b"\x00\x00":
        return False
    try:
        n, pos = wire.read_varint(data, 2)
    except CorruptFileError:
        return False
    value = data[pos : pos + n]
    if len(value) != n or not value.startswith(b"\x08"):
        return False
    try:
        return pb.BundleHeaderProto.FromString(value).num_shards >= 1
    except DecodeError:
        return False


def _refuse_unrecognized(data: bytes, index_path: Path) -> None:
    """Tell an index that lost its end (a truncated copy: damage) from a file that is no index
    at all (a :class:`FormatError`), before the table reader calls both "bad magic"."""
    if len(data) >= sstable.FOOTER_SIZE and data[-8:] == sstable.MAGIC.to_bytes(8, "little"):
        return
    if _starts_with_header(data):
        raise CorruptFileError(
            f"{index_path}: truncated checkpoint index: it opens with a tensor bundle header but its "
            f"table footer is missing ({len(data)} bytes left)"
        )
    # A TF 1.x index whose first block is Snappy-compressed and cut short lands here too.
    raise FormatError(
        f"{index_path}: not a checkpoint index (no table footer, and it does not open with a tensor bundle header)"
    )


def read_index(prefix: Path, verify_checksums: bool = True) -> Index:
    """Parse ``prefix.index``: header, entries, slices (no tensor data is read)."""
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    index_path = Path(str(prefix) + ".index")
    try:
        data = index_path.read_bytes()
    except OSError as e:
        raise NotFoundError(f"{index_path}: cannot read ({e.strerror})") from None
    _refuse_unrecognized(data, index_path)
    table = sstable.Table(data, str(index_path), verify_checksums)
    header = None
    entries: dict[str, Entry] = {}
    slice_entries: dict[str, list[tuple[tuple[tuple[int, int], ...], Entry]]] = {}
    for key, value in table.items():
        try:
            if key == b"":
                header = pb.BundleHeaderProto.FromString(value)
                continue
            proto = pb.BundleEntryProto.FromString(value)
        except DecodeError:
            raise CorruptFileError(f"{index_path}: entry {key[:60]!r} is not a valid record") from None
        if key.startswith(b"\x00"):
            try:
                name, extents = decode_slice_key(key)
            except CorruptFileError as e:
                raise CorruptFileError(f"{index_path}: {e}") from None
            where = f"{index_path}: slice of {name}"
            entry = _entry(name, proto, where)
            slice_entries.setdefault(name, []).append((extents, entry))
            continue
        name = key.decode("utf-8", errors="replace")
        where = f"{index_path}: {name}"
        entry = _entry(name, proto, where)
        if len(proto.slices):
            entry.partitioned = True
        entries[name] = entry
    if header is None:
        raise CorruptFileError(f"{index_path}: no header record; not a tensor bundle index")
    num_shards = header.num_shards
    if num_shards < 1 or num_shards > 100000:
        raise CorruptFileError(f"{index_path}: header claims {num_shards} data shards")
    for name, parts in slice_entries.items():
        owner = entries.get(name)
        if owner is None or not owner.partitioned:
            raise CorruptFileError(f"{index_path}: slices of {name} without its full entry")
        owner.slices = sorted(parts, key=lambda p: tuple(s for s, _ in p[0]))
    for full in entries.values():
        for part in [p for _, p in full.slices] if full.partitioned else [full]:
            if not 0 <= part.shard < num_shards:
                raise CorruptFileError(f"{index_path}: {part.name} lives in shard {part.shard} of {num_shards}")
    orphans = []
    folder = index_path.parent
    try:
        stem = prefix.name
        for child in folder.iterdir():
            # An empty prefix's leftovers start with "." (``.index.tempstate123``).
            if (child.name.startswith(stem or ".") and ".tempstate" in child.name) or child.name == stem + "_temp":
                orphans.append(child.name)
    except OSError:
        pass
    return Index(
        prefix=prefix,
        num_shards=num_shards,
        big_endian=header.endianness == 1,
        producer=header.version.producer if header.HasField("version") else None,
        entries=entries,
        orphans=sorted(orphans),
    )


def _entry(name: str, proto: Any, where: str) -> Entry:
    if proto.offset < 0 or proto.size < 0:
        raise CorruptFileError(f"{where}: negative offset or size")
    return Entry(
        name=name,
        dtype=tf_dtype_name(proto.dtype),
        shape=_shape(proto.shape, where),
        shard=proto.shard_id,
        offset=proto.offset,
        size=proto.size,
        crc=proto.crc32c,
    )


# ----------------------------------------------------------------------------------------
# Reading values


class Shards:
    """Opens data shards on demand; reads byte ranges with bounds checks."""

    #: Shards kept memory-mapped at once (each map holds a file descriptor).
    MAX_MAPPED = 16

    def __init__(self, index: Index) -> None:
        self.index = index
        self._sizes: dict[int, int] = {}
        self._mapped: OrderedDict[int, stream.MappedFile] = OrderedDict()

    def path(self, k: int) -> Path:
        return self.index.shard_path(k)

    def size(self, k: int) -> int:
        if k not in self._sizes:
            try:
                self._sizes[k] = os.stat(self.path(k)).st_size
            except OSError:
                raise NotFoundError(
                    f"{self.path(k)}: data shard missing; the checkpoint is incomplete"
                ) from None
        return self._sizes[k]

    def bounds(self, e: Entry) -> None:
        size = self.size(e.shard)
        if e.offset + e.size > size:
            raise CorruptFileError(
                f"{self.path(e.shard)}: {e.name} needs bytes {e.offset}..{e.offset + e.size} "
                f"but the shard has {size} (truncated?)"
            )

    def read(self, e: Entry) -> bytes:
        self.bounds(e)
        with open(self.path(e.shard), "rb") as f:
            f.seek(e.offset)
            return f.read(e.size)

    def mapped(self, k: int) -> stream.MappedFile:
        """Shard ``k`` memory-mapped (the most recently used maps stay open)."""
        m = self._mapped.pop(k, None)
        if m is None:
            m = stream.MappedFile(self.path(k))
            while len(self._mapped) >= self.MAX_MAPPED:
                self._mapped.popitem(last=False)[1].close()
        self._mapped[k] = m
        return m

    def chunks(self, e: Entry, chunk: int = stream.CHUNK_BYTES) -> Iterator[np.ndarray]:
        """The entry's bytes as uint8 arrays of at most ``chunk`` bytes (memory-mapped, no copy)."""
        self.bounds(e)
        yield from self.mapped(e.shard).chunks(e.offset, e.size, chunk, f"{self.path(e.shard)}: {e.name}")


def _stored_dtype(shards: Shards, e: Entry, big_endian: bool, as_storage: bool = False) -> np.dtype:
    """The numpy dtype of a numeric entry as stored, after checking its size against its shape
    (``as_storage``: bfloat16, float8 and int4 as the integers holding them, no ml_dtypes)."""
    dt = storage_dtype(e.dtype) if as_storage else numpy_dtype(e.dtype)
    if e.size != e.count * dt.itemsize:
        raise CorruptFileError(
            f"{shards.path(e.shard)}: {e.name} has {e.size} bytes, expected {e.count * dt.itemsize} "
            f"for {e.dtype}{list(e.shape)}"
        )
    return dt.newbyteorder(">") if big_endian else dt


def _numeric(shards: Shards, e: Entry, big_endian: bool) -> np.ndarray:
    import numpy as np

    dt = _stored_dtype(shards, e, big_endian)
    arr: np.ndarray
    if e.size >= MMAP_THRESHOLD:
        shards.bounds(e)
        arr = np.memmap(shards.path(e.shard), dtype=dt, mode="r", offset=e.offset, shape=e.shape)
    else:
        arr = np.frombuffer(shards.read(e), dtype=dt).reshape(e.shape)
    if big_endian:
        arr = arr.astype(dt.newbyteorder("="))
    return arr


def string_lengths(buf: bytes, count: int, where: str) -> tuple[list[int], int]:
    """The element lengths of a DT_STRING value and the position after the lengths' CRC."""
    lengths = []
    pos = 0
    for _ in range(count):
        n, pos = sstable.read_varint(buf, pos, len(buf), "string length")
        lengths.append(n)
    if pos + 4 > len(buf):
        raise CorruptFileError(f"{where}: string tensor truncated")
    pos += 4
    if pos + sum(lengths) != len(buf):
        raise CorruptFileError(f"{where}: string tensor lengths do not add up to its size")
    return lengths, pos


def string_list(shards: Shards, e: Entry) -> list[bytes]:
    """The elements of a stored DT_STRING entry, in order."""
    buf = shards.read(e)
    if e.count > len(buf):  # each element needs at least one length byte
        raise CorruptFileError(f"{shards.path(e.shard)}: {e.name}: {e.count} strings in {len(buf)} bytes")
    lengths, pos = string_lengths(buf, e.count, f"{shards.path(e.shard)}: {e.name}")
    out = []
    for n in lengths:
        out.append(buf[pos : pos + n])
        pos += n
    return out


def _strings(shards: Shards, e: Entry) -> np.ndarray:
    import numpy as np

    out = np.empty(e.count, dtype=object)
    out[:] = string_list(shards, e)
    return out.reshape(e.shape)


def read_entry(shards: Shards, e: Entry, big_endian: bool) -> np.ndarray:
    if e.dtype == "string":
        return _strings(shards, e)
    if e.dtype in NON_NUMERIC:
        raise UnsupportedError(f"{e.name}: {e.dtype} tensors have no stored value to read")
    return _numeric(shards, e, big_endian)


def slice_regions(e: Entry) -> list[tuple[tuple[slice, ...], Entry]]:
    """Where each slice of a partitioned entry goes, checked against the full shape."""
    regions = []
    covered = 0
    for extents, part in e.slices:
        if len(extents) != len(e.shape):
            raise CorruptFileError(f"{e.name}: slice rank {len(extents)} != tensor rank {len(e.shape)}")
        index = []
        for (start, length), dim in zip(extents, e.shape, strict=True):
            stop = dim if length == -1 else start + length
            if start < 0 or stop > dim or stop < start:
                raise CorruptFileError(f"{e.name}: slice {extents} outside shape {list(e.shape)}")
            index.append(slice(start, stop))
        expected = tuple(s.stop - s.start for s in index)
        # TensorFlow writes every slice with its tensor's dtype; a different one means a
        # damaged record, and casting its values would turn bytes into plausible garbage.
        if part.dtype != e.dtype:
            raise CorruptFileError(f"{e.name}: a slice is stored as {part.dtype} but the tensor is {e.dtype}")
        if part.shape != expected:
            raise CorruptFileError(f"{e.name}: slice holds shape {part.shape}, expected {expected}")
        regions.append((tuple(index), part))
        covered += part.count
    if covered != e.count:
        raise CorruptFileError(f"{e.name}: slices cover {covered} of {e.count} elements")
    # Equal element counts can still hide a gap when two slices overlap: then part of the
    # tensor has no value at all. Slices are few (one per shard-size cut), so pairwise is fine.
    boxes = sorted(regions, key=lambda r: tuple(s.start for s in r[0])) if e.shape else []
    for i, (a, _) in enumerate(boxes):
        for b, _ in boxes[i + 1 :]:
            if b[0].start >= a[0].stop:
                break
            if all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b, strict=True)):
                raise CorruptFileError(f"{e.name}: slices overlap, leaving part of the tensor without a value")
    return regions


def entry_chunks(shards: Shards, e: Entry, big_endian: bool, max_bytes: int) -> Iterator[np.ndarray]:
    """One stored (unpartitioned) entry's values as flat chunks, streamed from its shard; the
    dtypes numpy lacks come as their storage integers, which ``Weight.iter_chunks`` views."""
    if e.dtype == "string" or e.dtype in NON_NUMERIC:
        yield from stream.flat_chunks(read_entry(shards, e, big_endian), max_bytes)
        return
    dt = _stored_dtype(shards, e, big_endian, as_storage=True)
    shards.bounds(e)
    label = f"{shards.path(e.shard)}: {e.name}"
    yield from stream.typed_chunks(shards.mapped(e.shard), e.offset, e.size, dt, max_bytes, label)


def row_blocks(e: Entry, regions: list[tuple[tuple[slice, ...], Entry]]) -> list[Entry] | None:
    """The slices in row-major order when each is a block of whole rows (TF's usual cut), else None."""
    if not e.shape:
        return None
    ordered = sorted(regions, key=lambda r: r[0][0].start)
    row = 0
    for index, _ in ordered:
        whole_rows = all(s.start == 0 and s.stop == d for s, d in zip(index[1:], e.shape[1:], strict=True))
        if index[0].start != row or not whole_rows:
            return None
        row = index[0].stop
    return [part for _, part in ordered] if row == e.shape[0] else None
