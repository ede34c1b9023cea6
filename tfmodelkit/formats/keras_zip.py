"""Keras 3 native files (``.keras``): a zip of ``metadata.json``, ``config.json`` and
``model.weights.h5`` (FORMATS.md section 4), read in place, never extracted to disk.

``model.weights.h5`` is opened by h5py through a file-like window onto the zip when the
member is stored uncompressed (what Keras writes), so its contiguous datasets can even be
memory-mapped from the ``.keras`` file; a compressed member is inflated into memory, up
to ``max_inflate_bytes``.

Archive safety rules, applied to every member before anything is decompressed:

- a member name that is absolute (``/x``, ``\\x``, ``C:x``) or has a ``..`` component is
  refused (:class:`CorruptFileError`), even though nothing is ever written to disk;
- a member whose declared size exceeds 200 times its compressed size *and* 64 MiB, or
  exceeds 1 TiB outright, is refused as a zip bomb; so is a stored member whose two sizes
  differ or any member whose bytes would lie past the end of the archive;
- decompression never produces more than the declared size (reads are bounded).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from ..description import CheckReport, Finding, ModelDescription, Producer
from ..errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError
from . import keras_config as kc
from .hdf5 import H5_ERRORS, one_line, option_timeout
from .hdf5_inventory import H5Source, scan_source
from .keras3_weights import keras3_assemble
from .keras_h5 import check_source
from .keras_h5_parts import Assembled, to_description

FORMAT = "keras_zip"

MAX_RATIO = 200
RATIO_FLOOR = 64 << 20  # 64 MiB
MAX_DECLARED = 1 << 40  # 1 TiB
MAX_JSON_BYTES = 64 << 20
DEFAULT_MAX_INFLATE = 2 << 30  # 2 GiB

WEIGHTS_H5 = "model.weights.h5"
WEIGHTS_NPZ = "model.weights.npz"

ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    zlib.error,
    struct.error,
    OverflowError,
)

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"


def _unsafe_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[/\\]", name))


def _open_zip(path: Path) -> zipfile.ZipFile:
    from . import read_head

    head = read_head(path, 4, ".keras file")
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as e:
        if head.startswith(b"PK"):
            raise CorruptFileError(f"{path}: damaged zip archive ({one_line(e)})") from None
        raise FormatError(f"{path}: not a zip archive, so not a Keras 3 .keras file") from None


def validate_members(zf: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """Every member, by name, after the safety rules in the module docstring."""
    size = os.path.getsize(path)
    out: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        name = info.filename
        if _unsafe_name(name):
            raise CorruptFileError(
                f"{path}: member {name!r} has an absolute or '..' path; refusing this archive"
            )
        declared, packed = info.file_size, info.compress_size
        if declared > MAX_DECLARED or (declared > RATIO_FLOOR and declared > MAX_RATIO * max(packed, 1)):
            raise CorruptFileError(
                f"{path}: member {name!r} declares {declared} bytes from {packed} compressed "
                "(zip bomb guard); refusing to decompress it"
            )
        if info.compress_type == zipfile.ZIP_STORED and declared != packed:
            raise CorruptFileError(
                f"{path}: stored member {name!r} has inconsistent sizes ({packed} vs {declared})"
            )
        if info.header_offset + packed > size:
            raise CorruptFileError(
                f"{path}: member {name!r} extends past the end of the archive (truncated file?)"
            )
        if info.header_offset < 0:
            # zipfile shifts offsets by where the central directory really is; a directory
            # offset that lies pushes members before the start of the file.
            raise CorruptFileError(
                f"{path}: member {name!r} would start {-info.header_offset} bytes before the archive "
                "(damaged central directory offset)"
            )
        out[name] = info
    return out


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes start in the archive (after its local header)."""
    if info.header_offset < 0:
        raise CorruptFileError(f"{path}: member {info.filename!r} starts before the archive")
    try:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            raw = fh.read(_LOCAL_HEADER.size)
    except OSError as e:
        raise CorruptFileError(
            f"{path}: cannot read the local header of {info.filename!r} ({e.strerror})"
        ) from None
    if len(raw) != _LOCAL_HEADER.size:
        raise CorruptFileError(f"{path}: local header of {info.filename!r} is cut short")
    fields = _LOCAL_HEADER.unpack(raw)
    if fields[0] != _LOCAL_MAGIC:
        raise CorruptFileError(f"{path}: bad local header signature for member {info.filename!r}")
    start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
    if start + info.compress_size > os.path.getsize(path):
        raise CorruptFileError(f"{path}: member {info.filename!r} extends past the end of the archive")
    return start


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int) -> bytes:
    """A member's bytes (CRC-checked by zipfile), never more than ``limit`` or its declared size."""
    if info.file_size > limit:
        raise UnsupportedError(
            f"{path}: member {info.filename!r} is {info.file_size} bytes, over the {limit}-byte limit "
            "for reading it into memory"
        )
    if info.flag_bits & 0x1:
        raise UnsupportedError(f"{path}: member {info.filename!r} is encrypted")
    try:
        with zf.open(info) as m:
            data = m.read(info.file_size + 1)
    except ZIP_ERRORS as e:
        raise CorruptFileError(f"{path}: cannot read member {info.filename!r} ({one_line(e)})") from None
    if len(data) != info.file_size:
        raise CorruptFileError(
            f"{path}: member {info.filename!r} holds {len(data)} bytes, its header says {info.file_size}"
        )
    return data


