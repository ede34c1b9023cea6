"""HDF5 files as plain Python: where the bytes live, an inventory of every group, attribute
and dataset, lazy dataset values, and an integrity read of every dataset.

Nothing here knows Keras. Every h5py call runs in the forked child of :mod:`.hdf5`
(:func:`scan_source`, the loaders, :func:`check_datasets`), so a damaged file that hangs or
crashes libhdf5 becomes a :class:`CorruptFileError` or a finding.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..description import Finding, Weight
from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, FormatError, NotFoundError
from . import stream
from .hdf5 import H5_ERRORS, alive, default_timeout, isolated, isolated_stream, one_line

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Datasets are checked in slices of about this many bytes.
_CHECK_CHUNK_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------
# Where the HDF5 bytes live


class H5Source:
    """An HDF5 file on disk. ``keras_zip`` subclasses it for a member of a zip."""

    def __init__(self, path: Path) -> None:
        self.disk_path = path
        #: Offset of the HDF5 bytes inside :attr:`disk_path` when they lie there uncompressed.
        self.base: int | None = 0
        #: How the file appears in messages and weight locations.
        self.display = str(path)
        #: Seconds without progress after which the HDF5 library is deemed stuck.
        self.timeout = default_timeout()

    @contextlib.contextmanager
    def opened(self) -> Iterator[h5py.File]:
        try:
            f = _open_h5(self.disk_path)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no such file") from None
        except H5_ERRORS as e:
            raise CorruptFileError(f"{self.display}: cannot open as HDF5 ({one_line(e)})") from None
        try:
            yield f
        finally:
            with contextlib.suppress(*H5_ERRORS):
                f.close()

    def size(self) -> int:
        """Bytes of the HDF5 file."""
        return os.path.getsize(self.disk_path)


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        # HDF5 shares one handle per file in a process: if the caller holds the file open
        # with other locking flags, ours must match theirs.
        if "locking" not in str(e):
            raise
        return h5py.File(path, "r", locking=False)


def file_source(path: Path) -> H5Source:
    """A source for ``path`` after checking it exists and looks like HDF5."""
    from . import read_head

    path = Path(path)
    head = read_head(path, 8, "Keras .h5 file")
    if head != _HDF5_MAGIC:
        # The signature may also follow a user block (512, 1024, ... bytes).
        try:
            ok = h5py.is_hdf5(str(path))
        except H5_ERRORS:
            ok = False
        if not ok:
            if len(head) < 8:
                raise CorruptFileError(f"{path}: too short to be an HDF5 file ({len(head)} bytes)")
            raise FormatError(f"{path}: not an HDF5 file (no HDF5 signature); is it really a Keras .h5?")
    return H5Source(path)


# ---------------------------------------------------------------------------------------
# The inventory: every attribute and every dataset's metadata


@dataclass
class DatasetInfo:
    path: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    #: numpy dtype string h5py reads the data as (``<f4``, ``|V2``).
    raw: str
    #: Offset of the data in the HDF5 bytes when contiguous and unfiltered, else None.
    offset: int | None = None
    #: dtype not recorded in the file but inferred (2-byte opaque -> bfloat16).
    guessed: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    #: object path ("" = root) -> decoded attributes, for the root and every group.
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    #: (subject, message) of things that could not be read.
    problems: list[tuple[str, str]] = field(default_factory=list)
    attr_count: int = 0


def _decode(v: Any) -> Any:
    """An attribute value as plain Python: str, list, number or None."""
    if isinstance(v, bytes):  # also np.bytes_
        return v.decode("utf-8")
    if isinstance(v, str):
        return v
    if isinstance(v, h5py.Empty):
        return None
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _decode(v[()])
        if v.dtype.kind in "SUO":
            return [_decode(x) for x in v.reshape(-1)]
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _read_attrs(obj: h5py.HLObject, subject: str, inv: Inventory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        names = list(obj.attrs.keys())
    except H5_ERRORS as e:
        inv.problems.append((subject or "/", f"attributes cannot be listed ({one_line(e)})"))
        return out
    for name in names:
        inv.attr_count += 1
        alive()
        try:
            out[name] = _decode(obj.attrs[name])
        except UnicodeDecodeError:
            inv.problems.append((f"{subject or '/'}@{name}", "attribute is not valid UTF-8 text"))
        except H5_ERRORS as e:
            inv.problems.append((f"{subject or '/'}@{name}", f"attribute cannot be read ({one_line(e)})"))
    return out


_DTYPE_OVERRIDES = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


def _dtype_of(dt: np.dtype, override: Any) -> tuple[str, int | None, bool]:
    """(our dtype name, bytes per element or None if variable, guessed)."""
    if isinstance(override, str) and override in _DTYPE_OVERRIDES:
        want = numpy_dtype(override).itemsize
        if dt.itemsize == want or dt.kind == "f":
            return override, want, False
    if h5py.check_string_dtype(dt) is not None or dt.kind in "SUO":
        return "string", (dt.itemsize if dt.kind in "SU" else None), False
    if dt.kind == "b":
        return "bool", 1, False
    if dt.kind in "iufc":
        return dt.name, dt.itemsize, False
    if dt.kind == "V" and dt.names is None and dt.itemsize == 2:
        # Keras 3's legacy .h5 writer stores bfloat16 as an untagged 2-byte opaque type.
        return "bfloat16", 2, True
    return f"opaque{dt.itemsize * 8}", dt.itemsize, False


def _dataset_info(ds: h5py.Dataset, path: str, inv: Inventory) -> DatasetInfo:
    attrs = _read_attrs(ds, path, inv)
    shape = ds.shape
    if shape is None:  # null dataspace: no elements at all
        shape = (0,)
    shape = tuple(int(d) for d in shape)
    dt = ds.dtype
    name, itemsize, guessed = _dtype_of(dt, attrs.get("dtype"))
    count = math.prod(shape)
    if itemsize is None:
        nbytes = int(ds.id.get_storage_size())
    else:
        nbytes = count * itemsize
    offset = None
    if ds.chunks is None and ds.id.get_create_plist().get_nfilters() == 0 and itemsize is not None:
        off = ds.id.get_offset()
        offset = None if off is None else int(off)
    return DatasetInfo(path, shape, name, nbytes, dt.str, offset, guessed, attrs)


def scan(f: h5py.File, display: str) -> Inventory:
    """Copy the metadata of every group and dataset of ``f`` into an :class:`Inventory`."""
    inv = Inventory()
    try:
        inv.attrs[""] = _read_attrs(f, "", inv)
        inv.groups.append("")

        def visit(name: str | bytes, obj: Any) -> None:
            alive()
            if isinstance(name, bytes):  # h5py hands out names that are not UTF-8 as bytes
                name = name.decode("utf-8", "surrogateescape")
                inv.problems.append(
                    (
                        name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                        "object name is not valid UTF-8",
                    )
                )
            try:
                if isinstance(obj, h5py.Dataset):
                    inv.datasets[name] = _dataset_info(obj, name, inv)
                elif isinstance(obj, h5py.Group):
                    inv.groups.append(name)
                    inv.attrs[name] = _read_attrs(obj, name, inv)
            except H5_ERRORS as e:
                inv.problems.append((name, f"metadata cannot be read ({one_line(e)})"))

        f.visititems(visit)
    except H5_ERRORS as e:
        raise CorruptFileError(f"{display}: damaged HDF5 structure ({one_line(e)})") from None
    return inv


def _h5key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _scan_work(source: H5Source) -> Iterator[Inventory]:
    with source.opened() as f:
        yield scan(f, source.display)


def _root_attrs_work(source: H5Source) -> Iterator[tuple[dict[str, Any], list[tuple[str, str]]]]:
    inv = Inventory()
    with source.opened() as f:
        attrs = _read_attrs(f, "", inv)
    yield attrs, inv.problems


def root_attributes(source: H5Source) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The root group's attributes, decoded, and (subject, message) of those that could not be
    read; at arm's length like :func:`scan_source`, without listing the whole file."""
    items, failure = isolated(_root_attrs_work, (source,), source.timeout)
    if failure or not items:
        raise CorruptFileError(
            f"{source.display}: reading the HDF5 attributes {failure or 'gave no result'}; the file is damaged"
        )
    attrs: tuple[dict[str, Any], list[tuple[str, str]]] = items[0]
    return attrs


