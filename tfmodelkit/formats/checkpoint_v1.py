"""V1 checkpoints: the TensorSliceWriter tables of ``Saver(write_version=V1)`` and TF <= 0.11.

One file per shard (``model.ckpt``, or ``model.ckpt-0000K-of-0000N`` when sharded), no
``.index``: the file is itself an sstable (:mod:`.sstable`). Its ``""`` key holds a
``SavedTensorSlices.meta`` (every tensor's name, dtype, shape and slices); every other key is
the ordered code of (name, slice) (the same encoding as a V2 slice key) and holds a
``SavedTensorSlices.data``: one slice's values in a ``TensorProto``'s typed fields.

Listing reads the meta record only (the first block of each shard); values are found on
first request through one walk over the shard's blocks, which records where each slice lies.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..description import CheckReport, Finding, ModelDescription, Producer, Weight
from ..dtypes import itemsize, tf_dtype_name
from ..errors import CorruptFileError, FormatError, NotFoundError, TFModelKitError
from . import sstable
from .checkpoint_bundle import decode_slice_key
from .checkpoint_graph import role
from .tensor_proto import element_count, to_array
from .wire import read_varint

if TYPE_CHECKING:
    import numpy as np

_SHARD = re.compile(r"^(?P<stem>.+)-(?P<k>\d{5})-of-(?P<n>\d{5})$")
_MAGIC_TAIL = struct.pack("<Q", sstable.MAGIC)
#: Shard counts above this in a file name are refused (a name is not worth 100,000 stats).
MAX_SHARDS = 4096

#: (start, length) per dimension; length -1 = the whole dimension.
Extents = tuple[tuple[int, int], ...]


def is_v1_file(path: Path) -> bool:
    """A table file that is not a V2 ``.index``: ends in the sstable magic number."""
    if path.name.endswith(".index") or not path.is_file():
        return False
    try:
        size = path.stat().st_size
        if size < sstable.FOOTER_SIZE:
            return False
        with open(path, "rb") as f:
            f.seek(size - 8)
            return f.read(8) == _MAGIC_TAIL
    except OSError:
        return False


def state_target(folder: Path) -> Path | None:
    """The checkpoint a folder's ``checkpoint`` state file names, found in the folder; for a TF
    Serving base folder (``<base>/<integer version>/``, a session bundle's ``export`` in each), its
    highest version's."""
    state = folder / "checkpoint"
    if not state.is_file():
        try:
            versions = sorted((c for c in folder.iterdir() if c.name.isdigit() and c.is_dir()), key=lambda c: int(c.name))
        except OSError:
            return None
        for version in reversed(versions):
            if (version / "checkpoint").is_file():
                return state_target(version)
        return None
    from google.protobuf import text_format

    from .protos import tfmodelkit_pb2 as pb

    msg = pb.CheckpointState()
    try:
        text_format.Parse(state.read_text(errors="replace")[: 1 << 20], msg, allow_unknown_field=True)
    except (text_format.ParseError, ValueError):
        return None
    if not msg.model_checkpoint_path:
        return None
    named = Path(msg.model_checkpoint_path)
    # Paths may be absolute from the machine that saved: the file's own name, here, wins.
    return folder / named.name if not named.is_absolute() or not named.parent.is_dir() else named


def shard_files(path: str | Path) -> list[Path]:
    """The shard files of the V1 checkpoint ``path`` means: a file, a shard of a set (all its
    shards), a ``-?????-of-0000N`` pattern or prefix, or a folder with a ``checkpoint`` state file."""
    p = Path(path)
    if p.is_dir():
        target = state_target(p)
        if target is None:
            raise FormatError(f"{p}: a folder without a checkpoint state file naming a V1 checkpoint")
        return shard_files(target)
    if not p.is_file():
        pattern = p.name if "?" in p.name else f"{p.name}-?????-of-?????"
        found = sorted(c for c in p.parent.glob(pattern) if _SHARD.match(c.name)) if p.parent.is_dir() else []
        if not found:
            raise NotFoundError(f"{p}: no such file (nor shards {pattern})")
        p = found[0]
    m = _SHARD.match(p.name)
    if not m:
        return [p]
    n = int(m["n"])
    if n < 1 or n > MAX_SHARDS:
        raise FormatError(f"{p}: a shard name claiming {n} shards")
    files = [p.parent / f"{m['stem']}-{k:05d}-of-{m['n']}" for k in range(n)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise NotFoundError(f"{p}: shards missing: {', '.join(missing[:5])}")
    return files


@dataclass
class SliceSpec:
    extents: Extents
    shard: int


@dataclass
class TensorMeta:
    name: str
    dtype: str
    shape: tuple[int, ...]
    slices: list[SliceSpec] = field(default_factory=list)


def _extents(proto: Any, shape: tuple[int, ...], where: str) -> Extents:
    if not proto.extent:  # an empty slice is the whole tensor
        return tuple((0, -1) for _ in shape)
    if len(proto.extent) != len(shape):
        raise CorruptFileError(f"{where}: a slice of rank {len(proto.extent)} for shape {list(shape)}")
    out = []
    for e, dim in zip(proto.extent, shape, strict=True):
        length = e.length if e.HasField("length") else -1
        if e.start < 0 or (length < -1) or (length >= 0 and e.start + length > dim):
            raise CorruptFileError(f"{where}: slice extent {e.start}+{length} outside dimension {dim}")
        out.append((int(e.start), int(length)))
    return tuple(out)


def slice_shape(extents: Extents, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dim if length < 0 else length for (_, length), dim in zip(extents, shape, strict=True))


class Shard:
    """One table file, memory-mapped; the slices' places are found on first request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            size = path.stat().st_size
            if size < sstable.FOOTER_SIZE:
                raise CorruptFileError(f"{path}: {size} bytes is too short for a V1 checkpoint")
            with open(path, "rb") as f:
                self.data: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
        self.size = size
        self.table = sstable.Table(self.data, str(path))  # type: ignore[arg-type]  # an mmap slices like bytes
        self._places: dict[tuple[str, Extents], tuple[sstable.BlockHandle, int, int]] | None = None

    def meta(self) -> Any:
        from google.protobuf.message import DecodeError

        from .protos import tfmodelkit_pb2 as pb

        for key, value in self.table.items():
            if key != b"":
                break
            msg = pb.SavedTensorSlices()
            try:
                msg.ParseFromString(value)
            except (DecodeError, RecursionError) as e:
                raise CorruptFileError(f"{self.path}: damaged V1 checkpoint meta record ({e})") from None
            return msg.meta
        raise CorruptFileError(f'{self.path}: a table without the V1 checkpoint meta record (key "")')

    def handles(self) -> Iterator[sstable.BlockHandle]:
        """The data blocks' handles, from the index block."""
        for _, value in block_entries(self.table.block(self.table.index_handle), str(self.path)):
            off, pos = read_varint(value, 0, len(value), "block handle")
            size, _ = read_varint(value, pos, len(value), "block handle")
            if off + size + sstable.BLOCK_TRAILER > self.size - sstable.FOOTER_SIZE:
                raise CorruptFileError(f"{self.path}: data block at {off} (+{size}) lies outside the file")
            yield sstable.BlockHandle(off, size)

    def places(self) -> dict[tuple[str, Extents], tuple[sstable.BlockHandle, int, int]]:
        """(name, extents) -> (block, value offset in the block, value length) of each slice."""
        if self._places is None:
            found = {}
            for handle in self.handles():
                block = self.table.block(handle)
                for key, (start, length) in block_entry_spans(block, str(self.path)):
                    if key:
                        found[decode_slice_key(key)] = (handle, start, length)
            self._places = found
        return self._places

    def slice_proto(self, name: str, extents: Extents) -> Any:
        from google.protobuf.message import DecodeError

        from .protos import tfmodelkit_pb2 as pb

        place = self.places().get((name, extents))
        if place is None:
            raise CorruptFileError(f"{self.path}: {name}: slice {list(extents)} is listed but not stored")
        handle, start, length = place
        msg = pb.SavedTensorSlices()
        try:
            msg.ParseFromString(self.table.block(handle)[start : start + length])
        except (DecodeError, RecursionError) as e:
            raise CorruptFileError(f"{self.path}: {name}: damaged slice record ({e})") from None
        if msg.data.name != name:
            raise CorruptFileError(f"{self.path}: slice key of {name} holds {msg.data.name!r}")
        return msg.data.data


def block_entry_spans(block: bytes, where: str) -> Iterator[tuple[bytes, tuple[int, int]]]:
    """(key, (value offset, value length)) of each entry of a table block."""
    n = len(block)
    if n < 4:
        raise CorruptFileError(f"{where}: block too short")
    (restarts,) = struct.unpack_from("<I", block, n - 4)
    limit = n - 4 - 4 * restarts
    if restarts == 0 or limit < 0:
        raise CorruptFileError(f"{where}: block has an impossible restart count {restarts}")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos, limit)
        non_shared, pos = read_varint(block, pos, limit)
        value_len, pos = read_varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise CorruptFileError(f"{where}: entry at {pos} runs past its block")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, (pos, value_len)
        pos += value_len


def block_entries(block: bytes, where: str) -> Iterator[tuple[bytes, bytes]]:
    for key, (start, length) in block_entry_spans(block, where):
        yield key, block[start : start + length]


@dataclass
class Checkpoint:
    files: list[Path]
    shards: list[Shard]
    tensors: dict[str, TensorMeta]
    producer: int | None

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.shards)


