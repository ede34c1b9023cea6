"""int8 calibration: what the converter calibrates on, and which samples verification keeps.

Full-integer quantization fixes every tensor's range from the representative inputs it is
given; inputs that do not look like real data give ranges that do not fit it (outputs pinned
at the int8 limits). So ``--quantize int8`` needs ``--calibration-data`` (an ``.npz`` of arrays
named after the model's inputs, or a folder of ``<input>.npy`` files; the first dimension
counts samples), and calibrates on generated inputs only when the caller says
``allow_generated_calibration``; the result is then marked as such in every report.

The samples that calibrate are never the ones that verify: when the caller gives calibration
data and no verification inputs, :func:`split_held_out` keeps a quarter of it (evenly spread,
so that data sorted by class or by time is sampled across), at most as many samples as
verification runs, for verification alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..verify import SavedModelRunner, generate_inputs, load_inputs

#: Input/output types of an int8 model: float32 (quantize/dequantize ops inside the model,
#: TensorFlow's own default) or integers (for microcontrollers that feed raw int8/uint8).
IO_DTYPES = ("float32", "int8", "uint8")
#: Generated int8 calibration: this many samples, seeded apart from the ones verification draws
#: (verification runs 32 samples; 16 calibration samples left their ranges too narrow to pass it).
GENERATED_SAMPLES = 128
GENERATED_SEED_OFFSET = 1000
#: At most this share of the calibration data is held out for verification.
HELD_OUT_SHARE = 4  # one sample in four

ACCEPTED_FORMS = (
    "an .npz of arrays named after the model's inputs (first dimension: samples), "
    "or a folder of <input>.npy files"
)


def check_options(
    quantize: str, calibration_data: str | None, allow_generated_calibration: bool, io_dtype: str
) -> None:
    """Refuse calibration and I/O options that do not fit ``quantize``, before any work starts
    (TensorFlow is not imported yet): int8 without calibration data, unless allowed."""
    if io_dtype not in IO_DTYPES:
        raise UserError(f"--io-dtype {io_dtype!r}: choose one of {', '.join(IO_DTYPES)}")
    if quantize != "int8":
        for given, flag in (
            (calibration_data, "--calibration-data"),
            (allow_generated_calibration, "--allow-generated-calibration"),
            (io_dtype != "float32", "--io-dtype"),
        ):
            if given:
                raise UserError(f"{flag} is only used with --quantize int8")
        return
    if calibration_data:
        if not Path(calibration_data).exists():
            raise UserError(f"--calibration-data {calibration_data}: no such file or folder ({ACCEPTED_FORMS})")
        return
    if not allow_generated_calibration:
        raise UserError(
            "--quantize int8 calibrates every tensor's range on representative inputs: pass "
            f"--calibration-data DATA.npz or DIR ({ACCEPTED_FORMS}), or --allow-generated-calibration "
            "to calibrate on generated inputs (the result is marked as calibrated on generated data)"
        )


@dataclass
class Calibration:
    """The converter's representative dataset, where it came from, and the held-out samples."""

    dataset: Callable[[], Iterator[dict[str, np.ndarray]]]
    source: str  # "given" or "generated"
    samples: int
    #: Samples of the calibration data kept out of it, for verification (None: none kept).
    held_out: dict[str, np.ndarray] | None = None
    data: str | None = None  # the file or folder given
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "samples": self.samples}
        if self.data:
            d["data"] = self.data
        if self.held_out is not None:
            d["held_out"] = _count(self.held_out)
        return d


def _count(arrays: Mapping[str, np.ndarray]) -> int:
    first = next(iter(arrays.values()), None)
    return 0 if first is None else int(first.shape[0]) if np.ndim(first) else 1


def split_held_out(arrays: Mapping[str, np.ndarray], wanted: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """``(calibration, held_out)``: ``min(wanted, n // 4)`` samples spread evenly over the ``n``
    given, held out; None when there are too few samples to spare one (fewer than 4)."""
    n = _count(arrays)
    sizes = {int(a.shape[0]) if np.ndim(a) else 1 for a in arrays.values()}
    if len(sizes) != 1:
        raise UserError(f"calibration data: the arrays hold different numbers of samples ({sorted(sizes)})")
    k = min(int(wanted), n // HELD_OUT_SHARE)
    if k < 1:
        return dict(arrays), None
    held = ((np.arange(k) * 2 + 1) * n) // (2 * k)  # the middle of each of k equal slices
    keep = np.setdiff1d(np.arange(n), held)
    return {name: a[keep] for name, a in arrays.items()}, {name: a[held] for name, a in arrays.items()}


def make_calibration(
    src: Path, key: str, data: str | None, *, seed: int, hold_out: int, ranges: Mapping[str, tuple[float, float]] | None
) -> Calibration:
    """The representative dataset for signature ``key`` of the SavedModel ``src``: the given
    ``data`` (``hold_out`` samples of it kept for verification, 0 for none), or generated inputs
    (fitted to what the model declares and to ``ranges``, as verification's are)."""
    runner = SavedModelRunner(src, signature=key, safe_mode=False)  # the caller checked safety
    if data:
        arrays = load_inputs(data, runner.inputs)
        calibrate, held = split_held_out(arrays, hold_out) if hold_out else (arrays, None)
        count = _count(calibrate)

        def dataset() -> Iterator[dict[str, np.ndarray]]:
            for i in range(count):
                yield {k: v[i : i + 1] for k, v in calibrate.items()}

        return Calibration(dataset, "given", count, held, data=str(data))
    hints = runner.input_hints()

    def generated() -> Iterator[dict[str, np.ndarray]]:
        for i in range(GENERATED_SAMPLES):
            yield generate_inputs(
                runner.inputs, seed=seed + GENERATED_SEED_OFFSET + i, batch=1, ranges=ranges, hints=hints
            )

    return Calibration(generated, "generated", GENERATED_SAMPLES)


def generated_warning(calibration: Calibration) -> str:
    return (
        f"int8 calibration on generated inputs ({calibration.samples} samples, --allow-generated-calibration): the "
        "quantization ranges may not fit real data (outputs pinned at the int8 limits); pass "
        f"--calibration-data with representative inputs ({ACCEPTED_FORMS})"
    )
