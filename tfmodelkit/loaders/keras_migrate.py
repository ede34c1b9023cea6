"""A live tf_keras (Keras 2) model made into a Keras 3 model that computes the same numbers.

The bridge is Keras 2's own ``.h5`` layout: tf_keras writes the model (config and weights) to
a temporary ``.h5``, its config is rewritten where Keras 3 refuses or redefines what Keras 2
wrote, and Keras 3's public ``keras.saving.load_model`` reads it. Every rewrite is listed.

Keras 3 quirks handled here:
- it refuses arguments that Keras 2 configs always carry: ``time_major`` on recurrent layers
  (only ``False`` is dropped; ``True`` changes the input layout and is refused), and the
  depthwise/pointwise options of ``SeparableConv*`` that it names differently;
- it redefined ``hard_sigmoid``: Keras 2's is ``clip(0.2x + 0.5, 0, 1)``, Keras 3's
  ``relu6(x + 3) / 6``. The old one is the new one applied to ``1.2x``, so wherever a layer's
  pre-activation is linear in its weights (Dense and convolution kernels and biases, the gate
  columns of LSTM/GRU kernels, recurrent kernels and biases) the weights are scaled by 1.2 and
  the model computes the old numbers exactly (to float rounding). Anything else using
  ``hard_sigmoid`` (an ``Activation`` layer, an LSTM's cell activation) is refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..util import first_line
from .tf import import_keras, quiet_fds

#: Keras 2 / Keras 3 ``hard_sigmoid`` slopes: old(x) = new(OLD_SLOPE / NEW_SLOPE * x).
OLD_SLOPE, NEW_SLOPE = 0.2, 1.0 / 6.0
HARD_SIGMOID_SCALE = OLD_SLOPE / NEW_SLOPE  # 1.2

ANY = object()

#: Config keys Keras 3 refuses, by class name: dropped when they hold the value Keras 3 always
#: behaves as (ANY: the Keras 2 layer never used it), refused otherwise.
DROPPED_WHEN: dict[str, dict[str, Any]] = {
    "*": {"time_major": False},
    # tf_keras's separable and depthwise convolutions inherit Conv's options and never use them.
    "SeparableConv1D": {
        "groups": 1,
        "kernel_initializer": ANY,
        "kernel_regularizer": None,
        "kernel_constraint": None,
    },
    "SeparableConv2D": {
        "groups": 1,
        "kernel_initializer": ANY,
        "kernel_regularizer": None,
        "kernel_constraint": None,
    },
    "DepthwiseConv1D": {
        "groups": 1,
        "kernel_initializer": ANY,
        "kernel_regularizer": None,
        "kernel_constraint": None,
    },
    "DepthwiseConv2D": {
        "groups": 1,
        "kernel_initializer": ANY,
        "kernel_regularizer": None,
        "kernel_constraint": None,
    },
    "Conv1DTranspose": {"groups": 1},
    "Conv2DTranspose": {"groups": 1},
    "Conv3DTranspose": {"groups": 1},
}

RECURRENT = ("LSTM", "GRU", "SimpleRNN")
KERNEL_LAYERS = (
    "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "LocallyConnected1D",
)  # fmt: skip


@dataclass
class Migrated:
    """A Keras 3 model and the rewrites that made it from the tf_keras one."""

    model: Any
    rewrites: list[str] = field(default_factory=list)


def is_keras3_model(model: Any) -> bool:
    """True for a Keras 3 model (tf_keras models live in ``tf_keras.*``), a user's subclass of
    Keras 3's ``Model`` included."""
    return any(c.__name__ == "Model" and c.__module__.split(".")[0] == "keras" for c in type(model).__mro__)


# ------------------------------------------------------------------------------------ config walk


