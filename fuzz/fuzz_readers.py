"""Coverage-guided fuzzing of tfmodelkit's readers with atheris (libFuzzer for Python).

    python fuzz/fuzz_readers.py FORMAT [SEED_DIR ...] [libFuzzer options]
    python fuzz/fuzz_readers.py FORMAT CRASH_FILE          # replay one input

FORMAT is checkpoint, savedmodel, keras_h5, keras_zip or tflite. Each input is a model
(multi-file models packed as in ``tests/fuzz/harness.py``: a checkpoint is its index then
its data shards, a SavedModel its saved_model.pb then its variables). The input goes
through ``tfmodelkit.read``, every weight's values and ``tfmodelkit.check``; anything but
a ``TFModelKitError``, a multi-line message, a value whose shape differs from the
description, or an input slower than ``TFMODELKIT_FUZZ_TIME_LIMIT`` seconds is a crash.

Seeds: the fixtures and the corpus bases of the hypothesis suite, packed into
``out/fuzz/<format>/seeds``; the growing corpus lives in ``out/fuzz/<format>/corpus`` and
crashers land in ``out/fuzz/<format>/`` (``crash-<sha1>``). Add each crasher to
``tests/fuzz/crashers/<format>-<what>.bin``: ``tests/fuzz/test_crashers.py`` replays them.
``make fuzz FUZZ_SECONDS=300`` runs every format for that long.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TFMODELKIT_FUZZ_TIME_LIMIT", "5")
# libhdf5 hangs on some damaged files; the reader's child process is killed after this many
# seconds without progress. The fixtures are small: half a second is plenty, and a fuzzer
# that meets many hanging inputs stays fast.
os.environ.setdefault("TFMODELKIT_FUZZ_H5_TIMEOUT", "0.5")

import atheris  # noqa: E402

FORMATS = ("checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite")


class SlowInput(Exception):
    """An input that took longer than the time limit: a crash for the fuzzer."""


def make_seeds(fmt: str, folder: Path) -> int:
    from tests.fuzz.harness import pack
    from tests.fuzz.mutators import bases

    folder.mkdir(parents=True, exist_ok=True)
    for b in bases(fmt):
        name = b.name.replace("/", "_")
        (folder / f"{name}.bin").write_bytes(pack(fmt, b.files, b.target))
    return len(bases(fmt))


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in FORMATS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FORMATS)}}} [SEED_DIR ...] [libFuzzer options]")
    fmt = sys.argv.pop(1)
    work = ROOT / "out" / "fuzz" / fmt
    corpus = work / "corpus"
    seeds = work / "seeds"
    corpus.mkdir(parents=True, exist_ok=True)

    with atheris.instrument_imports(include=["tfmodelkit"]):
        import tfmodelkit.formats.checkpoint  # noqa: F401
        import tfmodelkit.formats.keras_h5  # noqa: F401
        import tfmodelkit.formats.keras_zip  # noqa: F401
        import tfmodelkit.formats.savedmodel  # noqa: F401
        import tfmodelkit.formats.tflite  # noqa: F401
    from tests.fuzz.harness import TIME_LIMIT, exercise, materialize, unpack

    make_seeds(fmt, seeds)

    # libFuzzer leaves through exit(), past Python's atexit: the scratch folder is emptied at
    # the next start instead.
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    counter = [0]

    def one_input(data: bytes) -> None:
        counter[0] += 1
        folder = scratch / str(counter[0])
        folder.mkdir()
        try:
            files, target = unpack(fmt, data)
            materialize(files, folder)
            out = exercise(fmt, folder / target if target else folder, folder, record=False)
            if out.seconds > TIME_LIMIT:
                raise SlowInput(f"{out.seconds:.2f} s")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    args = [sys.argv[0]]
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    options = [a for a in sys.argv[1:] if a.startswith("-")]
    if len(dirs) == 1 and Path(dirs[0]).is_file():  # replay one input
        args += options + dirs
    else:
        args += [f"-artifact_prefix={work}/", "-timeout=30", "-rss_limit_mb=4096", *options]
        args += [str(corpus), str(seeds), *dirs]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
