"""User code that builds or completes a model: ``--model MODULE:CALLABLE`` and ``--custom-objects MODULE``.

Importing it runs the user's code; that is what the user asked for, so it runs as given, with
its own folder on ``sys.path`` while it is imported and called.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UserError
from ..util import first_line


def load_custom_objects(spec: str | None) -> dict[str, Any]:
    """``--custom-objects module.path``: its ``custom_objects`` dict, else its public classes."""
    if not spec:
        return {}
    try:
        module = importlib.import_module(spec)
    except ImportError as e:
        raise UserError(f"--custom-objects {spec}: cannot import it ({e})") from None
    found = getattr(module, "custom_objects", None) or getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(found, Mapping):
        return dict(found)
    return {k: v for k, v in vars(module).items() if isinstance(v, type) and not k.startswith("_")}


@contextlib.contextmanager
def on_sys_path(folder: Path | None) -> Iterator[None]:
    """``folder`` at the front of sys.path for the block only (sibling imports of a model file)."""
    if folder is None:
        yield
        return
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise NotFoundError(f"--model {spec}: no such file {path}")
    resolved = path.resolve()
    name = (
        f"_tfmodelkit_model_{re.sub(r'[^0-9A-Za-z_]', '_', resolved.stem)}_"
        + hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    )
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"--model {spec}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses, pickling and autograph look modules up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise UserError(f"--model {spec}: importing {path} failed ({first_line(e, 200, with_type=True)})") from None
    return module


def load_model_factory(spec: str) -> tuple[Callable[[], Any], Path | None]:
    """The callable named by ``pkg.module:fn`` or ``path/to/file.py:fn`` (dotted attributes allowed),
    and the folder to keep on sys.path while it runs (for a file)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UserError(f"--model {spec}: expected pkg.module:callable or path/to/file.py:callable")
    folder = None
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = Path(target)
        folder = path.resolve().parent
        with on_sys_path(folder):
            module = _import_file(path, spec)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise UserError(f"--model {spec}: cannot import {target} ({e}); is it on PYTHONPATH?") from None
        except Exception as e:
            raise UserError(f"--model {spec}: importing {target} failed ({first_line(e, 200, with_type=True)})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NotFoundError(f"--model {spec}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(
            f"--model {spec}: {attr} is a {type(obj).__name__}, not a callable that returns the model"
        )
    return obj, folder


