"""A ``.keras`` file run the way its users will run it: plain ``keras.saving.load_model`` in a
fresh Python process (safe mode on, no ``custom_objects``, tfmodelkit kept unimportable).

A conversion to ``.keras`` must prove that the file stands on its own: nothing registered in
our process (custom classes, patched functions) may help it load. The worker process starts
when the runner is made, so its Keras import overlaps the conversion's own work; it then
takes requests (load, run) as JSON lines, and arrays travel through ``.npz`` files in a
private temporary folder. ``keras_backend`` selects ``KERAS_BACKEND`` ("tensorflow", "jax").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...description import TensorSpec
from ...errors import UnsupportedError, UserError
from .base import BaseRunner

#: The worker: blocks tfmodelkit, keeps its protocol on a private copy of stdout (anything
#: Keras or TensorFlow prints goes to stderr), loads with Keras's defaults only.
WORKER = r"""
import json, os, sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name == "tfmodelkit" or name.startswith("tfmodelkit."):
            raise ImportError("tfmodelkit is kept out of this process")
        return None

sys.meta_path.insert(0, _Blocked())
_out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

def reply(**kw):
    _out.write(json.dumps(kw) + "\n")
    _out.flush()

def error(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:400]

sys.path[:0] = json.loads(os.environ.get("TFMODELKIT_WORKER_SYSPATH", "[]"))
try:
    import numpy as np
    import keras
    for module in json.loads(os.environ.get("TFMODELKIT_WORKER_PRELOAD", "[]")):
        __import__(module)
except Exception as e:
    reply(ok=False, error=error(e))
    sys.exit(0)
try:
    import tfmodelkit  # noqa: F401
    importable = True
except ImportError:
    importable = False
reply(ok=True, keras=keras.__version__, backend=keras.backend.backend(), tfmodelkit_importable=importable)

def spec(name, t):
    return {"name": str(name), "dtype": str(getattr(t.dtype, "name", t.dtype)),
            "shape": [None if d is None else int(d) for d in t.shape]}

def describe(model, given):
    if not hasattr(model, "inputs") and given:
        # A subclassed model has no symbolic inputs or outputs: the caller says how to feed it.
        return dict(given, layers=[layer.name for layer in model.layers])
    struct = getattr(model, "input", None)
    if isinstance(struct, dict):
        kind, names, tensors = "dict", list(struct), list(struct.values())
    else:
        tensors = list(model.inputs)
        names = [t.name for t in tensors]
        kind = "list" if isinstance(struct, (list, tuple)) or len(tensors) > 1 else "single"
    outputs = list(model.outputs)
    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(outputs):
        out_names = []
        for i, t in enumerate(outputs):
            history = getattr(t, "_keras_history", None)
            op = getattr(history, "operation", None)
            out_names.append(getattr(op, "name", None) or f"output_{i}")
    return {"feed_kind": kind, "inputs": [spec(n, t) for n, t in zip(names, tensors)],
            "outputs": [spec(n, t) for n, t in zip(out_names, outputs)],
            "layers": [layer.name for layer in model.layers]}

model = source = None
state = source_state = {}
for line in sys.stdin:
    request = json.loads(line)
    try:
        if request["op"] == "load":
            model = keras.saving.load_model(request["path"])
            if request.get("weights"):
                for v in model.weights:
                    v.assign(np.zeros(v.shape, dtype=v.dtype))
                model.load_weights(request["weights"])
            state = describe(model, request.get("given"))
            reply(ok=True, **state)
        elif request["op"] == "register":
            # The user's modules, imported as a user loading the file would, and the classes
            # the report tells the user to register (their module does not) registered the same way.
            sys.path[:0] = request["sys_path"]
            for module in request["modules"]:
                __import__(module)
            for module, name, package in request["classes"]:
                cls = getattr(sys.modules[module], name)
                if keras.saving.get_registered_object(f"{package}>{name}") is None:
                    keras.saving.register_keras_serializable(package=package)(cls)
            reply(ok=True)
        elif request["op"] == "convert":
            # A .keras plain Keras loads as it is: loaded and saved here, so that the conversion
            # needs no Keras of its own; kept as the reference the saved file is checked against.
            source = keras.saving.load_model(request["src"], compile=False)
            source_state = describe(source, None)
            source.save(request["path"])
            if request.get("weights"):
                source.save_weights(request["weights"])
            reply(ok=True, **source_state)
        elif request["op"] == "optimizer":
            optimizer = getattr(model, "optimizer", None)
            if optimizer is None:
                reply(ok=True, optimizer=None)
                continue
            values = {v.path: keras.ops.convert_to_numpy(v) for v in optimizer.variables}
            np.savez(request["out"], **values)
            reply(ok=True, optimizer=type(optimizer).__name__, paths=list(values),
                  iterations=int(keras.ops.convert_to_numpy(optimizer.iterations)))
        elif request["op"] == "reset":
            model = source = None
            state = source_state = {}
            keras.backend.clear_session()
            reply(ok=True)
        elif request["op"] == "run":
            with np.load(request["feed"]) as z:
                values = {k: z[k] for k in z.files}
            which, how = (source, source_state) if request.get("source") else (model, state)
            names = [s["name"] for s in how["inputs"]]
            if how["feed_kind"] == "dict":
                x = values
            elif how["feed_kind"] == "single":
                x = values[names[0]]
            else:
                x = [values[n] for n in names]
            y = which(x, training=False)
            if isinstance(y, dict):
                result = {str(k): keras.ops.convert_to_numpy(v) for k, v in y.items()}
            else:
                y = y if isinstance(y, (list, tuple)) else [y]
                result = {s["name"]: keras.ops.convert_to_numpy(v) for s, v in zip(how["outputs"], y)}
            np.savez(request["out"], **result)
            reply(ok=True)
    except Exception as e:
        reply(ok=False, error=error(e))
