"""tfmodelkit: inspect, convert and verify TensorFlow models.

The library mirrors the two commands; each function returns a dataclass::

    import tfmodelkit
    desc = tfmodelkit.read("model.h5")               # modelinspect summary/weights/...: ModelDescription
    tfmodelkit.detect("model.h5")                    # the format name
    tfmodelkit.check("ckpt/model.ckpt-100")          # modelinspect check: CheckReport
    tfmodelkit.lint("exported/", "serving,tflite")   # modelinspect check --target: CheckReport
    tfmodelkit.diff("a.h5", "b.h5")                  # modelinspect diff: DiffReport
    tfmodelkit.convert("model.h5", "model.tflite")   # modelconv convert: ConversionReport
    tfmodelkit.verify("exported/", "model.tflite")   # modelconv verify: VerificationReport
    tfmodelkit.run("graph.pb", out="y.npz")          # modelconv run: RunReport

Reading, checking, linting and diffing never import TensorFlow; ``convert`` and ``verify``
import it only when a conversion or a TensorFlow-backed run actually starts.
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
from .version import __version__

#: Loaded on first use, so that ``import tfmodelkit`` stays light: (module, attribute or None for
#: the module itself, which is callable).
_LAZY = {
    "convert": ("tfmodelkit.convert", None),
    "verify": ("tfmodelkit.verify", None),
    "lint": ("tfmodelkit.lint", None),
    "diff": ("tfmodelkit.inspect.diff", "diff"),
    "run": ("tfmodelkit.verify.run", "run"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'tfmodelkit' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    value = importlib.import_module(module_name)
    return value if attribute is None else getattr(value, attribute)

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
    "convert",
    "detect",
    "diff",
    "lint",
    "read",
    "run",
    "verify",
    "__version__",
]
