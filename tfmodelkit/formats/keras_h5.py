"""Keras HDF5 files (``.h5``/``.hdf5``): full models and weights-only files, Keras 0.x to 3.

Layouts handled (FORMATS.md sections 3 and 4):

- Keras 1/2/tf.keras/Keras 3 legacy full model: root attrs ``model_config``,
  ``training_config``; group ``model_weights`` (attr ``layer_names``, one group per layer with
  attr ``weight_names``); optional ``optimizer_weights``.
- Weights-only (``save_weights``): the ``model_weights`` content at the root.
- Keras 0.x weights: root attr ``nb_layers``, groups ``layer_<k>`` with ``param_<j>``.
- Keras 3 ``*.weights.h5``: ``layers/<snake_case class>[_N]/vars/0, 1, ...``, ``optimizer/vars``.
- Anything else with datasets is listed as plain HDF5 data, with a warning.

The file is read in two steps: :func:`scan` copies every attribute and every dataset's
metadata into plain Python objects (all h5py calls happen there, under one error guard),
then the description is assembled from that inventory. No tensor bytes are read by
:func:`read`; each weight's loader reopens the file (or memory-maps contiguous data).

libhdf5 can hang or crash on damaged files, so every h5py call runs in a forked child
(:func:`isolated`); option ``timeout`` (seconds without progress, default 60) bounds it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import pickle
import re
import select
import signal
import struct
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..description import (
    ROLE_MODEL,
    ROLE_OPTIMIZER,
    ROLE_OTHER,
    CheckReport,
    Finding,
    Layer,
    ModelDescription,
    Producer,
    Weight,
)
from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, FormatError, InternalError, NotFoundError, TFModelKitError
from . import keras_config as kc
from . import stream

FORMAT = "keras_h5"

#: What h5py raises on damaged files (it maps HDF5 errors onto builtin exceptions).
H5_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    OverflowError,
    MemoryError,
)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Datasets are checked in slices of about this many bytes.
_CHECK_CHUNK_BYTES = 64 << 20
#: Seconds the HDF5 library may work without progress before the file is declared damaged
#: (option ``timeout``).
DEFAULT_TIMEOUT = 60.0


def one_line(e: BaseException) -> str:
    """An exception's message on one line (h5py's messages can span several)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def option_timeout(options: dict[str, object]) -> float:
    t = options.get("timeout", DEFAULT_TIMEOUT)
    return float(t) if isinstance(t, int | float) and t > 0 else DEFAULT_TIMEOUT


# ---------------------------------------------------------------------------------------
# Running the HDF5 library at arm's length
#
# libhdf5 can loop forever or crash on damaged files (seen on the corpus: one flipped bit in
# a global heap makes reading a string attribute spin, holding the GIL). So every h5py call
# runs in a forked child that streams its results back through a pipe; the parent kills a
# child that shows no progress for `timeout` seconds, and reports a hang or a crash as
# a damaged file. Without fork (Windows) the work runs in-process.

_in_child = False


def _send(fd: int, msg: Any) -> None:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _child(fd: int, work: Callable[..., Iterator[Any]], args: tuple[Any, ...]) -> None:
    global _in_child
    _in_child = True
    faulthandler.disable()  # a crash here is reported by the parent, not dumped on stderr
    try:
        for item in work(*args):
            _send(fd, ("item", item))
        _send(fd, ("end", None))
    except TFModelKitError as e:
        _send(fd, ("error", e))
    except BaseException as e:  # a bug in tfmodelkit: report it, do not hide it
        _send(fd, ("bug", f"{type(e).__name__}: {e}"))


def isolated(
    work: Callable[..., Iterator[Any]], args: tuple[Any, ...], timeout: float
) -> tuple[list[Any], str | None]:
    """The items ``work(*args)`` yields, computed in a child process.

    Returns ``(items, failure)``: ``failure`` says how the child died (hang or crash) after
    the items it delivered, or is None. Errors it raised are raised here.
    """
    items: list[Any] = []
    stream = isolated_stream(work, args, timeout)
    while True:
        try:
            items.append(next(stream))
        except StopIteration as stop:
            return items, stop.value


