"""The HTML reports rendered in headless Chromium, and what the tests read back: the
screenshot's pixels (a PNG decoder of our own) and the share of them in a colour."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")


def screenshot(page: Path, tmp_path: Path, height: int) -> np.ndarray:
    """``page`` rendered by headless Chromium in a 1200 x ``height`` window, as (height, width, 3)
    int16 RGB. Skips without Chromium, and fails instead when CI is set (CI must install it)."""
    if not CHROMIUM.exists():
        if ci():
            pytest.fail(f"{CHROMIUM} is missing but CI is set: CI must install Chromium (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", f"--window-size=1200,{height}",
        page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return read_png(shot)[:, :, :3].astype(np.int16)


def colour_share(pixels: np.ndarray, colour: str, tolerance: int) -> float:
    """The share of ``pixels`` (..., 3) within ``tolerance`` of ``colour`` (``#rrggbb``) in every channel."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    flat = pixels.reshape(-1, 3)
    return float(np.all(np.abs(flat - rgb) <= tolerance, axis=1).mean())


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG into (height, width, channels) uint8.

    Rows are unfiltered one anti-diagonal of pixels at a time: a pixel depends only on its left,
    upper and upper-left neighbours, so every pixel of a diagonal can be computed together.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, 1 + width * channels)
    filters = raw[:, 0].astype(np.int16)
    filtered = raw[:, 1:].reshape(height, width, channels).astype(np.int16)
    out = np.zeros((height + 1, width + 1, channels), np.int16)  # a zero row and column in front
    for diagonal in range(height + width - 1):
        rows = np.arange(max(0, diagonal - width + 1), min(height - 1, diagonal) + 1)
        cols = diagonal - rows
        left, up, up_left = out[rows + 1, cols], out[rows, cols + 1], out[rows, cols]
        kind = filters[rows][:, None]
        predictor = np.select(
            [kind == 1, kind == 2, kind == 3, kind == 4],
            [left, up, (left + up) // 2, paeth(left, up, up_left)],
            0,
        )
        out[rows + 1, cols + 1] = (filtered[rows, cols] + predictor) & 0xFF
    return out[1:, 1:].astype(np.uint8)
