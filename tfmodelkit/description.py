"""The one in-memory description every reader returns (frozen dataclasses, no I/O).

Views and renderers only ever see these types. Tensor values stay on disk until
:meth:`Weight.read` is called: a weight carries a loader, not its bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dtypes import ML_DTYPES, numpy_dtype, storage_dtype

if TYPE_CHECKING:  # numpy is imported by readers, not by the description
    import numpy as np

#: A shape: a tuple of dims (``None`` = unknown dim), or ``None`` for unknown rank.
Shape = tuple[int | None, ...] | None

#: Every format a reader exists for (``formats._MODULES`` holds one module per name; a test
#: keeps the two, ``modelinspect --as``'s help and the README's table in step).
FORMATS = ("checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite", "tfjs", "checkpoint_v1", "metagraph", "graphdef")

#: Roles of a weight: part of the model, optimizer state (slots, iteration counters),
#: or bookkeeping (save counters, the object graph) that is neither.
ROLE_MODEL = "model"
ROLE_OPTIMIZER = "optimizer"
ROLE_OTHER = "other"


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    min: tuple[float, ...] = ()
    max: tuple[float, ...] = ()


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature."""

    name: str
    dtype: str
    shape: Shape
    #: The tensor this maps to in the graph (``x:0`` in a SavedModel, the tensor's own
    #: name in TFLite), when the format has one.
    tensor: str | None = None
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Signature:
    key: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tags: tuple[str, ...] = ()
    method: str | None = None
    #: Bookkeeping signatures (``__saved_model_init_op``) are hidden unless asked for.
    hidden: bool = False


@dataclass(frozen=True, eq=False)
class Weight:
    """A stored tensor: everything about it but its values, which :meth:`read` loads."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    #: Where the bytes live, for people: ``file @ offset`` or a dataset path.
    location: str
    role: str = ROLE_MODEL
    #: A second name where the format has one (object-graph path, layer path).
    path: str | None = None
    #: The layer owning this weight (Keras formats).
    layer: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    _loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    #: Streams the values without reading them whole: ``chunker(max_bytes, ordered)``
    #: yields flat arrays of at most ``max_bytes`` (at least one element), in row-major
    #: order when ``ordered``, else in the order they are stored (slice by slice).
    _chunker: Callable[[int, bool], Iterator[np.ndarray]] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    def read(self) -> np.ndarray:
        """The tensor's values (memory-mapped where the format allows it)."""
        if self._loader is None:
            from .errors import UnsupportedError

            raise UnsupportedError(f"{self.name}: values of this tensor cannot be read")
        return self._loader()

    def iter_chunks(
        self,
        max_elements: int = 1 << 22,
        *,
        max_bytes: int | None = None,
        ordered: bool = True,
        stored: bool = False,
    ) -> Iterator[np.ndarray]:
        """The values as flat chunks of at most ``max_elements`` (or ``max_bytes``).

        Streamed from disk in bounded memory where the format allows it, else cut from
        :meth:`read`. Row-major order unless ``ordered=False``, which lets a partitioned
        tensor yield its slices as they are stored, without assembling them. ``stored=True``
        hands out the dtypes numpy lacks (bfloat16, float8, int4) as the integers that store
        them (:func:`~tfmodelkit.dtypes.storage_dtype`), which spares importing ml_dtypes
        when a reader streams them that way.
        """
        if max_bytes is None:
            itemsize = self.nbytes // self.size if self.size else 1
            max_bytes = max(1, max_elements) * max(1, itemsize)
        if self._chunker is not None:
            chunks = self._chunker(max_bytes, ordered)
        else:
            chunks = self._cut(max_bytes)
        if self.dtype not in ML_DTYPES:  # chunks already hold numpy's own dtypes
            yield from chunks
            return
        # Readers may stream these either way: as the ml_dtypes type or as its storage.
        want = storage_dtype(self.dtype) if stored else None
        for chunk in chunks:
            if want is None:
                want = numpy_dtype(self.dtype)
            yield chunk if chunk.dtype == want else chunk.view(want)

    def _cut(self, max_bytes: int) -> Iterator[np.ndarray]:
        flat = self.read().reshape(-1)
        step = max(1, max_bytes // max(1, flat.itemsize))
        for start in range(0, flat.size, step):
            yield flat[start : start + step]


@dataclass(frozen=True)
class Layer:
    """One layer of a Keras architecture, its config kept as data (never executed)."""

    name: str
    class_name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Names of the layers feeding this one (functional models).
    inbound: tuple[str, ...] = ()
    #: Number of parameters stored for this layer in the file (None when unknown).
    params: int | None = None
    #: Nesting depth (0 = a layer of the top model).
    depth: int = 0
    #: Set for layers that carry Python code (``Lambda``): the function's name.
    code: str | None = None
    #: The shape of each tensor the layer outputs, as the file records it or as it follows
    #: from the config for a standard layer; None when unknown (not a guess).
    output_shapes: tuple[Shape, ...] | None = None


@dataclass(frozen=True)
class Function:
    """A traced function in a SavedModel's object graph."""

    name: str
    inputs: tuple[TensorSpec, ...]
    #: Object path of the owner (``root.serve``), when known.
    path: str | None = None


@dataclass(frozen=True)
class Asset:
    name: str
    path: str
    nbytes: int | None = None


@dataclass(frozen=True)
class Producer:
    """Who wrote the file."""

    tensorflow: str | None = None
    keras: str | None = None
    backend: str | None = None
    #: Anything else the format records (TFLite's description, a min runtime, ...).
    other: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ModelDescription:
    """What a model file holds, in one shape for every format."""

    format: str
    path: str
    producer: Producer = field(default_factory=Producer)
    signatures: tuple[Signature, ...] = ()
    weights: tuple[Weight, ...] = ()
    layers: tuple[Layer, ...] = ()
    ops: Mapping[str, int] = field(default_factory=dict)
    functions: tuple[Function, ...] = ()
    assets: tuple[Asset, ...] = ()
    #: Format-specific facts (tag sets, fingerprint, Keras class name, TFLite metadata ...).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def weight(self, name: str) -> Weight:
        """The weight called ``name`` (also matched against its second name)."""
        for w in self.weights:
            if w.name == name:
                return w
        for w in self.weights:
            if w.path == name:
                return w
        from .errors import NotFoundError

        close = [w.name for w in self.weights if name in w.name][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; `modelinspect weights` lists them"
        raise NotFoundError(f"{self.path}: no tensor named {name!r}{hint}")

    def visible_signatures(self, all: bool = False) -> tuple[Signature, ...]:
        return self.signatures if all else tuple(s for s in self.signatures if not s.hidden)


# ---------------------------------------------------------------------------------------
# Integrity checks


@dataclass(frozen=True)
class Finding:
    """One problem found by a check."""

    severity: str  # "error" | "warning"
    subject: str  # the tensor, file or structure concerned
    message: str
    #: The lint target that found it (``serving``, ``tflite``, ``safety``); None for integrity.
    target: str | None = None


@dataclass(frozen=True)
class CheckReport:
    path: str
    format: str
    #: What was checked, for the summary line ("12 tensors, 2 shards").
    checked: Mapping[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    #: The lint targets run (``modelinspect check --target``); empty for the integrity check.
    targets: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)
