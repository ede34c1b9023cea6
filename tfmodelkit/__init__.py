"""tfmodelkit: inspect, convert and verify TensorFlow models.

The reading side never imports TensorFlow::

    import tfmodelkit
    desc = tfmodelkit.read("model.h5")
    for w in desc.weights:
        print(w.name, w.dtype, w.shape)
    report = tfmodelkit.check("ckpt/model.ckpt-100")
"""

from __future__ import annotations

from .description import (
    Asset,
    CheckReport,
    Finding,
    Function,
    Layer,
    ModelDescription,
    Producer,
    Quantization,
    Signature,
    TensorSpec,
    Weight,
)
from .errors import (
    CheckFailed,
    CorruptFileError,
    FormatError,
    InternalError,
    NotFoundError,
    TFModelKitError,
    UnsupportedError,
    UserError,
)
from .formats import check, detect, read

__version__ = "0.1.0"

__all__ = [
    "Asset",
    "CheckFailed",
    "CheckReport",
    "CorruptFileError",
    "Finding",
    "FormatError",
    "Function",
    "InternalError",
    "Layer",
    "ModelDescription",
    "NotFoundError",
    "Producer",
    "Quantization",
    "Signature",
    "TFModelKitError",
    "TensorSpec",
    "UnsupportedError",
    "UserError",
    "Weight",
    "check",
    "detect",
    "read",
    "__version__",
]
