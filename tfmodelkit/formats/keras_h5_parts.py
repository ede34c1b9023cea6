"""What the Keras HDF5 layouts assemble from an inventory, before it becomes a
:class:`ModelDescription`, and the name helpers they share (``keras_h5`` and ``keras_zip``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..description import Layer, ModelDescription, Producer, Signature, Weight
from .hdf5_inventory import DatasetInfo, Inventory


@dataclass
class Issue:
    """Something wrong or odd in the file, found while assembling."""

    severity: str  # "error" | "warning"
    subject: str
    message: str


@dataclass
class Assembled:
    """The parts of a description, gathered layout by layout."""

    weights: list[Weight] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    producer: Producer = field(default_factory=Producer)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The model's inputs and outputs, from its config (``ParsedModel.signatures``).
    signatures: tuple[Signature, ...] = ()


def natural_key(s: str) -> list[Any]:
    """Sort key that orders ``dense_2`` before ``dense_10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def join_path(*parts: str) -> str:
    """HDF5 object path from parts, empty parts (the root) left out."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def list_attr(attrs: dict[str, Any], name: str) -> list[str] | None:
    """A list attribute, joining the ``name0``, ``name1``, ... chunks Keras writes for
    attributes over HDF5's 64 KB limit. None if absent."""
    if name in attrs:
        return _str_list(attrs[name])
    chunks: list[str] = []
    i = 0
    while f"{name}{i}" in attrs:
        chunks.extend(_str_list(attrs[f"{name}{i}"]))
        i += 1
    return chunks if i else None


def str_attr(attrs: dict[str, Any], name: str) -> str | None:
    """A text attribute (h5py may hand a one-element list), else None."""
    v = attrs.get(name)
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v if isinstance(v, str) else None


def datasets_under(inv: Inventory, prefix: str) -> list[str]:
    """Paths of the datasets below group ``prefix`` ("" = every dataset)."""
    if not prefix:
        return list(inv.datasets)
    p = prefix + "/"
    return [d for d in inv.datasets if d.startswith(p)]


def element_count(info: DatasetInfo) -> int:
    return math.prod(info.shape)


def to_description(
    out: Assembled, display: str, fmt: str, producer: Producer | None = None
) -> ModelDescription:
    """The description of what was assembled; issues become warnings, each said once."""
    warnings = [*out.notes]
    for issue in out.issues:
        warnings.append(f"{issue.subject}: {issue.message}")
    return ModelDescription(
        format=fmt,
        path=display,
        producer=producer or out.producer,
        signatures=out.signatures,
        weights=tuple(out.weights),
        layers=tuple(out.layers),
        metadata=out.metadata,
        warnings=tuple(dict.fromkeys(warnings)),
    )