def scan_source(source: H5Source) -> Inventory:
    """The inventory of ``source``, read at arm's length (see :func:`isolated`)."""
    items, failure = isolated(_scan_work, (source,), source.timeout)
    if failure or not items:
        raise CorruptFileError(
            f"{source.display}: reading the HDF5 metadata {failure or 'gave no result'}; the file is damaged"
        )
    inv: Inventory = items[0]
    return inv


# ---------------------------------------------------------------------------------------
# Values, read lazily


def _memmappable(info: DatasetInfo) -> bool:
    if info.offset is None or info.nbytes == 0 or not info.shape:
        return False
    raw = np.dtype(info.raw)
    if info.dtype in _DTYPE_OVERRIDES:
        return raw.itemsize == numpy_dtype(info.dtype).itemsize
    return raw.kind in "biufc"


def _as_dtype(arr: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Values read by h5py in the dtype the file says they have (bfloat16 stored opaque)."""
    if info.dtype in _DTYPE_OVERRIDES and arr.dtype != numpy_dtype(info.dtype):
        target = numpy_dtype(info.dtype)
        return (
            arr.view(target)
            if arr.dtype.itemsize == target.itemsize and arr.dtype.kind != "f"
            else arr.astype(target)
        )
    return arr


def _finish(arr: Any, info: DatasetInfo, display: str) -> np.ndarray:
    if isinstance(arr, h5py.Empty):
        arr = np.empty((0,), dtype=np.dtype(info.raw))
    arr = _as_dtype(np.asarray(arr), info)
    if arr.shape != info.shape:
        raise CorruptFileError(
            f"{display}: {info.path} holds shape {list(arr.shape)}, its metadata says {list(info.shape)}"
        )
    return arr


def make_loader(source: H5Source, info: DatasetInfo) -> Callable[[], np.ndarray]:
    """A function reading ``info``'s values: memory-mapped when contiguous on disk, else via h5py."""
    base = source.base

    def load() -> np.ndarray:
        if base is not None and _memmappable(info):
            start = base + (info.offset or 0)
            try:
                size = os.path.getsize(source.disk_path)
            except OSError as e:
                raise NotFoundError(f"{source.display}: cannot read ({e.strerror})") from None
            if start + info.nbytes > size:
                raise CorruptFileError(
                    f"{source.display}: {info.path} extends past the end of the file (truncated file?)"
                )
            dt = numpy_dtype(info.dtype) if info.dtype in _DTYPE_OVERRIDES else np.dtype(info.raw)
            try:
                return np.memmap(source.disk_path, dtype=dt, mode="r", offset=start, shape=info.shape)
            except (OSError, ValueError) as e:
                raise CorruptFileError(f"{source.display}: cannot map {info.path} ({one_line(e)})") from None
        items, failure = isolated(_read_work, (source, info), source.timeout)
        if failure or not items:
            raise CorruptFileError(
                f"{source.display}: reading {info.path} {failure or 'gave no result'}; the file is damaged"
            )
        return _finish(items[0] if len(items) == 1 else np.concatenate(items), info, source.display)

    return load


def make_chunker(source: H5Source, info: DatasetInfo) -> Callable[[int, bool], Iterator[np.ndarray]]:
    """A function streaming ``info``'s values as flat chunks in row-major order.

    Contiguous data is read from a memory map; anything else (chunked, compressed, in a
    compressed zip member) is read by h5py in blocks of rows in the isolated child.
    """
    base = source.base

    def chunks(max_bytes: int, ordered: bool = True) -> Iterator[np.ndarray]:
        if base is not None and _memmappable(info):
            dt = numpy_dtype(info.dtype) if info.dtype in _DTYPE_OVERRIDES else np.dtype(info.raw)
            start = base + (info.offset or 0)
            label = f"{source.display}: {info.path}"
            yield from stream.typed_chunks(source.disk_path, start, info.nbytes, dt, max_bytes, label)
            return
        failure = yield from _streamed_blocks(source, info, max_bytes)
        if failure:
            raise CorruptFileError(f"{source.display}: reading {info.path} {failure}; the file is damaged")

    return chunks


def _streamed_blocks(
    source: H5Source, info: DatasetInfo, max_bytes: int
) -> Generator[np.ndarray, None, str | None]:
    """The blocks of :func:`_blocks_work` as flat arrays, as the child delivers them."""
    expected = math.prod(info.shape)
    seen = 0
    blocks = isolated_stream(_blocks_work, (source, info, max_bytes), source.timeout)
    while True:
        try:
            block = next(blocks)
        except StopIteration as stop:
            failure: str | None = stop.value
            break
        flat = _as_dtype(np.asarray(block), info).reshape(-1)
        if not flat.dtype.isnative:
            flat = flat.astype(flat.dtype.newbyteorder("="))
        seen += flat.size
        yield flat
    if failure is None and seen != expected:
        raise CorruptFileError(
            f"{source.display}: {info.path} gave {seen} values, its shape {list(info.shape)} holds {expected}"
        )
    return failure


def _blocks_work(source: H5Source, info: DatasetInfo, max_bytes: int) -> Iterator[Any]:
    """Read a dataset in blocks of whole rows of about ``max_bytes`` (runs in the child)."""
    with source.opened() as f:
        try:
            ds = f[_h5key(info.path)]
            if not isinstance(ds, h5py.Dataset):
                raise CorruptFileError(f"{source.display}: {info.path} is no longer a dataset")
            if ds.shape is None or len(ds.shape) == 0 or info.nbytes <= max_bytes:
                arr = ds[()]
                yield np.empty((0,), dtype=np.dtype(info.raw)) if isinstance(arr, h5py.Empty) else arr
                return
            rows = ds.shape[0]
            step = max(1, max_bytes // max(1, info.nbytes // max(rows, 1)))
            for start in range(0, rows, step):
                yield ds[start : start + step]
        except H5_ERRORS as e:
            raise CorruptFileError(f"{source.display}: cannot read {info.path} ({one_line(e)})") from None


def _read_work(source: H5Source, info: DatasetInfo) -> Iterator[Any]:
    """A dataset's value; a large one in blocks of rows, each sent as soon as it is read, so
    that neither a long read nor pickling one huge array keeps the parent waiting in silence
    (a 512 MiB compressed dataset sent whole went 5 s without a word on a loaded machine)."""
    with source.opened() as f:
        try:
            obj = f[_h5key(info.path)]
            if not isinstance(obj, h5py.Dataset):
                raise CorruptFileError(f"{source.display}: {info.path} is no longer a dataset")
            if obj.shape is None or len(obj.shape) == 0 or info.nbytes <= _CHECK_CHUNK_BYTES or obj.shape[0] < 2:
                arr = obj[()]
                yield np.empty((0,), dtype=np.dtype(info.raw)) if isinstance(arr, h5py.Empty) else arr
                return
            step = max(1, _CHECK_CHUNK_BYTES // max(1, info.nbytes // obj.shape[0]))
            for start in range(0, obj.shape[0], step):
                yield obj[start : start + step]
        except H5_ERRORS as e:
            raise CorruptFileError(f"{source.display}: cannot read {info.path} ({one_line(e)})") from None


def dataset_weight(
    source: H5Source,
    info: DatasetInfo,
    role: str,
    path: str | None,
    layer: str | None,
    extra: dict[str, Any] | None = None,
) -> Weight:
    """A dataset as a :class:`Weight` whose values stay in the file until read."""
    more = dict(extra or {})
    if info.guessed:
        more["dtype_guessed"] = True
    return Weight(
        name=info.path,
        dtype=info.dtype,
        shape=info.shape,
        nbytes=info.nbytes,
        location=f"{info.path} ({source.display})",
        role=role,
        path=path,
        layer=layer,
        extra=more,
        _loader=make_loader(source, info),
        _chunker=make_chunker(source, info),
    )


# ---------------------------------------------------------------------------------------
# Integrity: every attribute decodes, every dataset reads


def _check_work(source: H5Source, size: int) -> Iterator[tuple[Any, ...]]:
    """Scan, then read every dataset in slices, reporting as it goes (runs in the child)."""
    with source.opened() as f:
        inv = scan(f, source.display)
        yield ("inventory", inv)
        for info in inv.datasets.values():
            yield ("reading", info.path)
            problem = None
            for problem in _check_dataset(f, info, size):
                if problem:
                    break
                yield ("progress", None)
            yield ("dataset", info.path, problem)


def check_datasets(
    source: H5Source, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Finding], dict[str, int], Inventory | None]:
    """Read every attribute and every dataset of an HDF5 source; report what fails.

    ``progress(bytes_done, bytes_total)`` hears about each dataset as the child finishes it.
    The inventory comes back too, None when the metadata could not be read at all.
    """
    findings: list[Finding] = []
    checked = {"datasets": 0, "attributes": 0, "bytes": 0}
    try:
        size = source.size()
    except OSError:
        size = 0
    items: list[Any] = []
    failure: str | None = None
    total = done = 0
    try:
        results = isolated_stream(_check_work, (source, size), source.timeout)
        while True:
            try:
                item = next(results)
            except StopIteration as stop:
                failure = stop.value
                break
            items.append(item)
            if progress is not None and item[0] == "inventory":
                total = sum(d.nbytes for d in item[1].datasets.values())
            elif progress is not None and item[0] == "dataset" and items[0][0] == "inventory":
                done += items[0][1].datasets[item[1]].nbytes
                progress(done, total)
    except CorruptFileError as e:
        findings.append(Finding("error", source.display, str(e).partition(": ")[2] or str(e)))
        return findings, checked, None
    inv: Inventory | None = None
    current: str | None = None
    for item in items:
        if item[0] == "inventory":
            inv = item[1]
            checked["attributes"] = inv.attr_count
        elif item[0] == "reading":
            current = item[1]
        elif item[0] == "dataset":
            current = None
            checked["datasets"] += 1
            if item[2]:
                findings.append(Finding("error", item[1], item[2]))
            elif inv is not None:
                checked["bytes"] += inv.datasets[item[1]].nbytes
    if failure:
        what = f"reading this dataset {failure}" if current else f"reading the HDF5 metadata {failure}"
        findings.append(Finding("error", current or source.display, what))
        if inv is not None and checked["datasets"] < len(inv.datasets):
            left = len(inv.datasets) - checked["datasets"] - (1 if current else 0)
            if left:
                findings.append(
                    Finding("warning", source.display, f"{left} dataset(s) not checked after that")
                )
    return findings, checked, inv


def _check_dataset(f: h5py.File, info: DatasetInfo, size: int) -> Iterator[str | None]:
    """Read a dataset slice by slice: yields None per slice read, or what went wrong."""
    if info.offset is not None and info.offset + info.nbytes > size:
        yield f"data ({info.nbytes} bytes at offset {info.offset}) extends past the end of the file ({size} bytes)"
        return
    if info.offset is None and info.nbytes > 1024 * max(size, 1) + (64 << 20):
        yield f"declares {info.nbytes} bytes of data, implausible for a {size}-byte file"
        return
    try:
        ds = f[_h5key(info.path)]
        if not isinstance(ds, h5py.Dataset):
            yield "is not a dataset"
            return
        if ds.shape is None or len(ds.shape) == 0:
            ds[()]
            yield None
            return
        n0 = ds.shape[0]
        row = max(1, (info.nbytes // max(n0, 1)))
        step = max(1, _CHECK_CHUNK_BYTES // row)
        for start in range(0, n0, step):
            ds[start : start + step]
            alive()
            yield None
    except H5_ERRORS as e:
        yield f"cannot be read ({one_line(e)})"
