"""SavedModel signatures run by ``tf.saved_model.load``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...description import TensorSpec
from ...errors import NotFoundError, UnsupportedError, UserError
from ...loaders.savedmodel import load_savedmodel
from ...loaders.tf import import_tensorflow, version
from ...util import first_line
from .base import BaseRunner, tf_dtype, tf_shape, to_numpy


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
        from ...formats import savedmodel as sm_format

        resolved = sm_format.resolve(path)
        self.folder = resolved.folder
        self.notes.extend(resolved.notes)
        if safe_mode:
            from ...lint import require_safe

            require_safe(self.folder, format="savedmodel")
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        self.tags = tuple(tags) if tags else None
        tf = import_tensorflow("running a SavedModel")
        # Keep the loaded object: its signatures hold only weak references to the variables.
        self._loaded = load_savedmodel(self.folder, self.tags)
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
            TensorSpec(name=name, dtype=tf_dtype(spec.dtype), shape=tf_shape(spec.shape), tensor=spec.name)
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
            TensorSpec(name=name, dtype=tf_dtype(spec.dtype), shape=tf_shape(spec.shape))
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
                f"{self.folder}: signature {self.signature!r} rejected the feed ({first_line(e)})"
            ) from None
        return {name: to_numpy(result[name]) for name in (s.name for s in self.outputs)}

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": version("tensorflow")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="tf.saved_model.load", folder=str(self.folder), signature=self.signature, tags=self.tags
        )
        return d


