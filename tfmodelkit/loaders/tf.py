"""TensorFlow, Keras 3 and tf_keras, imported lazily and quietly.

Nothing below ``loaders/`` imports these frameworks; everything above imports them through
this module, so the log silencing and the "install the convert extra" errors live in one place.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import UserError

CONVERT_EXTRA_HINT = "pip install 'tfmodelkit[convert]'"
TF_KERAS_HINT = "pip install --no-deps 'tf_keras==2.21.*'"


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


def version(module: str) -> str | None:
    """The installed version of ``module`` (imported or not), or None."""
    mod = sys.modules.get(module)
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version as dist_version

        return dist_version(module.replace("_", "-"))
    except Exception:
        return None