def _layer_configs(config: Any, owner: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, layer config) for every layer of a Keras 2 model config, nested models and wrapped
    layers included; the owner is the layer's name in the model holding it (a wrapper's name for
    the layer it wraps)."""
    if not isinstance(config, Mapping):
        return
    inner = config.get("config")
    if not isinstance(inner, Mapping):
        return
    layers = inner.get("layers")
    if owner is not None:
        yield owner, config  # type: ignore[misc]
    if isinstance(layers, list):
        for layer in layers:
            name = layer.get("config", {}).get("name") if isinstance(layer, Mapping) else None
            yield from _layer_configs(layer, str(name))
    elif owner is not None:
        for key in ("layer", "forward_layer", "backward_layer", "cell"):
            yield from _layer_configs(inner.get(key), owner)


def _drop_refused_keys(owner: str, cls: str, cfg: dict[str, Any], rewrites: list[str]) -> None:
    name = str(cfg.get("name", owner))
    for key, neutral in {**DROPPED_WHEN["*"], **DROPPED_WHEN.get(cls, {})}.items():
        if key not in cfg:
            continue
        if neutral is not ANY and cfg[key] != neutral:
            raise UnsupportedError(f"layer {name} ({cls}): {key}={cfg[key]!r} has no Keras 3 equivalent")
        value = cfg.pop(key)
        why = "Keras 3 always behaves so" if neutral is not ANY else "the Keras 2 layer never used it"
        rewrites.append(f"{name} ({cls}): dropped {key}={json.dumps(value)[:60]} ({why})")


def _rewrite_config(config: dict[str, Any], rewrites: list[str]) -> list[tuple[str, str, str]]:
    """Rewrite ``config`` in place for Keras 3; return the (owner, class, field) sites of hard_sigmoid."""
    sites = []
    for owner, layer in _layer_configs(config):
        cls, cfg = str(layer.get("class_name")), layer["config"]
        _drop_refused_keys(owner, cls, cfg, rewrites)
        for key in ("activation", "recurrent_activation"):
            if cfg.get(key) == "hard_sigmoid":
                sites.append((owner, cls, key))
    return sites


# ------------------------------------------------------------------------------------ hard_sigmoid


def _check_keras3_hard_sigmoid(keras: Any) -> None:
    got = np.asarray(
        keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(np.array([-1.0, 1.0], "float32")))
    )
    if not np.allclose(got, [0.5 - NEW_SLOPE, 0.5 + NEW_SLOPE], atol=1e-6):
        raise UnsupportedError(
            f"this Keras's hard_sigmoid is not relu6(x + 3) / 6 (got {got.tolist()} at -1, 1); "
            "the scaling that keeps Keras 2's hard_sigmoid would be wrong"
        )


def _scale(variable: Any, columns: slice | None = None) -> None:
    value = np.array(variable.numpy())
    if columns is None:
        value = value * np.float32(HARD_SIGMOID_SCALE)
    else:
        value[..., columns] = value[..., columns] * np.float32(HARD_SIGMOID_SCALE)
    variable.assign(value.astype(value.dtype))


def _gate_columns(cls: str, key: str, units: int, name: str) -> list[slice]:
    """The kernel columns whose pre-activation goes through ``key``'s function."""
    if cls == "SimpleRNN":
        return [slice(0, units)]
    if cls == "GRU":  # z, r, h
        return [slice(0, 2 * units)] if key == "recurrent_activation" else [slice(2 * units, 3 * units)]
    if key == "recurrent_activation":  # LSTM: i, f, c, o
        return [slice(0, 2 * units), slice(3 * units, 4 * units)]
    raise UnsupportedError(
        f"layer {name} (LSTM): its cell activation is hard_sigmoid, which Keras 3 redefined; the cell "
        "state goes through it too, so no weight scaling keeps Keras 2's numbers"
    )


def _recurrent_cells(layer: Any) -> Iterator[Any]:
    """The recurrent cells of an RNN layer or of a Bidirectional wrapper."""
    for sub in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)):
        if sub is not None:
            yield from _recurrent_cells(sub)
    cell = getattr(layer, "cell", None)
    if cell is not None:
        yield cell


def _find_layer(model: Any, name: str) -> Any | None:
    """The layer called ``name`` in ``model`` or in a model nested in it."""
    for layer in getattr(model, "layers", []):
        if layer.name == name:
            return layer
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers"):
            found = _find_layer(layer, name)
            if found is not None:
                return found
    return None


