"""Input batches for verification: seeded synthetic inputs, and arrays saved to / loaded from ``.npz``.

Generated values are deterministic per ``(seed, input name)``: the same name gets the same
values whatever other inputs the model has, so two models sharing input names see one batch.

Defaults (documented, relied upon by the commands):

- a dynamic first dimension is the batch dimension and gets ``batch`` (default 2);
- any other dynamic dimension gets :data:`DEFAULT_DIM` (8) unless ``shapes`` gives the full shape;
- floats are uniform in :data:`DEFAULT_FLOAT_RANGE` ([-1, 1)) or ``ranges[name]``;
- integers are uniform in :data:`DEFAULT_INT_RANGE` ([0, 10)), small enough to be valid indices and
  ids, or in ``ranges[name]`` (``[ceil(low), high)``); quantized integer inputs (a spec with a scale)
  span their dtype's whole range;
- bools are fair coin flips; strings are short ASCII byte strings (1 to 8 lowercase letters).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..description import TensorSpec
from ..dtypes import numpy_dtype
from ..errors import CorruptFileError, NotFoundError, UnsupportedError, UserError
from ..util import atomic_write
from .hints import InputHint

DEFAULT_BATCH = 2
#: How many samples a verification runs by default: enough that a pass means something.
DEFAULT_SAMPLES = 32
#: What an unknown dimension other than the first becomes.
DEFAULT_DIM = 8
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
#: Half-open: integers 0..9.
DEFAULT_INT_RANGE = (0, 10)
_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def _rng(seed: int, name: str) -> np.random.Generator:
    # crc32, not hash(): hash() of a str changes from one process to the next.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _fmt_shape(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def resolve_shape(
    spec: TensorSpec, batch: int = DEFAULT_BATCH, shape: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The concrete shape used for ``spec``: ``shape`` if given (checked against the known dims)."""
    if shape is not None:
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise UserError(f"input {spec.name!r}: shape {list(dims)} has a negative dimension")
        if spec.shape is not None:
            if len(dims) != len(spec.shape):
                raise UserError(
                    f"input {spec.name!r}: shape {list(dims)} has rank {len(dims)}, "
                    f"but the model expects {_fmt_shape(spec.shape)}"
                )
            for i, (want, got) in enumerate(zip(spec.shape, dims, strict=True)):
                if want is not None and want != got:
                    raise UserError(
                        f"input {spec.name!r}: dimension {i} of shape {list(dims)} must be {want} "
                        f"(the model expects {_fmt_shape(spec.shape)})"
                    )
        return dims
    if spec.shape is None:
        raise UserError(
            f"input {spec.name!r} has an unknown rank; give its full shape, e.g. --shape {spec.name}=2,8"
        )
    out = []
    for i, d in enumerate(spec.shape):
        if d is None:
            out.append(batch if i == 0 else DEFAULT_DIM)
        else:
            out.append(int(d))
    return tuple(out)


def _is_quantized(spec: TensorSpec) -> bool:
    q = spec.quantization
    return bool(q is not None and q.scale and any(s != 0 for s in q.scale))


def _hinted(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator, hint: InputHint) -> np.ndarray:
    """Values in the hint's range (whole numbers for ids, whatever the input's dtype)."""
    dtype = numpy_dtype(spec.dtype)
    if hint.integer or np.issubdtype(dtype, np.integer):
        low, high = math.ceil(hint.low), math.ceil(hint.high)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            low, high = max(low, int(info.min)), min(high, int(info.max) + 1)
        if low >= high:
            raise UserError(f"input {spec.name!r}: no whole number in [{hint.low:g}, {hint.high:g}) ({hint.why})")
        return rng.integers(low, high, size=shape, dtype=np.int64).astype(dtype)
    return rng.uniform(hint.low, hint.high, size=shape).astype(dtype)