"""


def _spec(d: Mapping[str, Any]) -> TensorSpec:
    shape = d.get("shape")
    return TensorSpec(
        name=str(d["name"]), dtype=str(d["dtype"]), shape=None if shape is None else tuple(shape)
    )


def _spec_dict(s: TensorSpec) -> dict[str, Any]:
    return {"name": s.name, "dtype": s.dtype, "shape": None if s.shape is None else list(s.shape)}


class KerasProcessRunner(BaseRunner):
    """A ``.keras`` file loaded by plain Keras 3 in a separate process (see the module docstring).

    Make it early (the worker starts importing Keras at once), then :meth:`load` the file;
    ``weights``, when given, is a ``.weights.h5`` loaded over the model after zeroing every
    variable, which proves the weights file alone carries the values. ``preload`` names modules
    the worker imports first (a user's module that registers custom classes), found on
    ``sys_path`` (folders put first on the worker's path); :meth:`register` adds user code
    once it is known (a ``--model`` module, classes its module does not register)."""

    backend = "keras-process"

    def __init__(
        self,
        *,
        keras_backend: str = "tensorflow",
        preload: Sequence[str] = (),
        sys_path: Sequence[str] = (),
    ) -> None:
        super().__init__("<not loaded>")
        self.keras_backend = keras_backend
        self.layer_names: list[str] = []
        self.feed_kind = "single"
        self._work = Path(tempfile.mkdtemp(prefix="tfmodelkit-keras-process-"))
        env = dict(os.environ)
        env["KERAS_BACKEND"] = keras_backend
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["TFMODELKIT_WORKER_PRELOAD"] = json.dumps(list(preload))
        env["TFMODELKIT_WORKER_SYSPATH"] = json.dumps([str(p) for p in sys_path])
        env.pop("PYTHONPATH", None)
        # -I: no script folder, current folder or user site on sys.path; the worker also
        # blocks tfmodelkit itself (an editable install would otherwise be importable).
        self._proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-I", "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=self._work, env=env,
        )  # fmt: skip
        self._hello: dict[str, Any] | None = None
        #: Whether user code was imported after start (such a worker is not reused).
        self.tainted = False

    # ---------------------------------------------------------------- protocol

    def _receive(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait(timeout=30)
            raise UnsupportedError(
                f"{self.shown}: the Keras process ({self.keras_backend}) ended (exit {code})"
            )
        return dict(json.loads(line))

    def _hello_once(self) -> dict[str, Any]:
        if self._hello is None:
            self._hello = self._receive()
            if not self._hello.get("ok"):
                raise UnsupportedError(
                    f"Keras cannot start with KERAS_BACKEND={self.keras_backend} ({self._hello.get('error')})"
                )
        return self._hello

    def _ask(self, **request: Any) -> dict[str, Any]:
        self._hello_once()
        if self._proc is None or self._proc.stdin is None:
            raise UnsupportedError(f"{self.shown}: the Keras process is closed")
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._receive()

    # ---------------------------------------------------------------- runner

    @property
    def hello(self) -> dict[str, Any]:
        """What the worker said on start: Keras version, backend, whether tfmodelkit was importable."""
        return self._hello_once()

    def load(
        self,
        path: str | os.PathLike[str],
        weights: str | os.PathLike[str] | None = None,
        *,
        given: tuple[str, Sequence[TensorSpec], Sequence[TensorSpec]] | None = None,
    ) -> None:
        """Load ``path`` with ``keras.saving.load_model(path)`` (and ``weights`` over it).

        ``given`` (feed kind "single", "list" or "dict", inputs, outputs) says how to feed a
        model that declares no inputs of its own (a subclassed one)."""
        self.path = Path(path)
        if self.shown == "<not loaded>":
            self.shown = str(path)
        # The worker runs in a folder of its own: relative paths would not reach the file.
        answer = self._ask(
            op="load",
            path=str(Path(path).resolve()),
            weights=None if weights is None else str(Path(weights).resolve()),
            given=None if given is None else {
                "feed_kind": given[0],
                "inputs": [_spec_dict(s) for s in given[1]],
                "outputs": [_spec_dict(s) for s in given[2]],
            },
        )  # fmt: skip
        if not answer.get("ok"):
            raise UserError(
                f"{self.shown}: plain Keras ({self.keras_backend}) cannot load it: {answer.get('error')}"
            )
        self.inputs = tuple(_spec(d) for d in answer["inputs"])
        self.outputs = tuple(_spec(d) for d in answer["outputs"])
        self.feed_kind = str(answer["feed_kind"])
        self.layer_names = [str(n) for n in answer["layers"]]

    def convert(
        self, src: str | os.PathLike[str], path: Path, weights: Path | None = None
    ) -> KerasProcessSource:
        """Load ``src`` with plain ``keras.saving.load_model`` in the worker and save it to ``path``
        (and ``weights``) there; the source model stays in the worker as the reference, run by
        the returned runner. Raises UserError when plain Keras cannot load it."""
        answer = self._ask(
            op="convert",
            src=str(Path(src).resolve()),
            path=str(Path(path).resolve()),
            weights=None if weights is None else str(Path(weights).resolve()),
        )
        if not answer.get("ok"):
            raise UserError(
                f"{src}: plain Keras ({self.keras_backend}) cannot load it: {answer.get('error')}"
            )
        return KerasProcessSource(self, src, answer)

    def run_feed(self, feed: Mapping[str, np.ndarray], *, source: bool = False) -> dict[str, np.ndarray]:
        """Run the loaded model (or, with ``source``, the model :meth:`convert` loaded) on ``feed``."""
        feed_file, out_file = self._work / "feed.npz", self._work / "out.npz"
        arrays: dict[str, Any] = dict(feed)
        np.savez(feed_file, **arrays)
        answer = self._ask(op="run", feed=str(feed_file), out=str(out_file), source=source)
        if not answer.get("ok"):
            raise UserError(f"{self.shown}: the model rejected the feed ({answer.get('error')})")
        with np.load(out_file) as z:
            return {k: z[k] for k in z.files}

    def register(
        self,
        classes: Sequence[tuple[str, str, str]],
        *,
        modules: Sequence[str] = (),
        sys_path: Sequence[str] = (),
    ) -> None:
        """Import ``modules`` (found on ``sys_path``) in the worker and register ``classes``
        ``(module, class name, package)`` their module does not register itself."""
        if not classes and not modules:
            return
        self.tainted = True
        answer = self._ask(
            op="register",
            sys_path=[str(p) for p in sys_path],
            modules=list(dict.fromkeys([*modules, *(c[0] for c in classes)])),
            classes=[list(c) for c in classes],
        )
        if not answer.get("ok"):
            raise UserError(
                f"plain Keras ({self.keras_backend}) cannot import the model's code: {answer.get('error')}"
            )

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self.run_feed(self.prepare(feed))

    def optimizer_state(self) -> tuple[str | None, dict[str, np.ndarray]]:
        """The loaded model's optimizer: its class name (None without one) and its variables by path."""
        out_file = self._work / "optimizer.npz"
        answer = self._ask(op="optimizer", out=str(out_file))
        if not answer.get("ok"):
            raise UserError(f"{self.shown}: reading its optimizer failed ({answer.get('error')})")
        if answer.get("optimizer") is None:
            return None, {}
        with np.load(out_file) as z:
            values = {k: z[k] for k in z.files}
        return str(answer["optimizer"]), {p: values[p] for p in answer["paths"]}

    def versions(self) -> dict[str, str | None]:
        hello = self._hello or {}
        return {"keras": hello.get("keras"), "keras_backend": self.keras_backend}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="keras.saving.load_model (fresh process, safe mode)", keras_backend=self.keras_backend
        )
        return d

    def reset(self) -> bool:
        """Forget the loaded model, ready for another file; False when the worker is gone or
        imported user code."""
        if self.tainted:
            return False
        try:
            answer = self._ask(op="reset")
        except (UnsupportedError, OSError, ValueError):
            return False
        self.path, self.shown, self.inputs, self.outputs, self.layer_names = (
            Path("<not loaded>"),
            "<not loaded>",
            (),
            (),
            [],
        )
        return bool(answer.get("ok"))

    def close(self) -> None:
        """Stop the worker and remove its folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            # Its interpreter's teardown of TensorFlow takes seconds and keeps nothing: a
            # worker that does not end at once on end of input is killed.
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> KerasProcessRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class KerasProcessSource(BaseRunner):
    """The source of :meth:`KerasProcessRunner.convert`: plain Keras 3's own load of a ``.keras``
    (its original loader), run in the worker that saved the result."""

    backend = "keras"
    loader = "keras"

    def __init__(
        self, worker: KerasProcessRunner, path: str | os.PathLike[str], answer: Mapping[str, Any]
    ) -> None:
        super().__init__(path)
        self.worker = worker
        self.inputs = tuple(_spec(d) for d in answer["inputs"])
        self.outputs = tuple(_spec(d) for d in answer["outputs"])
        self.feed_kind = str(answer["feed_kind"])
        self.layer_names = [str(n) for n in answer["layers"]]
        self.hints: dict[str, Any] = {}

    def input_hints(self) -> dict[str, Any]:
        return self.hints

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self.worker.run_feed(self.prepare(feed), source=True)

    def versions(self) -> dict[str, str | None]:
        return self.worker.versions()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="keras.saving.load_model (plain Keras process)", keras_backend=self.worker.keras_backend
        )
        return d
