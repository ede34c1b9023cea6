"""A source's optimizer state made a Keras 3 optimizer of a live Keras 3 model (nothing is written).

Carried for Adam, SGD (momentum) and RMSprop, the optimizers whose state means the same in
every Keras since 2.11: the step counter and one slot per trainable variable and kind.

- Keras 2 ``.h5`` (tf_keras >= 2.11 optimizers): ``optimizer_weights`` holds ``iteration:0``
  and ``<Optimizer>/<slot>/<variable path>:0`` (slot ``m``/``v``/``vhat`` for Adam, ``m`` for
  SGD, ``velocity``/``momentum``/``average_gradient`` for RMSprop); ``training_config`` holds
  the optimizer's class and hyperparameters.
- Keras 3 legacy ``.h5``: ``<optimizer>/iteration``, ``<optimizer>/learning_rate`` and
  ``<optimizer>/<variable path with _>_<slot>``, Keras 3's own names.
- TF2 checkpoints of a Keras 3 model: the optimizer a compiled ``--model`` returns is restored
  by TensorFlow's own object-graph matching (a checkpoint does not record which optimizer
  wrote it, nor its hyperparameters).

Keras <= 2.10 files name their slots ``Variable_N:0`` (or ``param_N``) by creation order only;
their state is not carried.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..util import first_line

#: Keras 3's slot names by optimizer, from the tf_keras (>= 2.11) slot names.
SLOTS = {
    "Adam": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "SGD": {"m": "momentum"},
    "RMSprop": {"velocity": "velocity", "momentum": "momentum", "average_gradient": "average_gradient"},
}


@dataclass
class CarriedOptimizer:
    """A built Keras 3 optimizer holding the source's state."""

    optimizer: Any
    class_name: str
    #: What the saved file must give back: optimizer variable path -> value.
    values: dict[str, np.ndarray] = field(default_factory=dict)
    #: The loss to compile with (the source's, where it is a Keras built-in name).
    loss: str | None = None

    def snapshot(self) -> None:
        """Keep the optimizer's current values as what the saved file must give back."""
        self.values = {v.path: np.asarray(v.numpy()) for v in self.optimizer.variables}

    def summary(self) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "iterations": int(np.asarray(self.optimizer.iterations)),
            "slots": len(self.values)
            - sum(1 for k in self.values if k.rsplit("/", 1)[-1] in ("iteration", "learning_rate")),
            "loss": self.loss,
        }


class NotCarried(Exception):
    """Why the optimizer state stays behind (one line)."""


def _class_name(config: Mapping[str, Any]) -> str:
    name = str(config.get("class_name", "")).split(">")[-1]
    if name not in SLOTS:
        raise NotCarried(
            f"its optimizer is {name or 'unnamed'}; state is carried for {', '.join(SLOTS)} only"
        )
    return name


