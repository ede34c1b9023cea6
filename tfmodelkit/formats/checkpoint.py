"""Checkpoints (TensorFlow's tensor bundle, "V2"): ``P.index`` + ``P.data-0000K-of-0000N``.

The index is an sstable (see :mod:`.sstable`) mapping each tensor name to a
``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c). Partitioned variables
have a full-name entry listing their slices, and one hidden entry per slice whose key is
an "ordered code" (docs/FORMATS.md §1). Values are read lazily from the data shards.

The bundle itself is read by :mod:`.checkpoint_bundle`, tensor roles come from
:mod:`.checkpoint_graph`, and :func:`check` lives in :mod:`.checkpoint_check`; this module
describes a checkpoint and assembles partitioned tensors from their slices.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..description import ModelDescription, Producer, Weight
from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, TFModelKitError
from . import stream
from .checkpoint_bundle import (
    Entry,
    Index,
    Resolved,
    Shards,
    decode_slice_key,
    entry_chunks,
    prefixes,
    read_entry,
    read_index,
    resolve,
    row_blocks,
    slice_regions,
    string_lengths,
)
from .checkpoint_check import ProgressFn, check
from .checkpoint_graph import OBJECT_GRAPH_KEY, object_graph, object_paths, role

if TYPE_CHECKING:
    import numpy as np

#: The reader's public names, with those of the bundle, graph and check modules that callers
#: use, so that one import serves them.
__all__ = [
    "OBJECT_GRAPH_KEY",
    "Entry",
    "Index",
    "ProgressFn",
    "Resolved",
    "check",
    "decode_slice_key",
    "describe_index",
    "guarded",
    "object_graph",
    "object_paths",
    "partitioned_chunks",
    "prefixes",
    "read",
    "read_index",
    "resolve",
    "string_lengths",
]


def _assemble(shards: Shards, e: Entry, big_endian: bool) -> np.ndarray:
    """Build a partitioned tensor's full value from its slices."""
    import numpy as np

    dt = np.dtype(object) if e.dtype == "string" else numpy_dtype(e.dtype)
    out = np.empty(e.shape, dtype=dt)
    for index, part in slice_regions(e):
        out[index] = read_entry(shards, part, big_endian)
    return out


def partitioned_chunks(
    shards: Shards, e: Entry, big_endian: bool, max_bytes: int, ordered: bool
) -> Iterator[np.ndarray]:
    """A partitioned entry's values slice by slice, where the slices lie.

    ``ordered`` asks for row-major order: free when the slices are blocks of rows, else the
    tensor is assembled first.
    """
    regions = slice_regions(e)
    if ordered:
        parts = row_blocks(e, regions)
        if parts is None:
            yield from stream.flat_chunks(_assemble(shards, e, big_endian), max_bytes)
            return
    else:
        parts = sorted((part for _, part in regions), key=lambda p: (p.shard, p.offset))
    for part in parts:
        yield from entry_chunks(shards, part, big_endian, max_bytes)


def describe_index(index: Index, path: str, notes: tuple[str, ...] = ()) -> ModelDescription:
    """The description of an already parsed index (also used for SavedModel variables)."""
    graph = object_graph(index)
    key_to_name: dict[str, str] = {}
    optimizer_keys: set[str] = set()
    root_children: list[str] = []
    if graph is not None:
        key_to_name, optimizer_keys, root_children = object_paths(graph)
    shards = Shards(index)
    weights = []
    for name in sorted(index.entries):
        e = index.entries[name]
        if e.partitioned:
            location = f"{len(e.slices)} slices in " + ", ".join(
                sorted({shards.path(p.shard).name for _, p in e.slices})
            )
            nbytes = sum(p.size for _, p in e.slices)

            def loader(e: Entry = e) -> np.ndarray:
                return guarded(index.prefix, lambda: _assemble(shards, e, index.big_endian))

            def chunker(max_bytes: int, ordered: bool, e: Entry = e) -> Iterator[np.ndarray]:
                return _guarded_iter(index.prefix, partitioned_chunks(shards, e, index.big_endian, max_bytes, ordered))

        else:
            location = f"{shards.path(e.shard).name} @ {e.offset}"
            nbytes = e.size

            def loader(e: Entry = e) -> np.ndarray:
                return guarded(index.prefix, lambda: read_entry(shards, e, index.big_endian))

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
                role=role(name, optimizer_keys, graph is not None),
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
    """Describe the checkpoint ``path`` means (a prefix, its index or data file, a folder)."""
    resolved = resolve(path)
    index = guarded(resolved.prefix, lambda: read_index(resolved.prefix))
    desc = guarded(resolved.prefix, lambda: describe_index(index, str(resolved.prefix), resolved.notes))
    if desc.metadata["kind"].startswith("name-based"):  # a TF1 Saver's: P.meta may be beside it
        from .metagraph_variables import with_graph_beside

        return with_graph_beside(desc, resolved.prefix)
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


def guarded(prefix: Path, fn: Any) -> Any:
    """Run ``fn``; protobuf, numpy and OS errors on damaged files become our errors."""
    try:
        return fn()
    except (TFModelKitError, *_DAMAGE) as e:
        raise _naming_file(prefix, e) from None


def _guarded_iter(prefix: Path, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``chunks``, with the errors of ``guarded``."""
    try:
        yield from chunks
    except (TFModelKitError, *_DAMAGE) as e:
        raise _naming_file(prefix, e) from None
