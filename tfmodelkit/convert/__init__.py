"""Conversions, each verified: ``tfmodelkit.convert(src, dst, **options)`` is ``modelconv convert``.

The package itself is callable; it picks the route from the source's format and the
destination (see :func:`tfmodelkit.convert.route.convert` for the options). Importing it never
imports TensorFlow: a conversion does, when it runs.
"""

from __future__ import annotations

import os
from typing import Any

from ..util import callable_module
from .base import ConversionReport, VerifyOptions

__all__ = ["ConversionReport", "VerifyOptions", "convert"]


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], **options: Any) -> ConversionReport:
    """Convert ``src`` to ``dst`` (a ``.tflite`` file or a SavedModel folder), verified; unknown
    options are refused by name (:func:`tfmodelkit.convert.route.convert` lists them)."""
    from .route import convert as convert_by_route

    return convert_by_route(src, dst, **options)


callable_module(__name__, convert)
