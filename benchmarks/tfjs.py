"""TF.js figures of ``make bench``: reading a TF.js model against loading it in TF.js, and a
conversion with its verification against the bare Keras load plus the write.

    python benchmarks/tfjs.py [--repeat N] [--json out.json]

Every command runs as a fresh process (imports included), ``--repeat`` times; medians.
Reading: ``modelinspect summary`` of a TF.js model against a Node process that loads it with
``tf.loadLayersModel`` (target: at least 10x faster). Conversion: ``modelconv to-tfjs`` with its
verification in TF.js against a Python process that loads the Keras file with Keras and writes
the same TF.js model without verifying (target: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
MODELS = ("fixtures/tfjs/layers_two_io_uint8", "fixtures/tfjs/graph_mlp")
SOURCE = "fixtures/keras_zip/conv_bn.keras"

#: The bare conversion: Keras loads the file, our writer writes it, nothing verifies it.
BARE_WRITE = """
import sys
from pathlib import Path
import keras
from tfmodelkit.convert import to_tfjs as t
from tfmodelkit.verify.runners import KerasRunner
model = keras.saving.load_model(sys.argv[1])
runner = KerasRunner.from_model(model, sys.argv[1], "keras")
t._write(runner, Path(sys.argv[2]), t.DEFAULT_SHARD_SIZE, "none", ())
"""


def _time(cmd: list[str], repeat: int, before=None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        times.append(time.perf_counter() - start)
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode()[-2000:]}")
    return statistics.median(times)


def _node_load(model: str, work: Path) -> list[str]:
    from tfmodelkit.verify.runners.tfjs import find_tfjs

    env = find_tfjs()
    req, res = work / "load.json", work / "loaded.json"
    req.write_text(json.dumps({"op": "load", "model": str(ROOT / model / "model.json")}))
    ENV["NODE_PATH"] = str(env.node_modules)
    return [env.node, str(env.script), str(req), str(res)]


def _in_process(model: str, work: Path, repeat: int) -> tuple[float, float]:
    """Our read of the model and every weight's values, against TF.js's own time to load it
    (``tf.loadLayersModel``/``tf.loadGraphModel``, timed inside Node, start-up excluded)."""
    import tfmodelkit

    ours, theirs = [], []
    cmd = _node_load(model, work)
    for _ in range(repeat):
        start = time.perf_counter()
        for w in tfmodelkit.read(ROOT / model).weights:
            w.read()
        ours.append(time.perf_counter() - start)
        subprocess.run(cmd, cwd=ROOT, capture_output=True, env=ENV, check=True)
        theirs.append(json.loads(Path(cmd[-1]).read_text())["load_ms"] / 1000)
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-bench-tfjs-"))
    results = []
    try:
        for model in MODELS:
            ours = _time([sys.executable, "-m", "tfmodelkit.cli.modelinspect", "summary", model], args.repeat)
            theirs = _time(_node_load(model, work), args.repeat)
            results.append({"case": f"read {Path(model).name} (processes)", "ours_s": ours, "theirs_s": theirs,
                            "ratio": theirs / ours, "target": "fresh processes, runtime start-up included"})  # fmt: skip
            ours, theirs = _in_process(model, work, args.repeat)
            results.append({"case": f"read {Path(model).name} (in process)", "ours_s": ours, "theirs_s": theirs,
                            "ratio": theirs / ours, "target": ">= 10x faster than tf.load*Model in Node"})  # fmt: skip
        dst = work / "out"

        def clean() -> None:
            shutil.rmtree(dst, ignore_errors=True)

        ours = _time([sys.executable, "-m", "tfmodelkit.cli.modelconv", "to-tfjs", SOURCE, str(dst / "model.json"), "-q"], args.repeat, clean)
        bare = _time([sys.executable, "-c", BARE_WRITE, SOURCE, str(dst)], args.repeat, clean)
        results.append({"case": f"to-tfjs {Path(SOURCE).name} (verified in TF.js)", "ours_s": ours, "theirs_s": bare,
                        "ratio": ours / bare, "target": "<= 1.5x the bare Keras load + write"})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        if r["case"].startswith("read"):
            line = f"{r['ratio']:.1f}x faster"
        else:
            line = f"{r['ratio']:.2f}x the bare calls"
        print(f"{r['case']:<46} ours {1000 * r['ours_s']:8.1f} ms   other {1000 * r['theirs_s']:8.1f} ms   {line}   (target {r['target']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
