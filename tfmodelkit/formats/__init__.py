"""Format registry: detection from a path, and dispatch to one reader module per format.

Each reader module has ``read(path, **options) -> ModelDescription`` and
``check(path, **options) -> CheckReport``. Modules are imported only when used, so that
listing a checkpoint never pays for h5py or the flatbuffer schema.

A reader may lean on helper modules beside it that the registry does not name: ``hdf5``
(h5py in a forked child) and ``hdf5_inventory`` for the Keras HDF5 readers, with the layouts
in ``keras_h5_legacy`` and ``keras3_weights``; ``tflite_parse``, ``tflite_values`` and
``tflite_check``; ``checkpoint_bundle``, ``checkpoint_graph`` and ``checkpoint_check``;
``metagraph_variables`` (a ``.meta``'s variables, for the ``.meta`` and the checkpoint readers).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from ..description import FORMATS, CheckReport, ModelDescription
from ..errors import FormatError, NotFoundError, UserError
from ..options import refuse_unknown

_MODULES = {
    "checkpoint": "tfmodelkit.formats.checkpoint",
    "savedmodel": "tfmodelkit.formats.savedmodel",
    "keras_h5": "tfmodelkit.formats.keras_h5",
    "keras_zip": "tfmodelkit.formats.keras_zip",
    "tflite": "tfmodelkit.formats.tflite",
    "checkpoint_v1": "tfmodelkit.formats.checkpoint_v1",
    "metagraph": "tfmodelkit.formats.metagraph",
    "graphdef": "tfmodelkit.formats.graphdef",
    "tfjs": "tfmodelkit.formats.tfjs",
}

#: Accepted spellings for ``--as``.
ALIASES = {
    "ckpt": "checkpoint",
    "checkpoint": "checkpoint",
    "savedmodel": "savedmodel",
    "saved_model": "savedmodel",
    "h5": "keras_h5",
    "hdf5": "keras_h5",
    "keras_h5": "keras_h5",
    "keras": "keras_zip",
    "keras_zip": "keras_zip",
    "tflite": "tflite",
    "checkpoint_v1": "checkpoint_v1",
    "ckpt_v1": "checkpoint_v1",
    "metagraph": "metagraph",
    "meta": "metagraph",
    "graphdef": "graphdef",
    "pb": "graphdef",
    "tfjs": "tfjs",
    "tensorflowjs": "tfjs",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_SAVEDMODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "saved_model.cpb")


def module(fmt: str) -> ModuleType:
    return importlib.import_module(_MODULES[fmt])


def normalize_format(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in ALIASES:
        raise FormatError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return ALIASES[key]


def read_head(path: Path, n: int = 8, kind: str = "model file") -> bytes:
    """The first ``n`` bytes of a file, with one-line errors for a missing path or a folder."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a folder, not a {kind}")
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None


def _is_checkpoint_prefix(path: Path) -> bool:
    return Path(str(path) + ".index").is_file()


def _v1_state_target(folder: Path) -> bool:
    from .tf1_detect import v1_state_target

    return v1_state_target(folder)


def _is_tfjs_json(path: Path) -> bool:
    from .tfjs import looks_like_tfjs

    return looks_like_tfjs(path)


