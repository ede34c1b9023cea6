"""Runners: load a model with the framework that wrote it and run it on a feed of numpy arrays.

Every runner has ``inputs`` and ``outputs`` (:class:`~tfmodelkit.description.TensorSpec` tuples,
in the order the runner reports them), ``run(feed) -> {output name: array}`` and
``describe() -> dict`` (backend, loader, framework versions, signature). TensorFlow and Keras
are imported inside the functions that need them, with their log noise silenced first;
the TFLite runner uses LiteRT (``ai_edge_litert``) and never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..description import Quantization, TensorSpec
from ..dtypes import numpy_dtype
from ..errors import FormatError, NotFoundError, UnsupportedError, UserError

CONVERT_EXTRA_HINT = "pip install 'tfmodelkit[convert]'"


@runtime_checkable
class Runner(Protocol):
    """What the verifier needs from a backend."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class QuantParams:
    """How a quantized TFLite input/output maps to real values: real = scale * (q - zero_point)."""

    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    #: The axis of per-channel parameters (meaningful only when there are several).
    axis: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "axis": self.axis,
        }

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.asarray(self.scale, dtype=np.float64)
        zero = np.asarray(self.zero_point, dtype=np.float64)
        if scale.size > 1 and ndim:
            shape = [1] * ndim
            shape[self.axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        elif scale.size == 1:
            scale, zero = scale.reshape(()), zero.reshape(())
        return scale, zero

    def quantize(self, real: np.ndarray) -> np.ndarray:
        """Round to nearest (half to even, as numpy does), then clip to the integer dtype's range."""
        dtype = np.dtype(self.dtype)
        info = np.iinfo(dtype)
        scale, zero = self._broadcast(real.ndim)
        q = np.round(np.asarray(real, dtype=np.float64) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zero = self._broadcast(q.ndim)
        return ((np.asarray(q, dtype=np.float64) - zero) * scale).astype(np.float32)


# --------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def quiet_fds(replay: bool = True) -> Iterator[None]:
    """Silence what native code writes to stdout/stderr; replay it if the block raises
    (unless ``replay`` is False: callers that turn the failure into one clear line).

    TF 2.21 logs its oneDNN banner through absl before logging is initialised, so
    TF_CPP_MIN_LOG_LEVEL does not stop it; LiteRT prints an XNNPACK line on first use.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
    except (OSError, ValueError):  # no real file descriptors (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            failed = True
            raise
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if failed and (replay or os.environ.get("TFMODELKIT_DEBUG")):
                sink.seek(0)
                text = sink.read().decode(errors="replace")
                if text.strip():
                    sys.stderr.write(text[-20000:])


def _silence_python_logs() -> None:
    import logging

    for name in ("tensorflow", "absl", "keras", "tf_keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


def import_tensorflow(purpose: str = "this") -> Any:
    """``tensorflow``, imported quietly; a UserError naming the extra when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        missing = "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is None
    except (ImportError, ValueError):
        missing = True
    if missing:
        raise UserError(f"{purpose} needs TensorFlow, from the convert extra: {CONVERT_EXTRA_HINT}")
    try:
        with quiet_fds(replay=False):
            import tensorflow as tf
    except ImportError as e:
        raise UserError(
            f"TensorFlow is installed but does not import ({e}); reinstall it: {CONVERT_EXTRA_HINT}"
        ) from None
    _silence_python_logs()
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras(purpose: str = "this") -> Any:
    """Keras 3 (``keras``), with TensorFlow as its backend."""
    import_tensorflow(purpose)
    if importlib.util.find_spec("keras") is None:
        raise UserError(f"{purpose} needs Keras 3, which is not installed: {CONVERT_EXTRA_HINT}")
    with quiet_fds():
        import keras
    _silence_python_logs()
    return keras


def import_tf_keras(purpose: str = "this") -> Any | None:
    """tf_keras (Keras 2), or None when it is not installed."""
    import_tensorflow(purpose)
    if importlib.util.find_spec("tf_keras") is None:
        return None
    with quiet_fds():
        import tf_keras
    _silence_python_logs()
    return tf_keras


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version

        return version(module.replace("_", "-"))
    except Exception:
        return None


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def savedmodel_load_error(folder: Path, e: BaseException) -> UserError:
    """What went wrong when TensorFlow loaded a SavedModel, said for the user."""
    import re

    text = str(e)
    op = re.search(r"Op type not registered '([^']+)'", text)
    if op:
        return UnsupportedError(
            f"{folder}: uses the op {op[1]}, which this TensorFlow ({_version('tensorflow')}) does not "
            "have: the model was made for a special build (TensorRT, a custom op library); convert "
            "the model it was made from"
        )
    key = re.search(r"Key (\S+) not found in checkpoint", text)
    if key:
        return UserError(
            f"{folder}: its variables have no value for {key[1]} (saved uninitialized, or the "
            "variables folder is from another save); TensorFlow cannot load it"
        )
    return UserError(f"{folder}: TensorFlow cannot load this SavedModel ({_first_line(e)})")


def _fmt_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def spec_dict(spec: TensorSpec) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": spec.name,
        "dtype": spec.dtype,
        "shape": None if spec.shape is None else list(spec.shape),
    }
    if spec.tensor:
        d["tensor"] = spec.tensor
    if spec.quantization is not None and spec.quantization.scale:
        d["quantization"] = {
            "scale": list(spec.quantization.scale),
            "zero_point": list(spec.quantization.zero_point),
        }
    return d


def _family(dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "bool"
    if dtype.kind in "SUO":
        return "string"
    if np.issubdtype(dtype, np.integer):
        return "int"
    if np.issubdtype(dtype, np.complexfloating):
        return "complex"
    return "float"


def _coerce(spec: TensorSpec, value: Any, who: str) -> np.ndarray:
    """``value`` as an array of ``spec``'s dtype and a shape ``spec`` allows, or a UserError."""
    a = np.asarray(value)
    if spec.shape is not None:
        if a.ndim != len(spec.shape):
            raise UserError(
                f"{who}: input {spec.name!r} has shape {list(a.shape)}, but the model expects {_fmt_shape(spec.shape)}"
            )
        for dim, got in zip(spec.shape, a.shape, strict=True):
            if dim is not None and dim != got:
                raise UserError(
                    f"{who}: input {spec.name!r} has shape {list(a.shape)}, but the model expects "
                    f"{_fmt_shape(spec.shape)}"
                )
    if spec.dtype == "string":
        if a.dtype.kind not in "SUO":
            raise UserError(f"{who}: input {spec.name!r} expects strings, got {a.dtype.name} values")
        flat = [x.encode("utf-8") if isinstance(x, str) else x for x in a.reshape(-1).tolist()]
        if not all(isinstance(x, bytes) for x in flat):
            raise UserError(f"{who}: input {spec.name!r} expects strings (bytes or str)")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(a.shape)
    want = numpy_dtype(spec.dtype)
    if a.dtype == want:
        return a
    fa, fw = _family(a.dtype), _family(want)
    if (
        a.dtype.kind in "SUO"
        or (fa == "float" and fw in ("int", "bool"))
        or (fa == "complex" and fw != "complex")
    ):
        raise UserError(f"{who}: input {spec.name!r} expects {spec.dtype}, got {a.dtype.name} values")
    if fw == "int" and fa in ("int", "bool") and a.size:
        info = np.iinfo(want)
        if a.min() < info.min or a.max() > info.max:
            raise UserError(
                f"{who}: input {spec.name!r} ({spec.dtype}) got values outside [{info.min}, {info.max}]"
            )
    return a.astype(want)


def _check_feed(specs: Sequence[TensorSpec], feed: Mapping[str, Any], who: str) -> None:
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feed]
    if missing:
        raise UserError(
            f"{who}: no value for input {', '.join(repr(m) for m in missing)} "
            f"(the model's inputs: {', '.join(names)}; given: {', '.join(map(str, feed)) or 'nothing'})"
        )
    extra = [k for k in feed if k not in names]
    if extra:
        raise UserError(
            f"{who}: the model has no input {', '.join(repr(str(e)) for e in extra)} (its inputs: {', '.join(names)})"
        )


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


class BaseRunner:
    """Shared plumbing: feed checks, descriptions."""

    backend = "base"
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: How reports and messages name the model: a conversion checks its output while it
        #: is still staged under a temporary name, and shows it by its destination.
        self.shown = str(path)
        self.notes: list[str] = []

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.shown}"

    @property
    def dequantized_outputs(self) -> Mapping[str, QuantParams]:
        """Outputs the runner turned from quantized integers into float32 (none here)."""
        return {}

    def prepare(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The feed checked against ``inputs`` (names, ranks, known dims) and cast to their dtypes."""
        _check_feed(self.inputs, feed, self.shown)
        return {s.name: _coerce(s, feed[s.name], self.shown) for s in self.inputs}

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The outputs for ``feed``, keyed by output name (each runner defines it)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str | None]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": self.shown,
            "versions": self.versions(),
            "inputs": [spec_dict(s) for s in self.inputs],
            "outputs": [spec_dict(s) for s in self.outputs],
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


# --------------------------------------------------------------------------------------- SavedModel


def _tf_shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None or shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in shape.as_list())


def _tf_dtype(dtype: Any) -> str:
    return "string" if dtype.name == "string" else str(dtype.name)


class SavedModelRunner(BaseRunner):
    """A SavedModel signature run by ``tf.saved_model.load`` (a serving base folder: its newest version).

    With ``safe_mode`` (the default) a model whose ops reach outside it (files, network, Python;
    ``modelinspect check --target safety``) is refused before TensorFlow loads it.
    """

    backend = "savedmodel"

    def __init__(
        self,
        path: str | os.PathLike[str],
        signature: str | None = "serving_default",
        tags: str | Sequence[str] | None = None,
        safe_mode: bool = True,
    ) -> None:
        super().__init__(path)
        from ..formats import savedmodel as sm_format

        resolved = sm_format.resolve(path)
        self.folder = resolved.folder
        self.notes.extend(resolved.notes)
        if safe_mode:
            from ..inspect.lint import require_safe

            require_safe(self.folder, format="savedmodel")
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        self.tags = tuple(tags) if tags else None
        tf = import_tensorflow("running a SavedModel")
        try:
            with quiet_fds():
                # Keep the loaded object: its signatures hold only weak references to the variables.
                self._loaded = tf.saved_model.load(
                    str(self.folder), tags=list(self.tags) if self.tags else None
                )
        except Exception as e:
            raise savedmodel_load_error(self.folder, e) from None
        sigs = dict(self._loaded.signatures)
        keys = sorted(sigs)
        if not keys:
            raise UnsupportedError(f"{self.folder}: the SavedModel has no signatures to run")
        if signature is None:
            if "serving_default" in sigs:
                signature = "serving_default"
            elif len(keys) == 1:
                signature = keys[0]
            else:
                raise UserError(
                    f"{self.folder}: has signatures {', '.join(keys)}; choose one with --signature"
                )
        if signature not in sigs:
            raise NotFoundError(f"{self.folder}: no signature {signature!r} (signatures: {', '.join(keys)})")
        self.signature = signature
        self._fn = sigs[signature]
        args, kwargs = self._fn.structured_input_signature
        if args:
            raise UnsupportedError(f"{self.folder}: signature {signature!r} takes positional inputs")
        self.inputs = tuple(
            TensorSpec(name=name, dtype=_tf_dtype(spec.dtype), shape=_tf_shape(spec.shape), tensor=spec.name)
            for name, spec in kwargs.items()
        )
        outputs = self._fn.structured_outputs
        if not isinstance(outputs, Mapping):
            raise UnsupportedError(
                f"{self.folder}: signature {signature!r} does not return a dict of outputs"
            )
        # A TF1 SavedModel loaded by TF2 describes its outputs as graph tensors, not TensorSpecs.
        composite = [
            n for n, s in [*kwargs.items(), *outputs.items()] if not isinstance(s, tf.TensorSpec | tf.Tensor)
        ]
        if composite:
            raise UnsupportedError(
                f"{self.folder}: signature {signature!r} has sparse or ragged tensors "
                f"({', '.join(composite)}), which verification does not handle"
            )
        self.outputs = tuple(
            TensorSpec(name=name, dtype=_tf_dtype(spec.dtype), shape=_tf_shape(spec.shape))
            for name, spec in outputs.items()
        )
        self._tf = tf

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = self._tf
        values = self.prepare(feed)
        tensors = {
            s.name: tf.constant(
                values[s.name], dtype=tf.string if s.dtype == "string" else tf.as_dtype(s.dtype)
            )
            for s in self.inputs
        }
        try:
            result = self._fn(**tensors)
        except (tf.errors.OpError, ValueError, TypeError) as e:
            raise UserError(
                f"{self.folder}: signature {self.signature!r} rejected the feed ({_first_line(e)})"
            ) from None
        return {name: _to_numpy(result[name]) for name in (s.name for s in self.outputs)}

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": _version("tensorflow")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="tf.saved_model.load", folder=str(self.folder), signature=self.signature, tags=self.tags
        )
        return d


# --------------------------------------------------------------------------------------- Keras

#: Layer classes whose config carries Python code (marshalled bytecode) that loading executes.
CODE_LAYERS = frozenset({"Lambda"})


def code_layers(config: Any) -> list[str]:
    """Names of layers in a Keras model config (parsed JSON) that carry Python code.

    Walks nested models too. Flags ``Lambda`` layers, anything whose config says a function
    is serialized as a ``lambda`` (Keras 1/2 ``function_type``/``output_shape_type``), and
    Keras 3 ``__lambda__`` objects (bytecode in, say, an activation).
    """
    found: list[str] = []

    def layer_name(node: Mapping[str, Any]) -> str:
        cfg = node.get("config")
        name = cfg.get("name") if isinstance(cfg, Mapping) else None
        return f"{name} ({node.get('class_name')})" if name else str(node.get("class_name"))

    def walk(node: Any, owner: str | None, depth: int) -> None:
        if depth > 200:
            found.append("<config nested too deeply to check>")
            return
        if isinstance(node, Mapping):
            cls = node.get("class_name")
            here = owner
            if cls == "__lambda__":  # Keras 3 serialized bytecode: blame the layer holding it
                found.append(owner or "<model>")
            elif isinstance(cls, str) and isinstance(node.get("config"), Mapping):
                if cls in CODE_LAYERS:
                    found.append(layer_name(node))
                here = layer_name(node)
            if node.get("function_type") == "lambda" or node.get("output_shape_type") == "lambda":
                found.append(here or "<model>")
            for v in node.values():
                walk(v, here, depth + 1)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v, owner, depth + 1)

    walk(config, None, 0)
    return list(dict.fromkeys(found))


def _read_h5_config(path: Path) -> Any | None:
    """The parsed ``model_config`` attribute of a Keras ``.h5`` file (None if it has none)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as e:
        raise UserError(f"{path}: cannot open as HDF5 ({_first_line(e)})") from None
    if raw is None:
        return None
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes() if raw.dtype.kind in "SV" else raw.item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise UserError(f"{path}: its model_config is not valid JSON ({e})") from None


def _read_zip_config(path: Path) -> Any | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            if "config.json" not in z.namelist():
                return None
            return json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .keras archive ({_first_line(e)})") from None


def _keras_spec(name: str, tensor: Any) -> TensorSpec:
    shape = getattr(tensor, "shape", None)
    if shape is not None and hasattr(shape, "as_list"):  # tf.TensorShape (tf_keras)
        dims = _tf_shape(shape)
    elif shape is not None:
        dims = tuple(None if d is None else int(d) for d in shape)
    else:
        dims = None
    dtype = getattr(tensor, "dtype", "float32")
    dtype = getattr(dtype, "name", dtype)
    return TensorSpec(name=name, dtype=str(dtype), shape=dims)


def _declared_input_ranks(config: Any) -> list[int] | None:
    """Input ranks a Keras 2 model config declares (batch_input_shape), when it says."""
    if not isinstance(config, Mapping):
        return None
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, Mapping) else inner
    if not isinstance(layers, list) or not layers:
        return None
    if config.get("class_name") == "Sequential":
        first = layers[0].get("config", {}) if isinstance(layers[0], Mapping) else {}
        shape = first.get("batch_input_shape") or first.get("batch_shape")
        return [len(shape)] if isinstance(shape, list) else None
    ranks = []
    for layer in layers:
        if isinstance(layer, Mapping) and layer.get("class_name") == "InputLayer":
            cfg = layer.get("config", {})
            shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
            if not isinstance(shape, list):
                return None
            ranks.append(len(shape))
    return ranks or None


