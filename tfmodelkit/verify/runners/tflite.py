"""``.tflite`` models run by LiteRT (``ai_edge_litert``); TensorFlow is never imported here."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...description import Quantization, TensorSpec
from ...errors import NotFoundError, UnsupportedError, UserError
from ...loaders.tf import CONVERT_EXTRA_HINT, quiet_fds, version
from ...util import dtype_family, first_line
from ..hints import InputHint, quantized_hint
from .base import BaseRunner, QuantParams, check_feed, coerce, spec_dict


def quant_params(detail: Mapping[str, Any]) -> QuantParams | None:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return None
    qp = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in np.asarray(qp.get("scales", []), dtype=np.float64).reshape(-1)]
    zeros = [int(z) for z in np.asarray(qp.get("zero_points", []), dtype=np.int64).reshape(-1)]
    if not scales:
        scale, zero = detail.get("quantization", (0.0, 0))
        scales, zeros = ([float(scale)], [int(zero)]) if scale else ([], [])
    if not scales or all(s == 0 for s in scales):
        return None
    if len(zeros) != len(scales):
        zeros = (zeros or [0]) * len(scales) if len(zeros) <= 1 else zeros
    return QuantParams(
        dtype=dtype.name,
        scale=tuple(scales),
        zero_point=tuple(zeros),
        axis=int(qp.get("quantized_dimension", 0)),
    )


def tflite_spec(name: str, detail: Mapping[str, Any], real: bool) -> TensorSpec:
    sig = np.asarray(detail.get("shape_signature", []), dtype=np.int64).reshape(-1)
    shape = np.asarray(detail["shape"], dtype=np.int64).reshape(-1)
    dims = sig if sig.size == shape.size and sig.size else shape
    q = quant_params(detail)
    quant = Quantization(scale=q.scale, zero_point=q.zero_point, quantized_dimension=q.axis) if q else None
    dtype = np.dtype(detail["dtype"])
    dtype_name = "string" if dtype.kind in "SUO" else dtype.name
    return TensorSpec(
        name=name,
        dtype="float32" if (real and q is not None) else dtype_name,
        shape=tuple(None if d < 0 else int(d) for d in dims),
        tensor=str(detail.get("name", "")) or None,
        quantization=quant,
    )


def _dequantized_in_model(interp: Any, out_details: list[tuple[str, Mapping[str, Any]]]) -> dict[str, QuantParams]:
    """Float outputs that a DEQUANTIZE op makes from an int8/uint8 tensor: that tensor's
    parameters, by output name. Only subgraph 0's ops can be listed (``_get_ops_details``, the
    interpreter's one way to see them); an output of another subgraph is left out, told apart
    by its tensor index naming another tensor in subgraph 0."""
    floats = {int(d["index"]): n for n, d in out_details if np.dtype(d["dtype"]).kind == "f"}
    if not floats:
        return {}
    try:
        ops = interp._get_ops_details()  # noqa: SLF001
        tensors = {int(t["index"]): t for t in interp.get_tensor_details()}
    except (AttributeError, ValueError, RuntimeError):
        return {}
    names = {n: d for n, d in out_details}
    out = {}
    for op in ops:
        if op.get("op_name") != "DEQUANTIZE" or len(op["outputs"]) != 1 or len(op["inputs"]) != 1:
            continue
        index = int(op["outputs"][0])
        name = floats.get(index)
        source = tensors.get(int(op["inputs"][0]))
        if name is None or source is None or tensors.get(index, {}).get("name") != names[name].get("name"):
            continue
        q = quant_params(source)
        if q is not None and q.dtype in ("int8", "uint8"):
            out[name] = q
    return out


class TFLiteRunner(BaseRunner):
    """A ``.tflite`` model run by LiteRT (``ai_edge_litert``), through a signature when it has any.

    Quantized integer inputs accept float feeds (quantized with the tensor's scale and zero
    point; integer feeds of the tensor's dtype pass through unchanged) and quantized outputs
    are dequantized to float32 (``dequantized_outputs`` says which, with their parameters);
    both can be switched off.
    """

    backend = "tflite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        signature: str | None = None,
        quantize_inputs: bool = True,
        dequantize_outputs: bool = True,
        num_threads: int | None = None,
        preserve_all_tensors: bool = False,
    ) -> None:
        super().__init__(path)
        if not self.path.is_file():
            raise NotFoundError(f"{self.path}: no such file")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError(
                f"running TFLite models needs LiteRT: pip install ai-edge-litert ({CONVERT_EXTRA_HINT})"
            ) from None
        try:
            with quiet_fds(), warnings.catch_warnings():
                # LiteRT warns (UserWarning) that keeping every tensor is meant for debugging: it is.
                warnings.simplefilter("ignore")
                self._interp = Interpreter(
                    model_path=str(self.path),
                    num_threads=num_threads,
                    experimental_preserve_all_tensors=bool(preserve_all_tensors),
                )
        except (ValueError, RuntimeError) as e:
            raise UserError(f"{self.path}: LiteRT cannot load this model ({first_line(e)})") from None
        sigs = self._interp.get_signature_list()
        keys = list(sigs)
        self._runner: Any = None
        if keys:
            if signature is None:
                if len(keys) == 1:
                    signature = keys[0]
                elif "serving_default" in sigs:
                    signature = "serving_default"
                else:
                    raise UserError(
                        f"{self.path}: has signatures {', '.join(keys)}; choose one with --signature"
                    )
            if signature not in sigs:
                raise NotFoundError(
                    f"{self.path}: no signature {signature!r} (signatures: {', '.join(keys)})"
                )
            self._runner = self._interp.get_signature_runner(signature)
            in_details = list(self._runner.get_input_details().items())
            out_details = list(self._runner.get_output_details().items())
        else:
            if signature not in (None, "subgraph_0"):
                raise NotFoundError(f"{self.path}: has no signatures (run it without --signature)")
            in_details = [(str(d["name"]), d) for d in self._interp.get_input_details()]
            out_details = [(str(d["name"]), d) for d in self._interp.get_output_details()]
            self.notes.append("no signatures: ran subgraph 0's inputs and outputs, named by tensor")
        self.signature = signature
        self.quantize_inputs = bool(quantize_inputs)
        self.dequantize_outputs = bool(dequantize_outputs)
        self._in = {name: d for name, d in in_details}
        self._out = {name: d for name, d in out_details}
        self._in_q = {n: q for n, d in in_details if (q := quant_params(d)) is not None}
        self._out_q = {n: q for n, d in out_details if (q := quant_params(d)) is not None}
        self._out_behind = _dequantized_in_model(self._interp, out_details)
        self.inputs = tuple(tflite_spec(n, d, self.quantize_inputs) for n, d in in_details)
        self.outputs = tuple(tflite_spec(n, d, self.dequantize_outputs) for n, d in out_details)
        self._native_inputs = tuple(tflite_spec(n, d, False) for n, d in in_details)
        self._shapes: dict[str, tuple[int, ...]] = {
            n: tuple(int(x) for x in d["shape"]) for n, d in in_details
        }
        self._first_run = True

    @property
    def dequantized_outputs(self) -> Mapping[str, QuantParams]:
        return dict(self._out_q) if self.dequantize_outputs else {}

    @property
    def output_quantization(self) -> Mapping[str, QuantParams]:
        """Outputs whose values come from integers: the ones this runner dequantized, and the
        float outputs of an int8 model (TensorFlow's default float I/O), which a DEQUANTIZE op
        makes from an int8/uint8 tensor; the parameters are that tensor's."""
        return {**self._out_behind, **self.dequantized_outputs}

    def input_hints(self) -> dict[str, InputHint]:
        """Quantized inputs fed floats: the real range their quantization covers."""
        out = {}
        for name, q in self.quantized_inputs.items():
            if len(q.scale) == 1:
                hint = quantized_hint(q.scale[0], q.zero_point[0], q.dtype)
                if hint is not None:
                    out[name] = hint
        return out

    @property
    def quantized_inputs(self) -> Mapping[str, QuantParams]:
        """Inputs whose float feeds are quantized before running."""
        return dict(self._in_q) if self.quantize_inputs else {}

    def prepare(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        check_feed(self.inputs, feed, self.shown)
        out = {}
        for spec, native in zip(self.inputs, self._native_inputs, strict=True):
            value = np.asarray(feed[spec.name])
            q = self._in_q.get(spec.name)
            if q is not None and self.quantize_inputs and dtype_family(value.dtype) == "float":
                # Check the shape first (against the float spec), then quantize.
                coerce(spec, value, self.shown)
                value = q.quantize(value)
            # LiteRT's signature runner resizes inputs non-strictly: a wrong non-batch dim would
            # run on garbage, so every known dim is checked here.
            out[spec.name] = coerce(native, value, self.shown)
        return out

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.prepare(feed)
        ctx = quiet_fds() if self._first_run else contextlib.nullcontext()
        try:
            with ctx:  # the XNNPACK banner comes with the first allocation
                raw = self._invoke(values)
        except (ValueError, RuntimeError) as e:
            hint = ""
            if "hashtable need to be initialized" in str(e):
                hint = (
                    "; its lookup table was to be filled from a file, which TFLite cannot read "
                    "(modelinspect check --target tflite on the source says so)"
                )
            raise UserError(f"{self.shown}: LiteRT could not run the model ({first_line(e)}){hint}") from None
        self._first_run = False
        result = {}
        for spec in self.outputs:
            a = np.array(raw[spec.name])  # a copy: LiteRT reuses its buffers
            q = self._out_q.get(spec.name)
            if q is not None and self.dequantize_outputs:
                a = q.dequantize(a)
            result[spec.name] = a
        return result

    def _invoke(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._runner is not None:
            return dict(self._runner(**values))
        interp = self._interp
        resized = False
        for name, value in values.items():
            if self._shapes.get(name) != value.shape:
                interp.resize_tensor_input(self._in[name]["index"], list(value.shape), strict=True)
                self._shapes[name] = value.shape
                resized = True
        if resized or self._first_run:
            interp.allocate_tensors()
        for name, value in values.items():
            interp.set_tensor(self._in[name]["index"], value)
        interp.invoke()
        return {name: interp.get_tensor(d["index"]) for name, d in self._out.items()}

    def intermediate_tensors(self) -> list[tuple[Mapping[str, Any], np.ndarray, Mapping[str, Any] | None]]:
        """After a run of a runner made with ``preserve_all_tensors``: the model's inputs, then every
        tensor an op of the main subgraph wrote, in execution order, as ``(tensor details, a copy
        of its raw value, the op that wrote it or None)``. Without ``preserve_all_tensors`` LiteRT
        reuses the buffers of intermediate tensors, so their values would be garbage."""
        interp = self._interp
        subgraph = getattr(self._runner, "_subgraph_index", 0) if self._runner is not None else 0
        if subgraph:
            # LiteRT lists the ops (and their order) of the first subgraph only.
            raise UnsupportedError(
                f"{self.shown}: signature {self.signature!r} runs subgraph {subgraph}; its intermediate tensors "
                "cannot be listed (LiteRT lists the ops of subgraph 0 only): choose the signature on subgraph 0"
            )
        details = {int(d["index"]): d for d in interp.get_tensor_details()}
        order: list[tuple[int, Mapping[str, Any] | None]] = [(int(d["index"]), None) for d in interp.get_input_details()]
        # LiteRT's Python API lists ops (in execution order, with their tensors) only through a
        # private method; without it every tensor is listed in index order.
        ops = getattr(interp, "_get_ops_details", None)
        for op in ops() if ops else []:
            order.extend((int(i), op) for i in op["outputs"] if int(i) >= 0)
        if not ops:
            order.extend((i, None) for i in sorted(set(details) - {i for i, _ in order}))
        seen: set[int] = set()
        out = []
        for index, op in order:
            if index in seen or index not in details:
                continue
            seen.add(index)
            try:
                value = np.array(interp.get_tensor(index))
            except ValueError:  # a tensor without data (never written)
                continue
            out.append((details[index], value, op))
        return out

    def versions(self) -> dict[str, str | None]:
        import ai_edge_litert

        return {"ai_edge_litert": getattr(ai_edge_litert, "__version__", None) or version("ai_edge_litert")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            loader="ai_edge_litert.interpreter.Interpreter",
            signature=self.signature,
            native_inputs=[spec_dict(s) for s in self._native_inputs],
            quantized_inputs={k: v.as_dict() for k, v in self.quantized_inputs.items()},
            dequantized_outputs={k: v.as_dict() for k, v in self.dequantized_outputs.items()},
        )
        if self._out_behind:
            d["dequantized_in_model"] = {k: v.as_dict() for k, v in self._out_behind.items()}
        return d


