"""Checkpoints (TensorFlow's tensor bundle, "V2"): ``P.index`` + ``P.data-0000K-of-0000N``.

The index is an sstable (see :mod:`.sstable`) mapping each tensor name to a
``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c). Partitioned variables
have a full-name entry listing their slices, and one hidden entry per slice whose key is
an "ordered code" (docs/FORMATS.md §1). Values are read lazily from the data shards.
"""

from __future__ import annotations

import os
import re
import struct
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..description import (
    ROLE_MODEL,
    ROLE_OPTIMIZER,
    ROLE_OTHER,
    CheckReport,
    Finding,
    ModelDescription,
    Producer,
    Weight,
)
from ..dtypes import NON_NUMERIC, numpy_dtype, tf_dtype_name
from ..errors import CorruptFileError, NotFoundError, TFModelKitError, UnsupportedError
from . import sstable, stream

if TYPE_CHECKING:
    import numpy as np

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
#: Bytes a value may have before we memory-map instead of reading it.
MMAP_THRESHOLD = 1 << 20
#: Upper bound on elements of one tensor we are willing to describe (2^40).
MAX_ELEMENTS = 1 << 40

_DATA_RE = re.compile(r"^(?P<prefix>.+)\.data-(?P<k>\d{5})-of-(?P<n>\d{5})$")
# TF1 optimizer slot suffixes (tf.compat.v1.train optimizers) and their scalar accumulators.
_TF1_SLOT_RE = re.compile(
    r"/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|AdagradDA|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+"
    r"|ProximalAdagrad|Nadam|Nadam_\d+|ExponentialMovingAverage)$"
)
_TF1_OPTIMIZER_NAMES = re.compile(r"(^|/)(beta1_power|beta2_power)(_\d+)?$")
_BOOKKEEPING = re.compile(r"(^|/)(global_step|save_counter/\.ATTRIBUTES/VARIABLE_VALUE)$")


# ----------------------------------------------------------------------------------------
# Resolving what the user pointed at


@dataclass(frozen=True)
class Resolved:
    prefix: Path
    notes: tuple[str, ...] = ()


def _prefixes_in(folder: Path) -> list[Path]:
    """Every checkpoint prefix in ``folder``, oldest first (by index mtime, then name)."""
    found = []
    for child in folder.iterdir():
        if child.name.endswith(".index") and child.is_file() and ".tempstate" not in child.name:
            found.append(folder / child.name[: -len(".index")])

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


def _exists_here(folder: Path, named: str) -> Path | None:
    """The prefix a state-file entry means: as written, or (absolute paths written on
    another machine) the same name in this folder."""
    candidate = Path(named) if os.path.isabs(named) else folder / named
    if Path(str(candidate) + ".index").is_file():
        return candidate
    local = folder / Path(named).name
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
    elif str(found) != str(folder / named) and not (os.path.isabs(named) and found == Path(named)):
        notes.insert(0, f"state file names {named}, which is elsewhere; using {found.name} in this folder")
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
        p = p.with_name(name[: -len(".index")])
    else:
        m = _DATA_RE.match(name)
        if m:
            p = p.with_name(m.group("prefix"))
    if not Path(str(p) + ".index").is_file():
        if p.exists():
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


def read_index(prefix: Path, verify_checksums: bool = True) -> Index:
    """Parse ``prefix.index``: header, entries, slices (no tensor data is read)."""
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    index_path = Path(str(prefix) + ".index")
    try:
        data = index_path.read_bytes()
    except OSError as e:
        raise NotFoundError(f"{index_path}: cannot read ({e.strerror})") from None
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
            if child.name.startswith(stem) and (".tempstate" in child.name or child.name == stem + "_temp"):
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


class _Shards:
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


def _stored_dtype(shards: _Shards, e: Entry, big_endian: bool) -> np.dtype:
    """The numpy dtype of a numeric entry as stored, after checking its size against its shape."""
    dt = numpy_dtype(e.dtype)
    if e.size != e.count * dt.itemsize:
        raise CorruptFileError(
            f"{shards.path(e.shard)}: {e.name} has {e.size} bytes, expected {e.count * dt.itemsize} "
            f"for {e.dtype}{list(e.shape)}"
        )
    return dt.newbyteorder(">") if big_endian else dt


def _numeric(shards: _Shards, e: Entry, big_endian: bool) -> np.ndarray:
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


