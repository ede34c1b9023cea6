"""Numerical verification: seeded inputs, one runner per backend, a comparator and its report.

``tfmodelkit.verify(a, b, **options)`` is ``modelconv verify A B``: the package itself is
callable. Importing it never imports TensorFlow; the SavedModel and Keras runners import it
when they are created, the TFLite runner uses LiteRT only::

    import tfmodelkit
    report = tfmodelkit.verify("exported/", "model.tflite", atol=1e-4)
    print(tfmodelkit.verify.format_report(report))
    report.raise_if_failed()          # CheckFailed (exit code 1) unless every output matched

:func:`compare_runners` is the engine under it, for runners built by hand;
:func:`compare_layers` (``layerwise=True``) compares a Keras model with its conversion layer by layer.
"""

from __future__ import annotations

from ..util import callable_module
from .compare import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    ErrorHistogram,
    OutputComparison,
    VerificationReport,
    compare,
    compare_arrays,
    histogram,
)
from .core import InputMatch, compare_runners, match_inputs, quantized_tolerances
from .gate import save_run, verify_models
from .hints import InputHint
from .html import render_html, write_html
from .inputs import (
    DEFAULT_BATCH,
    DEFAULT_DIM,
    DEFAULT_FLOAT_RANGE,
    DEFAULT_INT_RANGE,
    DEFAULT_SAMPLES,
    feed_summary,
    generate_inputs,
    load_inputs,
    resolve_shape,
    save_arrays,
)
from .layerwise import LayerComparison, LayerwiseReport, check_pair, compare_layers
from .report import format_histogram, format_report, verdict_line
from .runners import (
    BaseRunner,
    KerasRunner,
    QuantParams,
    Runner,
    SavedModelRunner,
    TFLiteRunner,
    runner_for,
)
from .tolerances import QUANTIZED_STEPS, ROUTE_TOLERANCES, route_tolerances

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_BATCH",
    "DEFAULT_DIM",
    "DEFAULT_FLOAT_RANGE",
    "DEFAULT_INT_RANGE",
    "DEFAULT_RTOL",
    "DEFAULT_SAMPLES",
    "BaseRunner",
    "ErrorHistogram",
    "InputHint",
    "InputMatch",
    "LayerComparison",
    "LayerwiseReport",
    "QUANTIZED_STEPS",
    "ROUTE_TOLERANCES",
    "KerasRunner",
    "OutputComparison",
    "QuantParams",
    "Runner",
    "SavedModelRunner",
    "TFLiteRunner",
    "VerificationReport",
    "check_pair",
    "compare",
    "compare_arrays",
    "compare_layers",
    "compare_runners",
    "format_histogram",
    "format_report",
    "feed_summary",
    "generate_inputs",
    "histogram",
    "load_inputs",
    "match_inputs",
    "quantized_tolerances",
    "render_html",
    "resolve_shape",
    "route_tolerances",
    "runner_for",
    "save_arrays",
    "save_run",
    "verdict_line",
    "verify",
    "verify_models",
    "write_html",
]

#: ``tfmodelkit.verify.verify(a, b)`` is ``tfmodelkit.verify(a, b)``: paths (or golden ``.npz``) in,
#: a :class:`VerificationReport` out.
verify = verify_models

callable_module(__name__, verify_models)
