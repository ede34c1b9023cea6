"""Keras HDF5 files (``.h5``/``.hdf5``): full models and weights-only files, Keras 0.x to 3.

Layouts handled (FORMATS.md sections 3 and 4):

- Keras 1/2/tf.keras/Keras 3 legacy full model: root attrs ``model_config``,
  ``training_config``; group ``model_weights`` (attr ``layer_names``, one group per layer with
  attr ``weight_names``); optional ``optimizer_weights``.
- Weights-only (``save_weights``): the ``model_weights`` content at the root.
- Keras 0.x weights: root attr ``nb_layers``, groups ``layer_<k>`` with ``param_<j>``.
- Keras 3 ``*.weights.h5``: ``layers/<snake_case class>[_N]/vars/0, 1, ...``, ``optimizer/vars``.
- Anything else with datasets is listed as plain HDF5 data, with a warning.

The file is read in two steps: :func:`.hdf5_inventory.scan` copies every attribute and every
dataset's metadata into plain Python objects (all h5py calls happen there, under one error
guard), then the description is assembled from that inventory (:mod:`.keras_h5_legacy` for
Keras 0.x-2, :mod:`.keras3_weights` for Keras 3). No tensor bytes are read by :func:`read`;
each weight's loader reopens the file (or memory-maps contiguous data).

libhdf5 can hang or crash on damaged files, so every h5py call runs in a forked child
(:func:`.hdf5.isolated`); option ``timeout`` (seconds without progress, default
:data:`.hdf5.DEFAULT_TIMEOUT`) bounds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..description import ROLE_OTHER, CheckReport, Finding, Layer, ModelDescription, Producer
from ..errors import CorruptFileError, FormatError
from . import keras_config as kc
from .hdf5 import option_timeout
from .hdf5_inventory import (
    H5Source,
    Inventory,
    check_datasets,
    dataset_weight,
    file_source,
    root_attributes,
    scan_source,
)
from .keras3_weights import keras3_assemble
from .keras_h5_legacy import (
    apply_config,
    guess_generation,
    layer_params,
    legacy_group_weights,
    optimizer_weights,
)
from .keras_h5_parts import Assembled, Issue, list_attr, natural_key, str_attr, to_description

FORMAT = "keras_h5"


def _generation(version: str | None) -> int | None:
    m = re.match(r"\s*(\d+)\.", version or "")
    return int(m.group(1)) if m and m.group(1) in ("1", "2", "3") else None


def _is_keras3_layout(inv: Inventory) -> bool:
    return any(g == "vars" or g.endswith("/vars") for g in inv.groups) and any(
        g in inv.attrs for g in ("layers", "vars", "optimizer")
    )


def assemble(inv: Inventory, source: H5Source) -> Assembled:
    """The description's parts from an inventory of a ``.h5`` file."""
    out = Assembled()
    root = inv.attrs.get("", {})
    for subject, message in inv.problems:
        out.issues.append(Issue("error", subject, message))
    mw = inv.attrs.get("model_weights", {})
    keras_version = str_attr(root, "keras_version") or str_attr(mw, "keras_version")
    backend = str_attr(root, "backend") or str_attr(mw, "backend")
    parsed = apply_config(inv, out, source.display)
    per_layer: dict[str, list[tuple[str, int]]] | None = None
    generation = _generation(keras_version)
    full = "model_config" in root or "model_weights" in inv.attrs

    if "model_weights" in inv.attrs:
        out.metadata["kind"] = "full model"
        per_layer = legacy_group_weights(inv, source, "model_weights", out)
        optimizer_weights(inv, source, out)
    elif full:
        out.metadata["kind"] = "full model"
        out.issues.append(
            Issue("warning", "/", "model_config present but no model_weights group: no weights stored")
        )
        per_layer = {}
    elif list_attr(root, "layer_names") is not None or "nb_layers" in root:
        out.metadata["kind"] = "weights only"
        per_layer = legacy_group_weights(inv, source, "", out)
    elif _is_keras3_layout(inv):
        out.metadata["kind"] = "weights only"
        out.metadata["layout"] = "Keras 3 weights (layers/<name>/vars/<i>)"
        generation = generation or 3
        keras3_assemble(inv, source, None, out)
    else:
        _plain_datasets(inv, source, out)
        return _finish_assembly(out, keras_version, backend, generation)

    if per_layer is not None:
        if parsed is not None:
            out.layers = layer_params(parsed, per_layer)
        else:
            out.layers = [
                Layer(name=n, class_name="unknown", params=sum(c for _, c in e)) for n, e in per_layer.items()
            ]
        # Datasets outside every layer group (and outside optimizer_weights).
        seen = {w.name for w in out.weights}
        stray = [d for d in inv.datasets if d not in seen]
        for ds in sorted(stray, key=natural_key):
            out.weights.append(dataset_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))
        if stray:
            out.issues.append(
                Issue("warning", "/", f"{len(stray)} dataset(s) outside the Keras weight groups")
            )
    if generation is None and per_layer is not None:
        generation = (
            1 if out.metadata.get("layout", "").startswith("Keras 0") else guess_generation(per_layer)
        )
    return _finish_assembly(out, keras_version, backend, generation)