def _input_rank_drift(path: Path, model: Any) -> str | None:
    """Keras 3 quirk: a Keras 2.3 Sequential whose first Dense declares batch_input_shape
    [None, 4] comes back with an input of shape (None, None, 4); it still computes, but the
    signature would be wrong. Returns a description when the ranks disagree."""
    declared = _declared_input_ranks(_read_h5_config(path))
    actual = [len(t.shape) for t in getattr(model, "inputs", None) or []]
    if declared is None or sorted(declared) == sorted(actual):
        return None
    return f"the file declares input ranks {declared}, Keras 3 built {actual}"


class KerasRunner(BaseRunner):
    """A Keras model file (``.keras``, ``.h5``) run by Keras 3, or by tf_keras when Keras 3 refuses it.

    ``loader``: "auto" (Keras 3, then tf_keras for files Keras 3 cannot read), "keras" or
    "tf_keras". tf_keras's legacy ``.h5`` loader has no safe mode, so with ``safe_mode=True``
    any file whose config carries Python code is refused before any loader sees it.
    """

    backend = "keras"

    def __init__(
        self,
        path: str | os.PathLike[str],
        safe_mode: bool = True,
        loader: str = "auto",
        custom_objects: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(path)
        self.custom_objects = dict(custom_objects or {})
        if loader not in ("auto", "keras", "tf_keras"):
            raise UserError(f"unknown Keras loader {loader!r}; choose auto, keras or tf_keras")
        from ..formats import detect

        fmt = detect(self.path)
        if fmt not in ("keras_h5", "keras_zip"):
            raise FormatError(f"{self.path}: a {fmt}, not a Keras model file (.keras or .h5)")
        self.format = fmt
        self.safe_mode = bool(safe_mode)
        config = _read_h5_config(self.path) if fmt == "keras_h5" else _read_zip_config(self.path)
        if config is None:
            what = "model_config" if fmt == "keras_h5" else "config.json"
            raise UserError(
                f"{self.path}: holds weights only (no {what}), so there is no model to run; "
                "load the weights into the model that wrote them"
            )
        risky = code_layers(config)
        if risky and self.safe_mode:
            raise UserError(
                f"{self.path}: refusing to load: {', '.join(risky[:5])} carr{'ies' if len(risky) == 1 else 'y'} "
                "Python code that loading would execute; pass safe_mode=False (--unsafe) only if you trust this file"
            )
        if risky:
            self.notes.append(
                f"loaded with safe mode off; Python code in {', '.join(risky[:5])} was executed"
            )
        self.loader = ""
        self._model = self._load(loader)
        self._bind()

    # Loading ------------------------------------------------------------------------------

    def _load(self, loader: str) -> Any:
        errors: list[str] = []
        if loader == "auto" and self.format == "keras_h5":
            from ..convert.keras_legacy import legacy_reason, load_legacy_model

            reason = legacy_reason(self.path)
            if reason:
                # Keras 1 files, Theano kernels and Keras 2's hard_sigmoid: Keras 3 refuses them
                # or silently computes other numbers, so they are rebuilt on tf_keras.
                legacy = load_legacy_model(self.path, unsafe=not self.safe_mode)
                self.loader = legacy.loader
                self.notes.append(f"{legacy.loader}: {reason}")
                self.notes.extend(legacy.notes)
                return legacy.model
        if loader in ("auto", "keras"):
            keras = import_keras("running a Keras model")
            try:
                with quiet_fds():
                    model = keras.saving.load_model(
                        str(self.path), safe_mode=self.safe_mode, compile=False,
                        custom_objects=self.custom_objects or None,
                    )  # fmt: skip
                drift = _input_rank_drift(self.path, model) if self.format == "keras_h5" else None
                if drift is None or loader == "keras":
                    self.loader = "keras"
                    return model
                errors.append(f"Keras 3 rebuilt the inputs wrongly ({drift})")
            except Exception as e:
                if "safe_mode" in str(e) and self.safe_mode:
                    raise UserError(
                        f"{self.path}: Keras refuses it in safe mode ({_first_line(e)})"
                    ) from None
                errors.append(f"Keras 3: {type(e).__name__}: {_first_line(e, 200)}")
                if loader == "keras":
                    raise UserError(f"{self.path}: Keras 3 cannot load it ({errors[-1]})") from None
        tf_keras = import_tf_keras("running a Keras 2 model")
        if tf_keras is None:
            raise UserError(
                f"{self.path}: Keras 3 cannot load it ({'; '.join(errors)}) and tf_keras (Keras 2) is not installed: "
                "pip install --no-deps 'tf_keras==2.21.*'"
            )
        try:
            with quiet_fds():
                if self.format == "keras_zip":
                    model = tf_keras.models.load_model(
                        str(self.path), safe_mode=self.safe_mode, compile=False,
                        custom_objects=self.custom_objects or None,
                    )  # fmt: skip
                else:  # the legacy loader ignores safe_mode: the config was checked above
                    model = tf_keras.models.load_model(
                        str(self.path), compile=False, custom_objects=self.custom_objects or None
                    )
        except Exception as e:
            if "bad marshal data" in str(e):
                raise UnsupportedError(
                    f"{self.path}: its Lambda code is Python 2 bytecode, which no Python 3 Keras can run; "
                    "rebuild the model in code and load the file's weights into it"
                ) from None
            errors.append(f"tf_keras: {type(e).__name__}: {_first_line(e, 200)}")
            raise UserError(f"{self.path}: no Keras can load it ({'; '.join(errors)})") from None
        self.loader = "tf_keras"
        if errors:
            self.notes.append(f"Keras 3 refused it, tf_keras loaded it ({errors[0]})")
        return model

    def _bind(self) -> None:
        model = self._model
        model_inputs = getattr(model, "inputs", None)
        if not model_inputs:
            raise UnsupportedError(
                f"{self.path}: the model has no defined inputs (a Sequential model saved before it was built)"
            )
        struct = None
        with contextlib.suppress(Exception):
            struct = model.input
        if isinstance(struct, Mapping):
            self._feed_kind = "dict"
            names = [str(k) for k in struct]
            tensors = list(struct.values())
        else:
            names = list(getattr(model, "input_names", None) or [])
            tensors = list(model_inputs)
            if len(names) != len(tensors):
                names = [str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in enumerate(tensors)]
            # Feed the structure the model was built with: Keras 3 warns when a one-element
            # list model (a tf_keras file, say) is fed a bare array.
            self._feed_kind = "list" if isinstance(struct, list | tuple) or len(tensors) > 1 else "single"
        self.inputs = tuple(_keras_spec(n, t) for n, t in zip(names, tensors, strict=True))

        outputs = list(getattr(model, "outputs", None) or [])
        out_names = list(getattr(model, "output_names", None) or [])
        if len(out_names) != len(outputs):
            # Keras 3 Sequential has no output_names: name outputs after the layers producing them.
            out_names = []
            for i, t in enumerate(outputs):
                history = getattr(t, "_keras_history", None)
                op = getattr(history, "operation", None) or getattr(history, "layer", None)
                out_names.append(getattr(op, "name", None) or f"output_{i}")
        self.outputs = tuple(_keras_spec(n, t) for n, t in zip(out_names, outputs, strict=True))

    @classmethod
    def from_model(cls, model: Any, path: str | os.PathLike[str], loader: str, notes: Sequence[str] = ()) -> KerasRunner:
        """A runner over a model that is already built (weights-only files, legacy upgrades)."""
        runner = cls.__new__(cls)
        BaseRunner.__init__(runner, path)
        runner.custom_objects = {}
        runner.format = "keras_h5" if Path(path).suffix.lower() in (".h5", ".hdf5") else "keras_zip"
        runner.safe_mode = True
        runner.loader = loader
        runner.notes.extend(notes)
        runner._model = model
        runner._bind()
        return runner

    @property
    def model(self) -> Any:
        """The loaded Keras model (Keras 3 or tf_keras)."""
        return self._model

    @property
    def feed_kind(self) -> str:
        """How the model takes its inputs: "dict", "list" or "single"."""
        return self._feed_kind

    # Running ------------------------------------------------------------------------------

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.prepare(feed)
        if self._feed_kind == "dict":
            x: Any = values
        elif self._feed_kind == "single":
            x = values[self.inputs[0].name]
        else:
            x = [values[s.name] for s in self.inputs]
        try:
            result = self._model(x, training=False)
        except Exception as e:
            raise UserError(
                f"{self.path}: the model rejected the feed ({type(e).__name__}: {_first_line(e)})"
            ) from None
        names = [s.name for s in self.outputs]
        if isinstance(result, Mapping):
            return {str(k): _to_numpy(v) for k, v in result.items()}
        if not isinstance(result, list | tuple):
            result = [result]
        if len(result) != len(names):
            raise UnsupportedError(
                f"{self.path}: the model returned {len(result)} outputs but declares {len(names)} ({', '.join(names)})"
            )
        return {n: _to_numpy(v) for n, v in zip(names, result, strict=True)}

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": _version("tensorflow"), self.loader: _version(self.loader)}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader=self.loader,
            format=self.format,
            safe_mode=self.safe_mode,
            model_class=type(self._model).__name__,
        )
        return d


