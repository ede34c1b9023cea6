"""Keras model files made live: the loader ladder (Keras 3 in safe mode, tf_keras, the legacy
upgrader), architectures with weights loaded into them, and a model's inputs and outputs.

Every path here refuses a config that holds Python code (``formats.keras_config.code_sites``)
unless the caller passes ``unsafe``/``safe_mode=False``: tf_keras's legacy ``.h5`` loader has
no safe mode of its own, so the check runs before any loader sees the file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..description import TensorSpec
from ..errors import FormatError, NotFoundError, UnsupportedError, UserError
from ..formats.keras_config import code_sites
from ..util import first_line
from .tf import TF_KERAS_HINT, import_keras, import_tf_keras, quiet_fds

LOADERS = ("auto", "keras", "tf_keras")


@dataclass
class LoadedKeras:
    """A live Keras model and how it was made."""

    model: Any
    #: "keras", "tf_keras", or the legacy upgrader's name ("keras1-upgrade", ...).
    loader: str
    #: "keras_h5" or "keras_zip" (the source file's format).
    format: str
    safe_mode: bool = True
    notes: list[str] = field(default_factory=list)
    #: The model config the model was built from (parsed JSON), when the file or architecture had one.
    config: Any = None


@dataclass(frozen=True)
class KerasIO:
    """A built model's inputs and outputs, and how it takes its inputs ("dict", "list", "single")."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feed_kind: str


# ------------------------------------------------------------------------------------ configs


def read_model_config(path: Path, fmt: str) -> Any | None:
    """The parsed model config of a ``.h5`` (``model_config`` attribute) or ``.keras`` file
    (``config.json``); None for weights-only files. Read by formats/ (HDF5 in its guarded
    child), so a damaged or mislabelled file is refused as ``modelinspect`` refuses it."""
    from ..formats import keras_model_config

    return keras_model_config(path, format=fmt)


def architecture_config(architecture: str | Path) -> dict[str, Any]:
    """A model config from ``arch.json``, a full-model ``.h5`` or a ``.keras`` file."""
    from ..formats import detect

    path = Path(architecture)
    if not path.exists():
        raise NotFoundError(f"--architecture {architecture}: no such file")
    if path.suffix.lower() == ".json":
        try:
            config = json.loads(path.read_text())
        except ValueError as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
    else:
        fmt = detect(path)
        if fmt not in ("keras_h5", "keras_zip"):
            raise UserError(f"--architecture {path}: expected .json, .h5 or .keras, got a {fmt}")
        config = read_model_config(path, fmt)
        if config is None:
            raise UserError(f"{path}: holds no model config to take the architecture from")
    if not isinstance(config, dict) or "class_name" not in config:
        raise UserError(f"{path}: not a Keras model config (no class_name)")
    return config


def refuse_code(
    config: Any, where: object, *, unsafe: bool, doing: str = "refusing to load", how: str = "--unsafe"
) -> list[str]:
    """The layers of ``config`` holding code, as "name (Class)"; raises unless ``unsafe`` when there
    are any (``modelinspect check --target safety`` names each layer's field)."""
    sites = list(dict.fromkeys(f"{s.layer} ({s.class_name})" for s in code_sites(config)))
    if sites and not unsafe:
        verb = "carries" if len(sites) == 1 else "carry"
        raise UserError(
            f"{where}: {doing}: {', '.join(sites[:5])} {verb} Python code that loading would execute; "
            f"pass {how} only if you trust this file"
        )
    return sites


# ------------------------------------------------------------------------------------ loading


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


def _input_rank_drift(config: Any, model: Any) -> str | None:
    """Keras 3 quirk: a Keras 2.3 Sequential whose first Dense declares batch_input_shape
    [None, 4] comes back with an input of shape (None, None, 4); it still computes, but the
    signature would be wrong. Returns a description when the ranks disagree."""
    declared = _declared_input_ranks(config)
    actual = [len(t.shape) for t in getattr(model, "inputs", None) or []]
    if declared is None or sorted(declared) == sorted(actual):
        return None
    return f"the file declares input ranks {declared}, Keras 3 built {actual}"


