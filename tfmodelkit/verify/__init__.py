"""Numerical verification: seeded inputs, one runner per backend, a comparator and its report.

Importing this package never imports TensorFlow; the SavedModel and Keras runners import it
when they are created, the TFLite runner uses LiteRT only::

    from tfmodelkit.verify import verify, format_report
    report = verify("exported/", "model.tflite", atol=1e-4)
    print(format_report(report))
    report.raise_if_failed()          # CheckFailed (exit code 1) unless every output matched
"""

from __future__ import annotations

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
from .core import InputMatch, match_inputs, quantized_tolerances, verify
from .html import render_html, write_html
from .inputs import (
    DEFAULT_BATCH,
    DEFAULT_DIM,
    DEFAULT_FLOAT_RANGE,
    DEFAULT_INT_RANGE,
    generate_inputs,
    load_inputs,
    resolve_shape,
    save_arrays,
)
from .report import format_histogram, format_report
from .runners import (
    BaseRunner,
    KerasRunner,
    QuantParams,
    Runner,
    SavedModelRunner,
    TFLiteRunner,
    code_layers,
    runner_for,
)

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_BATCH",
    "DEFAULT_DIM",
    "DEFAULT_FLOAT_RANGE",
    "DEFAULT_INT_RANGE",
    "DEFAULT_RTOL",
    "BaseRunner",
    "ErrorHistogram",
    "InputMatch",
    "KerasRunner",
    "OutputComparison",
    "QuantParams",
    "Runner",
    "SavedModelRunner",
    "TFLiteRunner",
    "VerificationReport",
    "code_layers",
    "compare",
    "compare_arrays",
    "format_histogram",
    "format_report",
    "generate_inputs",
    "histogram",
    "load_inputs",
    "match_inputs",
    "quantized_tolerances",
    "render_html",
    "resolve_shape",
    "runner_for",
    "save_arrays",
    "verify",
    "write_html",
]
