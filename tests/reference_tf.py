"""TensorFlow's, Keras's and LiteRT's own view of a model file: the oracle for golden tests.

``reference(path, kind)`` loads a model with the official tools and reports it in the schema
of the corpus's ``EXPECTED.json`` (one entry), so that one comparison routine can check our
TF-free readers against the corpus expectations and against our own fixtures alike.

Schema per kind (all dicts JSON-ready; ``{"kind", "ok": False, "error": "Type: message"}`` on
failure, the message cut to 200 characters):

- ``checkpoint``: ``{"kind", "ok", "variables": {name: {"dtype", "shape", "sha256"}}}`` from
  ``tf.train.load_checkpoint``. ``path`` is a prefix, or a directory (its ``checkpoint`` state
  file's newest prefix, else its only ``*.index``).
- ``savedmodel``: ``{"kind", "ok", "schema_version", "meta_graphs": [{"tags",
  "tensorflow_version", "signatures": {key: {"inputs", "outputs": {name: {"dtype", "name",
  "shape"}}, "method"}}, "op_counts", "object_graph_nodes"}], "variables"}`` from the parsed
  ``SavedModel`` proto (``saved_model.pb`` or ``.pbtxt``). ``op_counts`` counts ``NodeDef.op``
  over the graph and every function body; signature shapes use ``None`` for an unknown
  dimension and ``null`` for an unknown rank; ``__saved_model_init_op`` is kept (dtype
  ``"invalid"``). ``variables`` lists ``variables/variables`` like a checkpoint (``{}`` if absent).
- ``keras_h5`` / ``keras_zip``: ``{"kind", "ok", "class_name", "layers", "param_count",
  "weights": [{"path", "dtype", "shape"}]}`` from Keras 3
  ``keras.saving.load_model(safe_mode=True, compile=False)``; ``layers`` are the top-level
  layer names, ``weights`` the model's variables in ``model.weights`` order (Keras 3
  ``Variable.path``). A ``.h5`` file that Keras 3 refuses is then loaded with ``tf_keras``
  (Keras 2), in the same schema (weight paths are its variable names without ``:0``), unless
  ``legacy_keras_fallback=False``. Keras 3.15 refuses some files tf_keras 2.21 itself writes
  (an LSTM: ``time_major``; a Sequential nested in a functional model). The corpus's
  EXPECTED.json was made WITHOUT the fallback: pass ``legacy_keras_fallback=False`` to
  reproduce it (``--corpus`` does).
- ``tflite``: ``{"kind", "ok", "inputs", "outputs": [{"dtype", "name", "shape"}],
  "signatures": {key: {"inputs", "outputs": {name: {"dtype", "shape"}}}}, "tensor_count"}``
  from ``ai_edge_litert.interpreter.Interpreter`` without ``allocate_tensors``; shapes are the
  shape signatures (``-1`` = dynamic), ``tensor_count`` is ``len(get_tensor_details())``.

``sha256`` is over the tensor's row-major little-endian bytes as numpy holds them (one byte
per element for int4/int2/float8 and bool); for strings over each element as an 8-byte
little-endian length followed by its bytes. dtype names are TensorFlow's (``float32``,
``bfloat16``, ``string``, ``qint8``...).

TensorFlow and Keras are imported lazily, with their start-up log noise silenced.
Run ``python -m tests.reference_tf PATH KIND`` to print one entry, or
``python -m tests.reference_tf --corpus [DIR]`` to check this module against EXPECTED.json
(``python tests/reference_tf.py ...`` works too).
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts tests/ first on sys.path, where tests/inspect/ would shadow the
# standard library's `inspect` (which TensorFlow needs). Prefer `python -m tests.reference_tf`.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import collections  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

KINDS = ("checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite")
ERROR_LIMIT = 200


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Send C++ writes to stderr (fd 2) to a temporary file; replay them if the block fails.

    TensorFlow prints oneDNN and absl banners at import time before its own log level applies.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _quiet_fd2():
            import tensorflow  # noqa: F401
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(ImportError):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    import tensorflow as tf

    return tf


def _error(kind: str, exc: BaseException) -> dict[str, Any]:
    return {"kind": kind, "ok": False, "error": f"{type(exc).__name__}: {str(exc).strip()[:ERROR_LIMIT]}"}


def reference(path: str | Path, kind: str, *, legacy_keras_fallback: bool = True) -> dict[str, Any]:
    """What TF/Keras/LiteRT report for ``path`` read as ``kind``, in EXPECTED.json's schema."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "checkpoint":
                result = _checkpoint(path)
            elif kind == "savedmodel":
                result = _savedmodel(path)
            elif kind == "tflite":
                result = _tflite(path)
            else:
                result = _keras(path, kind, legacy_keras_fallback)
    except Exception as exc:  # the reference tool's failure is a result, not a crash
        return _error(kind, exc)
    return json.loads(json.dumps(result))


