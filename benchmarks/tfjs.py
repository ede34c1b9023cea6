"""TF.js figures of ``make bench``: reading a TF.js model against loading it in TF.js, and a
conversion with its verification against the bare Keras load plus the write.

    python benchmarks/tfjs.py [--repeat N] [--json out.json] [--large-mb MB]

Every command runs as a fresh process (imports included, bytecode cached as for an installed
package), once untimed and then ``--repeat`` times; medians of wall time and of CPU time (the
child's user + system time, which other load on the machine does not inflate).

Reading, as a user runs it: ``modelinspect summary model.json`` against a Node process that
loads the same model with ``tf.loadLayersModel`` / ``tf.loadGraphModel`` (the pure-JavaScript
``@tensorflow/tfjs``, through the project's bridge). On the small fixtures both sides are
mostly start-up, and Node's floor (``require('@tensorflow/tfjs')`` alone) is shown beside
them; the large model (``--large-mb`` of float32 weights, written by our converter) is where
reading costs count (48 and 192 MiB by default): there ``check`` (every byte read and dequantized) is timed too. In process:
our read of every weight's values against TF.js's load time measured inside Node.

Conversion: ``modelconv to-tfjs`` with its verification in TF.js against a Python process that
loads the Keras file with Keras and writes the same TF.js model without verifying (target: at
most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPYCACHEPREFIX=str(ROOT / "benchmarks" / ".cache" / "pycache"))
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

#: A Keras MLP of about ``MB`` megabytes of float32 weights, saved as a .keras file.
LARGE_KERAS = """
import sys
import keras
width = int((float(sys.argv[2]) * 2**20 / 4 / 3) ** 0.5)
model = keras.Sequential([keras.Input((width,), name="x"), keras.layers.Dense(width, activation="relu"),
                          keras.layers.Dense(width, activation="relu"), keras.layers.Dense(width)])
model.save(sys.argv[1])
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _time(cmd: list[str], repeat: int, before=None) -> tuple[float, float]:
    """Median ``(wall, cpu)`` seconds of ``cmd`` as a fresh process, after one untimed run."""
    walls, cpus = [], []
    for i in range(repeat + 1):
        if before:
            before()
        cpu, start = _cpu(), time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        wall, used = time.perf_counter() - start, _cpu() - cpu
        if p.returncode != 0:
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode()[-2000:]}")
        if i:  # the first run fills caches (bytecode, the page cache)
            walls.append(wall)
            cpus.append(used)
    return statistics.median(walls), statistics.median(cpus)


def _node(request: dict, work: Path) -> list[str]:
    from tfmodelkit.verify.runners.tfjs import find_tfjs

    env = find_tfjs()
    req = work / f"request-{abs(hash(json.dumps(request)))}.json"
    req.write_text(json.dumps(request))
    ENV["NODE_PATH"] = str(env.node_modules)
    return [env.node, str(env.script), str(req), str(work / "response.json")]


def _node_floor(work: Path) -> list[str]:
    """Node starting and requiring TF.js, loading nothing: what every TF.js process pays."""
    cmd = _node({}, work)
    return [cmd[0], "-e", "require('@tensorflow/tfjs')"]


def _in_process(model: Path, work: Path, repeat: int) -> tuple[float, float]:
    """Our read of the model and every weight's values, against TF.js's own time to load it
    (``tf.loadLayersModel``/``tf.loadGraphModel``, timed inside Node, start-up excluded)."""
    import tfmodelkit

    ours, theirs = [], []
    cmd = _node({"op": "load", "model": str(model / "model.json")}, work)
    for _ in range(repeat):
        start = time.perf_counter()
        for w in tfmodelkit.read(model).weights:
            w.read()
        ours.append(time.perf_counter() - start)
        subprocess.run(cmd, cwd=ROOT, capture_output=True, env=ENV, check=True)
        theirs.append(json.loads(Path(cmd[-1]).read_text())["load_ms"] / 1000)
    return statistics.median(ours), statistics.median(theirs)