def _keep_hard_sigmoid(model: Any, sites: list[tuple[str, str, str]], rewrites: list[str]) -> None:
    """Scale the pre-activations of every hard_sigmoid site by 1.2 (see the module docstring)."""
    if not sites:
        return
    keras = import_keras("keeping Keras 2's hard_sigmoid")
    _check_keras3_hard_sigmoid(keras)
    done: set[tuple[str, str]] = set()
    for name, cls, key in sites:
        if (name, key) in done:
            continue
        done.add((name, key))
        layer = _find_layer(model, name)
        if layer is None:
            raise UnsupportedError(
                f"layer {name} ({cls}) uses hard_sigmoid but Keras 3 built no layer of that name"
            )
        target = getattr(layer, "layer", layer)  # TimeDistributed
        if cls in RECURRENT:
            cells = [c for c in _recurrent_cells(layer) if type(c).__name__.replace("Cell", "") == cls]
            for cell in cells:
                for columns in _gate_columns(cls, key, int(cell.units), name):
                    for var in (cell.kernel, cell.recurrent_kernel, getattr(cell, "bias", None)):
                        if var is not None:
                            _scale(var, columns)
            spans = (
                ", ".join(f"{c.start}:{c.stop}" for c in _gate_columns(cls, key, int(cells[0].units), name))
                if cells
                else "-"
            )
            rewrites.append(
                f"{name} ({cls}): {key} hard_sigmoid kept: columns {spans} of kernel, recurrent kernel and bias "
                f"scaled by 1.2 ({len(cells)} cell{'s' if len(cells) != 1 else ''})"
            )
        elif cls in KERNEL_LAYERS:
            # The pre-activation is linear in the last kernel applied (pointwise for separable
            # convolutions) and the bias.
            kernel = (
                "pointwise_kernel"
                if cls.startswith("Separable")
                else "depthwise_kernel"
                if cls.startswith("Depthwise")
                else "kernel"
            )
            scaled = []
            for attr in (kernel, "bias"):
                var = getattr(target, attr, None)
                if var is not None:
                    _scale(var)
                    scaled.append(attr)
            rewrites.append(
                f"{name} ({cls}): activation hard_sigmoid kept: {' and '.join(scaled)} scaled by 1.2"
            )
        else:
            raise UnsupportedError(
                f"layer {name} ({cls}): uses hard_sigmoid ({key}), which Keras 3 redefined, and its input is "
                "not a weight this conversion can scale to keep Keras 2's numbers"
            )


# ------------------------------------------------------------------------------------ the bridge


def _read_config(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    return dict(json.loads(raw if isinstance(raw, str) else bytes(raw).decode("utf-8")))


def _write_config(path: Path, config: dict[str, Any]) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)


def migrate_to_keras3(model: Any, where: object) -> Migrated:
    """A Keras 3 model computing what ``model`` (a tf_keras model) computes; a Keras 3 model
    is returned as it is."""
    if is_keras3_model(model):
        return Migrated(model)
    keras = import_keras("making a Keras 3 model")
    rewrites: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="tfmodelkit-migrate-"))
    try:
        bridge = work / "model.h5"
        try:
            with quiet_fds():
                model.save(str(bridge), include_optimizer=False, save_format="h5")
        except Exception as e:
            raise UnsupportedError(
                f"{where}: tf_keras cannot write the model out ({first_line(e, 200, with_type=True)})"
            ) from None
        config = _read_config(bridge)
        sites = _rewrite_config(config, rewrites)
        _write_config(bridge, config)
        try:
            with quiet_fds():
                migrated = keras.saving.load_model(str(bridge), compile=False, safe_mode=True)
        except Exception as e:
            raise UnsupportedError(
                f"{where}: Keras 3 cannot rebuild this Keras 2 model ({first_line(e, 200, with_type=True)})"
            ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _keep_hard_sigmoid(migrated, sites, rewrites)
    return Migrated(migrated, rewrites)


# ------------------------------------------------------------------------------------ sources


def load_keras_savedmodel(folder: Path, *, unsafe: bool = False) -> Any:
    """The tf_keras model a Keras 2 / tf_keras SavedModel describes (``keras_metadata.pb``, or the
    object-graph metadata of older exports), revived by tf_keras with its variables.

    Reviving runs any Python code the metadata holds (Lambda layers): refused unless ``unsafe``
    (``modelinspect check --target safety`` lists it)."""
    from ..formats import read
    from ..lint import require_safe
    from .tf import TF_KERAS_HINT, import_tf_keras

    if not read(folder).layers:
        raise UnsupportedError(
            f"{folder}: a SavedModel without Keras metadata holds no Keras model to convert to .keras "
            "(its functions can be served or converted to TFLite instead)"
        )
    if not unsafe:
        require_safe(folder)
    tf_keras = import_tf_keras("reviving a Keras SavedModel")
    if tf_keras is None:
        raise UnsupportedError(f"{folder}: reviving a Keras 2 SavedModel needs tf_keras: {TF_KERAS_HINT}")
    try:
        with quiet_fds():
            return tf_keras.models.load_model(str(folder), compile=False)
    except Exception as e:
        raise UnsupportedError(
            f"{folder}: tf_keras cannot revive its Keras model ({first_line(e, 200, with_type=True)})"
        ) from None