# --------------------------------------------------------------------------------------- TFLite


def _quant_params(detail: Mapping[str, Any]) -> QuantParams | None:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return None
    qp = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in np.asarray(qp.get("scales", []), dtype=np.float64).reshape(-1)]
    zeros = [int(z) for z in np.asarray(qp.get("zero_points", []), dtype=np.int64).reshape(-1)]
    if not scales:
        scale, zero = detail.get("quantization", (0.0, 0))
        scales, zeros = ([float(scale)], [int(zero)]) if scale else ([], [])
    if not scales or all(s == 0 for s in scales):
        return None
    if len(zeros) != len(scales):
        zeros = (zeros or [0]) * len(scales) if len(zeros) <= 1 else zeros
    return QuantParams(
        dtype=dtype.name,
        scale=tuple(scales),
        zero_point=tuple(zeros),
        axis=int(qp.get("quantized_dimension", 0)),
    )


def _tflite_spec(name: str, detail: Mapping[str, Any], real: bool) -> TensorSpec:
    sig = np.asarray(detail.get("shape_signature", []), dtype=np.int64).reshape(-1)
    shape = np.asarray(detail["shape"], dtype=np.int64).reshape(-1)
    dims = sig if sig.size == shape.size and sig.size else shape
    q = _quant_params(detail)
    quant = Quantization(scale=q.scale, zero_point=q.zero_point, quantized_dimension=q.axis) if q else None
    dtype = np.dtype(detail["dtype"])
    dtype_name = "string" if dtype.kind in "SUO" else dtype.name
    return TensorSpec(
        name=name,
        dtype="float32" if (real and q is not None) else dtype_name,
        shape=tuple(None if d < 0 else int(d) for d in dims),
        tensor=str(detail.get("name", "")) or None,
        quantization=quant,
    )


