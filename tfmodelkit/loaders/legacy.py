"""Keras 1 (and old Keras 2) ``.h5`` models that today's Keras refuses: upgraded, rebuilt with tf_keras.

Keras 3 and tf_keras 2.21 both refuse Keras 1.x configs (``output_dim``, ``nb_filter``,
``border_mode``, ``Merge``...) and neither knows Keras 1's weight layouts. The config is
rewritten into the Keras 2 form that tf_keras's ``from_config`` accepts (:mod:`.legacy_config`),
the model rebuilt with **tf_keras**, and the weights loaded layer by layer, converting what
changed (:mod:`.legacy_weights`: per-gate recurrent weights fused, Theano kernels rotated,
``dim_ordering="th"`` kernels transposed). This module reads the file, tells which kind of
legacy file it is, and puts the pieces together.

- Keras 1 files do not record their backend; TensorFlow variable names end in ``:0`` and
  Theano's do not, which tells them apart (``backend=`` overrides).
- ``dim_ordering="th"`` layers stay ``data_format="channels_first"``: the rebuilt model takes the
  inputs the original took, and ``Flatten`` flattens in the same (channel-major) order, so a
  ``Dense`` after it needs no row permutation. The alternative (channels_last everywhere) would
  change the model's input contract and need permuted ``Dense`` rows. TensorFlow's CPU kernels
  for NCHW convolutions come from oneDNN (on by default on x86-64); where they are missing the
  loader says so instead of returning a model that cannot run.

Keras 2 files go through the same path (minimal config fixes, e.g. ``reset_after=False`` for
GRUs saved before it existed, and the Theano kernel flip that tf_keras's own loader skips).
Nothing from a model file is executed unless ``unsafe=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError, FormatError, NotFoundError, UnsupportedError, UserError
from ..util import first_line
from .legacy_config import parse_json, unwrap_model_config, upgrade_config
from .legacy_weights import FLIP_CLASSES, StoredWeights, WeightLoader, load_weights
from .tf import TF_KERAS_HINT, import_tensorflow, import_tf_keras, quiet_fds

LOADER_KERAS1 = "keras1-upgrade"
LOADER_KERAS2 = "keras2-legacy"

__all__ = [
    "LOADER_KERAS1",
    "LOADER_KERAS2",
    "LegacyModel",
    "is_keras1",
    "legacy_reason",
    "load_legacy_model",
    "upgrade_config",
]


@dataclass
class LegacyModel:
    """A legacy Keras model rebuilt with tf_keras, and what was changed to get there."""

    model: Any
    notes: list[str] = field(default_factory=list)
    #: ``keras1-upgrade`` for Keras 1 files, ``keras2-legacy`` for Keras 2 files loaded this way.
    loader: str = LOADER_KERAS1
    keras_version: str | None = None
    #: The backend the weights were written with (recorded or inferred), None when unknown.
    backend: str | None = None


# ------------------------------------------------------------------------------------ HDF5 reading


def _text(value: Any) -> str | None:
    """A scalar string attribute (bytes, str, numpy scalar or one-element array) as str."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _names_attr(obj: Any, name: str) -> list[str] | None:
    """A list-of-names attribute, joining ``name0``, ``name1``... chunks (attributes over 64 KB)."""
    attrs = obj.attrs
    if name in attrs:
        chunks = [attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in attrs:
            chunks.append(attrs[f"{name}{len(chunks)}"])
        if not chunks:
            return None
    out: list[str] = []
    for chunk in chunks:
        for v in np.asarray(chunk).reshape(-1).tolist():
            out.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    return out


@contextlib.contextmanager
def _open_h5(path: str | os.PathLike[str]) -> Iterator[Any]:
    import h5py

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise FormatError(f"{p}: a directory, not a Keras .h5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise FormatError(f"{p}: not an HDF5 file ({first_line(e)})") from None
    try:
        yield f
    finally:
        f.close()


@dataclass
class _H5Info:
    keras_version: str | None
    backend: str | None
    config: dict[str, Any] | None
    weights_root: str | None  # "model_weights", "/" (weights-only file) or None (no weights)
    weight_names: list[str]


def _inspect_h5(f: Any, path: Path) -> _H5Info:
    import h5py

    if "nb_layers" in f.attrs:
        raise UnsupportedError(
            f"{path}: a Keras 0.x weights file (nb_layers/layer_<k> groups); only Keras 1 and later are supported"
        )
    raw = f.attrs.get("model_config")
    config = parse_json(_text(raw), f"{path}: its model_config") if raw is not None else None
    if config is not None and not isinstance(config, dict):
        raise CorruptFileError(f"{path}: its model_config is not a JSON object")
    root = None
    group = None
    mw = f.get("model_weights")
    if isinstance(mw, h5py.Group):
        root, group = "model_weights", mw
    elif _names_attr(f, "layer_names") is not None:
        root, group = "/", f
    version = _text(f.attrs.get("keras_version"))
    backend = _text(f.attrs.get("backend"))
    names: list[str] = []
    if group is not None:
        version = version or _text(group.attrs.get("keras_version"))
        backend = backend or _text(group.attrs.get("backend"))
        for lname in _names_attr(group, "layer_names") or []:
            g = group.get(lname)
            if isinstance(g, h5py.Group):
                names.extend(_names_attr(g, "weight_names") or [])
    return _H5Info(version, backend, config, root, names)


def _stored_weights(group: Any, path: Path) -> Iterator[tuple[str, StoredWeights]]:
    """Each layer's weights under ``group``, in ``layer_names`` order, read one layer at a time."""
    import h5py

    for lname in _names_attr(group, "layer_names") or []:
        g = group.get(lname)
        if not isinstance(g, h5py.Group):
            raise CorruptFileError(f"{path}: layer_names lists {lname!r} but the file has no group for it")
        values = []
        for wn in _names_attr(g, "weight_names") or []:
            ds = g.get(wn)
            if not isinstance(ds, h5py.Dataset):
                raise CorruptFileError(
                    f"{path}: layer {lname!r} names weight {wn!r} but holds no such dataset"
                )
            values.append((wn, np.asarray(ds[()])))
        yield lname, values


# ------------------------------------------------------------------------------------ detection


def _walk_layers(config: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every ``{"class_name", "config"}`` node in a config, nested ones included."""
    if depth > 200:
        return
    if isinstance(config, Mapping):
        if isinstance(config.get("class_name"), str) and "config" in config:
            yield config
        for v in config.values():
            yield from _walk_layers(v, depth + 1)
    elif isinstance(config, list | tuple):
        for v in config:
            yield from _walk_layers(v, depth + 1)


# Keys and classes only Keras 1 configs use (Keras 2 renamed all of them).
_K1_KEYS = frozenset(
    {
        "nb_filter",
        "nb_row",
        "nb_col",
        "filter_length",
        "init",
        "inner_init",
        "inner_activation",
        "W_regularizer",
        "b_regularizer",
        "U_regularizer",
        "W_constraint",
        "b_constraint",
        "border_mode",
        "dim_ordering",
        "subsample",
        "subsample_length",
        "pool_length",
        "input_dtype",
        "consume_less",
        "dropout_W",
        "dropout_U",
        "forget_bias_init",
        "gamma_init",
        "beta_init",
        "atrous_rate",
    }
)
_K1_CLASSES = frozenset(
    {
        "Convolution1D",
        "Convolution2D",
        "Convolution3D",
        "AtrousConvolution1D",
        "AtrousConvolution2D",
        "SeparableConvolution2D",
        "Deconvolution2D",
        "Merge",
        "TimeDistributedDense",
        "Highway",
        "MaxoutDense",
    }
)


def _has_keras1_markers(config: Any) -> bool:
    for node in _walk_layers(config):
        if node.get("class_name") in _K1_CLASSES:
            return True
        cfg = node.get("config")
        if isinstance(cfg, Mapping) and _K1_KEYS.intersection(cfg):
            return True
    return False


def _keras1_weight_names(names: list[str]) -> bool:
    """Keras 2 names weights ``layer/kernel:0``; Keras 1 ``layer_W:0`` (TF), ``layer_W`` (Theano), ``param_N``."""
    return bool(names) and not any("/" in n for n in names)


def _is_keras1_info(info: _H5Info) -> bool:
    if info.keras_version:
        return info.keras_version.startswith("1.") or info.keras_version == "1"
    if info.config is not None:
        return _has_keras1_markers(info.config) or (
            info.backend is None and _keras1_weight_names(info.weight_names)
        )
    # Keras 2 and later always record keras_version with the weights; Keras 1 never did.
    return info.weights_root is not None


def is_keras1(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Keras 1.x ``.h5`` (full model or weights only).

    True when its ``keras_version`` starts with "1.", or when it records no version and its config
    uses Keras 1 names (``output_dim`` + ``init``, ``nb_filter``, ``W_regularizer``...) or, without a
    config, it holds weights (Keras 2 always records its version). False for other HDF5 files and
    for files that are not HDF5 at all; a missing path raises NotFoundError.
    """
    try:
        with _open_h5(path) as f:
            info = _inspect_h5(f, Path(path))
    except (FormatError, CorruptFileError, UnsupportedError):
        return False
    return _is_keras1_info(info)


def legacy_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` needs :func:`load_legacy_model` rather than Keras 3 or tf_keras, or None.

    Keras 1 files (neither can read them); Theano-backend files with convolutions (tf_keras loads
    their flipped kernels unchanged and computes other numbers); pre-Keras-3 files using
    ``hard_sigmoid`` (Keras 3 loads them, but redefined the function: see :func:`load_legacy_model`).
    Raises NotFoundError/FormatError for a missing or non-HDF5 path.
    """
    with _open_h5(path) as f:
        info = _inspect_h5(f, Path(path))
    if _is_keras1_info(info):
        return "a Keras 1 file: neither Keras 3 nor tf_keras reads its config and weight layout"
    if info.config is None:
        return None
    classes = {str(n.get("class_name")) for n in _walk_layers(info.config)}
    if (info.backend or "").lower() == "theano" and classes & FLIP_CLASSES:
        return (
            "written with the Theano backend: its convolution kernels are flipped (true convolution), "
            "which tf_keras's loader does not undo"
        )
    version = info.keras_version or ""
    if not version.startswith(("3.", "4.")) and "hard_sigmoid" in json.dumps(info.config):
        return (
            "uses hard_sigmoid, which Keras 3 redefined (x/6 + 0.5 instead of clip(0.2x + 0.5, 0, 1)); "
            "loading it with Keras 3 silently changes its outputs"
        )
    return None


def _detect_backend(
    info: _H5Info, override: str | None, conv: bool, th: bool, notes: list[str]
) -> str | None:
    if override:
        b = override.lower()
        if b not in ("tensorflow", "theano"):
            raise UserError(f"unknown backend {override!r}; choose tensorflow or theano")
        return b
    if info.backend:
        b = info.backend.lower()
        if b == "cntk" and conv:
            raise UnsupportedError(
                "CNTK-backend convolution kernels are not supported (their layout is unverified)"
            )
        return b
    named = [n for n in info.weight_names if not re.fullmatch(r"param_\d+", n)]
    if named and all(re.search(r":\d+$", n) for n in named):
        if conv:
            notes.append("backend inferred as tensorflow (its variable names end in ':0')")
        return "tensorflow"
    if named and not any(re.search(r":\d+$", n) for n in named):
        if conv:
            notes.append("backend inferred as theano (TensorFlow variable names end in ':0'; these do not)")
        return "theano"
    if conv:
        guess = "theano" if th else "tensorflow"
        notes.append(
            f"the file does not say which backend wrote it; assumed {guess} for its convolution kernels "
            "(pass backend= if that is wrong: Theano kernels are flipped)"
        )
        return guess
    return None


# ------------------------------------------------------------------------------------ loading


@contextlib.contextmanager
def _safe_mode(enabled: bool) -> Iterator[None]:
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # older or newer layouts: our own check already refused bytecode
        yield
        return
    with SafeModeScope(enabled):
        yield


def _read_architecture(architecture: Any) -> Any:
    if isinstance(architecture, Mapping):
        return dict(architecture)
    p = Path(architecture)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such architecture JSON file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{p}: not a readable JSON model config ({first_line(e)})") from None


def load_legacy_model(
    path: str | os.PathLike[str],
    unsafe: bool = False,
    architecture: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    backend: str | None = None,
) -> LegacyModel:
    """A legacy Keras ``.h5`` (Keras 1, or Keras 2 with quirks) rebuilt with tf_keras, weights loaded.

    ``path`` is a full model file or a weights-only file; ``architecture`` (a JSON file or the
    parsed dict, as ``model.to_json()`` wrote it) supplies or replaces the model config.
    ``backend`` ("tensorflow"/"theano") overrides the backend the weights are taken to come from.
    """
    p = Path(path)
    with _open_h5(p) as f:
        info = _inspect_h5(f, p)
        notes: list[str] = []
        config: Any = info.config
        arch_version = arch_backend = None
        if architecture is not None:
            if config is not None:
                notes.append("the model config comes from the architecture given, not from the file")
            config, arch_version, arch_backend = unwrap_model_config(_read_architecture(architecture))
        if info.weights_root is None:
            raise FormatError(
                f"{p}: not a Keras model or weights file (no model_weights group, no layer_names attribute)"
            )
        if config is None:
            raise UserError(
                f"{p}: holds weights only (no model_config); pass the architecture JSON (architecture=...)"
            )
        info.keras_version = info.keras_version or arch_version
        info.backend = info.backend or arch_backend
        info.config = config
        keras1 = _is_keras1_info(info)
        try:
            upgraded, config_notes = upgrade_config(config, unsafe=unsafe)
        except UserError as e:
            raise type(e)(f"{p}: {e}") from None
        notes.extend(config_notes)
        classes = {str(n.get("class_name")) for n in _walk_layers(config)}
        if keras1 and (info.keras_version or "").startswith("1.0") and "BatchNormalization" in classes:
            raise UnsupportedError(
                f"{p}: Keras {info.keras_version} BatchNormalization stored a running std and normalized "
                "with (x - mean) / (std + epsilon); only Keras 1.1+ files are supported"
            )
        conv = bool(classes & FLIP_CLASSES)
        th = any(
            isinstance(n.get("config"), Mapping) and n["config"].get("dim_ordering") == "th"
            for n in _walk_layers(config)
        )
        try:
            src_backend = _detect_backend(info, backend, conv, th, notes)
        except UserError as e:
            raise type(e)(f"{p}: {e}") from None
        if src_backend == "theano" and conv and '"same"' in json.dumps(config):
            notes.append(
                "Theano padded 'same' convolutions with even kernels and 'same' pooling differently from "
                "TensorFlow at the borders; check edge outputs"
            )

        model = _build(upgraded, unsafe, p)
        loader = WeightLoader(p, keras1, src_backend, notes)
        group = f[info.weights_root]
        try:
            load_weights(model, _stored_weights(group, p), loader)
        except (ValueError, TypeError) as e:
            raise CorruptFileError(
                f"{p}: cannot load its weights ({type(e).__name__}: {first_line(e)})"
            ) from None
    _smoke_run(model, p, _has_channels_first(upgraded))
    return LegacyModel(
        model=model,
        notes=list(dict.fromkeys(notes)),
        loader=LOADER_KERAS1 if keras1 else LOADER_KERAS2,
        keras_version=info.keras_version,
        backend=src_backend,
    )


def _has_channels_first(upgraded: Mapping[str, Any]) -> bool:
    return any(
        isinstance(n.get("config"), Mapping) and n["config"].get("data_format") == "channels_first"
        for n in _walk_layers(upgraded)
    )


def _build(upgraded: dict[str, Any], unsafe: bool, path: Path) -> Any:
    # tf_keras, not Keras 3, on purpose: tf_keras's hard_sigmoid is clip(0.2x + 0.5, 0, 1), the
    # Keras 1/2 definition legacy LSTM/GRU inner activations were trained with. Keras 3 redefined
    # it as relu6(x + 3) / 6 = x/6 + 0.5, so a legacy LSTM rebuilt on Keras 3 silently computes
    # other numbers. _check_hard_sigmoid below guards against tf_keras ever changing it too.
    tf_keras = import_tf_keras("loading a legacy Keras model")
    if tf_keras is None:
        raise UserError(f"{path}: loading a legacy Keras model needs tf_keras (Keras 2): {TF_KERAS_HINT}")
    try:
        with quiet_fds(), _safe_mode(not unsafe):
            if upgraded["class_name"] == "Sequential":
                model = tf_keras.Sequential.from_config(upgraded["config"])
            else:
                model = tf_keras.Model.from_config(upgraded["config"])
    except Exception as e:
        msg = first_line(e)
        if "marshal" in msg:
            raise UnsupportedError(
                f"{path}: its Lambda bytecode was written by another Python version and cannot be loaded here "
                f"({msg}); rebuild the model in code and load only its weights"
            ) from None
        raise UnsupportedError(
            f"{path}: tf_keras cannot rebuild the upgraded model ({type(e).__name__}: {msg})"
        ) from None
    if "hard_sigmoid" in json.dumps(upgraded, default=str):
        _check_hard_sigmoid(tf_keras, path)
    return model


def _check_hard_sigmoid(tf_keras: Any, path: Path) -> None:
    tf = import_tensorflow("loading a legacy Keras model")
    got = np.asarray(tf_keras.activations.hard_sigmoid(tf.constant([-1.0, 1.0], dtype=tf.float32)))
    if not np.allclose(got, [0.3, 0.7], atol=1e-6):
        raise UnsupportedError(
            f"{path}: this tf_keras's hard_sigmoid is not clip(0.2x + 0.5, 0, 1) (got {got.tolist()} at -1, 1); "
            "the legacy model would compute other numbers"
        )


def _smoke_run(model: Any, path: Path, channels_first: bool) -> None:
    """Run channels_first models once: TF's CPU NCHW convolutions need oneDNN, and fail only when run."""
    if not channels_first:
        return
    feeds = []
    for t in model.inputs:
        dims = list(t.shape)[1:]
        if any(d is None for d in dims):
            return
        feeds.append(np.zeros([t.shape[0] or 1, *dims], dtype=t.dtype.as_numpy_dtype))
    try:
        with quiet_fds():
            model(feeds if len(feeds) > 1 else feeds[0], training=False)
    except Exception as e:
        raise UnsupportedError(
            f"{path}: its channels_first (Theano 'th' ordering) layers cannot run on this TensorFlow build "
            f"({first_line(e, 200)}); TensorFlow's CPU kernels for NCHW need oneDNN (TF_ENABLE_ONEDNN_OPTS=1, x86-64)"
        ) from None
