"""Time tfmodelkit against the TensorFlow tools a user would otherwise run, in one run.

    python benchmarks/run.py [--repeat N] [--json out.json] [--startup | --conversions]

Each case runs both commands as fresh processes (what a user or a CI step pays, imports
included) ``--repeat`` times after one untimed run, and reports the median wall time of each
and their ratio. Bytecode is cached as for an installed package (``PYTHONPYCACHEPREFIX``
under ``benchmarks/.cache/``, even when ``PYTHONDONTWRITEBYTECODE`` is set), for both sides.
The start-up cases time ``summary`` and ``signatures`` of a small file of each format; the
models come from ``fixtures/`` and the shared corpus when present. After the conversion cases,
each conversion runs again with ``--report``: its verify stages (32 samples, the models they
compare loaded) as a share of the bare calls' time have a target of at most 15%
(``--conversions`` runs only these cases).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CORPUS = Path(os.environ.get("TFMODELKIT_CORPUS", ROOT.parent / "shared" / "corpus"))
#: Start-up target: ``summary`` or ``signatures`` of a small file, imports included.
STARTUP_TARGET_S = 0.120


def bench_env() -> dict[str, str]:
    """The environment of every timed command: TensorFlow quiet, bytecode cached (compiling
    every module on every run, as ``PYTHONDONTWRITEBYTECODE`` makes Python do, is not what an
    installed package costs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "benchmarks" / ".cache" / "pycache")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


QUIET_TF = bench_env()


@dataclass
class Result:
    case: str
    ours_s: float
    theirs_s: float | None
    ratio: float | None
    target: str


def _time(cmd: list[str], repeat: int) -> float:
    times = []
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=QUIET_TF)  # caches bytecode
    for _ in range(repeat):
        start = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=QUIET_TF)
        times.append(time.perf_counter() - start)
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode()[-2000:]}")
    return statistics.median(times)


def _modelinspect(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args]


def _first_existing(*paths: Path) -> Path | None:
    for p in paths:
        if p.exists() or Path(f"{p}.index").exists():
            return p
    return None


# What a user runs to see a Keras file's model or its inputs and outputs: Keras 3's own load.
KERAS_SUMMARY = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
model = keras.saving.load_model(sys.argv[1], compile=False)
if sys.argv[2] == "summary":
    model.summary()
else:
    for t in [*model.inputs, *model.outputs]:
        print(t.name, t.dtype, t.shape)
"""

# ... and for a .tflite, LiteRT's interpreter (what tf.lite.Interpreter has become).
LITERT_SUMMARY = """
import sys
from ai_edge_litert.interpreter import Interpreter
interp = Interpreter(model_path=sys.argv[1])
print(interp.get_signature_list(), len(interp.get_tensor_details()))
if sys.argv[2] == "signatures":
    for d in [*interp.get_input_details(), *interp.get_output_details()]:
        print(d["name"], d["dtype"], d["shape_signature"])
"""


def startup_cases() -> list[tuple[str, list[str], list[str] | None, str]]:
    """``summary`` and ``signatures`` of a small file of each format, against the tool a user
    would run for the same answer."""
    cli = shutil.which("saved_model_cli", path=str(BIN)) or shutil.which("saved_model_cli")
    files = [
        ("savedmodel", ROOT / "fixtures/savedmodel/tfkeras_functional", CORPUS / "savedmodel/tf_half_plus_two_v2/00000123"),
        ("checkpoint", ROOT / "fixtures/checkpoint/keras3_subclassed/ckpt", CORPUS / "checkpoint/tf_mnist_stale_state/model.ckpt-46900"),
        ("keras_h5", ROOT / "fixtures/keras_h5/keras3_legacy.h5", CORPUS / "keras_h5/dl4j/weights_conv2d_tensorflow_2.h5"),
        ("keras_zip", ROOT / "fixtures/keras_zip/conv_bn.keras", CORPUS / "keras_zip/keras_fixed_model.keras"),
        ("tflite", ROOT / "fixtures/tflite/two_io_float32.tflite", CORPUS / "tflite/litert/add.tflite"),
    ]  # fmt: skip
    target = f"< {STARTUP_TARGET_S * 1000:.0f} ms"
    out: list[tuple[str, list[str], list[str] | None, str]] = []
    for fmt, *candidates in files:
        path = _first_existing(*candidates)
        if path is None:
            continue
        for command in ("summary", "signatures"):
            theirs: list[str] | None
            if fmt == "savedmodel":
                theirs = [cli, "show", "--dir", str(path), *(["--all"] if command == "signatures" else [])] if cli else None
            elif fmt == "checkpoint":
                theirs = [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint", f"--file_name={path}"]
            elif fmt == "tflite":
                theirs = [sys.executable, "-c", LITERT_SUMMARY, str(path), command]
            else:
                theirs = [sys.executable, "-c", KERAS_SUMMARY, str(path), command]
            name = f"{command} {fmt} {path.parent.name + '/' if fmt == 'checkpoint' else ''}{path.name}"
            out.append((name, _modelinspect(command, str(path)), theirs, target))
    return out


def cases() -> list[tuple[str, list[str], list[str] | None, str]]:
    out = startup_cases()
    ck = _first_existing(ROOT / "fixtures/checkpoint/keras3_subclassed/ckpt", CORPUS / "checkpoint/tf_mnist_stale_state/model.ckpt-46900")
    if ck is not None:
        theirs = [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint", f"--file_name={ck}"]
        out.append((f"weights {ck.parent.name}/{ck.name}", _modelinspect("weights", str(ck)), theirs, ">= 10x"))
    out.append(("--help", _modelinspect("--help"), None, "< 150 ms"))
    out.extend(conversion_cases())
    return out


BARE_KERAS_EXPORT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
model = keras.saving.load_model(sys.argv[1], compile=False)
model.export(sys.argv[2], format="tf_saved_model", verbose=False)
"""

