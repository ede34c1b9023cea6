"""Deploy-readiness and safety lint, read from the files alone: TensorFlow is never imported.

``lint(path, targets)`` returns a :class:`~tfmodelkit.description.CheckReport` whose
findings each end with a ``fix:`` note; the package itself is callable as ``lint``. The
targets, one module each:

- ``serving``: a SavedModel TF Serving loads and its REST API can feed: a ``serve`` meta
  graph, a ``serving_default`` signature, input/output dtypes JSON can carry, the
  ``<base>/<version>/`` folder layout, and the integrity check (assets present, variables
  restorable).
- ``tflite``: what stands between the model and LiteRT. For a SavedModel, the ops the
  serving signatures reach (graph and every function they call), classified by the op
  tables (``tables``); for a ``.tflite``, custom and Flex ops, dynamic and string I/O,
  quantization.
- ``safety``: ops that reach outside the model (files, network, Python, debug hooks) over
  the graph and every function body, judged by where they run (a serving signature, the
  init op, the saver: ``graph``); Python code in Keras files; Flex I/O ops in ``.tflite``
  files. Conversions and verification refuse models with safety errors (``require_safe``).
- ``tfjs``: what TF.js cannot run: layer classes tfjs-layers lacks, subclassed models, mixed
  precision, Python code, weights-only files; ops a TF.js graph model's executor lacks.
"""

from __future__ import annotations

from ..util import callable_module
from .run import TARGETS, lint, parse_targets, require_safe, safety_errors
from .tables import RNN_LAYERS

__all__ = ["RNN_LAYERS", "TARGETS", "lint", "parse_targets", "require_safe", "safety_errors"]

callable_module(__name__, lint)
