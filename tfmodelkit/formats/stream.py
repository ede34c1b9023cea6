"""A stored tensor's bytes in fixed-size chunks, in bounded memory, at the speed of the disk.

Large ranges are memory-mapped and handed out as numpy views of the map (no copy). Once a
chunk has been used its pages are released from the process (``madvise(MADV_DONTNEED)``:
the kernel keeps them in its page cache, they just stop counting as our resident memory),
so reading a 10 GB file costs about one chunk of memory. Small ranges take one ``pread``.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CorruptFileError, NotFoundError

if TYPE_CHECKING:
    import numpy as np

#: Bytes per chunk handed to checksums and statistics.
CHUNK_BYTES = 16 << 20
#: Ranges below this are read with one pread instead of being memory-mapped.
SMALL_BYTES = 64 << 10

_PAGE = mmap.PAGESIZE
_CAN_DROP = hasattr(mmap.mmap, "madvise") and hasattr(mmap, "MADV_DONTNEED")
_CAN_PREFETCH = hasattr(mmap.mmap, "madvise") and hasattr(mmap, "MADV_WILLNEED")
#: How far ahead of the chunk being read the kernel is asked to read.
PREFETCH_BYTES = 32 << 20
_PREFETCH_PIECE = 1 << 20


class MappedFile:
    """A file memory-mapped whole, read range by range with bounded resident memory.

    Mapping costs address space, not memory: pages are faulted in as a range is read and
    released again (``MADV_DONTNEED``) once its consumer asks for the next chunk.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import numpy as np

        self.path = path
        try:
            with open(path, "rb", buffering=0) as f:
                self.size = os.fstat(f.fileno()).st_size
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no such file") from None
        except OSError as e:
            raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
        self._ahead = 0  # bytes before this were already announced to the kernel
        # Chunks are views of this array; the map lives until the last of them is dropped.
        self._view = np.frombuffer(self._mm, dtype=np.uint8) if self._mm is not None else None

    def chunks(
        self, offset: int, nbytes: int, max_bytes: int = CHUNK_BYTES, label: str | None = None
    ) -> Iterator[np.ndarray]:
        """``nbytes`` bytes at ``offset`` as flat uint8 views of at most ``max_bytes``."""
        if offset < 0 or nbytes < 0:
            raise CorruptFileError(f"{label or self.path}: negative offset or size")
        try:  # a file truncated since it was mapped would raise SIGBUS on access
            size = min(self.size, os.stat(self.path).st_size)
        except OSError:
            size = 0
        if offset + nbytes > size:
            raise CorruptFileError(
                f"{label or self.path}: needs bytes {offset}..{offset + nbytes} "
                f"but {Path(self.path).name} has {size} (truncated?)"
            )
        if nbytes == 0 or self._view is None or self._mm is None:
            return
        mm, view = self._mm, self._view
        step = max(1, int(max_bytes))
        end = offset + nbytes
        dropped = offset - offset % _PAGE
        try:
            for pos in range(offset, end, step):
                stop = min(pos + step, end)
                self._prefetch(pos, stop)
                yield view[pos:stop]
                upto = stop - stop % _PAGE
                if _CAN_DROP and upto > dropped:
                    mm.madvise(mmap.MADV_DONTNEED, dropped, upto - dropped)
                    dropped = upto
        finally:
            # The partial last page too: a neighbour that needs it faults it back in.
            upto = min(end + (-end) % _PAGE, len(mm))
            if _CAN_DROP and upto > dropped and not mm.closed:
                mm.madvise(mmap.MADV_DONTNEED, dropped, upto - dropped)

    def _prefetch(self, pos: int, stop: int) -> None:
        """Ask the kernel to start reading the chunk and what follows it in the file.

        Page faults on a map read synchronously, a window at a time; announcing the next
        :data:`PREFETCH_BYTES` lets a cold disk work while the chunk is being checksummed
        (``check`` reads in file order). Pages already cached make this nearly free.
        """
        if not _CAN_PREFETCH or self._mm is None:
            return
        want = min(stop + PREFETCH_BYTES, self.size)
        start = max(self._ahead, pos)
        if start >= want or want - start < min(4 << 20, self.size - start):  # batch small steps
            return
        start -= start % _PAGE
        # The kernel reads at most its readahead size per call: announce the window piecewise.
        for at in range(start, want, _PREFETCH_PIECE):
            self._mm.madvise(mmap.MADV_WILLNEED, at, min(_PREFETCH_PIECE, want - at))
        self._ahead = want

    def close(self) -> None:
        self._view = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a chunk is still referenced; the map closes with it
                pass


def byte_chunks(
    path: str | os.PathLike[str],
    offset: int,
    nbytes: int,
    max_bytes: int = CHUNK_BYTES,
    label: str | None = None,
) -> Iterator[np.ndarray]:
    """``nbytes`` bytes at ``offset`` of ``path`` as flat uint8 arrays of at most ``max_bytes``.

    A chunk stays valid after the next one is produced (its pages fault back in from the
    page cache), but holding on to chunks defeats the point. Small ranges take one pread.
    """
    import numpy as np

    label = label or str(path)
    if nbytes >= SMALL_BYTES:
        yield from MappedFile(path).chunks(offset, nbytes, max_bytes, label)
        return
    if offset < 0 or nbytes < 0:
        raise CorruptFileError(f"{label}: negative offset or size")
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if offset + nbytes > size:
                raise CorruptFileError(
                    f"{label}: needs bytes {offset}..{offset + nbytes} but {Path(path).name} has {size} (truncated?)"
                )
            data = os.pread(f.fileno(), nbytes, offset) if nbytes else b""
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except OSError as e:
        raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) != nbytes:
        raise CorruptFileError(f"{label}: the file shrank while being read")
    whole = np.frombuffer(data, dtype=np.uint8)
    step = max(1, int(max_bytes))
    for pos in range(0, nbytes, step):
        yield whole[pos : pos + step]


def typed_chunks(
    source: str | os.PathLike[str] | MappedFile,
    offset: int,
    nbytes: int,
    dtype: np.dtype,
    max_bytes: int = CHUNK_BYTES,
    label: str | None = None,
) -> Iterator[np.ndarray]:
    """The values stored at ``offset`` of a file as flat arrays of ``dtype`` in native byte order.

    ``nbytes`` must be a multiple of the item size (callers check sizes against shapes).
    """
    import numpy as np

    dt = np.dtype(dtype)
    item = max(dt.itemsize, 1)
    step = max(item, max_bytes - max_bytes % item)
    swap = not dt.isnative
    if isinstance(source, MappedFile):
        raws = source.chunks(offset, nbytes, step, label)
    else:
        raws = byte_chunks(source, offset, nbytes, step, label)
    for raw in raws:
        values = raw.view(dt)
        yield values.astype(dt.newbyteorder("=")) if swap else values


def flat_chunks(array: np.ndarray, max_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """An in-memory (or memory-mapped) array as flat chunks of at most ``max_bytes``."""
    flat = array.reshape(-1)
    step = max(1, max_bytes // max(flat.itemsize, 1))
    for start in range(0, flat.size, step):
        yield flat[start : start + step]