def isolated_stream(
    work: Callable[..., Iterator[Any]], args: tuple[Any, ...], timeout: float
) -> Generator[Any, None, str | None]:
    """Like :func:`isolated`, but each item is handed on as soon as it arrives, so a
    consumer can process a large dataset block by block; the generator's return value is
    the failure. Closing the generator early kills the child."""
    if _in_child or not hasattr(os, "fork"):
        yield from work(*args)
        return None
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            _child(w, work, args)
        finally:
            os._exit(0)
    os.close(w)
    buf = bytearray()
    status: str | None = None
    failure: str | None = None
    try:
        while status is None:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                failure = f"made no progress for {timeout:g} s (the HDF5 library hung)"
                break
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                (n,) = struct.unpack_from("<Q", buf)
                if len(buf) < 8 + n:
                    break
                kind, value = pickle.loads(bytes(buf[8 : 8 + n]))  # our own child's bytes
                del buf[: 8 + n]
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                elif kind == "bug":
                    raise InternalError(f"bug while reading HDF5: {value}")
                else:
                    status = kind
                    break
    finally:
        os.close(r)
        if status is None:  # hung, crashed, or we were interrupted: never wait on a live child
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, wait_status = os.waitpid(pid, 0)
    if failure is None and status is None:
        sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
        name = signal.Signals(sig).name if sig else f"exit status {os.WEXITSTATUS(wait_status)}"
        failure = f"crashed ({name}) inside the HDF5 library"
    return failure


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
        self.timeout = DEFAULT_TIMEOUT

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
# Step 1: the inventory (every h5py call is here)


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
# Loaders


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
        return _finish(items[0], info, source.display)

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
    with source.opened() as f:
        try:
            obj = f[_h5key(info.path)]
            if not isinstance(obj, h5py.Dataset):
                raise CorruptFileError(f"{source.display}: {info.path} is no longer a dataset")
            arr = obj[()]
        except H5_ERRORS as e:
            raise CorruptFileError(f"{source.display}: cannot read {info.path} ({one_line(e)})") from None
    yield np.empty((0,), dtype=np.dtype(info.raw)) if isinstance(arr, h5py.Empty) else arr


def _weight(
    source: H5Source,
    info: DatasetInfo,
    role: str,
    path: str | None,
    layer: str | None,
    extra: dict[str, Any] | None = None,
) -> Weight:
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
# Step 2: assembling the description


@dataclass
class Issue:
    severity: str  # "error" | "warning"
    subject: str
    message: str