def detect(path: str | os.PathLike[str]) -> str:
    """The format of ``path``: sniffed from magic bytes first, then names and layout."""
    p = Path(path)
    if not p.exists():
        if _is_checkpoint_prefix(p):
            return "checkpoint"
        from .tf1_detect import v1_shards_named

        if v1_shards_named(p):  # a V1 prefix (model.ckpt) or pattern (model.ckpt-?????-of-00002)
            return "checkpoint_v1"
        raise NotFoundError(f"{p}: no such file or directory")
    if p.is_dir():
        if any((p / name).is_file() for name in _SAVEDMODEL_FILES):
            return "savedmodel"
        # TF Serving base folder: <base>/<integer version>/saved_model.pb
        for child in p.iterdir():
            if child.is_dir() and child.name.isdigit() and any((child / n).is_file() for n in _SAVEDMODEL_FILES):
                return "savedmodel"
        # A `checkpoint` state file naming a V1 checkpoint (here or in a TF Serving version
        # folder); a TF.js folder (model.json, no state file) skips the TF1 detectors' import.
        tfjs_folder = (p / "model.json").is_file() and not (p / "checkpoint").is_file()
        if not tfjs_folder and _v1_state_target(p):
            return "checkpoint_v1"
        if (p / "checkpoint").is_file() or any(c.name.endswith(".index") for c in p.iterdir()):
            return "checkpoint"
        if (p / "model.json").is_file():  # TF.js: model.json + weight shards
            return "tfjs"
        if (p / "variables").is_dir():
            raise FormatError(f"{p}: has variables/ but no saved_model.pb: not a complete SavedModel")
        raise FormatError(
            f"{p}: a folder with no saved_model.pb, no checkpoint and no TF.js model.json in it; "
            "point at a SavedModel folder, a checkpoint prefix or a model file"
        )
    if p.name in _SAVEDMODEL_FILES:
        return "savedmodel"
    head = read_head(p)
    if head.startswith(_HDF5_MAGIC):
        return "keras_h5"
    if head.startswith(_ZIP_MAGIC):
        return "keras_zip"
    if head[4:8] == b"TFL3":
        return "tflite"
    name = p.name
    if name.endswith(".index") or ".data-" in name:
        return "checkpoint"
    if p.suffix.lower() == ".json" and _is_tfjs_json(p):  # text: no TF1 table or proto, so asked first
        return "tfjs"
    from .tf1_detect import sniff_tf1

    tf1 = sniff_tf1(p, head)  # V1 checkpoint tables, .meta, frozen GraphDefs (.pb, .pbtxt)
    if tf1:
        return tf1
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix in (".h5", ".hdf5"):
        return "keras_h5"
    if suffix == ".keras":
        return "keras_zip"
    if name == "checkpoint":
        return "checkpoint"
    if suffix == ".pb":
        raise FormatError(
            f"{p}: a .pb file that is neither a frozen GraphDef nor a SavedModel's saved_model.pb "
            "(its first byte is no field tag either opens with)"
        )
    raise FormatError(
        f"{p}: not a format tfmodelkit knows (SavedModel folder, checkpoint, .h5, .keras, .tflite, "
        "TF.js model.json, GraphDef .pb/.pbtxt, MetaGraph .meta); use --as FORMAT if the name misleads"
    )


#: Options the readers take, whatever the format (each reader uses those that apply to it):
#: ``tags`` (SavedModel tag set), ``timeout`` (seconds without progress before a damaged HDF5
#: file counts as hung), ``max_inflate_bytes`` (a ``.keras`` member's inflated size limit).
_COMMON_OPTIONS = frozenset({"tags", "timeout", "max_inflate_bytes"})
#: TF1 graphs (frozen GraphDefs, ``.meta``) only: ``input_tensors``/``output_tensors`` (``NAME[:k]``,
#: a comma list or a sequence) name the signature instead of the inferred one; refused elsewhere.
GRAPH_OPTIONS = frozenset({"input_tensors", "output_tensors"})
READ_OPTIONS = _COMMON_OPTIONS | GRAPH_OPTIONS
#: ``check`` takes the common options and ``progress`` (a callable told how many bytes were checked).
CHECK_OPTIONS = _COMMON_OPTIONS | {"progress"}


def read(path: str | os.PathLike[str], format: str | None = None, **options: object) -> ModelDescription:
    """Read ``path`` into a :class:`ModelDescription` without TensorFlow.

    ``format`` (any name in :data:`ALIASES`) overrides detection; ``options`` are among
    :data:`READ_OPTIONS` (an unknown one is refused by name).
    """
    refuse_unknown("read", options, READ_OPTIONS)
    fmt = normalize_format(format) if format else detect(path)
    named = sorted(k for k in GRAPH_OPTIONS if options.get(k))
    if named and fmt not in ("graphdef", "metagraph"):
        flags = "/".join("--" + k.replace("_", "-") for k in named)
        raise UserError(f"{path}: {flags} name tensors of a TF1 graph (frozen .pb/.pbtxt or .meta), not of a {fmt}")
    options = {k: v for k, v in options.items() if k not in GRAPH_OPTIONS or v}
    return module(fmt).read(Path(path), **options)


def keras_model_config(path: str | os.PathLike[str], format: str | None = None, **options: object) -> Any:
    """The parsed model config of a Keras ``.h5`` (its ``model_config`` attribute) or ``.keras``
    file (``config.json``); None for a weights-only file.

    Read by the same code as :func:`read` (HDF5 in the guarded child, the archive's safety
    rules), so a damaged or mislabelled file is refused in the same words; ``options``: ``timeout``.
    """
    refuse_unknown("keras_model_config", options, {"timeout"})
    fmt = normalize_format(format) if format else detect(path)
    if fmt not in ("keras_h5", "keras_zip"):
        raise FormatError(f"{path}: a {fmt}, not a Keras model file (.h5 or .keras)")
    return module(fmt).model_config(Path(path), **options)


def check(path: str | os.PathLike[str], format: str | None = None, **options: object) -> CheckReport:
    """Integrity check of ``path``: every tensor's checksum, sizes, bounds (options: :data:`CHECK_OPTIONS`)."""
    refuse_unknown("check", options, CHECK_OPTIONS)
    fmt = normalize_format(format) if format else detect(path)
    return module(fmt).check(Path(path), **options)
