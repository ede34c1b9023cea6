"""Detection of the TF1-era files: V1 checkpoints, MetaGraphDef ``.meta``, frozen GraphDefs.

A V1 checkpoint is a table file (ends in the sstable magic number) that is not a ``.index``;
its name is free (``model.ckpt``, ``export``, ``model.ckpt-00000-of-00002``). A GraphDef and a
SavedModel message are told apart by their first field: a GraphDef starts with its nodes
(field 1, bytes: tag ``0x0a``), a SavedModel with its schema version (field 1, varint: ``0x08``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError, TFModelKitError
from .checkpoint_v1 import is_v1_file, shard_files, state_target

#: First bytes of a GraphDef: node (1), library (2) or versions (4), all length-delimited.
_GRAPHDEF_TAGS = (0x0A, 0x12, 0x22)


def v1_shards_named(p: Path) -> bool:
    """``p`` is a V1 prefix whose shard files exist, or a ``-?????-of-0000N`` pattern of them."""
    if not p.parent.is_dir():
        return False
    try:
        return is_v1_file(shard_files(p)[0])
    except (TFModelKitError, OSError):  # a refusal means "not this format"; the reader says why
        return False


def v1_state_target(folder: Path) -> bool:
    """A folder whose ``checkpoint`` state file names a V1 checkpoint (TF Serving's old exports)."""
    target = state_target(folder)
    if target is None:
        return False
    if target.is_file():
        return is_v1_file(target)
    return v1_shards_named(target) and not Path(str(target) + ".index").is_file()


def sniff_tf1(p: Path, head: bytes) -> str | None:
    """``checkpoint_v1``, ``metagraph`` or ``graphdef`` for a file that is one, else None."""
    suffix = p.suffix.lower()
    if suffix == ".meta":
        return "metagraph"
    if suffix == ".pbtxt":
        with open(p, "rb") as f:
            text = f.read(4096)
        if b"meta_graphs" in text or b"saved_model_schema_version" in text:
            raise FormatError(
                f"{p}: a text SavedModel outside its folder; name it saved_model.pbtxt in a folder"
            )
        return "metagraph" if b"meta_info_def" in text else "graphdef"
    if suffix == ".pb" and head:
        if head[0] == 0x08:
            raise FormatError(
                f"{p}: a SavedModel protobuf outside its folder; put it in a folder as saved_model.pb"
            )
        if head[0] in _GRAPHDEF_TAGS:
            return "graphdef"
    if is_v1_file(p):
        return "checkpoint_v1"
    return None