BARE_TFLITE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
data = tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert()
open(sys.argv[2], "wb").write(data)
"""


# What an engineer writes by hand to compare a SavedModel with its TFLite conversion: two
# loads, one batch of random inputs through each, and a numpy comparison per output.
BARE_VERIFY = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rng = np.random.default_rng(0)
inputs = {
    name: rng.uniform(-1, 1, [2 if d is None else d for d in spec.shape]).astype(spec.dtype.as_numpy_dtype)
    for name, spec in fn.structured_input_signature[1].items()
}
expected = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
interp = Interpreter(model_path=sys.argv[2])
runner = interp.get_signature_runner("serving_default")
actual = runner(**inputs)
bad = [k for k in expected if not np.allclose(actual[k], expected[k], rtol=1e-5, atol=1e-5)]
sys.exit(1 if bad else 0)
"""


# What `modelconv to-keras` wraps: Keras 3's own load and save (no verification).
BARE_KERAS_SAVE = """
import sys
import keras
keras.saving.load_model(sys.argv[1]).save(sys.argv[2])
"""


def conversion_cases() -> list[tuple[str, list[str], list[str] | None, str]]:
    """Each conversion (verification included) against the bare TF/Keras calls it wraps."""
    work = ROOT / "benchmarks" / ".cache" / "conversions"
    work.mkdir(parents=True, exist_ok=True)
    keras_src = ROOT / "fixtures/keras_zip/conv_bn.keras"
    sm_src = ROOT / "fixtures/savedmodel/keras3_two_io"
    if not keras_src.exists() or not sm_src.exists():
        return []
    conv = [sys.executable, "-m", "tfmodelkit.cli.modelconv"]
    return [
        (
            "keras-to-savedmodel conv_bn.keras (verified)",
            [*conv, "keras-to-savedmodel", str(keras_src), str(work / "ours_sm"), "--overwrite", "-q"],
            [sys.executable, "-c", BARE_KERAS_EXPORT, str(keras_src), str(work / "bare_sm")],
            "<= 1.3x bare",
        ),
        (
            "savedmodel-to-tflite keras3_two_io (verified)",
            [*conv, "savedmodel-to-tflite", str(sm_src), str(work / "ours.tflite"), "--overwrite", "-q"],
            [sys.executable, "-c", BARE_TFLITE, str(sm_src), str(work / "bare.tflite")],
            "<= 1.3x bare",
        ),
        # Reads the .tflite the case above just wrote (cases run in order).
        (
            "verify keras3_two_io vs its .tflite",
            [*conv, "verify", str(sm_src), str(work / "ours.tflite"), "-q"],
            [sys.executable, "-c", BARE_VERIFY, str(sm_src), str(work / "ours.tflite")],
            "<= 1.5x bare",
        ),
        (
            "to-keras conv_bn.keras (verified in a fresh process)",
            [*conv, "to-keras", str(keras_src), str(work / "ours.keras"), "--overwrite", "-q"],
            [sys.executable, "-c", BARE_KERAS_SAVE, str(keras_src), str(work / "bare.keras")],
            "<= 1.3x bare",
        ),
    ]