@dataclass
class Assembled:
    weights: list[Weight] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    producer: Producer = field(default_factory=Producer)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _natural_key(s: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def list_attr(attrs: dict[str, Any], name: str) -> list[str] | None:
    """A list attribute, joining the ``name0``, ``name1``, ... chunks Keras writes for
    attributes over HDF5's 64 KB limit. None if absent."""
    if name in attrs:
        return _str_list(attrs[name])
    chunks: list[str] = []
    i = 0
    while f"{name}{i}" in attrs:
        chunks.extend(_str_list(attrs[f"{name}{i}"]))
        i += 1
    return chunks if i else None


def _str_attr(attrs: dict[str, Any], name: str) -> str | None:
    v = attrs.get(name)
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v if isinstance(v, str) else None


def _datasets_under(inv: Inventory, prefix: str) -> list[str]:
    if not prefix:
        return list(inv.datasets)
    p = prefix + "/"
    return [d for d in inv.datasets if d.startswith(p)]


def _short_name(weight_name: str, layer: str | None) -> str:
    """``dense/kernel:0`` -> ``dense/kernel``; Keras 1 ``dense_1_W:0`` -> ``dense_1/W``."""
    n = re.sub(r":\d+$", "", weight_name)
    if "/" not in n and layer:
        if n.startswith(layer + "_") and len(n) > len(layer) + 1:
            return f"{layer}/{n[len(layer) + 1 :]}"
        return f"{layer}/{n}"
    return n


def _find_dataset(inv: Inventory, group: str, weight_name: str) -> str | None:
    for cand in (weight_name, weight_name + ":0", re.sub(r":\d+$", "", weight_name)):
        p = _join(group, cand)
        if p in inv.datasets:
            return p
    return None


def _size(info: DatasetInfo) -> int:
    return math.prod(info.shape)


def _legacy_group_weights(
    inv: Inventory, source: H5Source, base: str, out: Assembled
) -> dict[str, list[tuple[str, int]]]:
    """Weights of a Keras 1/2 ``model_weights``-style group (or a weights-only root).

    Returns, per layer group, the (weight name, element count) pairs it holds.
    """
    attrs = inv.attrs.get(base, {})
    per_layer: dict[str, list[tuple[str, int]]] = {}
    taken: set[str] = set()
    names = list_attr(attrs, "layer_names")
    if names is None and "nb_layers" in attrs:
        return _keras0_weights(inv, source, base, out)
    names = names or []
    children = [
        g for g in inv.groups if g and g.rpartition("/")[0] == base and g != _join(base, "optimizer_weights")
    ]
    # Groups Keras did not list (Keras >= 2.11 adds `top_level_model_weights`) come last.
    extra = [g.rpartition("/")[2] for g in children if g.rpartition("/")[2] not in names]
    for layer in [*names, *sorted(extra, key=_natural_key)]:
        lpath = _join(base, layer)
        if lpath not in inv.attrs:
            out.issues.append(
                Issue("error", lpath or layer, "listed in layer_names but there is no such group")
            )
            continue
        listed = list_attr(inv.attrs[lpath], "weight_names")
        if listed is None and layer in names:
            out.issues.append(Issue("warning", lpath, "layer group has no weight_names attribute"))
        entries: list[tuple[str, int]] = []
        for wn in listed or []:
            ds = _find_dataset(inv, lpath, wn)
            if ds is None:
                out.issues.append(
                    Issue("error", _join(lpath, wn), "listed in weight_names but there is no such dataset")
                )
                continue
            if ds in taken:
                continue
            taken.add(ds)
            info = inv.datasets[ds]
            out.weights.append(_weight(source, info, ROLE_MODEL, _short_name(wn, layer), layer))
            entries.append((wn, _size(info)))
        unlisted = [d for d in _datasets_under(inv, lpath) if d not in taken]
        for ds in sorted(unlisted, key=_natural_key):
            taken.add(ds)
            info = inv.datasets[ds]
            rel = ds[len(lpath) + 1 :]
            out.weights.append(
                _weight(source, info, ROLE_MODEL, _short_name(rel, layer), layer, {"unlisted": True})
            )
            entries.append((rel, _size(info)))
        if unlisted:
            out.issues.append(
                Issue(
                    "warning",
                    lpath,
                    f"{len(unlisted)} dataset(s) not named in weight_names (Keras ignores them)",
                )
            )
        if entries or layer in names:
            per_layer[layer] = entries
    return per_layer


def _keras0_weights(
    inv: Inventory, source: H5Source, base: str, out: Assembled
) -> dict[str, list[tuple[str, int]]]:
    """Keras 0.x ``save_weights``: attr ``nb_layers``, groups ``layer_<k>`` of ``param_<j>``."""
    attrs = inv.attrs.get(base, {})
    per_layer: dict[str, list[tuple[str, int]]] = {}
    nb = attrs.get("nb_layers")
    nb = nb[0] if isinstance(nb, list) and nb else nb
    if not isinstance(nb, int) or nb < 0:
        out.issues.append(Issue("error", base or "/", f"nb_layers is not a count ({nb!r})"))
        return per_layer
    out.metadata["layout"] = "Keras 0.x nb_layers/layer_<k>"
    for k in range(min(nb, len(inv.groups) + 1)):
        layer = f"layer_{k}"
        lpath = _join(base, layer)
        if lpath not in inv.attrs:
            out.issues.append(Issue("error", lpath, "counted by nb_layers but there is no such group"))
            continue
        np_attr = inv.attrs[lpath].get("nb_params")
        np_attr = np_attr[0] if isinstance(np_attr, list) and np_attr else np_attr
        params = [d for d in _datasets_under(inv, lpath)]
        params.sort(key=_natural_key)
        if isinstance(np_attr, int) and np_attr != len(params):
            out.issues.append(
                Issue("error", lpath, f"nb_params says {np_attr} but {len(params)} datasets found")
            )
        entries = []
        for ds in params:
            info = inv.datasets[ds]
            rel = ds[len(lpath) + 1 :]
            out.weights.append(_weight(source, info, ROLE_MODEL, f"{layer}/{rel}", layer))
            entries.append((rel, _size(info)))
        per_layer[layer] = entries
    if nb > len(inv.groups):
        out.issues.append(Issue("error", base or "/", f"nb_layers = {nb} but the file has far fewer groups"))
    return per_layer


def _optimizer_weights(inv: Inventory, source: H5Source, out: Assembled) -> None:
    base = "optimizer_weights"
    if base not in inv.attrs:
        return
    taken: set[str] = set()
    for wn in list_attr(inv.attrs[base], "weight_names") or []:
        ds = _find_dataset(inv, base, wn)
        if ds is None:
            out.issues.append(
                Issue("error", _join(base, wn), "listed in weight_names but there is no such dataset")
            )
            continue
        if ds not in taken:
            taken.add(ds)
            out.weights.append(
                _weight(source, inv.datasets[ds], ROLE_OPTIMIZER, re.sub(r":\d+$", "", wn), None)
            )
    for ds in sorted((d for d in _datasets_under(inv, base) if d not in taken), key=_natural_key):
        rel = ds[len(base) + 1 :]
        out.weights.append(
            _weight(
                source, inv.datasets[ds], ROLE_OPTIMIZER, re.sub(r":\d+$", "", rel), None, {"unlisted": True}
            )
        )


def _layer_params(parsed: kc.ParsedModel, per_layer: dict[str, list[tuple[str, int]]]) -> list[Layer]:
    """Layer records with ``params``: top-level ones from their group, nested ones from the
    weight names of their top-level group that mention them."""
    out: list[Layer] = []
    params: list[int | None] = []
    for rec in parsed.layers:
        name = rec.layer.name
        p: int | None
        if rec.parent is None:
            entries = per_layer.get(name)
            p = None if entries is None else sum(n for _, n in entries)
        else:
            entries = per_layer.get(rec.top)
            if entries is None:
                p = None
            else:
                keys = {name, f"forward_{name}", f"backward_{name}"}
                hits = [n for wn, n in entries if keys & set(re.sub(r":\d+$", "", wn).split("/")[:-1])]
                p = sum(hits)
                siblings = [r for r in parsed.layers if r.parent == rec.parent]
                if not hits and rec.attached != "layers" and len(siblings) == 1:
                    p = params[rec.parent]  # a wrapper's only layer owns all its weights
        if p is None and rec.layer.class_name == "InputLayer":
            p = 0  # Keras keeps no group for a Sequential's implicit input layer
        params.append(p)
        out.append(replace(rec.layer, params=p))
    known = {r.layer.name for r in parsed.layers if r.parent is None}
    for name, entries in per_layer.items():
        if name not in known and (entries or not parsed.layers):
            out.append(Layer(name=name, class_name="unknown", params=sum(n for _, n in entries)))
    return out


def _generation(version: str | None) -> int | None:
    m = re.match(r"\s*(\d+)\.", version or "")
    return int(m.group(1)) if m and m.group(1) in ("1", "2", "3") else None


def _guess_generation(per_layer: dict[str, list[tuple[str, int]]]) -> int | None:
    names = [wn for entries in per_layer.values() for wn, _ in entries]
    if not names:
        return None
    # Keras 2 names weights `<layer>/kernel:0`; Keras 1 `<layer>_W` or `param_<j>`.
    return 2 if any("/" in n for n in names) else 1


def _apply_config(inv: Inventory, out: Assembled, where: str) -> kc.ParsedModel | None:
    root = inv.attrs.get("", {})
    text = _str_attr(root, "model_config")
    parsed = None
    if text is not None:
        try:
            model = kc.load_json(text, "model_config", where)
        except CorruptFileError as e:
            out.issues.append(Issue("error", "/@model_config", str(e).partition(": ")[2]))
            model = None
        if model is not None:
            parsed = kc.parse_model_config(model)
            out.metadata["class_name"] = parsed.class_name
            out.metadata["model_name"] = parsed.name
            out.notes.extend(parsed.warnings)
    tc_text = _str_attr(root, "training_config")
    if tc_text is not None:
        try:
            tc = kc.load_json(tc_text, "training_config", where)
        except CorruptFileError as e:
            out.issues.append(Issue("error", "/@training_config", str(e).partition(": ")[2]))
        else:
            out.metadata["training_config"] = tc
            opt = kc.optimizer_name(tc)
            if opt:
                out.metadata["optimizer"] = opt
    return parsed


def _is_keras3_layout(inv: Inventory) -> bool:
    return any(g == "vars" or g.endswith("/vars") for g in inv.groups) and any(
        g in inv.attrs for g in ("layers", "vars", "optimizer")
    )


def assemble(inv: Inventory, source: H5Source) -> Assembled:
    """The description's parts from an inventory of a ``.h5`` file."""
    out = Assembled()
    root = inv.attrs.get("", {})
    for subject, message in inv.problems:
        out.issues.append(Issue("error", subject, message))
    mw = inv.attrs.get("model_weights", {})
    keras_version = _str_attr(root, "keras_version") or _str_attr(mw, "keras_version")
    backend = _str_attr(root, "backend") or _str_attr(mw, "backend")
    parsed = _apply_config(inv, out, source.display)
    per_layer: dict[str, list[tuple[str, int]]] | None = None
    generation = _generation(keras_version)
    full = "model_config" in root or "model_weights" in inv.attrs

    if "model_weights" in inv.attrs:
        out.metadata["kind"] = "full model"
        per_layer = _legacy_group_weights(inv, source, "model_weights", out)
        _optimizer_weights(inv, source, out)
    elif full:
        out.metadata["kind"] = "full model"
        out.issues.append(
            Issue("warning", "/", "model_config present but no model_weights group: no weights stored")
        )
        per_layer = {}
    elif list_attr(root, "layer_names") is not None or "nb_layers" in root:
        out.metadata["kind"] = "weights only"
        per_layer = _legacy_group_weights(inv, source, "", out)
    elif _is_keras3_layout(inv):
        out.metadata["kind"] = "weights only"
        out.metadata["layout"] = "Keras 3 weights (layers/<name>/vars/<i>)"
        generation = generation or 3
        keras3_assemble(inv, source, None, out)
    else:
        _plain_datasets(inv, source, out)
        return _finish_assembly(out, keras_version, backend, generation)

    if per_layer is not None:
        if parsed is not None:
            out.layers = _layer_params(parsed, per_layer)
        else:
            out.layers = [
                Layer(name=n, class_name="unknown", params=sum(c for _, c in e)) for n, e in per_layer.items()
            ]
        # Datasets outside every layer group (and outside optimizer_weights).
        seen = {w.name for w in out.weights}
        stray = [d for d in inv.datasets if d not in seen]
        for ds in sorted(stray, key=_natural_key):
            out.weights.append(_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))
        if stray:
            out.issues.append(
                Issue("warning", "/", f"{len(stray)} dataset(s) outside the Keras weight groups")
            )
    if generation is None and per_layer is not None:
        generation = (
            1 if out.metadata.get("layout", "").startswith("Keras 0") else _guess_generation(per_layer)
        )
    return _finish_assembly(out, keras_version, backend, generation)