def _string_list(shards: _Shards, e: Entry) -> list[bytes]:
    buf = shards.read(e)
    if e.count > len(buf):  # each element needs at least one length byte
        raise CorruptFileError(f"{shards.path(e.shard)}: {e.name}: {e.count} strings in {len(buf)} bytes")
    lengths, pos = string_lengths(buf, e.count, f"{shards.path(e.shard)}: {e.name}")
    out = []
    for n in lengths:
        out.append(buf[pos : pos + n])
        pos += n
    return out


def _strings(shards: _Shards, e: Entry) -> np.ndarray:
    import numpy as np

    out = np.empty(e.count, dtype=object)
    out[:] = _string_list(shards, e)
    return out.reshape(e.shape)


def read_entry(shards: _Shards, e: Entry, big_endian: bool) -> np.ndarray:
    if e.dtype == "string":
        return _strings(shards, e)
    if e.dtype in NON_NUMERIC:
        raise UnsupportedError(f"{e.name}: {e.dtype} tensors have no stored value to read")
    return _numeric(shards, e, big_endian)


def _slice_regions(e: Entry) -> list[tuple[tuple[slice, ...], Entry]]:
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


def _assemble(shards: _Shards, e: Entry, big_endian: bool) -> np.ndarray:
    """Build a partitioned tensor's full value from its slices."""
    import numpy as np

    dt = np.dtype(object) if e.dtype == "string" else numpy_dtype(e.dtype)
    out = np.empty(e.shape, dtype=dt)
    for index, part in _slice_regions(e):
        out[index] = read_entry(shards, part, big_endian)
    return out


def entry_chunks(shards: _Shards, e: Entry, big_endian: bool, max_bytes: int) -> Iterator[np.ndarray]:
    """One stored (unpartitioned) entry's values as flat chunks, streamed from its shard."""
    if e.dtype == "string" or e.dtype in NON_NUMERIC:
        yield from stream.flat_chunks(read_entry(shards, e, big_endian), max_bytes)
        return
    dt = _stored_dtype(shards, e, big_endian)
    shards.bounds(e)
    label = f"{shards.path(e.shard)}: {e.name}"
    yield from stream.typed_chunks(shards.mapped(e.shard), e.offset, e.size, dt, max_bytes, label)


def _row_blocks(e: Entry, regions: list[tuple[tuple[slice, ...], Entry]]) -> list[Entry] | None:
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


def partitioned_chunks(
    shards: _Shards, e: Entry, big_endian: bool, max_bytes: int, ordered: bool
) -> Iterator[np.ndarray]:
    """A partitioned entry's values slice by slice, where the slices lie.

    ``ordered`` asks for row-major order: free when the slices are blocks of rows, else the
    tensor is assembled first.
    """
    regions = _slice_regions(e)
    if ordered:
        parts = _row_blocks(e, regions)
        if parts is None:
            yield from stream.flat_chunks(_assemble(shards, e, big_endian), max_bytes)
            return
    else:
        parts = sorted((part for _, part in regions), key=lambda p: (p.shard, p.offset))
    for part in parts:
        yield from entry_chunks(shards, part, big_endian, max_bytes)


# ----------------------------------------------------------------------------------------
# Object graph (TF2 checkpoints)


def object_graph(index: Index) -> Any | None:
    """The TrackableObjectGraph proto of an object-based checkpoint, or None."""
    entry = index.entries.get(OBJECT_GRAPH_KEY)
    if entry is None or entry.dtype != "string":
        return None
    from google.protobuf.message import DecodeError

    from .protos import tfmodelkit_pb2 as pb

    value = _string_list(_Shards(index), entry)
    try:
        return pb.TrackableObjectGraph.FromString(value[0])
    except (DecodeError, IndexError):
        raise CorruptFileError(f"{index.prefix}: the object graph record is damaged") from None


def _reachable(nodes: Any, starts: list[int]) -> set[int]:
    """Nodes reachable from ``starts`` through ``children`` links."""
    seen = set(starts)
    stack = list(starts)
    while stack:
        nid = stack.pop()
        for child in nodes[nid].children:
            cid = child.node_id
            if 0 <= cid < len(nodes) and cid not in seen:
                seen.add(cid)
                stack.append(cid)
    return seen


def _is_optimizer(nodes: Any, name: str, nid: int) -> bool:
    """An optimizer root object: named so, holding slot variables, or counting iterations."""
    node = nodes[nid]
    children = {c.local_name for c in node.children}
    return "optimizer" in name.lower() or bool(node.slot_variables) or bool(children & {"_iterations", "iter"})


