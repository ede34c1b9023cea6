"""Run one (possibly damaged) model through everything a user can ask of it, and keep figures.

``exercise`` calls ``tfmodelkit.read``, reads every weight's values (whole, and streamed
with ``iter_chunks``: both must agree, in the shape described) and calls ``tfmodelkit.check``.
Only :class:`TFModelKitError` may come out of any of them, on one line naming the file;
anything else propagates and fails the caller. Each run's time and the messages of the errors it
produced are recorded per reader in :data:`FIGURES`, which ``tests/fuzz/conftest.py``
writes to ``out/fuzz-figures.json`` at the end of the session. The atheris harness under
``fuzz/`` uses the same function.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import tfmodelkit
from tfmodelkit.errors import TFModelKitError

#: Seconds one input may take (read + every weight + check).
TIME_LIMIT = float(os.environ.get("TFMODELKIT_FUZZ_TIME_LIMIT", "5"))
#: Seconds the HDF5 child process may go without progress (keras_h5, keras_zip).
H5_TIMEOUT = float(os.environ.get("TFMODELKIT_FUZZ_H5_TIMEOUT", "1.5"))


@dataclass
class ReaderFigures:
    inputs: int = 0
    #: inputs read without any error (the damage went unnoticed by read, or was harmless)
    described: int = 0
    #: inputs whose read() raised our error
    refused: int = 0
    #: inputs whose check() reported an error finding
    check_failed: int = 0
    errors: set[str] = field(default_factory=set)
    findings: set[str] = field(default_factory=set)
    slowest: float = 0.0
    slowest_label: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "mutated_inputs": self.inputs,
            "read_ok": self.described,
            "read_refused": self.refused,
            "check_found_errors": self.check_failed,
            "distinct_error_messages": len(self.errors),
            "distinct_check_findings": len(self.findings),
            "error_messages": sorted(self.errors)[:300],
            "check_findings": sorted(self.findings)[:300],
            "slowest_input_seconds": round(self.slowest, 3),
            "slowest_input": self.slowest_label,
            "total_seconds": round(self.seconds, 2),
        }


FIGURES: dict[str, ReaderFigures] = defaultdict(ReaderFigures)


_HEX = re.compile(r"0x[0-9a-fA-F]+")
_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")
_NUM = re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?")
_QUOTED = re.compile(r"'[^']*'")


def normalize(message: str, root: Path) -> str:
    """A message with the temp folder, byte strings, quoted names and numbers blanked, so
    that messages differing only in those count once."""
    text = message.replace(str(root), "<dir>")
    text = _BYTES.sub("b'…'", text)
    text = _HEX.sub("N", text)
    text = _QUOTED.sub("'…'", text)
    text = _NUM.sub("N", text)
    return text


def materialize(files, folder: Path) -> None:
    for rel, data in files:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


@dataclass
class Outcome:
    seconds: float
    errors: list[str]
    findings: list[str]


def exercise(fmt: str, target: Path, root: Path, label: str = "", record: bool = True) -> Outcome:
    """read, every weight's values, check. Raises whatever is not a TFModelKitError.
    ``root`` is the folder the input lives in (for messages); ``record``: count it in
    :data:`FIGURES`."""
    fig = FIGURES[fmt] if record else ReaderFigures()
    options = {"timeout": H5_TIMEOUT} if fmt in ("keras_h5", "keras_zip") else {}
    errors: list[str] = []
    findings: list[str] = []
    start = time.perf_counter()
    try:
        try:
            desc = tfmodelkit.read(target, **options)
        except TFModelKitError as e:
            errors.append(str(e))
            fig.refused += 1
        else:
            fig.described += 1
            for w in desc.weights:
                try:
                    value = w.read()
                except TFModelKitError as e:
                    errors.append(str(e))
                    continue
                arr = np.asarray(value)
                assert arr.shape == tuple(w.shape), f"{w.name}: read {arr.shape}, described {w.shape}"
                arr = np.ascontiguousarray(arr)  # touches every byte (memory maps included)
                try:
                    streamed = [np.asarray(c) for c in w.iter_chunks(max_bytes=4096)]
                except TFModelKitError as e:  # streaming may notice damage that read() did not
                    errors.append(str(e))
                    continue
                assert _same(arr.reshape(-1), streamed), f"{w.name}: streamed values differ from read()"
        try:
            report = tfmodelkit.check(target, **options)
        except TFModelKitError as e:
            errors.append(str(e))
        else:
            bad = [f for f in report.findings if f.severity == "error"]
            if bad:
                fig.check_failed += 1
            for f in bad:
                findings.append(f"{f.subject}: {f.message}")
                fig.findings.add(normalize(f.message, root))
    finally:
        elapsed = time.perf_counter() - start
        fig.inputs += 1
        fig.seconds += elapsed
        if elapsed > fig.slowest:
            fig.slowest, fig.slowest_label = elapsed, label
    for msg in errors:
        assert "\n" not in msg, f"error message spans lines: {msg!r}"
        fig.errors.add(normalize(msg, root))
        assert str(root) in msg, f"error message does not name the file: {msg!r}"
    return Outcome(elapsed, errors, findings)


def _same(flat: np.ndarray, chunks: list[np.ndarray]) -> bool:
    """Whether the chunks, joined, are ``flat`` (bit for bit; strings element by element)."""
    if sum(c.size for c in chunks) != flat.size:
        return False
    if not chunks:
        return True
    joined = np.concatenate([c.reshape(-1) for c in chunks])
    if flat.dtype == object or joined.dtype == object:
        return list(joined) == list(flat)
    return joined.dtype == flat.dtype and joined.tobytes() == flat.tobytes()


class Scratch:
    """A folder per input under one session folder, removed after use."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tfmk-fuzz-"))
        self.n = 0

    def run(self, fmt: str, files, target: str, label: str, record: bool = True) -> Outcome:
        self.n += 1
        folder = self.base / f"in{self.n}"
        folder.mkdir()
        try:
            materialize(files, folder)
            return exercise(fmt, folder / target if target else folder, folder, label, record)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# One byte string per input, for the atheris harness and the crasher files

