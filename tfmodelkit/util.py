"""Small helpers every layer shares: exception text on one line, JSON-safe values, dtype families."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(e: BaseException, limit: int = 300, *, with_type: bool = False) -> str:
    """The first meaningful line of an exception's message, cut to ``limit`` characters.

    Keras 3 starts call errors with "Exception encountered when calling X.call()."; that
    preamble is skipped for the line that says what went wrong. ``with_type`` prefixes the
    exception's class name (``ValueError: ...``).
    """
    lines = [ln.strip() for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    if not lines:
        text = type(e).__name__
    else:
        text = f"{type(e).__name__}: {lines[0]}" if with_type else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: mappings and sequences recursively, numpy arrays and scalars as
    Python values, bytes decoded (undecodable bytes escaped), complex as ``[re, im]``, NaN and
    infinities as null, objects with ``as_dict()`` through it, anything else as its ``str``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, complex):
        return [jsonable(value.real), jsonable(value.imag)]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return jsonable(as_dict())
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def dtype_family(dtype: Any) -> str:
    """``bool``, ``string``, ``int``, ``complex``, ``float`` or ``other``: the kind of values a dtype holds.

    Takes a numpy dtype (ml_dtypes' bfloat16/float8 count as float, int4 as int) or a dtype
    name as :class:`~tfmodelkit.description.TensorSpec` spells it ("float32", "qint8", "string").
    """
    if isinstance(dtype, str):
        if dtype in ("bool", "string"):
            return dtype
        if dtype.startswith(("int", "uint", "qint", "quint")):
            return "int"
        if dtype.startswith("complex"):
            return "complex"
        return "float"
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    if dtype.kind in "SUO":
        return "string"
    if np.issubdtype(dtype, np.complexfloating):
        return "complex"
    if np.issubdtype(dtype, np.integer):
        return "int"
    if np.issubdtype(dtype, np.floating):
        return "float"
    import ml_dtypes  # bfloat16, float8_*, int4: numpy kind 'V', known to ml_dtypes

    for info, family in ((ml_dtypes.finfo, "float"), (ml_dtypes.iinfo, "int")):
        try:
            info(dtype)
            return family
        except Exception:
            pass
    return "other"


def callable_module(module_name: str, fn: Any) -> None:
    """Make the module ``module_name`` callable as ``fn``.

    ``tfmodelkit.convert`` and ``tfmodelkit.verify`` are packages and, like the commands they
    mirror, functions: ``tfmodelkit.convert(src, dst)``. Importing a submodule binds the package
    on its parent, so a plain function of that name in ``tfmodelkit/__init__`` would be replaced
    by the package at the first ``import tfmodelkit.convert.route``; a callable package cannot be.
    """
    import sys
    import types

    module = sys.modules[module_name]
    cls = type(f"{module_name}.Callable", (types.ModuleType,), {"__call__": staticmethod(fn)})
    module.__class__ = cls


def atomic_write(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` on a temporary sibling, then rename it over ``path``.

    A write that fails or is interrupted leaves ``path`` as it was and no temporary behind.
    """
    import tempfile
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
    try:
        writer(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