def load_keras_file(
    path: str | Path,
    *,
    safe_mode: bool = True,
    loader: str = "auto",
    custom_objects: Mapping[str, Any] | None = None,
) -> LoadedKeras:
    """A Keras ``.keras``/``.h5`` model file, loaded by the first Keras that reads it faithfully.

    ``loader``: "auto" (legacy files to the upgrader, then Keras 3, then tf_keras for files
    Keras 3 refuses or rebuilds wrongly), "keras" or "tf_keras".
    """
    from ..formats import detect

    path = Path(path)
    if loader not in LOADERS:
        raise UserError(f"unknown Keras loader {loader!r}; choose auto, keras or tf_keras")
    fmt = detect(path)
    if fmt not in ("keras_h5", "keras_zip"):
        raise FormatError(f"{path}: a {fmt}, not a Keras model file (.keras or .h5)")
    config = read_model_config(path, fmt)
    if config is None:
        what = "model_config" if fmt == "keras_h5" else "config.json"
        raise UserError(
            f"{path}: holds weights only (no {what}), so there is no model to run; load the weights "
            "into the model that wrote them: give that model's architecture with --architecture "
            "(arch.json, a model .h5 or a .keras)"
        )
    sites = refuse_code(config, path, unsafe=not safe_mode, how="safe_mode=False (--unsafe)")
    loaded = LoadedKeras(None, "", fmt, bool(safe_mode), config=config)
    if sites:
        loaded.notes.append(f"loaded with safe mode off; Python code in {', '.join(sites[:5])} was executed")
    custom = dict(custom_objects or {})
    errors: list[str] = []
    if loader == "auto" and fmt == "keras_h5":
        from .legacy import legacy_reason, load_legacy_model

        reason = legacy_reason(path)
        if reason:
            # Keras 1 files, Theano kernels and Keras 2's hard_sigmoid: Keras 3 refuses them
            # or silently computes other numbers, so they are rebuilt on tf_keras.
            legacy = load_legacy_model(path, unsafe=not safe_mode)
            loaded.model, loaded.loader = legacy.model, legacy.loader
            loaded.notes += [f"{legacy.loader}: {reason}", *legacy.notes]
            return loaded
    if loader in ("auto", "keras"):
        model = _load_with_keras3(path, fmt, config, loaded, custom, errors, strict=loader == "keras")
        if model is not None:
            loaded.model, loaded.loader = model, "keras"
            return loaded
    loaded.model = _load_with_tf_keras(path, fmt, loaded, custom, errors)
    loaded.loader = "tf_keras"
    if errors:
        loaded.notes.append(f"Keras 3 refused it, tf_keras loaded it ({errors[0]})")
    return loaded


def _load_with_keras3(
    path: Path, fmt: str, config: Any, loaded: LoadedKeras, custom: dict[str, Any], errors: list[str], strict: bool
) -> Any | None:
    """Keras 3's model, or None (the reason appended to ``errors``) when tf_keras should try."""
    keras = import_keras("running a Keras model")
    try:
        with quiet_fds():
            model = keras.saving.load_model(
                str(path), safe_mode=loaded.safe_mode, compile=False, custom_objects=custom or None
            )
    except Exception as e:
        if "safe_mode" in str(e) and loaded.safe_mode:
            raise UserError(f"{path}: Keras refuses it in safe mode ({first_line(e)})") from None
        errors.append(f"Keras 3: {type(e).__name__}: {first_line(e, 200)}")
        if strict:
            raise UserError(f"{path}: Keras 3 cannot load it ({errors[-1]})") from None
        return None
    drift = _input_rank_drift(config, model) if fmt == "keras_h5" else None
    if drift is None or strict:
        return model
    errors.append(f"Keras 3 rebuilt the inputs wrongly ({drift})")
    return None


def _load_with_tf_keras(path: Path, fmt: str, loaded: LoadedKeras, custom: dict[str, Any], errors: list[str]) -> Any:
    tf_keras = import_tf_keras("running a Keras 2 model")
    if tf_keras is None:
        raise UserError(
            f"{path}: Keras 3 cannot load it ({'; '.join(errors)}) and tf_keras (Keras 2) is not installed: "
            f"{TF_KERAS_HINT}"
        )
    try:
        with quiet_fds():
            if fmt == "keras_zip":
                return tf_keras.models.load_model(
                    str(path), safe_mode=loaded.safe_mode, compile=False, custom_objects=custom or None
                )
            # The legacy loader ignores safe_mode: the config was checked by load_keras_file.
            return tf_keras.models.load_model(str(path), compile=False, custom_objects=custom or None)
    except Exception as e:
        if "bad marshal data" in str(e):
            raise UnsupportedError(
                f"{path}: its Lambda code is Python 2 bytecode, which no Python 3 Keras can run; "
                "rebuild the model in code and load the file's weights into it"
            ) from None
        errors.append(f"tf_keras: {type(e).__name__}: {first_line(e, 200)}")
        raise UserError(f"{path}: no Keras can load it ({'; '.join(errors)})") from None


