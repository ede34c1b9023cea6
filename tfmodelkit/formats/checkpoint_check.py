"""Integrity check of a checkpoint: shards present and large enough, every tensor's
crc32c as TensorFlow computes it, sizes consistent with shapes, slices that tile their tensor.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..description import CheckReport, Finding
from ..dtypes import NON_NUMERIC, element_bytes
from ..errors import CorruptFileError, NotFoundError, UnsupportedError
from . import sstable
from .checkpoint_bundle import Entry, Index, Shards, read_index, resolve, slice_regions, string_lengths

#: Called as ``progress(bytes_done, bytes_total)`` while tensor bytes are read.
ProgressFn = Callable[[int, int], None]


def entry_crc(shards: Shards, e: Entry, advance: Callable[[int], None] | None = None) -> int:
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
    except CorruptFileError as e:
        # An index that is recognisably one but damaged (truncated, a bad block): damage found,
        # exit 1. One that cannot be read, or is no index at all, stays an error (exit 2).
        return CheckReport(str(resolved.prefix), "checkpoint", {}, (Finding("error", "index", str(e)),))
    shards = Shards(index)
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
                slice_regions(full)
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


def _shard_findings(index: Index, shards: Shards, missing: list[int], parts: list[Entry]) -> list[Finding]:
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


def _check_entry(shards: Shards, e: Entry, advance: Callable[[int], None] | None = None) -> str | None:
    if e.dtype not in NON_NUMERIC:
        try:
            expected = e.count * element_bytes(e.dtype)  # a table: no numpy, no ml_dtypes
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
