"""A checkpoint run through the model that wrote it, rebuilt and restored by
:mod:`tfmodelkit.loaders.checkpoint` (a checkpoint alone holds no graph to run)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...description import TensorSpec
from ...errors import UserError
from ...loaders.checkpoint import RestoredModel, restore_model, traced_outputs
from ...loaders.tf import import_tensorflow, version
from ...util import first_line
from .base import BaseRunner


class CheckpointRunner(BaseRunner):
    """The model that wrote a checkpoint, rebuilt from ``model`` code or an ``architecture`` and
    restored (the options of :func:`tfmodelkit.loaders.checkpoint.restore_model`)."""

    backend = "checkpoint"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: str | None = None,
        architecture: str | None = None,
        root_key: str | None = None,
        input_specs: Sequence[str] = (),
        allow_partial: bool = False,
        unsafe: bool = False,
        custom_objects: str | dict[str, Any] | None = None,
    ) -> None:
        restored = restore_model(
            path, model=model, architecture=architecture, root_key=root_key, input_specs=input_specs,
            allow_partial=allow_partial, unsafe=unsafe, custom_objects=custom_objects,
        )  # fmt: skip
        outputs = traced_outputs(import_tensorflow("running a checkpoint's model"), restored.built)
        self._bind(restored, outputs)
        self.notes.extend(restored.notes)

    def _bind(self, restored: RestoredModel, outputs: tuple[TensorSpec, ...]) -> None:
        BaseRunner.__init__(self, restored.prefix)
        self.restored = restored
        self.built = restored.built
        self.root_key = restored.match.root_key
        self.inputs = tuple(s.as_tensor_spec() for s in restored.built.inputs)
        self.outputs = outputs

    @classmethod
    def from_restored(cls, restored: RestoredModel, outputs: tuple[TensorSpec, ...]) -> CheckpointRunner:
        """A runner over a model already restored, whose ``outputs`` are known (a conversion
        that exported it); it carries no notes, the conversion reports them."""
        runner = cls.__new__(cls)
        runner._bind(restored, outputs)
        return runner

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.prepare(feed)
        x = self.built.structure([values[s.name] for s in self.inputs])
        try:
            y = self.built.call(x)
        except Exception as e:
            raise UserError(
                f"{self.path}: the restored model rejected the feed ({first_line(e, 200, with_type=True)})"
            ) from None
        return {
            k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in self.built.named(y).items()
        }

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": version("tensorflow")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader=self.built.loader,
            model=self.built.detail,
            model_class=type(self.built.model).__name__,
            root_key=self.root_key,
        )
        return d