class _Window(io.RawIOBase):
    """Read-only file object over ``length`` bytes of a file starting at ``start``."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._length + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._length - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:n])
        self._pos += got or 0
        return got or 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        super().close()


class ZipMemberSource(H5Source):
    """``model.weights.h5`` inside a ``.keras`` archive."""

    def __init__(self, path: Path, member: str, max_inflate: int = DEFAULT_MAX_INFLATE) -> None:
        super().__init__(path)
        self.member = member
        self.display = f"{path}:{member}"
        self.max_inflate = max_inflate
        with _open_zip(path) as zf:
            info = validate_members(zf, path).get(member)
            if info is None:
                raise CorruptFileError(f"{path}: has no member {member!r}")
            self._info = info
            self.base = _data_offset(path, info) if info.compress_type == zipfile.ZIP_STORED else None

    def size(self) -> int:
        return self._info.file_size

    @contextlib.contextmanager
    def opened(self) -> Iterator[h5py.File]:
        fileobj: io.IOBase
        if self.base is not None:
            try:
                fileobj = _Window(self.disk_path, self.base, self._info.file_size)
            except OSError as e:
                raise NotFoundError(f"{self.disk_path}: cannot read ({e.strerror})") from None
        else:
            with _open_zip(self.disk_path) as zf:
                fileobj = io.BytesIO(_read_member(zf, self._info, self.disk_path, self.max_inflate))
        try:
            try:
                f = h5py.File(fileobj, "r")
            except H5_ERRORS as e:
                raise CorruptFileError(f"{self.display}: cannot open as HDF5 ({one_line(e)})") from None
            try:
                yield f
            finally:
                with contextlib.suppress(*H5_ERRORS):
                    f.close()
        finally:
            fileobj.close()


def _json_member(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, path: Path) -> Any:
    info = members.get(name)
    if info is None:
        return None
    data = _read_member(zf, info, path, MAX_JSON_BYTES)
    return kc.load_json(data, name, str(path))


def _options(options: dict[str, object]) -> int:
    limit = options.get("max_inflate_bytes", DEFAULT_MAX_INFLATE)
    return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_INFLATE


def model_config(path: Path, **options: object) -> Any | None:
    """The parsed ``config.json`` (None when the archive has none), after the archive's
    safety rules, as :func:`read` reads it."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _json_member(zf, validate_members(zf, path), "config.json", path)


def read(path: Path, **options: object) -> ModelDescription:
    """Describe a ``.keras`` file: its config as layers, its weights (values stay in the zip)."""
    path = Path(path)
    max_inflate = _options(options)
    zf = _open_zip(path)
    with zf:
        members = validate_members(zf, path)
        meta = _json_member(zf, members, "metadata.json", path)
        config = _json_member(zf, members, "config.json", path)
    if config is None and WEIGHTS_H5 not in members:
        raise FormatError(
            f"{path}: a zip without config.json or {WEIGHTS_H5}, so not a Keras 3 .keras file "
            f"(members: {', '.join(sorted(members)[:5]) or 'none'})"
        )
    out = Assembled()
    if len(members) != len(zf.infolist()):
        out.notes.append("the archive lists some member names twice; the last copy of each is read")
    if config is None:
        out.notes.append("no config.json: architecture unknown, weights named from their containers")
    elif not isinstance(config, dict):
        out.notes.append("config.json is not a JSON object: architecture unknown")
        config = None
    if WEIGHTS_H5 in members:
        source = ZipMemberSource(path, WEIGHTS_H5, max_inflate)
        source.timeout = option_timeout(options)
        inv = scan_source(source)
        for subject, message in inv.problems:
            out.notes.append(f"{subject}: {message}")
        keras3_assemble(inv, source, config, out)
    else:
        if WEIGHTS_NPZ in members:
            out.notes.append(f"weights are stored as {WEIGHTS_NPZ}, which tfmodelkit does not list yet")
        else:
            out.notes.append(f"no {WEIGHTS_H5} in the archive: no weights stored")
        parsed = kc.parse_model_config(config) if config is not None else None
        if parsed is not None:
            out.layers = [r.layer for r in parsed.layers]
            out.notes.extend(parsed.warnings)
    metadata: dict[str, Any] = {
        "kind": "full model" if config is not None else "weights only",
        "keras_generation": 3,
    }
    other: dict[str, str] = {}
    keras_version = None
    backend = None
    if isinstance(meta, dict):
        kv = meta.get("keras_version")
        keras_version = kv if isinstance(kv, str) else None
        be = meta.get("backend")
        backend = be if isinstance(be, str) else None
        for k, v in meta.items():
            if k not in ("keras_version", "backend") and isinstance(v, str | int | float):
                other[k] = str(v)
    if config is not None:
        metadata["class_name"] = kc.entry_class(config)
        name = kc.entry_config(config).get("name")
        metadata["model_name"] = name if isinstance(name, str) else None
        if isinstance(config.get("registered_name"), str):
            metadata["registered_name"] = config["registered_name"]
        compile_config = config.get("compile_config")
        if isinstance(compile_config, dict) and compile_config:
            metadata["compile_config"] = compile_config
            opt = kc.optimizer_name(compile_config)
            if opt:
                metadata["optimizer"] = opt
    metadata["members"] = {n: i.file_size for n, i in members.items()}
    out.metadata.update(metadata)
    producer = Producer(keras=keras_version, backend=backend, other=other)
    return to_description(out, str(path), FORMAT, producer)


