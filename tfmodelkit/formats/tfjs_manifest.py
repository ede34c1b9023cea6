"""A TF.js model's ``model.json`` and the weight shards its ``weightsManifest`` lists.

The manifest is a list of groups ``{"paths": [shard, ...], "weights": [entry, ...]}``. A
group's shards are one byte stream cut into files: the weights of the group lie in it back to
back, in manifest order, with no padding. An entry is ``{"name", "shape", "dtype"}`` plus an
optional ``"quantization": {"dtype": "uint8"|"uint16"|"float16", "min", "scale",
"original_dtype"}``: the stored bytes are then of the quantization dtype and the value is
``q * scale + min`` (float16: the half-precision value). ``string`` weights hold, per element,
a uint32 little-endian byte length and the bytes.

Nothing is trusted: every path must stay inside the model's folder, every shape is bounded by
the bytes the shards hold before anything is allocated, and a string weight's lengths are
checked one by one against what is left.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError

#: model.json larger than this is refused before it is parsed (real ones are KBs to a few MB).
MAX_MODEL_JSON = 256 << 20
MAX_RANK = 32
#: Bytes per element of the dtypes a manifest may name (stored dtype; strings vary).
ITEMSIZE = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8, "uint8": 1, "uint16": 2, "float16": 2}
WEIGHT_DTYPES = ("float32", "int32", "bool", "complex64", "string")
QUANT_DTYPES = ("uint8", "uint16", "float16")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

if TYPE_CHECKING:  # numpy is imported when values are read: a listing never pays for it
    import numpy as np


@dataclass
class Shard:
    path: str  # as the manifest spells it
    file: Path
    size: int | None  # None: missing


@dataclass
class Group:
    index: int
    shards: list[Shard]

    @property
    def present(self) -> bool:
        return all(s.size is not None for s in self.shards)

    @property
    def nbytes(self) -> int:
        return sum(s.size or 0 for s in self.shards)

    def read(self, start: int, stop: int) -> bytearray:
        """Bytes ``[start, stop)`` of the group's stream (the caller checked the bounds), read
        straight into one buffer (no copies: 48 MiB of shards read in tens of ms, not hundreds)."""
        out = bytearray(stop - start)
        view = memoryview(out)
        done = 0
        base = 0
        for s in self.shards:
            size = s.size or 0
            lo, hi = max(start, base), min(stop, base + size)
            if lo < hi:
                with open(s.file, "rb", buffering=0) as f:
                    f.seek(lo - base)
                    while done < hi - start:
                        n = f.readinto(view[done : hi - start])
                        if not n:
                            break
                        done += n
            base += size
            if base >= stop:
                break
        if done != stop - start:
            raise CorruptFileError(f"{self.shards[0].file.parent}: a weight shard changed while it was read")
        return out


@dataclass
class Entry:
    """One weight of the manifest, placed in its group's byte stream."""

    name: str
    dtype: str  # the value's dtype (the original one for quantized weights)
    shape: tuple[int, ...]
    stored: str  # dtype of the stored bytes
    quant: dict[str, Any] | None
    group: int
    offset: int
    nbytes: int  # stored bytes; for strings, known once the lengths were walked
    #: Problem with this weight's bytes (outside its shards, shard missing), or None.
    problem: str | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Manifest:
    model_json: Path
    document: dict[str, Any]
    groups: list[Group] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    #: Integrity problems ``(subject, message)``: read() raises on the first, check() lists them.
    problems: list[tuple[str, str]] = field(default_factory=list)


def resolve(path: str | os.PathLike[str]) -> Path:
    """The ``model.json`` of ``path`` (the file itself, or the one in a folder)."""
    p = Path(path)
    if p.is_dir():
        found = p / "model.json"
        if not found.is_file():
            raise NotFoundError(f"{p}: a folder without model.json; point at a TF.js model.json or its folder")
        return found
    if not p.exists():
        raise NotFoundError(f"{p}: no such file")
    return p


