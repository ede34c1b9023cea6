"""Run ``.keras`` files the way their users will: a separate Python with plain Keras only.

The process blocks ``tfmodelkit`` (and says whether it could have imported it), loads each file
with ``keras.saving.load_model(path)`` (safe mode on, no custom objects) and writes what the
model computes on the given inputs. Independent of the package's own fresh-process runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: What every script here runs first: plain Keras, with tfmodelkit unimportable.
PLAIN_KERAS = r"""
import json, os, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tfmodelkit":
            raise ImportError("blocked")
sys.meta_path.insert(0, Blocked())
import numpy as np
import keras
"""

SCRIPT = PLAIN_KERAS + r"""
try:
    import tfmodelkit
    importable = True
except ImportError:
    importable = False
jobs = json.load(open(sys.argv[1]))
done = []
for job in jobs:
    # What a user of a .keras naming their own classes does first: their module importable and
    # imported (and any registration line the conversion's report gave).
    sys.path[:0] = job.get("sys_path", [])
    exec(job.get("setup", ""), {})
    model = keras.saving.load_model(job["model"])
    if job.get("weights"):
        for v in model.weights:
            v.assign(np.zeros(v.shape, dtype=v.dtype))
        model.load_weights(job["weights"])
    with np.load(job["inputs"]) as z:
        feed = {k: z[k] for k in z.files}
    struct = getattr(model, "input", None)  # a loaded Sequential never called raises AttributeError
    if not hasattr(model, "inputs"):  # a subclassed model: one input, one output
        (x,) = feed.values()
        y = model(x, training=False)
        np.savez(job["out"], output_0=keras.ops.convert_to_numpy(y))
        done.append({"layers": [layer.name for layer in model.layers], "inputs": list(feed)})
        continue
    if isinstance(struct, dict):
        x = feed
    else:
        names = [t.name for t in model.inputs]
        x = [feed[n] for n in names] if len(names) > 1 or isinstance(struct, (list, tuple)) else feed[names[0]]
    y = model(x, training=False)
    if isinstance(y, dict):
        out = {k: keras.ops.convert_to_numpy(v) for k, v in y.items()}
    else:
        y = y if isinstance(y, (list, tuple)) else [y]
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(y):
            names = [t._keras_history.operation.name for t in model.outputs]
        out = {n: keras.ops.convert_to_numpy(v) for n, v in zip(names, y)}
    np.savez(job["out"], **out)
    done.append({"layers": [layer.name for layer in model.layers], "inputs": [t.name for t in model.inputs]})
print(json.dumps({"importable": importable, "backend": keras.backend.backend(), "done": done}))
"""


def plain_keras_run(jobs: list[dict[str, Any]], work: Path, backend: str = "tensorflow") -> dict[str, Any]:
    """Run every job ({"model", "inputs", ["weights"], ["sys_path"], ["setup" code run before
    loading]}) in one plain-Keras process; each job gets
    "outputs" (name -> array); the answer says whether tfmodelkit was importable there."""
    for i, job in enumerate(jobs):
        job["out"] = str(work / f"plain_out_{backend}_{i}.npz")
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    p = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(work / "jobs.json")],
        capture_output=True, text=True, cwd=work, env=env, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    answer = json.loads(p.stdout.strip().splitlines()[-1])
    for job, info in zip(jobs, answer["done"], strict=True):
        with np.load(job["out"]) as z:
            job["outputs"] = {k: z[k] for k in z.files}
        job.update(info)
    return answer


OPTIMIZER_SCRIPT = PLAIN_KERAS + r"""
job = json.load(open(sys.argv[1]))
sys.path[:0] = job.get("sys_path", [])
exec(job.get("setup", ""), {})
model = keras.saving.load_model(job["model"])
optimizer = model.optimizer
values = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
np.savez(job["out"], *values)
print(json.dumps({
    "class": type(optimizer).__name__,
    "iterations": int(keras.ops.convert_to_numpy(optimizer.iterations)),
    "paths": [v.path for v in optimizer.variables],
    "config": {k: v for k, v in optimizer.get_config().items() if isinstance(v, (int, float, bool, str))},
    "loss": model.loss if isinstance(model.loss, str) else None,
}))
"""


def plain_keras_optimizer(job: dict[str, Any], work: Path) -> dict[str, Any]:
    """Load ``job["model"]`` with plain Keras in a fresh process (tfmodelkit blocked) and give back
    its optimizer: class, iterations, variable paths, "values" (by position) and config."""
    job = dict(job, out=str(work / "optimizer_out.npz"))
    (work / "optimizer_job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    p = subprocess.run(
        [sys.executable, "-I", "-c", OPTIMIZER_SCRIPT, str(work / "optimizer_job.json")],
        capture_output=True, text=True, cwd=work, env=env, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    answer = json.loads(p.stdout.strip().splitlines()[-1])
    with np.load(job["out"]) as z:
        answer["values"] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return answer