def architecture_models(
    config: dict[str, Any], *, unsafe: bool, custom_objects: Mapping[str, Any] | None, where: object
) -> Iterator[tuple[str, Any | None, str | None]]:
    """(loader, model or None, error) for each Keras that may build ``config``, likeliest first.

    tf_keras's ``to_json()`` records keras_version 2.x: such configs go to tf_keras first, every
    other one to Keras 3 first.
    """
    refuse_code(config, where, unsafe=unsafe, doing="refusing to build it")
    custom = dict(custom_objects or {})
    order = ("tf_keras", "keras") if str(config.get("keras_version", "")).startswith("2.") else ("keras", "tf_keras")
    for loader in order:
        module = (
            import_keras("building the architecture")
            if loader == "keras"
            else import_tf_keras("building a Keras 2 architecture")
        )
        if module is None:
            continue
        try:
            with quiet_fds(replay=False):
                if loader == "keras":
                    model = module.saving.deserialize_keras_object(
                        config, safe_mode=not unsafe, custom_objects=custom or None
                    )
                else:
                    model = module.models.model_from_json(json.dumps(config), custom_objects=custom or None)
        except Exception as e:
            yield loader, None, f"{loader}: {first_line(e, 200, with_type=True)}"
            continue
        yield loader, model, None


def load_weights_into_architecture(
    src: str | Path,
    architecture: str | Path,
    *,
    unsafe: bool = False,
    custom_objects: Mapping[str, Any] | None = None,
) -> LoadedKeras:
    """A weights-only ``.h5``/``.weights.h5`` loaded into the model ``architecture`` describes."""
    from ..formats import detect

    src = Path(src)
    fmt = detect(src)
    notes = [f"architecture from {architecture}"]
    if fmt == "keras_h5":
        from .legacy import is_keras1, load_legacy_model

        if is_keras1(src):
            # Keras 1 weights-only file + its architecture: rebuilt and loaded by layer on tf_keras.
            source: Any = architecture if Path(architecture).suffix.lower() == ".json" else architecture_config(architecture)
            legacy = load_legacy_model(src, unsafe=unsafe, architecture=source)
            config = source if isinstance(source, dict) else architecture_config(architecture)
            return LoadedKeras(legacy.model, legacy.loader, fmt, not unsafe, [*notes, *legacy.notes], config)
    config = architecture_config(architecture)
    errors = []
    for loader, model, error in architecture_models(config, unsafe=unsafe, custom_objects=custom_objects, where=architecture):
        if model is None:
            errors.append(error or loader)
            continue
        try:
            with quiet_fds():
                model.load_weights(str(src))
        except Exception as e:
            errors.append(f"{loader}: {first_line(e, 200, with_type=True)}")
            continue
        return LoadedKeras(model, loader, fmt, not unsafe, notes, config)
    raise UserError(f"{src}: cannot load these weights into the architecture ({'; '.join(errors)})")


# ------------------------------------------------------------------------------------ inputs and outputs


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    if hasattr(shape, "as_list"):  # tf.TensorShape (tf_keras)
        if shape.rank is None:
            return None
        shape = shape.as_list()
    return tuple(None if d is None else int(d) for d in shape)


def _spec(name: str, tensor: Any) -> TensorSpec:
    dtype = getattr(tensor, "dtype", "float32")
    dtype = getattr(dtype, "name", dtype)
    return TensorSpec(name=name, dtype=str(dtype), shape=_shape(getattr(tensor, "shape", None)))


def keras_io(model: Any, where: object) -> KerasIO:
    """The inputs and outputs a built Keras model (Keras 3 or tf_keras) declares, named as Keras names them."""
    model_inputs = getattr(model, "inputs", None)
    if not model_inputs:
        raise UnsupportedError(
            f"{where}: the model has no defined inputs (a Sequential model saved before it was built)"
        )
    struct = None
    with contextlib.suppress(Exception):
        struct = model.input
    if isinstance(struct, Mapping):
        feed_kind = "dict"
        names = [str(k) for k in struct]
        tensors = list(struct.values())
    else:
        names = list(getattr(model, "input_names", None) or [])
        tensors = list(model_inputs)
        if len(names) != len(tensors):
            names = [str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in enumerate(tensors)]
        # Feed the structure the model was built with: Keras 3 warns when a one-element
        # list model (a tf_keras file, say) is fed a bare array.
        feed_kind = "list" if isinstance(struct, list | tuple) or len(tensors) > 1 else "single"
    inputs = tuple(_spec(n, t) for n, t in zip(names, tensors, strict=True))
    outputs = list(getattr(model, "outputs", None) or [])
    out_names: Sequence[str] = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(outputs):
        # Keras 3 Sequential has no output_names: name outputs after the layers producing them.
        out_names = []
        for i, t in enumerate(outputs):
            history = getattr(t, "_keras_history", None)
            op = getattr(history, "operation", None) or getattr(history, "layer", None)
            out_names.append(getattr(op, "name", None) or f"output_{i}")
    return KerasIO(inputs, tuple(_spec(n, t) for n, t in zip(out_names, outputs, strict=True)), feed_kind)