def _finish_assembly(
    out: Assembled, keras_version: str | None, backend: str | None, generation: int | None
) -> Assembled:
    out.producer = Producer(keras=keras_version, backend=backend)
    if generation is not None:
        out.metadata["keras_generation"] = generation
    guessed = [w for w in out.weights if w.extra.get("dtype_guessed")]
    if guessed:
        out.notes.append(
            f"{len(guessed)} dataset(s) hold untyped 2-byte values (how Keras 3's legacy .h5 writer "
            "stores bfloat16): reported as bfloat16"
        )
    return out


def _plain_datasets(inv: Inventory, source: H5Source, out: Assembled) -> None:
    if not inv.datasets:
        raise FormatError(
            f"{source.display}: an HDF5 file with no Keras model config, no Keras weights layout "
            "and no datasets: nothing to describe"
        )
    out.metadata["kind"] = "hdf5 data"
    root = inv.attrs.get("", {})
    if root:
        out.metadata["attributes"] = {k: v for k, v in root.items() if isinstance(v, str | int | float)}
    out.notes.append("no Keras model config or weights layout found: listing HDF5 datasets")
    for ds in inv.datasets:
        out.weights.append(_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))


# ---------------------------------------------------------------------------------------
# Keras 3 layout: `<object>/vars/<i>`, shared with keras_zip


