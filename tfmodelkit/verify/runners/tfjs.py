"""TF.js models run by TF.js itself: ``@tensorflow/tfjs`` (pure JavaScript, CPU backend) in Node.js.

The model is loaded by TF.js's own loaders (``tf.loadLayersModel`` / ``tf.loadGraphModel``) in
a Node process started for each run by ``tfjs/tfmodelkit_tfjs.js``; inputs and outputs travel
as JSON files with base64 bytes. Node is found on ``PATH`` (or ``TFMODELKIT_NODE``), the TF.js
package in the project's ``tfjs/node_modules`` (installed by ``npm ci --prefix tfjs``) or in
``TFMODELKIT_NODE_MODULES``. TensorFlow is never imported here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...description import TensorSpec
from ...errors import UnsupportedError, UserError
from ...formats import tfjs as tfjs_format
from .base import BaseRunner

#: The project-local Node package: package.json, its lock file and the bridge script.
PACKAGE_DIR = Path(__file__).resolve().parents[3] / "tfjs"
SCRIPT = "tfmodelkit_tfjs.js"
INSTALL_HINT = (
    "install Node.js 20+ and the project's TF.js runtime (`npm ci --prefix tfjs` in the project, "
    "which `make test` does), or set TFMODELKIT_NODE_MODULES to a node_modules folder holding @tensorflow/tfjs"
)
#: Seconds one Node run may take before it counts as hung.
TIMEOUT = 600.0
#: Dtypes TF.js tensors hold (what a feed is cast to and what outputs come back as).
_JS_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class TFJSUnavailable(UserError):
    """Node.js or the TF.js package is missing: TF.js models cannot be run here."""


@dataclass(frozen=True)
class NodeTFJS:
    """Where Node, the TF.js package and the bridge script are."""

    node: str
    node_modules: Path
    script: Path

    def call(self, request: Mapping[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Run one request in a fresh Node process; its ``ok: false`` answers become UserErrors."""
        with tempfile.TemporaryDirectory(prefix="tfmodelkit-tfjs-") as work:
            req, res = Path(work) / "request.json", Path(work) / "response.json"
            req.write_text(json.dumps(request))
            env = {**os.environ, "NODE_PATH": str(self.node_modules)}
            try:
                done = subprocess.run(
                    [self.node, str(self.script), str(req), str(res)],
                    env=env, capture_output=True, text=True, timeout=timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise UserError(f"TF.js in Node did not answer within {timeout:.0f} s") from None
            except OSError as e:
                raise TFJSUnavailable(f"cannot start Node.js ({e.strerror}); {INSTALL_HINT}") from None
            if not res.is_file():
                tail = (done.stderr or "").strip().splitlines()
                raise UserError(f"TF.js in Node failed (exit {done.returncode}: {tail[-1] if tail else 'no message'})")
            answer: dict[str, Any] = json.loads(res.read_text())
        return answer


def find_tfjs() -> NodeTFJS:
    """Node, the TF.js package and the bridge, or :class:`TFJSUnavailable` saying how to install them."""
    node = os.environ.get("TFMODELKIT_NODE") or shutil.which("node")
    if not node:
        raise TFJSUnavailable(f"running TF.js models needs Node.js, which is not on PATH; {INSTALL_HINT}")
    given = os.environ.get("TFMODELKIT_NODE_MODULES")
    modules = Path(given) if given else PACKAGE_DIR / "node_modules"
    if not (modules / "@tensorflow" / "tfjs" / "package.json").is_file():
        where = f"TFMODELKIT_NODE_MODULES={given}" if given else str(modules)
        raise TFJSUnavailable(f"the TF.js package (@tensorflow/tfjs) is not installed in {where}; {INSTALL_HINT}")
    script = PACKAGE_DIR / SCRIPT
    if not script.is_file():
        raise TFJSUnavailable(f"{script}: the TF.js bridge script is missing from the project")
    return NodeTFJS(node, modules, script)


def tfjs_version(env: NodeTFJS) -> str | None:
    try:
        data = json.loads((env.node_modules / "@tensorflow" / "tfjs" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version")
    return str(version) if version else None


def encode(a: np.ndarray) -> dict[str, Any]:
    a = np.array(a, order="C", copy=None)  # not ascontiguousarray: it makes a scalar shape [1]
    return {"dtype": str(a.dtype) if a.dtype != np.bool_ else "bool", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def decode(entry: Mapping[str, Any]) -> np.ndarray:
    dtype = _JS_DTYPES.get(str(entry.get("dtype")))
    if dtype is None:
        raise UnsupportedError(f"TF.js returned a {entry.get('dtype')} output, which tfmodelkit cannot compare")
    raw = base64.b64decode(str(entry["b64"]))
    return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in entry["shape"]]).copy()


def _js_spec(spec: TensorSpec) -> TensorSpec:
    """The spec a TF.js tensor can carry: float64 and integer kinds narrow to float32 / int32."""
    if spec.dtype in _JS_DTYPES:
        return spec
    kind = np.dtype(spec.dtype).kind if spec.dtype not in ("string", "unknown") else "O"
    if kind in "iu":
        return TensorSpec(spec.name, "int32", spec.shape, spec.tensor)
    if kind == "f":
        return TensorSpec(spec.name, "float32", spec.shape, spec.tensor)
    raise UnsupportedError(f"input {spec.name!r} is {spec.dtype}, which TF.js tensors cannot hold")


class TFJSRunner(BaseRunner):
    """A TF.js ``model.json`` (layers or graph model) run by ``@tensorflow/tfjs`` in Node.js."""

    backend = "tfjs"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        desc = tfjs_format.read(path)  # refuses missing shards and hostile manifests first
        super().__init__(desc.metadata["model_json"])
        self.shown = str(path)
        self.kind = str(desc.metadata["tfjs_format"])
        self.env = find_tfjs()
        sig = desc.signatures[0]
        self.inputs = tuple(_js_spec(s) for s in sig.inputs)
        self.outputs = sig.outputs
        self.quantized = sorted({str(w.extra["quantization"]["dtype"]) for w in desc.weights if "quantization" in w.extra})
        if self.quantized:
            self.notes.append(f"weights quantized to {', '.join(self.quantized)} (dequantized by TF.js when loaded)")
        self.timings: dict[str, float] = {}

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        values = self.prepare(feed)
        if self.kind == tfjs_format.GRAPH:
            inputs = {(s.tensor or s.name): encode(values[s.name]) for s in self.inputs}
            wanted = [s.tensor or s.name for s in self.outputs]
        else:
            inputs = {s.name: encode(values[s.name]) for s in self.inputs}
            wanted = []
        answer = self.env.call(
            {"op": "run", "model": str(self.path), "inputs": inputs, "order": [s.name for s in self.inputs], "outputs": wanted}
        )
        if not answer.get("ok"):
            raise UserError(f"{self.shown}: TF.js could not load or run the model ({answer.get('error')})")
        self.timings = {"load_ms": float(answer.get("load_ms", 0)), "run_ms": float(answer.get("run_ms", 0))}
        outs = answer.get("outputs", [])
        if len(outs) != len(self.outputs):
            raise UnsupportedError(f"{self.shown}: TF.js returned {len(outs)} outputs, the model declares {len(self.outputs)}")
        return {s.name: decode(o) for s, o in zip(self.outputs, outs, strict=True)}

    def versions(self) -> dict[str, str | None]:
        return {"@tensorflow/tfjs": tfjs_version(self.env), "node": self._node_version()}

    def _node_version(self) -> str | None:
        try:
            out = subprocess.run([self.env.node, "--version"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip().lstrip("v") or None

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        loader = "tf.loadGraphModel" if self.kind == tfjs_format.GRAPH else "tf.loadLayersModel"
        d.update(loader=f"{loader} (@tensorflow/tfjs, cpu backend, Node.js)", tfjs_format=self.kind, quantized=self.quantized)
        return d


def describe_in_tfjs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What TF.js's own loader reports for a model: inputs, outputs, layers, every weight's
    dtype, shape and sha256 of its (dequantized) values, and the load time."""
    env = find_tfjs()
    model_json = tfjs_format.resolve(path)
    answer = env.call({"op": "describe", "model": str(model_json)})
    if not answer.get("ok"):
        raise UserError(f"{path}: TF.js could not load the model ({answer.get('error')})")
    return answer
