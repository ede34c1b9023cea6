"""`make demo`: run modelinspect over a bundled fixture of every format, as a user would.

Each step prints the command it runs, then its real output.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

STEPS = [
    ("summary", "fixtures/savedmodel/keras3_two_io"),
    ("signatures", "fixtures/savedmodel/keras3_two_io"),
    ("weights", "fixtures/checkpoint/keras3_subclassed"),
    ("weights --stats --include-optimizer --match hidden", "fixtures/checkpoint/keras3_subclassed"),
    ("layers", "fixtures/keras_h5/tfkeras_full_adam.h5"),
    ("summary", "fixtures/keras_zip/functional_multi_io.keras"),
    ("signatures", "fixtures/tflite/mlp_int8.tflite"),
    ("ops", "fixtures/tflite/two_io_float32.tflite"),
    ("check", "fixtures/checkpoint/sharded"),
]


def main() -> int:
    exe = BIN / "modelinspect"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "tfmodelkit.cli.modelinspect"]
    failed = 0
    for sub, path in STEPS:
        if not (ROOT / path).exists():
            print(f"missing fixture {path}: run `make fixtures`", file=sys.stderr)
            return 2
        args = [*shlex.split(sub), path]
        print(f"\n$ modelinspect {' '.join(args)}", flush=True)
        rc = subprocess.run([*command, *args], cwd=ROOT).returncode
        if rc != 0:
            print(f"(exit code {rc})")
            failed += 1
    print("\nmodelinspect and modelconv are installed in .venv/bin/.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
