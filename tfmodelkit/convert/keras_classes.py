"""The user's own classes a ``.keras`` names, and what loading it will need.

Keras 3 resolves a class that is not its own only by its registered name (``package>Class``,
``keras.saving.register_keras_serializable``); it never imports a user's module by the
``module`` field of the config. So a ``.keras`` holding a subclassed model or a custom layer
loads only where the module defining the class has been imported and the class registered.
Each such class is registered here before saving (under its module's name, where the module
does not register it itself) and the report names the module and, for classes the module does
not register, the one line that registers them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError

#: Module prefixes whose classes Keras resolves by itself.
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow")
#: How :mod:`tfmodelkit.loaders.user_code` names a ``--model path/to/file.py`` module it imports.
_FILE_MODULE_PREFIX = "_tfmodelkit_model_"


@dataclass(frozen=True)
class UserClass:
    """A class of the user's that the saved model names."""

    cls: Any
    #: The name a fresh process imports it by, and the sys.path entry that makes it importable.
    module: str
    folder: str | None
    #: ``package>Class``, what the ``.keras`` records.
    registered_name: str
    #: Whether the user's module registers it itself (else the user must, as the report says).
    self_registered: bool

    @property
    def name(self) -> str:
        return str(self.cls.__name__)

    @property
    def package(self) -> str:
        return self.registered_name.split(">", 1)[0]

    def registration(self) -> str:
        """The line a user runs (after importing the module) when the module does not register it."""
        return (
            f"keras.saving.register_keras_serializable(package={self.package!r})({self.module}.{self.name})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": f"{self.module}.{self.name}",
            "registered_name": self.registered_name,
            "registered_by": "its module" if self.self_registered else self.registration(),
            "sys_path": self.folder,
        }


def module_folder(module: str) -> str | None:
    """The sys.path entry a fresh process needs to import ``module`` (a user's module)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        origin = found.origin if found is not None else None
    if not origin:
        return None
    folder = Path(origin).parent
    for _ in module.split(".")[1:]:
        folder = folder.parent
    if Path(origin).name == "__init__.py":
        folder = folder.parent
    return str(folder)


def _importable(cls: type) -> tuple[str, str | None]:
    """The module name a fresh process imports ``cls`` by, and the folder that makes it importable."""
    module = cls.__module__
    if module.startswith(_FILE_MODULE_PREFIX):
        # A ``--model path/to/file.py`` module: importable as the file's stem from its folder.
        origin = getattr(sys.modules.get(module), "__file__", None)
        if origin:
            return Path(origin).stem, str(Path(origin).parent)
    if module == "__main__":
        raise UnsupportedError(
            f"{cls.__name__} is defined in a script (__main__), which no other process can import; "
            "move it into a module"
        )
    return module, module_folder(module)


def _objects(model: Any) -> Iterator[Any]:
    yield model
    flatten = getattr(model, "_flatten_layers", None)
    if callable(flatten):
        yield from flatten(include_self=False, recursive=True)


def _is_users(cls: type) -> bool:
    return cls.__module__.split(".")[0] not in _KERAS_MODULES


#: Classes this process registered (their module does not): a later conversion must not take
#: them for classes their module registers.
_REGISTERED_HERE: set[type] = set()


def user_classes(keras: Any, model: Any) -> list[UserClass]:
    """The user's classes in ``model`` (itself, its layers), registered with Keras where their
    module does not register them (under the module's name as the package)."""
    found: dict[type, UserClass] = {}
    for obj in _objects(model):
        cls = type(obj)
        if cls in found or not _is_users(cls):
            continue
        module, folder = _importable(cls)
        registered = keras.saving.get_registered_name(cls)
        self_registered = ">" in registered and cls not in _REGISTERED_HERE
        if not self_registered:
            registered = f"{module}>{cls.__name__}"
            keras.saving.register_keras_serializable(package=module)(cls)
            _REGISTERED_HERE.add(cls)
        found[cls] = UserClass(cls, module, folder, registered, self_registered)
    return list(found.values())


@contextlib.contextmanager
def importable_names(classes: list[UserClass]) -> Iterator[None]:
    """While saving, each class names the module a user imports it by (a ``--model`` file is
    imported here under a private name), so that the config's ``module`` field is true."""
    before = {c.cls: c.cls.__module__ for c in classes}
    try:
        for c in classes:
            c.cls.__module__ = c.module
        yield
    finally:
        for cls, module in before.items():
            cls.__module__ = module


def named_in(config: Any) -> set[str]:
    """The registered names a saved ``config.json`` refers to."""
    names: set[str] = set()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            name = item.get("registered_name")
            if isinstance(name, str):
                names.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


#: Keras namespaces whose classes a config names by class name alone.
_NAMESPACES = (
    "layers",
    "initializers",
    "regularizers",
    "constraints",
    "models",
    "optimizers",
    "losses",
    "metrics",
)
_MODEL_CLASSES = ("Functional", "Sequential", "Model")


def _known(module: Any, name: str) -> bool:
    return any(hasattr(getattr(module, ns, None), name) for ns in _NAMESPACES)


def unknown_classes(config: Any, keras: Any, tf_keras: Any | None) -> list[str]:
    """The classes a model config names that neither Keras 3 nor tf_keras defines, as
    ``Class (layer 'name')``: a ``.keras`` config's own ``module`` decides where it has one."""
    found: dict[str, None] = {}
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if not isinstance(item, Mapping):
            continue
        stack.extend(reversed([v for v in item.values() if isinstance(v, Mapping | list)]))
        name = item.get("class_name")
        if not isinstance(name, str) or name.startswith("__") or "config" not in item:
            continue
        module = item.get("module")
        if isinstance(module, str):
            custom = module.split(".")[0] not in (*_KERAS_MODULES, "builtins")
        else:
            short = name.split(">")[-1]
            custom = not (
                short in _MODEL_CLASSES
                or _known(keras, short)
                or (tf_keras is not None and _known(tf_keras, short))
            )
        if custom:
            inner = item.get("config")
            layer = inner.get("name") if isinstance(inner, Mapping) else None
            found[f"{item.get('registered_name') or name}" + (f" (layer {layer!r})" if layer else "")] = None
    return list(found)