def _shape(proto: Any, where: str) -> tuple[int, ...]:
    if proto.unknown_rank or any(d.size < 0 for d in proto.dim):
        raise CorruptFileError(f"{where}: a stored tensor with an unknown shape")
    return tuple(int(d.size) for d in proto.dim)


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Parse the meta records of every shard (values stay on disk)."""
    files = shard_files(path)
    shards = [Shard(f) for f in files]
    tensors: dict[str, TensorMeta] = {}
    producer = None
    for k, shard in enumerate(shards):
        meta = shard.meta()
        if meta.HasField("versions"):
            producer = meta.versions.producer
        for t in meta.tensor:
            where = f"{shard.path}: {t.name}"
            shape = _shape(t.shape, where)
            known = tensors.get(t.name)
            if known is None:
                known = tensors[t.name] = TensorMeta(t.name, tf_dtype_name(t.type), shape)
            elif (known.dtype, known.shape) != (tf_dtype_name(t.type), shape):
                raise CorruptFileError(f"{where}: shards disagree on its dtype or shape")
            known.slices += [SliceSpec(_extents(s, shape, where), k) for s in t.slice]
    return Checkpoint(files, shards, tensors, producer)


def read_tensor(ckpt: Checkpoint, t: TensorMeta) -> np.ndarray:
    """A tensor's value, assembled from its slices."""
    import numpy as np

    from ..dtypes import numpy_dtype

    count = element_count(t.shape)
    # Every stored element takes at least one byte of the files: a bound before allocating.
    if count > ckpt.total_bytes:
        raise CorruptFileError(
            f"{t.name}: shape {list(t.shape)} cannot be stored in {ckpt.total_bytes} bytes"
        )
    if not t.slices:
        raise CorruptFileError(f"{t.name}: listed without any stored slice")
    out = np.empty(t.shape, dtype=numpy_dtype(t.dtype))
    for s in t.slices:
        shard = ckpt.shards[s.shard]
        part_shape = slice_shape(s.extents, t.shape)
        proto = shard.slice_proto(t.name, s.extents)
        part = to_array(proto, t.dtype, part_shape, f"{shard.path}: {t.name}", max_elements=0)
        out[tuple(slice(a, None if n < 0 else a + n) for a, n in s.extents)] = part
    return out