def _object_paths(inv: Inventory) -> list[str]:
    objs = []
    for g in inv.groups:
        if g == "vars":
            objs.append("")
        elif g.endswith("/vars"):
            objs.append(g[: -len("/vars")])
    return objs


@dataclass
class _Obj:
    path: str
    name: str
    parent: str | None
    rel: str
    #: The name comes from the `name` attribute Keras >= 3.8 puts on `vars`.
    named: bool = False
    class_name: str | None = None
    config: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None
    order: tuple[int, list[Any]] = (1, [])


_REL_ORDER = {"layer": 0, "forward_layer": 0, "cell": 0, "backward_layer": 1}


def keras3_assemble(inv: Inventory, source: H5Source, model: Any | None, out: Assembled) -> None:
    """Weights and layer records of a Keras 3 weights file, with ``model`` (the parsed
    ``config.json``) used to name containers and variables where it can."""
    paths = _object_paths(inv)
    pset = set(paths)
    objs: dict[str, _Obj] = {}
    for p in sorted(paths, key=lambda s: s.count("/")):
        parent = None
        parts = p.split("/") if p else []
        for i in range(len(parts) - 1, -1, -1):
            q = "/".join(parts[:i])
            if q in pset and q != p:
                parent = q
                break
        vattrs = inv.attrs.get(_join(p, "vars"), {})
        recorded = _str_attr(vattrs, "name")
        rel = p[len(parent) + 1 :] if parent else p
        objs[p] = _Obj(p, recorded or (parts[-1] if parts else ""), parent, rel, named=recorded is not None)

    parsed = kc.parse_model_config(model) if isinstance(model, dict) else None
    root_entry = model if isinstance(model, dict) else None
    entry_to_path: dict[int, str] = {}

    def resolve(o: _Obj) -> None:
        if o.parent is None and o.path == "":
            o.class_name = kc.entry_class(root_entry) if root_entry else None
            o.entry = root_entry
            o.config = kc.entry_config(root_entry) if root_entry else None
            return
        parent = objs.get(o.parent) if o.parent is not None else None
        p_entry = parent.entry if parent else root_entry
        p_class = parent.class_name if parent else (kc.entry_class(root_entry) if root_entry else None)
        p_cfg = (parent.config if parent else (kc.entry_config(root_entry) if root_entry else None)) or {}
        comps = o.rel.split("/")
        last = comps[-1]
        entry = None
        if len(comps) == 2 and comps[0] == "layers" and p_entry is not None:
            candidates = kc.model_layers(p_entry)
            entry, index = _match_container(candidates, last, o.name)
            if entry is not None:
                o.order = (0, [index])
        elif o.rel == "cell":
            cell = p_cfg.get("cell")
            if isinstance(cell, dict) and isinstance(cell.get("class_name"), str):
                entry = cell
            elif p_class in kc.CELL_CLASSES:
                o.class_name = kc.CELL_CLASSES[p_class]
                o.config = p_cfg if parent and parent.entry is not None else None
        elif o.rel in ("layer", "forward_layer", "backward_layer"):
            v = p_cfg.get("backward_layer") if o.rel == "backward_layer" else None
            v = v if isinstance(v, dict) else p_cfg.get("layer")
            if isinstance(v, dict) and isinstance(v.get("class_name"), str):
                entry = v
        if o.order == (1, []):
            o.order = (1, [_REL_ORDER.get(o.rel, 2), *_natural_key(o.rel)])
        if entry is not None:
            o.entry = entry
            o.class_name = kc.entry_class(entry)
            o.config = kc.entry_config(entry)
            if not o.named:
                o.name = kc.entry_name(entry, o.name)
            entry_to_path[id(entry)] = o.path
        elif o.class_name is None:
            o.class_name = kc.class_from_container(last) or kc.class_from_container(o.name)

    for p in sorted(objs, key=lambda s: (s.count("/"), s)):
        resolve(objs[p])

    children: dict[str | None, list[_Obj]] = {}
    for o in objs.values():
        children.setdefault(o.parent, []).append(o)
    for lst in children.values():
        lst.sort(key=lambda o: (o.rel.split("/")[0] == "optimizer", o.order, _natural_key(o.path)))

    def chain(o: _Obj) -> list[str]:
        names = []
        cur: _Obj | None = o
        while cur is not None and cur.path != "":
            names.append(cur.name)
            cur = objs.get(cur.parent) if cur.parent is not None else None
        return names[::-1]

    sizes: dict[str, int] = {}
    weights: list[Weight] = []

    def emit(o: _Obj) -> None:
        vpath = _join(o.path, "vars")
        keys = [d[len(vpath) + 1 :] for d in _datasets_under(inv, vpath)]
        keys = [k for k in keys if "/" not in k]
        keys.sort(key=_natural_key)
        numeric = [k for k in keys if k.isdigit()]
        if numeric and [int(k) for k in numeric] != list(range(len(numeric))):
            out.issues.append(Issue("warning", vpath, "variable numbers are not 0..n-1: some may be missing"))
        first = o.path.split("/")[0] if o.path else ""
        role = ROLE_OPTIMIZER if first == "optimizer" else ROLE_MODEL
        if role == ROLE_MODEL and any(c.startswith("seed_generator") for c in o.path.split("/")):
            role = ROLE_OTHER  # random-seed state, not part of model.weights
        names = (
            kc.variable_names(o.class_name, o.config, len(numeric))
            if numeric == [str(i) for i in range(len(numeric))]
            else None
        )
        owner = chain(o)
        for k in keys:
            info = inv.datasets[_join(vpath, k)]
            if role == ROLE_OPTIMIZER:
                label = _optimizer_label(k, info)
            elif k.isdigit() and names is not None:
                label = names[int(k)]
            else:
                label = k
            if not owner:
                short = f"{o.name}/{label}" if o.name else label
            else:
                short = "/".join([*owner, label])
            layer = owner[0] if owner and role != ROLE_OPTIMIZER else None
            weights.append(_weight(source, info, role, short, layer, {"container": o.path}))
            if role == ROLE_MODEL:
                sizes[o.path] = sizes.get(o.path, 0) + _size(info)
        for c in children.get(o.path, []):
            emit(c)

    roots = [o for o in objs.values() if o.parent is None]
    roots.sort(key=lambda o: (o.path.split("/")[0] == "optimizer", o.order, _natural_key(o.path)))
    for o in roots:
        emit(o)
    # Datasets that are not `<object>/vars/<key>` (unknown additions): listed as they are.
    seen = {w.name for w in weights}
    for ds in sorted((d for d in inv.datasets if d not in seen), key=_natural_key):
        weights.append(_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))
        out.issues.append(Issue("warning", ds, "dataset outside the Keras 3 `<object>/vars` layout"))
    out.weights.extend(weights)

    def params_under(path: str) -> int:
        return sum(n for p, n in sizes.items() if p == path or p.startswith(path + "/"))

    if parsed is not None and parsed.layers:
        for rec in parsed.layers:
            where = entry_to_path.get(id(rec.entry))
            count = None if where is None else params_under(where)
            if count is None and rec.layer.class_name == "InputLayer":
                count = 0  # a Sequential's input layer gets no container
            out.layers.append(replace(rec.layer, params=count))
        out.notes.extend(parsed.warnings)
    else:
        if parsed is not None:
            out.notes.extend(parsed.warnings)
        for o in sorted(objs.values(), key=lambda o: _natural_key(o.path)):
            if o.path == "" or o.path.split("/")[0] == "optimizer":
                continue
            owner = chain(o)
            out.layers.append(
                Layer(
                    name=o.name,
                    class_name=o.class_name or "unknown",
                    config=o.config or {},
                    depth=max(0, len(owner) - 1),
                    params=params_under(o.path),
                )
            )


