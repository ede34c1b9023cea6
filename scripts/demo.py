"""`make demo`: what a user does with tfmodelkit, on the bundled fixtures.

Inspects a fixture of every format, then converts a Keras model to a SavedModel and to an
int8 TFLite model (each conversion verifies itself numerically) and inspects the results.
Each step prints the command it runs, then its real output. Results go to out/demo/.
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

CONVERSIONS = [
    ("modelconv", "keras-to-savedmodel fixtures/keras_zip/functional_multi_io.keras out/demo/savedmodel --overwrite"),
    ("modelinspect", "signatures out/demo/savedmodel"),
    ("modelconv", "convert fixtures/keras_zip/functional_multi_io.keras out/demo/model_int8.tflite --quantize int8 --calibration-data out/demo/calibration.npz --overwrite --report out/demo/report.json"),
    ("modelinspect", "signatures out/demo/model_int8.tflite"),
]


def _command(tool: str) -> list[str]:
    exe = BIN / tool
    module = "modelinspect" if tool == "modelinspect" else "modelconv"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", f"tfmodelkit.cli.{module}"]


def _calibration_data(model: Path, out: Path) -> None:
    """int8 needs representative inputs: here, 512 samples drawn the way verification draws its own;
    the conversion calibrates on 480 of them and verifies on the 32 it holds out."""
    from tfmodelkit.verify import KerasRunner, generate_inputs, save_arrays

    save_arrays(out, generate_inputs(KerasRunner(model).inputs, seed=1000, batch=512))
    print(
        f"\n(calibration data for int8: 512 samples drawn like the model's inputs, in {out.relative_to(ROOT)}; "
        "the conversion holds 32 of them out to verify on)"
    )


def main() -> int:
    failed = 0
    steps = [("modelinspect", f"{sub} {path}") for sub, path in STEPS] + CONVERSIONS
    for _, path in STEPS:
        if not (ROOT / path).exists():
            print(f"missing fixture {path}: run `make fixtures`", file=sys.stderr)
            return 2
    (ROOT / "out" / "demo").mkdir(parents=True, exist_ok=True)
    _calibration_data(ROOT / "fixtures/keras_zip/functional_multi_io.keras", ROOT / "out/demo/calibration.npz")
    for tool, line in steps:
        print(f"\n$ {tool} {line}", flush=True)
        rc = subprocess.run([*_command(tool), *shlex.split(line)], cwd=ROOT).returncode
        if rc != 0:
            print(f"(exit code {rc})")
            failed += 1
    print("\nmodelinspect and modelconv are installed in .venv/bin/; the demo's results are in out/demo/.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