def _finish_assembly(
    out: Assembled, keras_version: str | None, backend: str | None, generation: int | None
) -> Assembled:
    out.producer = Producer(keras=keras_version, backend=backend)
    if generation is not None:
        out.metadata["keras_generation"] = generation
    guessed = [w for w in out.weights if w.extra.get("dtype_guessed")]
    if guessed:
        out.notes.append(
            f"{len(guessed)} dataset(s) hold untyped 2-byte values (how Keras 3's legacy .h5 writer "
            "stores bfloat16): reported as bfloat16"
        )
    return out


def _plain_datasets(inv: Inventory, source: H5Source, out: Assembled) -> None:
    if not inv.datasets:
        raise FormatError(
            f"{source.display}: an HDF5 file with no Keras model config, no Keras weights layout "
            "and no datasets: nothing to describe"
        )
    out.metadata["kind"] = "hdf5 data"
    root = inv.attrs.get("", {})
    if root:
        out.metadata["attributes"] = {k: v for k, v in root.items() if isinstance(v, str | int | float)}
    out.notes.append("no Keras model config or weights layout found: listing HDF5 datasets")
    for ds in inv.datasets:
        out.weights.append(dataset_weight(source, inv.datasets[ds], ROLE_OTHER, ds, None))


# ---------------------------------------------------------------------------------------
# Public API


def describe(inv: Inventory, source: H5Source, fmt: str = FORMAT, **extra_meta: Any) -> ModelDescription:
    """The description of an inventory of a ``.h5`` file, ``extra_meta`` added to its metadata."""
    out = assemble(inv, source)
    out.metadata.update(extra_meta)
    return to_description(out, source.display, fmt)


def read(path: Path, **options: object) -> ModelDescription:
    """Describe a Keras ``.h5`` file: producer, architecture, weights (values stay on disk)."""
    source = file_source(Path(path))
    source.timeout = option_timeout(options)
    return describe(scan_source(source), source)


def model_config(path: Path, **options: object) -> Any | None:
    """The parsed ``model_config`` root attribute (None for a weights-only file), read as
    :func:`read` reads the file: its signature checked first, h5py in the guarded child."""
    source = file_source(Path(path))
    source.timeout = option_timeout(options)
    attrs, problems = root_attributes(source)
    for subject, message in problems:
        if subject in ("/", "/@model_config"):
            raise CorruptFileError(f"{source.display}: {subject}: {message}")
    if "model_config" not in attrs:
        return None
    text = str_attr(attrs, "model_config")
    if text is None:
        raise CorruptFileError(f"{source.display}: its model_config attribute is not text")
    return kc.load_json(text, "model_config", source.display)


def check_source(
    source: H5Source, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Finding], dict[str, int]]:
    """Read every attribute and every dataset of an HDF5 source; report what fails, and
    what the Keras layout finds amiss.

    ``progress(bytes_done, bytes_total)`` hears about each dataset as the child finishes it.
    """
    findings, checked, inv = check_datasets(source, progress)
    if inv is None:
        return findings, checked
    try:
        out = assemble(inv, source)
    except FormatError as e:
        findings.append(Finding("warning", source.display, str(e).partition(": ")[2]))
        return findings, checked
    for issue in out.issues:
        findings.append(Finding(issue.severity, issue.subject, issue.message))
    return findings, checked


def check(path: Path, **options: object) -> CheckReport:
    """Integrity check: every attribute decodes, every dataset reads, Keras' name lists match."""
    source = file_source(Path(path))
    source.timeout = option_timeout(options)
    progress = options.get("progress")
    findings, checked = check_source(source, progress if callable(progress) else None)
    return CheckReport(path=source.display, format=FORMAT, checked=checked, findings=tuple(findings))