def _match_container(
    candidates: list[dict[str, Any]], container: str, name: str
) -> tuple[dict[str, Any] | None, int]:
    """The config entry saved as ``layers/<container>``: by the layer name Keras 3 records
    on the ``vars`` group, else by Keras' per-class numbering (``dense``, ``dense_1``...)."""
    by_name = [(i, e) for i, e in enumerate(candidates) if kc.entry_name(e, "") == name]
    if len(by_name) == 1:
        return by_name[0][1], by_name[0][0]
    counts: dict[str, int] = {}
    for i, e in enumerate(candidates):
        snake = kc.snake_case(kc.entry_class(e))
        n = counts.get(snake, 0)
        counts[snake] = n + 1
        if (snake if n == 0 else f"{snake}_{n}") == container:
            return e, i
    return None, 0


def _optimizer_label(key: str, info: DatasetInfo) -> str:
    # Keras 3 optimizers save `iteration` then `learning_rate` first (unless it is a schedule).
    if key == "0" and info.shape == () and info.dtype.startswith("int"):
        return "iteration"
    if key == "1" and info.shape == () and info.dtype.startswith("float"):
        return "learning_rate"
    return key


# ---------------------------------------------------------------------------------------
# Public API


def describe(inv: Inventory, source: H5Source, fmt: str = FORMAT, **extra_meta: Any) -> ModelDescription:
    out = assemble(inv, source)
    out.metadata.update(extra_meta)
    return to_description(out, source.display, fmt)