#: What verification (32 samples, the default) may cost over a conversion's bare TF/Keras calls.
VERIFY_COST_TARGET = 0.15


def verify_stage_seconds(command: list[str], repeat: int) -> float:
    """Median seconds of the verify stages a conversion's own report times (``--report``): what
    verification costs in it, loading the models it compares included. One run's own stages
    move much less with other work on the machine than the difference of two whole runs."""
    work = ROOT / "benchmarks" / ".cache" / "conversions"
    work.mkdir(parents=True, exist_ok=True)
    report = work / "verify-stage.json"
    seconds = []
    for _ in range(repeat):
        p = subprocess.run([*command, "--report", str(report)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=QUIET_TF)
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(command)}\n{p.stderr.decode()[-2000:]}")
        timings = json.loads(report.read_text())["timings"]
        seconds.append(sum(v for k, v in timings.items() if k.rsplit(".", 1)[-1] == "verify"))
    return statistics.median(seconds)


def verification_cost(results: list[Result], repeat: int) -> list[Result]:
    """Per conversion case of :data:`VERIFIED_CASES`: its verify stages against the bare calls."""
    out = []
    commands = {name: ours for name, ours, _, _ in conversion_cases()}
    for r in results:
        if r.case not in VERIFIED_CASES or not r.theirs_s or r.case not in commands:
            continue
        spent = verify_stage_seconds(commands[r.case], repeat)
        cost = spent / r.theirs_s
        name = f"  verification of 32 samples in {r.case.split(' (')[0]}"
        print(
            f"{name:50s} {spent * 1000:8.1f} ms   = {cost:5.1%} of the bare calls "
            f"({r.theirs_s * 1000:.1f} ms; target <= {VERIFY_COST_TARGET:.0%})",
            flush=True,
        )
        out.append(Result(f"verification cost: {r.case}", spent, r.theirs_s, cost, f"<= {VERIFY_COST_TARGET:.0%} of bare"))
    return out


#: The conversions whose verification cost is reported (their bare calls convert, nothing else).
VERIFIED_CASES = (
    "keras-to-savedmodel conv_bn.keras (verified)",
    "savedmodel-to-tflite keras3_two_io (verified)",
    "to-keras conv_bn.keras (verified in a fresh process)",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--startup", action="store_true", help="only the start-up cases (summary, signatures)")
    ap.add_argument("--conversions", action="store_true", help="only the conversion cases and what verification costs in them")
    args = ap.parse_args()
    results = []
    chosen = startup_cases() if args.startup else conversion_cases() if args.conversions else cases()
    for name, ours, theirs, target in chosen:
        t_ours = _time(ours, args.repeat)
        t_theirs = _time(theirs, max(1, args.repeat // 2)) if theirs else None
        ratio = t_theirs / t_ours if t_theirs else None
        results.append(Result(name, t_ours, t_theirs, ratio, target))
        if ratio is None:
            verdict = ""
        elif "bare" in target:  # conversions: our cost relative to the bare calls
            verdict = f"   bare TF/Keras {t_theirs * 1000:8.1f} ms   {t_ours / t_theirs:5.2f}x the bare calls"
        else:
            speed = f"{ratio:5.1f}x faster" if ratio >= 1 else f"{1 / ratio:5.1f}x slower"
            verdict = f"   TensorFlow {t_theirs * 1000:8.1f} ms   {speed}"
        print(f"{name:50s} ours {t_ours * 1000:8.1f} ms{verdict}   (target {target})", flush=True)
    startup = [r for r in results if r.target == f"< {STARTUP_TARGET_S * 1000:.0f} ms"]
    if startup:
        met = [r for r in startup if r.ours_s < STARTUP_TARGET_S]
        ratios = sorted(r.ratio for r in startup if r.ratio)
        print(
            f"  start-up: {len(met)} of {len(startup)} under {STARTUP_TARGET_S * 1000:.0f} ms"
            + (f"; {ratios[0]:.1f}x to {ratios[-1]:.1f}x faster than TensorFlow's tools" if ratios else "")
            + "".join(f"\n    over: {r.case} {r.ours_s * 1000:.0f} ms" for r in startup if r not in met),
            flush=True,
        )
    if not args.startup:
        results += verification_cost(results, args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
