"""Keras model files run by the Keras that loads them faithfully (see :mod:`tfmodelkit.loaders.keras`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedError, UserError
from ...loaders.keras import LoadedKeras, keras_io, load_keras_file
from ...loaders.tf import version
from ...util import first_line
from ..hints import InputHint, keras_hints
from .base import BaseRunner, to_numpy


class KerasRunner(BaseRunner):
    """A Keras model file (``.keras``, ``.h5``) run by Keras 3, or by tf_keras when Keras 3 refuses it.

    ``loader``: "auto" (Keras 3, then tf_keras for files Keras 3 cannot read), "keras" or
    "tf_keras". With ``safe_mode=True`` any file whose config carries Python code is refused
    before any loader sees it.
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
        self._bind(load_keras_file(self.path, safe_mode=safe_mode, loader=loader, custom_objects=custom_objects))

    def _bind(self, loaded: LoadedKeras) -> None:
        self._model = loaded.model
        self.loader = loaded.loader
        self.format = loaded.format
        self.safe_mode = loaded.safe_mode
        self.notes.extend(loaded.notes)
        self.config = loaded.config
        io = keras_io(loaded.model, self.path)
        self.inputs, self.outputs, self._feed_kind = io.inputs, io.outputs, io.feed_kind

    @classmethod
    def from_loaded(cls, loaded: LoadedKeras, path: str | os.PathLike[str]) -> KerasRunner:
        """A runner over a model that is already built (weights-only files, legacy upgrades)."""
        runner = cls.__new__(cls)
        BaseRunner.__init__(runner, path)
        runner._bind(loaded)
        return runner

    @classmethod
    def from_model(cls, model: Any, path: str | os.PathLike[str], loader: str, notes: Sequence[str] = ()) -> KerasRunner:
        """A runner over a live model, named ``path``, made by ``loader``."""
        fmt = "keras_h5" if Path(path).suffix.lower() in (".h5", ".hdf5") else "keras_zip"
        return cls.from_loaded(LoadedKeras(model, loader, fmt, True, list(notes)), path)

    def input_hints(self) -> dict[str, InputHint]:
        hints = keras_hints(self.config)
        if "*" in hints and len(self.inputs) == 1:  # a Sequential model's only input
            hints[self.inputs[0].name] = hints.pop("*")
        names = {s.name for s in self.inputs}
        return {k: v for k, v in hints.items() if k in names}

    @property
    def model(self) -> Any:
        """The loaded Keras model (Keras 3 or tf_keras)."""
        return self._model

    @property
    def feed_kind(self) -> str:
        """How the model takes its inputs: "dict", "list" or "single"."""
        return self._feed_kind

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
                f"{self.path}: the model rejected the feed ({type(e).__name__}: {first_line(e)})"
            ) from None
        names = [s.name for s in self.outputs]
        if isinstance(result, Mapping):
            return {str(k): to_numpy(v) for k, v in result.items()}
        if not isinstance(result, list | tuple):
            result = [result]
        if len(result) != len(names):
            raise UnsupportedError(
                f"{self.path}: the model returned {len(result)} outputs but declares {len(names)} ({', '.join(names)})"
            )
        return {n: to_numpy(v) for n, v in zip(names, result, strict=True)}

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": version("tensorflow"), self.loader: version(self.loader)}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader=self.loader,
            format=self.format,
            safe_mode=self.safe_mode,
            model_class=type(self._model).__name__,
        )
        return d
