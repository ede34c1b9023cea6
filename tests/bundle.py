"""A minimal tensor-bundle (checkpoint V2) writer for tests, from docs/FORMATS.md §1.

Writes one data shard and an index sstable with a single data block. Tensors are numpy
arrays; a partitioned tensor is a list of row blocks, each stored as its own slice entry.
Enough to make large checkpoints in a test without TensorFlow.
"""

from __future__ import annotations

import struct
from pathlib import Path

import google_crc32c
import numpy as np

from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb
from tfmodelkit.formats.sstable import MAGIC, mask_crc

DTYPES = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int64": 9, "bfloat16": 14, "float16": 19}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ordered(v: int) -> bytes:
    """OrderedCode's signed number, for the non-negative values slice keys hold."""
    for n in range(1, 8):
        bits = 8 * n - (n + 1)
        if v < (1 << bits):
            return (v | (((1 << n) - 1) << (8 * n - n))).to_bytes(n, "big")
    raise ValueError(v)


def slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    escaped = name.encode().replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff")
    rank = len(extents).to_bytes(1, "big")
    key = b"\x00" + escaped + b"\x00\x01" + bytes([len(rank)]) + rank
    for start, length in extents:
        key += _ordered(start) + _ordered(length)
    return key


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)


def _put_block(out: bytearray, contents: bytes) -> tuple[int, int]:
    offset = len(out)
    out += contents + b"\x00"
    out += struct.pack("<I", mask_crc(google_crc32c.value(contents + b"\x00")))
    return offset, len(contents)


def _entry(dtype: str, shape: tuple[int, ...], offset: int = 0, data: bytes = b"") -> pb.BundleEntryProto:
    e = pb.BundleEntryProto(dtype=DTYPES[dtype], shard_id=0, offset=offset, size=len(data))
    e.shape.dim.extend(pb.TensorShapeProto.Dim(size=d) for d in shape)
    if data:
        e.crc32c = mask_crc(google_crc32c.value(data))
    return e


def write_checkpoint(prefix: Path, tensors: dict[str, np.ndarray | list[np.ndarray]]) -> Path:
    """Write ``tensors`` (name -> array, or name -> row blocks of a partitioned tensor)."""
    prefix = Path(prefix)
    records: dict[bytes, bytes] = {}
    header = pb.BundleHeaderProto(num_shards=1)
    header.version.producer = 1
    records[b""] = header.SerializeToString()
    with open(f"{prefix}.data-00000-of-00001", "wb") as data:
        offset = 0

        def put(arr: np.ndarray) -> tuple[int, bytes]:
            nonlocal offset
            raw = np.ascontiguousarray(arr).tobytes()
            data.write(raw)
            at, offset = offset, offset + len(raw)
            return at, raw

        for name, value in tensors.items():
            if isinstance(value, list):
                rows = sum(b.shape[0] for b in value)
                shape = (rows, *value[0].shape[1:])
                full = _entry(value[0].dtype.name, shape)
                start = 0
                for block in value:
                    extents = [(start, block.shape[0])] + [(0, d) for d in block.shape[1:]]
                    s = full.slices.add()
                    for a, n in extents:
                        s.extent.add(start=a, length=n)
                    at, raw = put(block)
                    records[slice_key(name, extents)] = _entry(
                        block.dtype.name, block.shape, at, raw
                    ).SerializeToString()
                    start += block.shape[0]
                records[name.encode()] = full.SerializeToString()
            else:
                at, raw = put(value)
                records[name.encode()] = _entry(value.dtype.name, value.shape, at, raw).SerializeToString()
    keys = sorted(records)
    out = bytearray()
    data_handle = _put_block(out, _block([(k, records[k]) for k in keys]))
    meta_handle = _put_block(out, _block([]))
    index_handle = _put_block(out, _block([(keys[-1], _varint(data_handle[0]) + _varint(data_handle[1]))]))
    footer = (
        _varint(meta_handle[0])
        + _varint(meta_handle[1])
        + _varint(index_handle[0])
        + _varint(index_handle[1])
    )
    out += footer.ljust(40, b"\x00") + struct.pack("<II", MAGIC & 0xFFFFFFFF, MAGIC >> 32)
    Path(f"{prefix}.index").write_bytes(bytes(out))
    return prefix