def load_document(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """``(model.json path, parsed document)``, refusing what is not a TF.js model."""
    model_json = resolve(path)
    try:
        size = model_json.stat().st_size
        if size > MAX_MODEL_JSON:
            raise CorruptFileError(
                f"{model_json}: {size} bytes, more than the {MAX_MODEL_JSON >> 20} MiB a TF.js model.json may have here"
            )
        text = model_json.read_bytes()
    except OSError as e:
        raise NotFoundError(f"{model_json}: cannot read ({e.strerror})") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{model_json}: not JSON, so not a TF.js model.json ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict) or not ("modelTopology" in doc or "weightsManifest" in doc):
        raise FormatError(f"{model_json}: JSON without modelTopology or weightsManifest: not a TF.js model.json")
    return model_json, doc


def _shard_file(folder: Path, rel: Any, where: Path) -> Path:
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise CorruptFileError(f"{where}: weightsManifest has a shard path that is not a file name: {rel!r}")
    parts = rel.replace("\\", "/").split("/")
    if rel.startswith(("/", "\\")) or _SCHEME.match(rel) or ".." in parts:
        raise CorruptFileError(
            f"{where}: weightsManifest names the shard {rel!r}, outside the model's folder; refusing to read it"
        )
    file = folder / Path(*[p for p in parts if p not in ("", ".")])
    try:
        file.resolve().relative_to(folder.resolve())
    except ValueError:
        raise CorruptFileError(f"{where}: shard {rel!r} leads outside the model's folder (a link); refusing to read it") from None
    return file


def _shape(raw: Any, name: str, where: Path) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_RANK:
        raise CorruptFileError(f"{where}: weight {name!r} has shape {str(raw)[:60]}, not a list of at most {MAX_RANK} dims")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise CorruptFileError(f"{where}: weight {name!r} has shape {str(raw)[:60]}: dims must be non-negative integers")
    return tuple(raw)


def _quant(raw: Any, name: str, dtype: str, where: Path) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("dtype") not in QUANT_DTYPES:
        got = raw.get("dtype") if isinstance(raw, dict) else raw
        raise UnsupportedError(
            f"{where}: weight {name!r} is quantized as {str(got)[:40]!r}; TF.js quantization is one of {', '.join(QUANT_DTYPES)}"
        )
    if dtype != "float32" and raw["dtype"] == "float16":
        raise CorruptFileError(f"{where}: weight {name!r} is {dtype} but quantized as float16")
    q = {"dtype": raw["dtype"], "original_dtype": raw.get("original_dtype", dtype)}
    if raw["dtype"] != "float16":
        for key in ("min", "scale"):
            v = raw.get(key)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise CorruptFileError(f"{where}: weight {name!r} is quantized to {raw['dtype']} without a finite {key}")
            q[key] = float(v)
    return q


def _entries(group_doc: dict[str, Any], gi: int, where: Path) -> list[Entry]:
    weights = group_doc.get("weights")
    if not isinstance(weights, list):
        raise CorruptFileError(f"{where}: weightsManifest group {gi} has no weights list")
    out = []
    for raw in weights:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise CorruptFileError(f"{where}: weightsManifest group {gi} has an entry without a name")
        name = raw["name"]
        dtype = raw.get("dtype", "float32")
        if dtype not in WEIGHT_DTYPES:
            raise UnsupportedError(f"{where}: weight {name!r} has dtype {str(dtype)[:30]!r}; TF.js weights are {', '.join(WEIGHT_DTYPES)}")
        shape = _shape(raw.get("shape"), name, where)
        quant = _quant(raw.get("quantization"), name, dtype, where)
        stored = quant["dtype"] if quant else dtype
        nbytes = -1 if stored == "string" else math.prod(shape) * ITEMSIZE[stored]
        out.append(Entry(name, dtype, shape, stored, quant, gi, 0, nbytes))
    return out