def _values(
    spec: TensorSpec,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    value_range: tuple[float, float] | None,
) -> np.ndarray:
    if spec.dtype == "string":
        lengths = rng.integers(1, 9, size=shape)
        flat = [bytes(_LETTERS[rng.integers(0, len(_LETTERS), size=int(n))]) for n in lengths.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    if spec.dtype in ("resource", "variant", "invalid"):
        raise UnsupportedError(f"input {spec.name!r}: cannot generate values of dtype {spec.dtype}")
    dtype = numpy_dtype(spec.dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if value_range is not None:
            low, high = math.ceil(value_range[0]), math.ceil(value_range[1])
        elif _is_quantized(spec):
            low, high = int(info.min), int(info.max) + 1
        else:
            low, high = DEFAULT_INT_RANGE
        if low >= high:
            raise UserError(f"input {spec.name!r}: integer range [{low}, {high}) is empty")
        if low < info.min or high - 1 > info.max:
            raise UserError(
                f"input {spec.name!r}: range [{low}, {high}) does not fit {spec.dtype} "
                f"([{info.min}, {info.max}])"
            )
        return rng.integers(low, high, size=shape, dtype=np.int64).astype(dtype)
    lo, hi = value_range if value_range is not None else DEFAULT_FLOAT_RANGE
    if np.issubdtype(dtype, np.complexfloating):
        real = rng.uniform(lo, hi, size=shape)
        imag = rng.uniform(lo, hi, size=shape)
        return (real + 1j * imag).astype(dtype)
    # float16/32/64 and the ml_dtypes floats (bfloat16, float8): generate in float64, then narrow.
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def generate_inputs(
    specs: Sequence[TensorSpec],
    seed: int = 0,
    batch: int = DEFAULT_BATCH,
    shapes: Mapping[str, Sequence[int]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    hints: Mapping[str, InputHint] | None = None,
) -> dict[str, np.ndarray]:
    """One seeded input batch for ``specs``, keyed by input name (see the module doc for defaults).

    ``hints`` (what the model says its inputs expect: :mod:`tfmodelkit.verify.hints`) replace the
    defaults for their inputs; ``ranges`` (the user's) win over both."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, not {seed!r}")
    if batch < 1:
        raise UserError(f"batch must be at least 1, not {batch}")
    shapes = dict(shapes or {})
    ranges = dict(ranges or {})
    names = {s.name for s in specs}
    for option, given in (("--shape", shapes), ("--range", ranges)):
        unknown = sorted(set(given) - names)
        if unknown:
            raise UserError(
                f"{option} names {', '.join(unknown)}, which the model does not have "
                f"(its inputs: {', '.join(sorted(names)) or 'none'})"
            )
    for name, r in ranges.items():
        if len(r) != 2 or not (math.isfinite(r[0]) and math.isfinite(r[1])) or r[0] >= r[1]:
            raise UserError(f"input {name!r}: range {tuple(r)} must be two finite numbers, low < high")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = resolve_shape(spec, batch, shapes.get(spec.name))
        hint = (hints or {}).get(spec.name)
        rng = _rng(int(seed), spec.name)
        if hint is not None and spec.name not in ranges and spec.dtype not in ("string", "bool"):
            out[spec.name] = _hinted(spec, shape, rng, hint)
        else:
            out[spec.name] = _values(spec, shape, rng, ranges.get(spec.name))
    return out


def value_choice(spec: TensorSpec, ranges: Mapping[str, tuple[float, float]], hints: Mapping[str, InputHint]) -> str:
    """How :func:`generate_inputs` chooses ``spec``'s values, in words (for reports)."""
    if spec.name in ranges:
        lo, hi = ranges[spec.name]
        return f"uniform in [{lo:g}, {hi:g}) (--input-range)"
    if spec.dtype == "string":
        return "random lowercase strings of 1 to 8 letters"
    if spec.dtype == "bool":
        return "fair coin flips"
    hint = hints.get(spec.name)
    if hint is not None:
        kind = "whole numbers" if hint.integer else "uniform"
        return f"{kind} in [{hint.low:g}, {hint.high:g}): {hint.why}"
    dtype = numpy_dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        if _is_quantized(spec):
            return f"the whole {spec.dtype} range (quantized input)"
        return f"whole numbers in [{DEFAULT_INT_RANGE[0]}, {DEFAULT_INT_RANGE[1]}) (default)"
    lo, hi = DEFAULT_FLOAT_RANGE
    return f"uniform in [{lo:g}, {hi:g}) (default)"


def feed_summary(feed: Mapping[str, np.ndarray], how: Mapping[str, str] | None = None) -> dict[str, dict[str, object]]:
    """Per input: dtype, shape, samples (first dimension), value range, and how the values were chosen."""
    out: dict[str, dict[str, object]] = {}
    for name, value in feed.items():
        a = np.asarray(value)
        entry: dict[str, object] = {"dtype": str(a.dtype), "shape": list(a.shape), "samples": int(a.shape[0]) if a.ndim else 1}
        if a.size and a.dtype.kind in "biuf":
            finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
            if finite.size:
                entry["min"], entry["max"] = float(finite.min()), float(finite.max())
        if how and name in how:
            entry["chosen"] = how[name]
        out[name] = entry
    return out


# --------------------------------------------------------------------------------------- npz files


def _to_savable(name: str, value: np.ndarray) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == object:
        # Object arrays would need pickle to load; store strings as fixed-width bytes instead.
        flat = a.reshape(-1)
        if not all(isinstance(x, bytes | str) for x in flat):
            raise UserError(f"array {name!r}: only numeric, bool and string arrays can be saved")
        return np.array([x.encode("utf-8") if isinstance(x, str) else x for x in flat], dtype=bytes).reshape(
            a.shape
        )
    return a


def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` as an ``.npz``, atomically (temporary sibling + rename)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise NotFoundError(f"{target}: folder {target.parent} does not exist")
    data = {str(k): _to_savable(str(k), v) for k, v in arrays.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy appends no ".npz" to the name
            np.savez(f, **data)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle

    atomic_write(target, write)
    return target


def _from_stored(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "SU":  # strings come back as Python bytes objects, as TensorFlow returns them
        flat = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in a.reshape(-1).tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(a.shape)
    return a


def load_inputs(
    path: str | os.PathLike[str], specs: Sequence[TensorSpec] | None = None
) -> dict[str, np.ndarray]:
    """Arrays stored in the ``.npz`` at ``path``, or in a folder of ``<input name>.npy`` files
    (never unpickled), keyed by name.

    With ``specs``, every input must be present (an error lists what is missing) and only the
    specs' inputs are returned; a file written by ``np.savez(f, a, b)`` (keys ``arr_0``, ``arr_1``...)
    is mapped onto the specs by position.
    """
    p = Path(path)
    if p.is_dir():
        return _pick(p, _load_folder(p), specs)
    if not p.is_file():
        raise NotFoundError(f"{p}: no such input file")
    return _pick(p, _load_npz(p), specs)


def _load_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for f in sorted(folder.glob("*.npy")):
        try:
            arrays[f.stem] = _from_stored(np.load(f, allow_pickle=False))
        except ValueError as e:
            if "allow_pickle" in str(e):
                raise UserError(f"{f}: holds an object (pickled) array, which is never loaded; store a plain array") from None
            raise CorruptFileError(f"{f}: not a readable .npy file ({e})") from None
        except (OSError, EOFError) as e:
            raise CorruptFileError(f"{f}: not a readable .npy file ({type(e).__name__}: {e})") from None
    if not arrays:
        raise UserError(f"{folder}: a folder with no .npy files; save one <input name>.npy per input, or an .npz")
    return arrays


def _load_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise UserError(f"{p}: a single .npy array, not an .npz of named arrays; save with np.savez")
            arrays = {k: _from_stored(z[k]) for k in z.files}
    except UserError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise UserError(
                f"{p}: holds object (pickled) arrays, which are never loaded; store plain arrays"
            ) from None
        raise CorruptFileError(f"{p}: not a readable .npz file ({e})") from None
    except (OSError, EOFError) as e:
        raise CorruptFileError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise CorruptFileError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None
    return arrays


def _pick(p: Path, arrays: dict[str, np.ndarray], specs: Sequence[TensorSpec] | None) -> dict[str, np.ndarray]:
    """The arrays ``specs`` need (by name, or by position for ``arr_N`` keys), or all of them."""
    if specs is None:
        return arrays
    names = [s.name for s in specs]
    positional = [f"arr_{i}" for i in range(len(arrays))]
    if list(arrays) == positional and len(arrays) == len(names) and not set(names) & set(arrays):
        return {name: arrays[key] for name, key in zip(names, positional, strict=True)}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UserError(
            f"{p}: no array for input {', '.join(repr(m) for m in missing)} "
            f"(the file holds: {', '.join(arrays) or 'nothing'}; the model needs: {', '.join(names)})"
        )
    return {n: arrays[n] for n in names}