def object_paths(graph: Any) -> tuple[dict[str, str], set[str], list[str]]:
    """Map checkpoint key -> variable name (``full_name``), optimizer keys, root children.

    A key is optimizer state when its variable is an optimizer slot or is reachable only
    through optimizer objects. Keys are the *shortest* path to a variable, so a model weight
    can be keyed ``optimizer/_trainable_variables/0`` (Keras 3 keeps a list of the variables
    it trains): reachability from the model, not the key's prefix, decides.
    """
    nodes = graph.nodes
    if not nodes:
        return {}, set(), []
    root = nodes[0]
    valid = [c for c in root.children if 0 <= c.node_id < len(nodes)]
    optimizer_roots = [c.node_id for c in valid if _is_optimizer(nodes, c.local_name, c.node_id)]
    other_roots = [c.node_id for c in valid if c.node_id not in optimizer_roots]
    # A checkpoint whose root is the model itself (tf_keras save_weights) has no such split.
    model_side = _reachable(nodes, other_roots) if optimizer_roots else _reachable(nodes, [0])
    key_to_name: dict[str, str] = {}
    optimizer_keys: set[str] = set()
    for nid, node in enumerate(nodes):
        for attr in node.attributes:
            key = attr.checkpoint_key
            if attr.full_name:
                key_to_name[key] = attr.full_name
            if "/.OPTIMIZER_SLOT/" in key or nid not in model_side:
                optimizer_keys.add(key)
    root_children = [c.local_name for c in root.children]
    return key_to_name, optimizer_keys, root_children


def _role(name: str, optimizer_keys: set[str], object_based: bool) -> str:
    if name == OBJECT_GRAPH_KEY or _BOOKKEEPING.search(name):
        return ROLE_OTHER
    if name in optimizer_keys or "/.OPTIMIZER_SLOT/" in name:
        return ROLE_OPTIMIZER
    if not object_based and (_TF1_SLOT_RE.search(name) or _TF1_OPTIMIZER_NAMES.search(name)):
        return ROLE_OPTIMIZER
    return ROLE_MODEL


# ----------------------------------------------------------------------------------------
# Public entry points


def describe_index(index: Index, path: str, notes: tuple[str, ...] = ()) -> ModelDescription:
    """The description of an already parsed index (also used for SavedModel variables)."""
    graph = object_graph(index)
    key_to_name: dict[str, str] = {}
    optimizer_keys: set[str] = set()
    root_children: list[str] = []
    if graph is not None:
        key_to_name, optimizer_keys, root_children = object_paths(graph)
    shards = _Shards(index)
    weights = []
    for name in sorted(index.entries):
        e = index.entries[name]
        if e.partitioned:
            location = f"{len(e.slices)} slices in " + ", ".join(
                sorted({shards.path(p.shard).name for _, p in e.slices})
            )
            nbytes = sum(p.size for _, p in e.slices)

            def loader(e: Entry = e) -> np.ndarray:
                return _guarded(index.prefix, lambda: _assemble(shards, e, index.big_endian))

            def chunker(max_bytes: int, ordered: bool, e: Entry = e) -> Iterator[np.ndarray]:
                return _guarded_iter(index.prefix, partitioned_chunks(shards, e, index.big_endian, max_bytes, ordered))

        else:
            location = f"{shards.path(e.shard).name} @ {e.offset}"
            nbytes = e.size

            def loader(e: Entry = e) -> np.ndarray:
                return _guarded(index.prefix, lambda: read_entry(shards, e, index.big_endian))

            def chunker(max_bytes: int, ordered: bool, e: Entry = e) -> Iterator[np.ndarray]:
                return _guarded_iter(index.prefix, entry_chunks(shards, e, index.big_endian, max_bytes))

        extra: dict[str, Any] = {"crc32c": e.crc} if not e.partitioned else {"slices": len(e.slices)}
        if name in key_to_name:
            extra["variable_name"] = key_to_name[name]
        weights.append(
            Weight(
                name=name,
                dtype=e.dtype,
                shape=e.shape,
                nbytes=nbytes,
                location=location,
                role=_role(name, optimizer_keys, graph is not None),
                path=_short_name(name) if graph is not None else None,
                extra=extra,
                _loader=loader,
                _chunker=chunker,
            )
        )
    warnings = list(notes)
    if index.orphans:
        warnings.append(
            f"leftovers of an interrupted save beside the checkpoint: {', '.join(index.orphans)}"
        )
    metadata: dict[str, Any] = {
        "prefix": str(index.prefix),
        "shards": index.num_shards,
        "kind": "object-based (TF2)" if graph is not None else "name-based (TF1)",
        "endianness": "big" if index.big_endian else "little",
    }
    if graph is not None:
        metadata["root_children"] = root_children
        metadata["object_graph_nodes"] = len(graph.nodes)
    return ModelDescription(
        format="checkpoint",
        path=path,
        producer=Producer(other={"bundle_version": str(index.producer)} if index.producer is not None else {}),
        weights=tuple(weights),
        metadata=metadata,
        warnings=tuple(warnings),
    )