def _place(entries: list[Entry], group: Group, problems: list[tuple[str, str]], where: Path) -> None:
    """Give each weight its offset, bounded by the bytes its group's shards hold."""
    total = group.nbytes
    offset = 0
    for e in entries:
        e.offset = offset
        if not group.present:
            e.problem = f"its shard {next(s.path for s in group.shards if s.size is None)} is missing"
            if e.nbytes < 0:
                return  # a string's size needs its bytes: the rest of the group is unplaced
            offset += e.nbytes
            continue
        if e.nbytes < 0:
            e.nbytes = _string_bytes(e, group, total, where)
        if offset + e.nbytes > total:
            e.problem = (
                f"needs bytes {offset}..{offset + e.nbytes} of its group, but the shards hold {total}"
            )
            problems.append((e.name, f"{e.problem}; the manifest and the shards disagree (truncated or wrong files)"))
            for rest in entries[entries.index(e) + 1 :]:
                rest.problem = "after a weight that runs past the shards"
                rest.offset = offset
                rest.nbytes = max(rest.nbytes, 0)
            return
        offset += e.nbytes
    if group.present and offset != total:
        problems.append(
            (f"group {group.index}", f"the shards hold {total} bytes but the manifest's weights need {offset}")
        )


#: Bytes read at a time while a string weight's lengths are walked.
_WALK_CHUNK = 1 << 16


def _string_bytes(e: Entry, group: Group, total: int, where: Path) -> int:
    """A string weight's stored size: its element lengths walked, read a chunk at a time."""
    pos = e.offset
    buf, buf_start = bytearray(), pos
    for _ in range(e.size):
        if pos + 4 > total:
            return total - e.offset + 4  # runs past the end: reported by the caller
        if pos + 4 > buf_start + len(buf):
            buf_start = pos
            buf = group.read(pos, min(total, pos + _WALK_CHUNK))
        length = int.from_bytes(buf[pos - buf_start : pos - buf_start + 4], "little")
        pos += 4 + length
        if pos > total:
            return pos - e.offset
    return pos - e.offset


def parse(path: str | os.PathLike[str]) -> Manifest:
    """The model.json and its manifest, every weight placed; integrity problems collected."""
    model_json, doc = load_document(path)
    folder = model_json.parent
    m = Manifest(model_json, doc)
    groups = doc.get("weightsManifest", [])
    if not isinstance(groups, list):
        raise CorruptFileError(f"{model_json}: weightsManifest is not a list of groups")
    seen: set[str] = set()
    for gi, g in enumerate(groups):
        if not isinstance(g, dict) or not isinstance(g.get("paths"), list):
            raise CorruptFileError(f"{model_json}: weightsManifest group {gi} has no paths list")
        shards = []
        for rel in g["paths"]:
            file = _shard_file(folder, rel, model_json)
            size = file.stat().st_size if file.is_file() else None
            if size is None:
                m.problems.append((rel, f"shard missing (weightsManifest group {gi} lists it)"))
            shards.append(Shard(rel, file, size))
        group = Group(gi, shards)
        entries = _entries(g, gi, model_json)
        if entries and not shards:
            raise CorruptFileError(f"{model_json}: weightsManifest group {gi} has weights but no shard paths")
        _place(entries, group, m.problems, model_json)
        for e in entries:
            if e.name in seen:
                m.problems.append((e.name, "named twice in the weightsManifest (TF.js keeps the last)"))
            seen.add(e.name)
        m.groups.append(group)
        m.entries.extend(entries)
    return m


def load_values(group: Group, e: Entry) -> np.ndarray:
    """The weight's values, dequantized to its original dtype."""
    import numpy as np

    if e.problem is not None:
        raise CorruptFileError(f"{group.shards[0].file.parent}: weight {e.name!r} cannot be read: {e.problem}")
    raw = group.read(e.offset, e.offset + e.nbytes)
    if e.stored == "string":
        items = []
        pos = 0
        for _ in range(e.size):
            n = int.from_bytes(raw[pos : pos + 4], "little")
            items.append(bytes(raw[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr.reshape(e.shape)
    stored = {"bool": np.bool_}.get(e.stored, np.dtype(e.stored).newbyteorder("<"))
    values = np.frombuffer(raw, dtype=stored).reshape(e.shape)
    if e.quant is None:  # the buffer is the array's own: no copy on a little-endian machine
        return values.astype(values.dtype.newbyteorder("="), copy=False)
    if e.stored == "float16":
        return values.astype(np.float32)
    with np.errstate(all="ignore"):  # a huge scale overflows to inf, as it does in TF.js
        real = values.astype(np.float64) * e.quant["scale"] + e.quant["min"]
        if e.dtype == "int32":  # TF.js rounds dequantized integers
            return np.round(real).astype(np.int32)
        return real.astype(np.float32)