def _nbytes(t: TensorMeta) -> int:
    size = itemsize(t.dtype)
    return element_count(t.shape) * (size or 1)


def _location(ckpt: Checkpoint, t: TensorMeta) -> str:
    names = sorted({ckpt.files[s.shard].name for s in t.slices})
    if len(t.slices) == 1:
        return names[0] if names else "?"
    return f"{len(t.slices)} slices in {', '.join(names)}"


def describe(ckpt: Checkpoint, path: str) -> ModelDescription:
    weights = []
    for name in sorted(ckpt.tensors):
        t = ckpt.tensors[name]

        def loader(t: TensorMeta = t) -> np.ndarray:
            return guarded(ckpt.files[0], lambda: read_tensor(ckpt, t))

        extra: dict[str, Any] = {"slices": len(t.slices)} if len(t.slices) > 1 else {}
        weights.append(
            Weight(
                name=name,
                dtype=t.dtype,
                shape=t.shape,
                nbytes=_nbytes(t),
                location=_location(ckpt, t),
                role=role(name, set(), False),
                extra=extra,
                _loader=loader,
            )
        )
    return ModelDescription(
        format="checkpoint",
        path=path,
        producer=Producer(other={"slices_version": str(ckpt.producer)} if ckpt.producer is not None else {}),
        weights=tuple(weights),
        metadata={
            "prefix": path,
            "shards": len(ckpt.files),
            "kind": "V1 (TensorSliceWriter tables)",
            "files": [f.name for f in ckpt.files],
        },
    )