def _local_headers(path: Path) -> tuple[list[str], str | None]:
    """Walk the members' local headers from the start of an archive whose central directory
    cannot be read: (names of the members whose bytes are all there, what cut the walk short)."""
    complete: list[str] = []
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            pos = 0
            while True:
                fh.seek(pos)
                raw = fh.read(_LOCAL_HEADER.size)
                if len(raw) < 4 or raw[:4] != _LOCAL_MAGIC:
                    return complete, None if raw[:4] == b"PK\x01\x02" else f"no member header at byte {pos}"
                if len(raw) < _LOCAL_HEADER.size:
                    return complete, f"a member header is cut short at byte {pos}"
                fields = _LOCAL_HEADER.unpack(raw)
                name = fh.read(fields[9]).decode("utf-8", "replace")
                if fields[2] & 0x8:  # sizes in a data descriptor after the data: no way to step over it
                    return complete, f"{name!r} keeps its sizes after its data"
                start = pos + _LOCAL_HEADER.size + fields[9] + fields[10]
                if start + fields[7] > size:
                    have = max(0, size - start)
                    return complete, f"{name!r} is cut short ({have} of its {fields[7]} bytes are there)"
                complete.append(name)
                pos = start + fields[7]
    except OSError as e:
        return complete, f"cannot read it ({e.strerror})"


def _damaged_archive(path: Path, error: CorruptFileError) -> CheckReport:
    """The report on an archive recognised as a zip (it opens with a member header) whose
    directory cannot be read: what is wrong, and which members survive before the damage."""
    complete, stop = _local_headers(path)
    found = f"{len(complete)} complete member(s) precede the damage: {', '.join(complete)}" if complete else "no member is complete"
    message = f"{str(error).partition(': ')[2] or error}: its central directory cannot be read (a truncated copy?); {found}"
    finding = Finding("error", "archive", message + (f"; then {stop}" if stop else ""))
    return CheckReport(path=str(path), format=FORMAT, checked={"members": len(complete)}, findings=(finding,))


def check(path: Path, **options: object) -> CheckReport:
    """Integrity check: every member's CRC, the JSON members, every HDF5 dataset.

    An archive that opens as a zip but whose directory cannot be read (a truncated copy) is
    reported as damage found; a file that is no zip at all is refused (FormatError)."""
    path = Path(path)
    max_inflate = _options(options)
    findings: list[Finding] = []
    checked: dict[str, int] = {"members": 0}
    try:
        zf = _open_zip(path)
    except CorruptFileError as e:
        return _damaged_archive(path, e)
    with zf:
        members = validate_members(zf, path)  # unsafe names and zip bombs are refused, not checked
        for name, info in members.items():
            checked["members"] += 1
            try:
                with zf.open(info) as m:
                    remaining = info.file_size
                    while True:
                        block = m.read(min(1 << 20, remaining + 1))
                        if not block:
                            break
                        remaining -= len(block)
                        if remaining < 0:
                            raise zipfile.BadZipFile("more data than its declared size")
                if remaining:
                    findings.append(Finding("error", name, f"{remaining} bytes short of its declared size"))
            except ZIP_ERRORS as e:
                findings.append(Finding("error", name, f"cannot be read ({one_line(e)})"))
        for name in ("metadata.json", "config.json"):
            if name not in members:
                findings.append(Finding("warning" if name == "metadata.json" else "error", name, "missing"))
                continue
            try:
                _json_member(zf, members, name, path)
            except (CorruptFileError, UnsupportedError) as e:
                findings.append(Finding("error", name, str(e).partition(": ")[2] or str(e)))
    if WEIGHTS_H5 in members:
        try:
            source = ZipMemberSource(path, WEIGHTS_H5, max_inflate)
            source.timeout = option_timeout(options)
        except CorruptFileError as e:
            findings.append(Finding("error", WEIGHTS_H5, str(e).partition(": ")[2] or str(e)))
        else:
            progress = options.get("progress")
            h5_findings, h5_checked = check_source(source, progress if callable(progress) else None)
            for x in h5_findings:
                subject = WEIGHTS_H5 if x.subject == source.display else f"{WEIGHTS_H5}:{x.subject}"
                findings.append(Finding(x.severity, subject, x.message))
            checked.update(h5_checked)
    elif WEIGHTS_NPZ not in members:
        findings.append(Finding("warning", WEIGHTS_H5, "missing: the archive stores no weights"))
    return CheckReport(path=str(path), format=FORMAT, checked=checked, findings=tuple(findings))