def _keras3_optimizer(keras: Any, config: Mapping[str, Any]) -> tuple[Any, str]:
    """A Keras 3 optimizer of the source's class, with the hyperparameters Keras 3 also takes."""
    name = _class_name(config)
    cls = getattr(keras.optimizers, name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    given = dict(config.get("config") or {})
    lr = given.get("learning_rate")
    if isinstance(lr, Mapping):
        raise NotCarried("its learning rate is a schedule, which is not carried")
    kept = {k: v for k, v in given.items() if k in accepted and k != "name"}
    try:
        return cls(**kept), name
    except Exception as e:
        raise NotCarried(f"Keras 3 cannot make its {name} ({first_line(e, 120)})") from None


def _h5_values(path: Path) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    import h5py

    with h5py.File(path, "r") as f:
        if "optimizer_weights" not in f:
            raise NotCarried("the file holds no optimizer state")
        raw = f.attrs.get("training_config")
        if raw is None:
            raise NotCarried("the file has no training_config naming its optimizer")
        training = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        group = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        values = [(n, np.asarray(group[n][()])) for n in names]
    return training, values


def check_h5_names(path: Path) -> None:
    """Raises :class:`NotCarried` for a file whose slots are named by creation order only."""
    _, values = _h5_values(path)
    for name, _ in values:
        if "/" not in name and name.removesuffix(":0") not in ("iteration", "iterations"):
            raise NotCarried(f"Keras <= 2.10 files name their slots by creation order only ({name})")


def _assign(optimizer: Any, name: str, value: np.ndarray, target: Any) -> None:
    if tuple(target.shape) != value.shape:
        raise NotCarried(
            f"{name} has shape {list(value.shape)}, the {target.path} it belongs to {list(target.shape)}"
        )
    target.assign(value.astype(np.dtype(str(getattr(target.dtype, "name", target.dtype)))))


def _by_name(optimizer: Any) -> dict[str, Any]:
    return {v.name: v for v in optimizer.variables}


def carry_h5(keras: Any, path: Path, model: Any) -> CarriedOptimizer:
    """The optimizer state of a Keras 2 (tf_keras >= 2.11) or Keras 3 ``.h5``, built for ``model``
    (the Keras 3 model it became); raises :class:`NotCarried` with the reason."""
    training, values = _h5_values(path)
    optimizer, name = _keras3_optimizer(keras, training.get("optimizer_config") or {})
    optimizer.build(model.trainable_variables)
    targets = _by_name(optimizer)
    slots = SLOTS[name]
    carried = CarriedOptimizer(optimizer, name)
    keras3_names = any("/" in n and not n.endswith(":0") for n, _ in values)
    unmatched = []
    for source_name, value in values:
        if keras3_names:  # "adam/<path with _>_<slot>": Keras 3's own variable names
            target = targets.get(source_name.split("/", 1)[-1])
        elif source_name.removesuffix(":0") == "iteration":
            target = optimizer.iterations
        else:  # "Adam/m/dense/kernel:0"
            parts = source_name.removesuffix(":0").split("/")
            slot = slots.get(parts[1]) if len(parts) > 2 else None
            target = targets.get(f"{'_'.join(parts[2:])}_{slot}") if slot else None
        if target is None:
            unmatched.append(source_name)
            continue
        _assign(optimizer, source_name, value, target)
    if unmatched:
        raise NotCarried(f"no Keras 3 {name} variable for {', '.join(unmatched[:4])}")
    loss = training.get("loss")
    carried.loss = loss if isinstance(loss, str) else None
    carried.snapshot()
    return carried


def carry_compiled(model: Any) -> CarriedOptimizer:
    """The optimizer of a compiled Keras 3 model, built for it; the caller restores its state and
    takes the :meth:`~CarriedOptimizer.snapshot`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise NotCarried(
            "a checkpoint does not say which optimizer wrote it: return the model compiled with it "
            "from --model (model.compile(optimizer=...)) to carry its state"
        )
    name = type(optimizer).__name__
    if name not in SLOTS:
        raise NotCarried(f"the model is compiled with {name}; state is carried for {', '.join(SLOTS)} only")
    loss = None
    with contextlib.suppress(Exception):
        loss = model.loss if isinstance(model.loss, str) else None
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return CarriedOptimizer(optimizer, name, loss=loss)


def carry_keras_file(keras: Any, path: Path, model: Any, *, safe_mode: bool = True) -> CarriedOptimizer:
    """The optimizer state of a ``.keras`` file (Keras 3 reads its own: the file is loaded once more,
    compiled), put into an optimizer of the same class built for ``model``."""
    try:
        from .tf import quiet_fds

        with quiet_fds():
            full = keras.saving.load_model(str(path), compile=True, safe_mode=safe_mode)
    except Exception as e:
        raise NotCarried(f"Keras 3 cannot load it compiled ({first_line(e, 120)})") from None
    source = getattr(full, "optimizer", None)
    if source is None or not source.variables:
        raise NotCarried("the file holds none")
    name = type(source).__name__
    if name not in SLOTS:
        raise NotCarried(f"its optimizer is {name}; state is carried for {', '.join(SLOTS)} only")
    optimizer = type(source).from_config(source.get_config())
    optimizer.build(model.trainable_variables)
    if len(optimizer.variables) != len(source.variables):
        raise NotCarried(
            f"its {name} holds {len(source.variables)} variables, one built for the model {len(optimizer.variables)}"
        )
    for target, value in zip(optimizer.variables, source.variables, strict=True):
        _assign(optimizer, value.path, np.asarray(value.numpy()), target)
    carried = CarriedOptimizer(optimizer, name, loss=full.loss if isinstance(full.loss, str) else None)
    carried.snapshot()
    return carried