def _short_name(key: str) -> str:
    """``model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`` -> ``model/layer_with_weights-0/kernel``."""
    return key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")


def read(path: Path, **options: Any) -> ModelDescription:
    resolved = resolve(path)
    index = _guarded(resolved.prefix, lambda: read_index(resolved.prefix))
    desc = _guarded(resolved.prefix, lambda: describe_index(index, str(resolved.prefix), resolved.notes))
    return desc


_DAMAGE = (ValueError, OverflowError, struct.error, MemoryError, IndexError)


def _naming_file(prefix: Path, e: Exception) -> TFModelKitError:
    """``e`` as our error, its message naming the checkpoint (the messages of value reads
    name the tensor; a user running a command over several files needs the file too)."""
    if not isinstance(e, TFModelKitError):
        return CorruptFileError(f"{prefix}: damaged checkpoint ({type(e).__name__}: {e})")
    if str(prefix) in str(e):
        return e
    return type(e)(f"{prefix}: {e}")


def _guarded(prefix: Path, fn: Any) -> Any:
    """Run ``fn``; protobuf, numpy and OS errors on damaged files become our errors."""
    try:
        return fn()
    except (TFModelKitError, *_DAMAGE) as e:
        raise _naming_file(prefix, e) from None


def _guarded_iter(prefix: Path, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``chunks``, with the errors of ``_guarded``."""
    try:
        yield from chunks
    except (TFModelKitError, *_DAMAGE) as e:
        raise _naming_file(prefix, e) from None


#: Called as ``progress(bytes_done, bytes_total)`` while tensor bytes are read.
ProgressFn = Callable[[int, int], None]


def entry_crc(shards: _Shards, e: Entry, advance: Callable[[int], None] | None = None) -> int:
    """The masked crc32c of an entry's stored bytes, computed as TensorFlow does.

    Numeric tensors are streamed chunk by chunk from a memory map; ``advance(n)`` is told
    about each chunk's ``n`` bytes.
    """
    if e.dtype == "string":
        # The lengths are checksummed as fixed-width integers, not as the stored varints;
        # the running CRC then continues over the 4 stored CRC bytes and the elements.
        buf = shards.read(e)
        lengths, pos = string_lengths(buf, e.count, f"{shards.path(e.shard)}: {e.name}")
        crc = 0
        for n in lengths:
            crc = sstable.crc32c(struct.pack("<I", n) if n <= 0xFFFFFFFF else struct.pack("<Q", n), crc)
        crc = sstable.crc32c(buf[pos - 4 :], crc)
        if advance:
            advance(e.size)
        return sstable.mask_crc(crc)
    crc = 0
    for chunk in shards.chunks(e):
        crc = sstable.crc32c(chunk, crc)
        if advance:
            advance(chunk.size)
    return sstable.mask_crc(crc)


def check(path: Path, progress: ProgressFn | None = None, **options: Any) -> CheckReport:
    """Shards present and large enough, every tensor's crc32c, sizes consistent with shapes.

    Tensors (and each slice of a partitioned one, where it lies) are read in the order
    they are stored, in fixed-size chunks, so memory stays bounded whatever their size.
    """
    resolved = resolve(path)
    findings: list[Finding] = []
    try:
        index = read_index(resolved.prefix)
    except TFModelKitError as e:
        return CheckReport(str(resolved.prefix), "checkpoint", {}, (Finding("error", "index", str(e)),))
    shards = _Shards(index)
    # One listing of the folder instead of a stat per shard: a damaged header can claim
    # 100,000 shards.
    try:
        here = {c.name for c in index.prefix.parent.iterdir() if c.name.startswith(f"{index.prefix.name}.data-")}
    except OSError:
        here = set()
    missing = [k for k in range(index.num_shards) if shards.path(k).name not in here]
    present = index.num_shards - len(missing)
    todo: list[tuple[str, int, Entry, Entry]] = []
    problems: dict[tuple[str, int], Finding] = {}
    for name in sorted(index.entries):
        full = index.entries[name]
        if full.partitioned:
            try:
                _slice_regions(full)
            except CorruptFileError as err:
                problems[(name, -1)] = Finding("error", name, str(err).removeprefix(f"{name}: "))
        for k, part in enumerate([p for _, p in full.slices] if full.partitioned else [full]):
            todo.append((name, k, full, part))
    findings.extend(_shard_findings(index, shards, missing, [part for *_, part in todo]))
    lost = set(missing)
    todo = [t for t in todo if t[3].shard not in lost]  # named once, with their shard
    total = sum(part.size for _, _, _, part in todo)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for name, k, full, part in sorted(todo, key=lambda t: (t[3].shard, t[3].offset)):
        before = done
        problem = _check_entry(shards, part, advance)
        advance(part.size - (done - before))  # what a failed read skipped
        if problem:
            subject = name if part is full else f"{name} (slice)"
            problems[(name, k)] = Finding("error", subject, problem)
    findings.extend(problems[key] for key in sorted(problems))
    for orphan in index.orphans:
        findings.append(Finding("warning", orphan, "leftover of an interrupted save; safe to delete"))
    for note in resolved.notes:
        findings.append(Finding("warning", "checkpoint", note))
    if _slow_crc():
        findings.append(
            Finding(
                "warning",
                "google-crc32c",
                "has no C extension on this machine: checksums were computed in pure Python "
                "(slow); reinstall google-crc32c from a binary wheel",
            )
        )
    return CheckReport(
        str(resolved.prefix),
        "checkpoint",
        {"tensors": len(todo), "shards": present},
        tuple(findings),
    )


#: Missing shards named one finding each up to this many; beyond, one finding for all.
MISSING_SHARDS_LISTED = 3


def _shard_findings(index: Index, shards: _Shards, missing: list[int], parts: list[Entry]) -> list[Finding]:
    """Missing data shards, with how many tensors each held, and a header whose shard count
    the entries contradict. A damaged ``num_shards`` (one varint) renames every shard, so the
    report says so once instead of listing thousands of absent files."""
    out = []
    held = Counter(p.shard for p in parts)
    if len(missing) <= MISSING_SHARDS_LISTED:
        for k in missing:
            n = held.get(k, 0)
            what = f"; {n} tensor{'s' if n != 1 else ''} lived there" if n else ""
            out.append(Finding("error", shards.path(k).name, f"{shards.path(k)}: data shard missing{what}"))
    elif missing:
        names = ", ".join(shards.path(k).name for k in missing[:2])
        n = sum(held.get(k, 0) for k in missing)
        out.append(
            Finding(
                "error",
                "shards",
                f"{len(missing)} of {index.num_shards} data shards missing ({names}, ...); "
                f"{n} tensor{'s' if n != 1 else ''} lived there",
            )
        )
    if missing:
        pattern = f"{index.prefix.name}.data-*-of-*"
        others = sorted(
            p.name for p in index.prefix.parent.glob(pattern) if not p.name.endswith(f"-of-{index.num_shards:05d}")
        )
        if others:
            out.append(
                Finding(
                    "error",
                    "index",
                    f"the header claims {index.num_shards} shards but the folder holds "
                    f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}: a damaged header, "
                    "or data files of another save",
                )
            )
    used = max(held, default=0) + 1
    if parts and index.num_shards > used and not any(f.subject == "index" for f in out):
        out.append(
            Finding(
                "warning",
                "index",
                f"the header claims {index.num_shards} data shards but the tensors use only {used}",
            )
        )
    return out


def _slow_crc() -> bool:
    import google_crc32c

    return getattr(google_crc32c, "implementation", "c") != "c"


def _check_entry(shards: _Shards, e: Entry, advance: Callable[[int], None] | None = None) -> str | None:
    if e.dtype not in NON_NUMERIC:
        try:
            expected = e.count * numpy_dtype(e.dtype).itemsize
        except UnsupportedError as err:  # a dtype number TensorFlow does not have: damage
            return f"{err}; the entry is damaged or from a newer TensorFlow"
        if e.size != expected:
            return f"holds {e.size} bytes, but {e.dtype}{list(e.shape)} needs {expected}"
    try:
        shards.size(e.shard)
    except NotFoundError:
        return f"its shard {shards.path(e.shard).name} is missing"
    try:
        actual = entry_crc(shards, e, advance)
    except CorruptFileError as err:
        return str(err)
    if actual != e.crc:
        return f"checksum mismatch in {shards.path(e.shard).name} @ {e.offset} (stored {e.crc:#010x}, computed {actual:#010x}): the bytes are damaged"
    return None
