"""TF1 graphs run in a ``tf.compat.v1.Session``: frozen GraphDefs, ``.meta`` + checkpoint, and
TF1 SavedModels (see :mod:`tfmodelkit.loaders.tf1`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...description import TensorSpec
from ...errors import UserError
from ...loaders.tf import version
from ...loaders.tf1 import load_tf1
from ...util import first_line
from .base import BaseRunner, tf_dtype, tf_shape


class TF1Runner(BaseRunner):
    """The named (or signature's, or inferred) tensors of a TF1 graph, fed and fetched by a session."""

    backend = "tf1"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        meta: str | os.PathLike[str] | None = None,
        signature: str | None = None,
        tags: str | Sequence[str] | None = None,
        input_tensors: str | Sequence[str] | None = None,
        output_tensors: str | Sequence[str] | None = None,
        safe_mode: bool = True,
    ) -> None:
        super().__init__(path)
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        self.loaded = load_tf1(
            path,
            meta=meta,
            signature=signature,
            tags=tags,
            input_tensors=input_tensors,
            output_tensors=output_tensors,
            unsafe=not safe_mode,
        )
        graph = self.loaded.graph
        self.signature = self.loaded.signature

        def spec(key: str, name: str) -> TensorSpec:
            t = graph.get_tensor_by_name(name)
            return TensorSpec(
                name=key, dtype=tf_dtype(t.dtype.base_dtype), shape=tf_shape(t.shape), tensor=name
            )

        self.inputs = tuple(spec(k, v) for k, v in self.loaded.inputs.items())
        self.outputs = tuple(spec(k, v) for k, v in self.loaded.outputs.items())
        self.notes.append(f"{self.loaded.kind} in a tf.compat.v1 session")
        if self.loaded.checkpoint:
            self.notes.append(f"variables restored from {self.loaded.checkpoint}")

    def run(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        prepared = self.prepare(feed)
        fetches = {k: self.loaded.outputs[k] for k in self.loaded.outputs}
        feed_dict = {self.loaded.inputs[k]: v for k, v in prepared.items()}
        try:
            result = self.loaded.session.run(fetches, feed_dict=feed_dict)
        except Exception as e:  # TensorFlow's own errors: bad shapes, missing feeds, failed ops
            raise UserError(f"{self.shown}: running the graph failed ({first_line(e)})") from None
        return {k: np.asarray(v) for k, v in result.items()}

    def versions(self) -> dict[str, str | None]:
        return {"tensorflow": version("tensorflow")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["loader"] = f"tf.compat.v1 session ({self.loaded.kind})"
        if self.signature:
            d["signature"] = self.signature
        return d