def to_description(
    out: Assembled, display: str, fmt: str, producer: Producer | None = None
) -> ModelDescription:
    warnings = [*out.notes]
    for issue in out.issues:
        warnings.append(f"{issue.subject}: {issue.message}")
    return ModelDescription(
        format=fmt,
        path=display,
        producer=producer or out.producer,
        weights=tuple(out.weights),
        layers=tuple(out.layers),
        metadata=out.metadata,
        warnings=tuple(dict.fromkeys(warnings)),
    )


def read(path: Path, **options: object) -> ModelDescription:
    """Describe a Keras ``.h5`` file: producer, architecture, weights (values stay on disk)."""
    source = file_source(Path(path))
    source.timeout = option_timeout(options)
    return describe(scan_source(source), source)


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


def check_source(
    source: H5Source, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Finding], dict[str, int]]:
    """Read every attribute and every dataset of an HDF5 source; report what fails.

    ``progress(bytes_done, bytes_total)`` hears about each dataset as the child finishes it.
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
        return findings, checked
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
    if inv is None:
        return findings, checked
    try:
        out = assemble(inv, source)
    except FormatError as e:
        findings.append(Finding("warning", source.display, str(e).partition(": ")[2]))
        return findings, checked
    for issue in out.issues:
        findings.append(Finding(issue.severity, issue.subject, issue.message))
    return findings, checked


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
            yield None
    except H5_ERRORS as e:
        yield f"cannot be read ({one_line(e)})"


def check(path: Path, **options: object) -> CheckReport:
    """Integrity check: every attribute decodes, every dataset reads, Keras' name lists match."""
    source = file_source(Path(path))
    source.timeout = option_timeout(options)
    progress = options.get("progress")
    findings, checked = check_source(source, progress if callable(progress) else None)
    return CheckReport(path=source.display, format=FORMAT, checked=checked, findings=tuple(findings))