# --------------------------------------------------------------------------- checkpoints


def tensor_sha256(value: Any, dtype_name: str) -> str:
    """sha256 of a tensor value as EXPECTED.json defines it."""
    import numpy as np

    digest = hashlib.sha256()
    if dtype_name == "string":
        if isinstance(value, bytes):  # TF hands back a scalar string as bare bytes
            items: Any = [value]
        else:
            items = np.asarray(value, dtype=object).reshape(-1)
        for item in items:
            item = item.encode() if isinstance(item, str) else bytes(item)
            digest.update(len(item).to_bytes(8, "little"))
            digest.update(item)
        return digest.hexdigest()
    array = np.ascontiguousarray(value)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.byteswap().view(array.dtype.newbyteorder("<"))
    digest.update(array.tobytes())
    return digest.hexdigest()


def _checkpoint_variables(prefix: str) -> dict[str, Any]:
    tf = _tf()
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    out = {}
    for name in sorted(dtypes):
        dtype_name = dtypes[name].name
        out[name] = {
            "dtype": dtype_name,
            "shape": [int(d) for d in shapes[name]],
            "sha256": tensor_sha256(reader.get_tensor(name), dtype_name),
        }
    return out


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix for ``path`` (a prefix, or a directory holding checkpoints)."""
    if not os.path.isdir(path):
        return path
    tf = _tf()
    latest = tf.train.latest_checkpoint(path)
    if latest:
        return latest
    indexes = sorted(Path(path).glob("*.index"))
    if len(indexes) == 1:
        return str(indexes[0])[: -len(".index")]
    raise FileNotFoundError(f"no checkpoint state and {len(indexes)} *.index files in {path}")


def _checkpoint(path: str) -> dict[str, Any]:
    return {"kind": "checkpoint", "ok": True, "variables": _checkpoint_variables(resolve_checkpoint(path))}


# --------------------------------------------------------------------------- SavedModel


def _dtype_name(enum: int) -> str:
    if enum == 0:
        return "invalid"
    return _tf().as_dtype(enum).name


def _shape(proto: Any) -> list[int | None] | None:
    if proto.unknown_rank:
        return None
    return [None if d.size == -1 else int(d.size) for d in proto.dim]


def _tensor_info(info: Any) -> dict[str, Any]:
    return {"dtype": _dtype_name(info.dtype), "name": info.name, "shape": _shape(info.tensor_shape)}


def _savedmodel(path: str) -> dict[str, Any]:
    _tf()
    from tensorflow.python.saved_model import loader_impl

    if os.path.isfile(path):
        path = os.path.dirname(path)
    proto = loader_impl.parse_saved_model(path)
    meta_graphs = []
    for mg in proto.meta_graphs:
        ops = collections.Counter(node.op for node in mg.graph_def.node)
        for function in mg.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        signatures = {
            key: {
                "inputs": {name: _tensor_info(t) for name, t in sig.inputs.items()},
                "outputs": {name: _tensor_info(t) for name, t in sig.outputs.items()},
                "method": sig.method_name,
            }
            for key, sig in mg.signature_def.items()
        }
        meta_graphs.append(
            {
                "tags": list(mg.meta_info_def.tags),
                "tensorflow_version": mg.meta_info_def.tensorflow_version,
                "signatures": signatures,
                "op_counts": dict(sorted(ops.items())),
                "object_graph_nodes": len(mg.object_graph_def.nodes),
            }
        )
    prefix = os.path.join(path, "variables", "variables")
    variables = _checkpoint_variables(prefix) if os.path.exists(prefix + ".index") else {}
    return {
        "kind": "savedmodel",
        "ok": True,
        "schema_version": int(proto.saved_model_schema_version),
        "meta_graphs": meta_graphs,
        "variables": variables,
    }


# --------------------------------------------------------------------------- Keras


def _keras(path: str, kind: str, legacy_fallback: bool) -> dict[str, Any]:
    _tf()
    import keras

    keras.backend.clear_session()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception:
        if not (legacy_fallback and kind == "keras_h5"):
            raise
        try:
            return _tf_keras(path, kind)
        except Exception:
            pass
        raise
    return {
        "kind": kind,
        "ok": True,
        "class_name": type(model).__name__,
        "layers": [layer.name for layer in model.layers],
        "param_count": int(model.count_params()),
        "weights": [
            {"path": w.path, "dtype": str(w.dtype), "shape": [int(d) for d in w.shape]} for w in model.weights
        ],
    }


def _tf_keras(path: str, kind: str) -> dict[str, Any]:
    import tf_keras

    tf_keras.backend.clear_session()
    model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
    weights = []
    for w in model.weights:
        name = w.name[: -len(":0")] if w.name.endswith(":0") else w.name
        weights.append({"path": name, "dtype": w.dtype.name, "shape": [int(d) for d in w.shape]})
    return {
        "kind": kind,
        "ok": True,
        "class_name": type(model).__name__,
        "layers": [layer.name for layer in model.layers],
        "param_count": int(model.count_params()),
        "weights": weights,
    }


# --------------------------------------------------------------------------- TFLite


def _tflite_dtype(dtype: Any) -> str:
    import numpy as np

    dt = np.dtype(dtype)
    if dt.kind in ("S", "O", "U"):
        return "string"
    return dt.name


def _tflite_tensor(detail: dict[str, Any], with_name: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dtype": _tflite_dtype(detail["dtype"]),
        "shape": [int(d) for d in detail["shape_signature"]],
    }
    if with_name:
        out["name"] = detail["name"]
    return out


def _tflite(path: str) -> dict[str, Any]:
    with _quiet_fd2():
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
    signatures = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        signatures[key] = {
            "inputs": {n: _tflite_tensor(d, False) for n, d in runner.get_input_details().items()},
            "outputs": {n: _tflite_tensor(d, False) for n, d in runner.get_output_details().items()},
        }
    return {
        "kind": "tflite",
        "ok": True,
        "inputs": [_tflite_tensor(d) for d in interpreter.get_input_details()],
        "outputs": [_tflite_tensor(d) for d in interpreter.get_output_details()],
        "signatures": signatures,
        "tensor_count": len(interpreter.get_tensor_details()),
    }


# --------------------------------------------------------------------------- checking


def differences(actual: Any, expected: Any, where: str = "") -> list[str]:
    """Human-readable differences between two entries (an error's wording is not compared)."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        if actual.get("ok") is False and expected.get("ok") is False:
            return [] if actual.get("kind") == expected.get("kind") else [f"{where}/kind"]
        out = []
        for key in sorted(set(actual) | set(expected), key=str):
            if key not in actual:
                out.append(f"{where}/{key}: missing")
            elif key not in expected:
                out.append(f"{where}/{key}: unexpected")
            else:
                out.extend(differences(actual[key], expected[key], f"{where}/{key}"))
        return out
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        out = []
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            out.extend(differences(a, e, f"{where}[{i}]"))
        return out
    if actual != expected:
        return [f"{where}: {json.dumps(actual)[:120]} != {json.dumps(expected)[:120]}"]
    return []


def check_corpus(corpus: Path) -> int:
    """Compare ``reference()`` (without the tf_keras fallback, as EXPECTED.json was made) with
    every corpus entry; also count the entries the fallback would describe instead."""
    expected = json.loads((corpus / "EXPECTED.json").read_text())
    matched = 0
    rescued = []
    for key, entry in sorted(expected.items()):
        diffs = differences(reference(corpus / key, entry["kind"], legacy_keras_fallback=False), entry)
        matched += not diffs
        print(f"{'ok  ' if not diffs else 'DIFF'} {key}")
        for line in diffs:
            print(f"     {line}")
        if entry["kind"] == "keras_h5" and not entry["ok"] and reference(corpus / key, "keras_h5")["ok"]:
            rescued.append(key)
    print(f"{matched}/{len(expected)} entries match EXPECTED.json (legacy_keras_fallback=False)")
    print(
        f"with the default tf_keras fallback, {len(rescued)} keras_h5 entries that Keras 3 refuses "
        f"are described by tf_keras instead: {', '.join(rescued)}"
    )
    return 0 if matched == len(expected) else 1


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="model file, directory or checkpoint prefix")
    parser.add_argument("kind", nargs="?", choices=KINDS)
    parser.add_argument(
        "--no-legacy-keras-fallback",
        dest="fallback",
        action="store_false",
        help="report Keras 3's error for .h5 files it refuses, as EXPECTED.json does",
    )
    parser.add_argument("--corpus", nargs="?", const="", metavar="DIR", help="check against EXPECTED.json")
    args = parser.parse_args(argv)
    if args.corpus is not None:
        default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
        corpus = Path(args.corpus or os.environ.get("TFMODELKIT_CORPUS", default))
        return check_corpus(corpus)
    if not (args.path and args.kind):
        parser.error("give PATH and KIND, or --corpus")
    result = reference(args.path, args.kind, legacy_keras_fallback=args.fallback)
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