class TFLiteRunner(BaseRunner):
    """A ``.tflite`` model run by LiteRT (``ai_edge_litert``), through a signature when it has any.

    Quantized integer inputs accept float feeds (quantized with the tensor's scale and zero
    point; integer feeds of the tensor's dtype pass through unchanged) and quantized outputs
    are dequantized to float32 (``dequantized_outputs`` says which, with their parameters);
    both can be switched off.
    """

    backend = "tflite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        signature: str | None = None,
        quantize_inputs: bool = True,
        dequantize_outputs: bool = True,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(path)
        if not self.path.is_file():
            raise NotFoundError(f"{self.path}: no such file")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError(
                f"running TFLite models needs LiteRT: pip install ai-edge-litert ({CONVERT_EXTRA_HINT})"
            ) from None
        try:
            with quiet_fds():
                self._interp = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"{self.path}: LiteRT cannot load this model ({_first_line(e)})") from None
        sigs = self._interp.get_signature_list()
        keys = list(sigs)
        self._runner: Any = None
        if keys:
            if signature is None:
                if len(keys) == 1:
                    signature = keys[0]
                elif "serving_default" in sigs:
                    signature = "serving_default"
                else:
                    raise UserError(
                        f"{self.path}: has signatures {', '.join(keys)}; choose one with --signature"
                    )
            if signature not in sigs:
                raise NotFoundError(
                    f"{self.path}: no signature {signature!r} (signatures: {', '.join(keys)})"
                )
            self._runner = self._interp.get_signature_runner(signature)
            in_details = list(self._runner.get_input_details().items())
            out_details = list(self._runner.get_output_details().items())
        else:
            if signature not in (None, "subgraph_0"):
                raise NotFoundError(f"{self.path}: has no signatures (run it without --signature)")
            in_details = [(str(d["name"]), d) for d in self._interp.get_input_details()]
            out_details = [(str(d["name"]), d) for d in self._interp.get_output_details()]
            self.notes.append("no signatures: ran subgraph 0's inputs and outputs, named by tensor")
        self.signature = signature
        self.quantize_inputs = bool(quantize_inputs)
        self.dequantize_outputs = bool(dequantize_outputs)
        self._in = {name: d for name, d in in_details}
        self._out = {name: d for name, d in out_details}
        self._in_q = {n: q for n, d in in_details if (q := _quant_params(d)) is not None}
        self._out_q = {n: q for n, d in out_details if (q := _quant_params(d)) is not None}
        self.inputs = tuple(_tflite_spec(n, d, self.quantize_inputs) for n, d in in_details)
        self.outputs = tuple(_tflite_spec(n, d, self.dequantize_outputs) for n, d in out_details)
        self._native_inputs = tuple(_tflite_spec(n, d, False) for n, d in in_details)
        self._shapes: dict[str, tuple[int, ...]] = {
            n: tuple(int(x) for x in d["shape"]) for n, d in in_details
        }
        self._first_run = True

    @property
    def dequantized_outputs(self) -> Mapping[str, QuantParams]:
        return dict(self._out_q) if self.dequantize_outputs else {}

    @property
    def quantized_inputs(self) -> Mapping[str, QuantParams]:
        """Inputs whose float feeds are quantized before running."""
        return dict(self._in_q) if self.quantize_inputs else {}

    def prepare(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        _check_feed(self.inputs, feed, self.shown)
        out = {}
        for spec, native in zip(self.inputs, self._native_inputs, strict=True):
            value = np.asarray(feed[spec.name])
            q = self._in_q.get(spec.name)
            if q is not None and self.quantize_inputs and _family(value.dtype) == "float":
                # Check the shape first (against the float spec), then quantize.
                _coerce(spec, value, self.shown)
                value = q.quantize(value)
            # LiteRT's signature runner resizes inputs non-strictly: a wrong non-batch dim would
            # run on garbage, so every known dim is checked here.
            out[spec.name] = _coerce(native, value, self.shown)
        return out

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.prepare(feed)
        ctx = quiet_fds() if self._first_run else contextlib.nullcontext()
        try:
            with ctx:  # the XNNPACK banner comes with the first allocation
                raw = self._invoke(values)
        except (ValueError, RuntimeError) as e:
            hint = ""
            if "hashtable need to be initialized" in str(e):
                hint = (
                    "; its lookup table was to be filled from a file, which TFLite cannot read "
                    "(modelinspect check --target tflite on the source says so)"
                )
            raise UserError(f"{self.shown}: LiteRT could not run the model ({_first_line(e)}){hint}") from None
        self._first_run = False
        result = {}
        for spec in self.outputs:
            a = np.array(raw[spec.name])  # a copy: LiteRT reuses its buffers
            q = self._out_q.get(spec.name)
            if q is not None and self.dequantize_outputs:
                a = q.dequantize(a)
            result[spec.name] = a
        return result

    def _invoke(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._runner is not None:
            return dict(self._runner(**values))
        interp = self._interp
        resized = False
        for name, value in values.items():
            if self._shapes.get(name) != value.shape:
                interp.resize_tensor_input(self._in[name]["index"], list(value.shape), strict=True)
                self._shapes[name] = value.shape
                resized = True
        if resized or self._first_run:
            interp.allocate_tensors()
        for name, value in values.items():
            interp.set_tensor(self._in[name]["index"], value)
        interp.invoke()
        return {name: interp.get_tensor(d["index"]) for name, d in self._out.items()}

    def versions(self) -> dict[str, str | None]:
        import ai_edge_litert

        return {"ai_edge_litert": getattr(ai_edge_litert, "__version__", None) or _version("ai_edge_litert")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="ai_edge_litert.interpreter.Interpreter",
            signature=self.signature,
            native_inputs=[spec_dict(s) for s in self._native_inputs],
            quantized_inputs={k: v.as_dict() for k, v in self.quantized_inputs.items()},
            dequantized_outputs={k: v.as_dict() for k, v in self.dequantized_outputs.items()},
        )
        return d


# --------------------------------------------------------------------------------------- dispatch

_OPTIONS = {
    "savedmodel": ("signature", "tags", "safe_mode"),
    "keras_h5": ("safe_mode", "loader"),
    "keras_zip": ("safe_mode", "loader"),
    "tflite": ("signature", "quantize_inputs", "dequantize_outputs", "num_threads"),
}


def runner_for(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> BaseRunner:
    """The runner for ``path``, chosen by :func:`tfmodelkit.detect` (or ``format``).

    Options that do not apply to the format are refused unless they are None (so a command can
    pass every flag through): ``signature``/``tags``/``safe_mode`` (SavedModel), ``safe_mode``/``loader``
    (Keras), ``signature``/``quantize_inputs``/``dequantize_outputs``/``num_threads`` (TFLite).
    """
    from ..formats import detect, normalize_format

    fmt = normalize_format(format) if format else detect(path)
    if fmt == "checkpoint":
        raise UnsupportedError(
            f"{path}: a checkpoint holds weights only, there is no graph to run; convert it first or verify the "
            "SavedModel or Keras file it belongs to"
        )
    allowed = _OPTIONS[fmt]
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UserError(
            f"{path}: option {', '.join(unknown)} does not apply to a {fmt} model (it takes: {', '.join(allowed)})"
        )
    if fmt == "savedmodel":
        given.setdefault("signature", None)
        return SavedModelRunner(path, **given)
    if fmt in ("keras_h5", "keras_zip"):
        return KerasRunner(path, **given)
    return TFLiteRunner(path, **given)
