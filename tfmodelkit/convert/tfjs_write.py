"""Writing a TF.js model's files, shared by the layers-model and graph-model writers: options,
the destination folder, weight encoding (with quantization) and the shards."""

from __future__ import annotations

import fnmatch
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError, UserError
from ..verify.runners.tfjs import TFJSUnavailable, find_tfjs
from .base import VerifyOptions

DEFAULT_SHARD_SIZE = 4 * 1024 * 1024
QUANTIZE = ("none", "float16", "uint8", "uint16")


def destination_folder(dst: str | os.PathLike[str]) -> Path:
    """The model folder: ``DST/model.json`` names its folder ``DST``; any other path is the folder."""
    p = Path(dst)
    return p.parent if p.name == "model.json" else p


def quantize_array(value: np.ndarray, dtype: str) -> tuple[bytes, dict[str, Any], np.ndarray]:
    """``(stored bytes, manifest quantization, dequantized float32 values)``.

    uint8/uint16: the range [min, max] is widened to hold 0 and nudged so that 0 is a level
    exactly (padding and zero biases stay zero); ``q = round((w - min) / scale)``."""
    v = np.asarray(value, dtype=np.float32)
    if dtype == "float16":
        half = v.astype("<f2")
        return half.tobytes(), {"dtype": "float16", "original_dtype": "float32"}, half.astype(np.float32)
    levels = 255 if dtype == "uint8" else 65535
    lo, hi = (min(float(v.min()), 0.0), max(float(v.max()), 0.0)) if v.size else (0.0, 0.0)
    scale = (hi - lo) / levels if hi > lo else 1.0
    zero = round(-lo / scale)
    lo = -zero * scale
    q = np.clip(np.round((v.astype(np.float64) - lo) / scale), 0, levels).astype("<u1" if dtype == "uint8" else "<u2")
    back = (q.astype(np.float64) * scale + lo).astype(np.float32)
    return q.tobytes(), {"dtype": dtype, "min": lo, "scale": scale, "original_dtype": "float32"}, back


def string_bytes(value: np.ndarray) -> bytes:
    """A string weight as TF.js stores it (``tf.io.encodeWeights``): per element, in row-major
    order, its byte length as a uint32 little-endian, then its bytes (str elements as UTF-8)."""
    out = bytearray()
    for item in np.asarray(value, dtype=object).reshape(-1):
        raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if len(raw) >= 1 << 32:
            raise UnsupportedError("a string element of 4 GiB or more: TF.js stores lengths as uint32")
        out += len(raw).to_bytes(4, "little") + raw
    return bytes(out)


def encode_weights(
    weights: list[tuple[str, np.ndarray]], quantize: str, patterns: Sequence[str]
) -> tuple[list[dict[str, Any]], bytes, dict[str, np.ndarray], list[str]]:
    entries, blobs, dequantized, quantized = [], [], {}, []
    for name, value in weights:
        if value.dtype.kind in "OSU":
            entries.append({"name": name, "shape": list(value.shape), "dtype": "string"})
            blobs.append(string_bytes(value))
            continue
        dtype = {"float32": "float32", "int32": "int32", "bool": "bool"}.get(value.dtype.name)
        if dtype is None:
            if value.dtype.kind != "f":
                raise UnsupportedError(f"weight {name} is {value.dtype.name}; TF.js weights are float32, int32, bool or string")
            value, dtype = value.astype(np.float32), "float32"
        entry: dict[str, Any] = {"name": name, "shape": list(value.shape), "dtype": dtype}
        chosen = quantize != "none" and dtype == "float32" and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns))
        if chosen:
            raw, entry["quantization"], dequantized[name] = quantize_array(value, quantize)
            quantized.append(name)
        else:
            raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        entries.append(entry)
        blobs.append(raw)
    return entries, b"".join(blobs), dequantized, quantized


def write_model(folder: Path, model_json: dict[str, Any], entries: list[dict[str, Any]], data: bytes, shard_size: int) -> list[int]:
    """model.json and ``group1-shard<i>of<n>.bin`` files in ``folder``; the shard sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    count = max(1, math.ceil(len(data) / shard_size))
    paths, sizes = [], []
    for i in range(count):
        name = f"group1-shard{i + 1}of{count}.bin"
        chunk = data[i * shard_size : (i + 1) * shard_size]
        (folder / name).write_bytes(chunk)
        paths.append(name)
        sizes.append(len(chunk))
    doc = {**model_json, "weightsManifest": [{"paths": paths, "weights": entries}]}
    (folder / "model.json").write_text(json.dumps(doc))
    return sizes


def check_options(shard_size: int, quantize: str, patterns: Sequence[str]) -> None:
    if shard_size < 1:
        raise UserError(f"--shard-size {shard_size}: give a positive number of bytes")
    if quantize not in QUANTIZE:
        raise UserError(f"--quantize {quantize!r}: TF.js weights quantize to {', '.join(q for q in QUANTIZE if q != 'none')}")
    if patterns and quantize == "none":
        raise UserError("--quantize-weights chooses which weights --quantize applies to; give --quantize too")


def require_tfjs(options: VerifyOptions) -> None:
    """Node and TF.js, when the result is to be verified: checked before anything loads or is written."""
    if options.enabled:
        try:
            find_tfjs()
        except TFJSUnavailable as e:
            raise TFJSUnavailable(f"{e}; or convert with --no-verify, and the result is not proven") from None