#: Separates the files of a multi-file model inside one fuzz input.
SEPARATOR = b"\n--tfmodelkit-fuzz-file--\n"
SINGLE_FILE = {"keras_h5": "model.h5", "keras_zip": "model.keras", "tflite": "model.tflite"}


def pack(fmt: str, files, target: str) -> bytes:
    """A model's files as one fuzz input: checkpoint = index, data shards...; SavedModel =
    saved_model.pb, variables.index, variables data shards...; otherwise the file."""
    d = dict(files)
    if fmt in SINGLE_FILE:
        return d[target]
    if fmt == "checkpoint":
        parts = [d[target + ".index"], *(d[k] for k in sorted(d) if ".data-" in k)]
    else:
        pb = d.get("saved_model.pb", d.get("saved_model.pbtxt", b""))
        parts = [pb]
        if "variables/variables.index" in d:
            parts.append(d["variables/variables.index"])
            parts += [d[k] for k in sorted(d) if k.startswith("variables/variables.data-")]
    return SEPARATOR.join(parts)


def unpack(fmt: str, data: bytes) -> tuple[list[tuple[str, bytes]], str]:
    """(files, target) of a fuzz input made by :func:`pack` (or by a fuzzer from one)."""
    if fmt in SINGLE_FILE:
        return [(SINGLE_FILE[fmt], data)], SINGLE_FILE[fmt]
    parts = data.split(SEPARATOR)
    if fmt == "checkpoint":
        n = max(1, len(parts) - 1)
        files = [("ckpt.index", parts[0])]
        files += [(f"ckpt.data-{k:05d}-of-{n:05d}", p) for k, p in enumerate(parts[1:])]
        return files, "ckpt"
    name = "saved_model.pbtxt" if parts[0].lstrip()[:1].isalpha() else "saved_model.pb"
    files = [(name, parts[0])]
    if len(parts) > 1:
        n = max(1, len(parts) - 2)
        files.append(("variables/variables.index", parts[1]))
        files += [(f"variables/variables.data-{k:05d}-of-{n:05d}", p) for k, p in enumerate(parts[2:])]
    return files, ""