def _large_model(work: Path, mb: float) -> Path:
    src, out = work / f"large{mb:g}.keras", work / f"large{mb:g}"
    subprocess.run([sys.executable, "-c", LARGE_KERAS, str(src), str(mb)], cwd=ROOT, env=ENV, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", BARE_WRITE, str(src), str(out)], cwd=ROOT, env=ENV, check=True, capture_output=True)
    return out


def _reading(model: Path, label: str, work: Path, repeat: int, check: bool) -> list[dict]:
    out = []
    load = _node({"op": "load", "model": str(model / "model.json")}, work)
    theirs = _time(load, repeat)
    commands = [("summary", ["summary", str(model)])] + ([("check", ["check", str(model), "-q"])] if check else [])
    for name, args in commands:
        ours = _time([sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args], repeat)
        out.append({"case": f"{name} {label} (processes)", "ours_s": ours[0], "theirs_s": theirs[0], "ratio": theirs[0] / ours[0],
                    "ours_cpu_s": ours[1], "theirs_cpu_s": theirs[1], "cpu_ratio": theirs[1] / ours[1],
                    "target": ">= 10x faster than tf.load*Model in a fresh Node process"})  # fmt: skip
    ours_in, theirs_in = _in_process(model, work, repeat)
    out.append({"case": f"read {label} (in process)", "ours_s": ours_in, "theirs_s": theirs_in, "ratio": theirs_in / ours_in,
                "target": "every value read, against TF.js's load time inside Node"})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--large-mb", default="48,192", help="float32 weights of the large models, in MiB, comma-separated (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-bench-tfjs-"))
    results = []
    try:
        floor = _time(_node_floor(work), args.repeat)
        python = _time([sys.executable, "-c", "pass"], args.repeat)
        results.append({"case": "start-up floor: python vs node + require(tfjs)", "ours_s": python[0], "theirs_s": floor[0],
                        "ratio": floor[0] / python[0], "ours_cpu_s": python[1], "theirs_cpu_s": floor[1],
                        "cpu_ratio": floor[1] / python[1], "target": "what each side pays before reading anything"})  # fmt: skip
        for model in MODELS:
            results.extend(_reading(ROOT / model, Path(model).name, work, args.repeat, check=False))
        for mb in (float(x) for x in args.large_mb.split(",") if float(x) > 0):
            large = _large_model(work, mb)
            size = sum(p.stat().st_size for p in large.glob("*.bin")) / 2**20
            results.extend(_reading(large, f"mlp_{size:.0f}MiB", work, args.repeat, check=True))
            shutil.rmtree(large, ignore_errors=True)
        dst = work / "out"

        def clean() -> None:
            shutil.rmtree(dst, ignore_errors=True)

        ours = _time([sys.executable, "-m", "tfmodelkit.cli.modelconv", "to-tfjs", SOURCE, str(dst / "model.json"), "-q"], args.repeat, clean)
        bare = _time([sys.executable, "-c", BARE_WRITE, SOURCE, str(dst)], args.repeat, clean)
        results.append({"case": f"to-tfjs {Path(SOURCE).name} (verified in TF.js)", "ours_s": ours[0], "theirs_s": bare[0],
                        "ratio": ours[0] / bare[0], "ours_cpu_s": ours[1], "theirs_cpu_s": bare[1], "cpu_ratio": ours[1] / bare[1],
                        "target": "<= 1.5x the bare Keras load + write"})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        word = "x the bare calls" if r["case"].startswith("to-tfjs") else "x faster" if "floor" not in r["case"] else "x"
        line = f"{r['case']:<42} ours {1000 * r['ours_s']:8.1f} ms   other {1000 * r['theirs_s']:8.1f} ms   {r['ratio']:6.2f}{word}"
        if "cpu_ratio" in r:
            line += f"   (cpu {1000 * r['ours_cpu_s']:.0f} vs {1000 * r['theirs_cpu_s']:.0f} ms: {r['cpu_ratio']:.2f}x)"
        print(f"{line}   target {r['target']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
