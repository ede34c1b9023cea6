"""SavedModels loaded by TensorFlow (``tf.saved_model.load``), with its failures said for the user."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UnsupportedError, UserError
from ..util import first_line
from .tf import import_tensorflow, quiet_fds, version


def savedmodel_load_error(folder: Path, e: BaseException) -> UserError:
    """What went wrong when TensorFlow loaded a SavedModel, said for the user."""

    text = str(e)
    op = re.search(r"Op type not registered '([^']+)'", text)
    if op:
        return UnsupportedError(
            f"{folder}: uses the op {op[1]}, which this TensorFlow ({version('tensorflow')}) does not "
            "have: the model was made for a special build (TensorRT, a custom op library); convert "
            "the model it was made from"
        )
    key = re.search(r"Key (\S+) not found in checkpoint", text)
    if key:
        return UserError(
            f"{folder}: its variables have no value for {key[1]} (saved uninitialized, or the "
            "variables folder is from another save); TensorFlow cannot load it"
        )
    return UserError(f"{folder}: TensorFlow cannot load this SavedModel ({first_line(e)})")




def load_savedmodel(folder: Path, tags: Sequence[str] | None = None, purpose: str = "running a SavedModel") -> Any:
    """``tf.saved_model.load(folder, tags)``; keep the result alive while its signatures are used
    (they hold only weak references to the variables)."""
    tf = import_tensorflow(purpose)
    try:
        with quiet_fds():
            return tf.saved_model.load(str(folder), tags=list(tags) if tags else None)
    except Exception as e:
        raise savedmodel_load_error(folder, e) from None