def _label(files: list[Path]) -> str:
    if len(files) == 1 and not _SHARD.match(files[0].name):
        return str(files[0])
    m = _SHARD.match(files[0].name)
    assert m is not None
    return str(files[0].parent / f"{m['stem']}-?????-of-{m['n']}")


_DAMAGE = (ValueError, OverflowError, struct.error, MemoryError, IndexError, KeyError)


def guarded(path: Path, fn: Any) -> Any:
    """Run ``fn``; damage surfacing as Python errors becomes our error naming ``path``."""
    try:
        return fn()
    except TFModelKitError as e:
        if str(path) in str(e) or str(path.parent) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from None
    except _DAMAGE as e:
        raise CorruptFileError(f"{path}: damaged V1 checkpoint ({type(e).__name__}: {e})") from None


def read(path: Path, **options: Any) -> ModelDescription:
    """Describe the V1 checkpoint ``path`` means (without reading its values)."""
    from .metagraph_variables import with_graph_beside

    ckpt = guarded(Path(path), lambda: open_checkpoint(path))
    desc = guarded(ckpt.files[0], lambda: describe(ckpt, _label(ckpt.files)))
    return with_graph_beside(desc, desc.metadata["prefix"])  # P.meta: the graph variable each tensor feeds


def _tiles(t: TensorMeta) -> str | None:
    """Why the slices do not tile the tensor, or None."""
    covered = 0
    for s in t.slices:
        covered += element_count(slice_shape(s.extents, t.shape))
    if covered != element_count(t.shape):
        return f"slices cover {covered} of {element_count(t.shape)} elements"
    return None


def check(path: Path, progress: Any = None, **options: Any) -> CheckReport:
    """Every block's checksum, the meta record, every slice stored, parsed, of its size, tiling its tensor."""
    try:
        ckpt = guarded(Path(path), lambda: open_checkpoint(path))
    except TFModelKitError as e:
        return CheckReport(str(path), "checkpoint", {}, (Finding("error", "meta", str(e)),))
    findings: list[Finding] = []
    done = 0
    for shard in ckpt.shards:
        try:
            guarded(shard.path, lambda shard=shard: sum(1 for _ in shard.table.items()))
        except TFModelKitError as e:
            findings.append(Finding("error", shard.path.name, str(e)))
        done += shard.size
        if progress:
            progress(done, ckpt.total_bytes)
    broken = bool(findings)
    slices = 0
    for name in sorted(ckpt.tensors):
        t = ckpt.tensors[name]
        slices += len(t.slices)
        problem = _tiles(t)
        if problem:
            findings.append(Finding("error", name, problem))
            continue
        if broken:  # damaged blocks: the value reads would repeat the shard's finding
            continue
        try:
            guarded(ckpt.files[0], lambda t=t: read_tensor(ckpt, t))
        except TFModelKitError as e:
            findings.append(Finding("error", name, str(e)))
    checked = {"tensors": len(ckpt.tensors), "slices": slices, "shards": len(ckpt.files)}
    return CheckReport(_label(ckpt.files), "checkpoint", checked, tuple(findings))
