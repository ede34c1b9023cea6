"""One-op TFLite models around a custom op, built with LiteRT's own schema, and what LiteRT's
Python interpreter does with them: the ground truth for the table of custom ops stock LiteRT runs."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

FLOAT32, INT32, INT8 = 0, 2, 9  # TensorType
SAME, VALID = 1, 2  # TfLitePadding
UNRESOLVED = "unresolved custom op"


def one_op_model(
    name: str,
    tensors: list[tuple[tuple[int, ...], int, np.ndarray | None]],
    op_inputs: list[int],
    op_outputs: list[int],
    options: bytes = b"",
) -> bytes:
    """A model whose one operator is custom op ``name``; ``tensors`` are (shape, type, constant
    data or None); tensors without data that the op reads are the subgraph's inputs."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
    code.customCode = name
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []
    for i, (shape, kind, data) in enumerate(tensors):
        t = schema.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), kind, f"t{i}", 0
        if data is not None:
            b = schema.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        sg.tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, op_inputs, op_outputs
    op.customOptions = list(options)
    sg.operators = [op]
    sg.inputs = [i for i in op_inputs if tensors[i][2] is None]
    sg.outputs = op_outputs
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def plain_model(name: str) -> bytes:
    """Custom op ``name`` on one float32 [1, 4, 4, 4] input: enough for LiteRT to look it up."""
    return one_op_model(name, [((1, 4, 4, 4), FLOAT32, None), ((1, 4, 4, 4), FLOAT32, None)], [0], [1])


def _pool_options(size: int) -> bytes:
    # TfLitePoolParams: padding, stride_w, stride_h, filter_w, filter_h, activation, computed padding
    return struct.pack("<10i", VALID, size, size, size, size, 0, 0, 0, 0, 0)


def mediapipe_models(dtype: int = FLOAT32) -> dict[str, bytes]:
    """A well-formed node of each MediaPipe op the XNNPACK delegate claims (MediaPipe's own
    layouts: a [O, H, W, I] deconvolution filter, argmax indices as float32)."""
    rng = np.random.default_rng(0)
    value = np.float32 if dtype == FLOAT32 else np.int8
    bias_kind, bias = (FLOAT32, np.float32) if dtype == FLOAT32 else (INT32, np.int32)
    deconv = one_op_model(
        "Convolution2DTransposeBias",
        [
            ((1, 4, 4, 2), dtype, None),
            ((3, 2, 2, 2), dtype, (rng.standard_normal((3, 2, 2, 2)) * 4).astype(value)),
            ((3,), bias_kind, rng.standard_normal(3).astype(bias)),
            ((1, 8, 8, 3), dtype, None),
        ],
        [0, 1, 2],
        [3],
        struct.pack("<4i", SAME, 2, 2, 0),  # TfLiteTransposeConvParams: padding, strides, activation
    )
    argmax = one_op_model(
        "MaxPoolingWithArgmax2D",
        [((1, 4, 4, 2), dtype, None), ((1, 2, 2, 2), dtype, None), ((1, 2, 2, 2), FLOAT32, None)],
        [0],
        [1, 2],
        _pool_options(2),
    )
    unpool = one_op_model(
        "MaxUnpooling2D",
        [((1, 2, 2, 2), dtype, None), ((1, 2, 2, 2), FLOAT32, None), ((1, 4, 4, 2), dtype, None)],
        [0, 1],
        [2],
        _pool_options(2),
    )
    return {"Convolution2DTransposeBias": deconv, "MaxPoolingWithArgmax2D": argmax, "MaxUnpooling2D": unpool}


def litert_error(content: bytes, default_delegates: bool = True, invoke: bool = True) -> str | None:
    """What LiteRT says building, allocating and (with ``invoke``) running the model on zeros;
    None when it runs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if default_delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        it = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        if invoke:
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            it.invoke()
    except (RuntimeError, ValueError) as e:
        return str(e)
    return None


def write(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / f"{name}.tflite"
    path.write_bytes(content)
    return path


def run_outputs(content: bytes, feed: dict[int, Any]) -> list[np.ndarray]:
    """The model's outputs for ``feed`` (input position -> array), default resolver and delegates."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    it.allocate_tensors()
    for i, d in enumerate(it.get_input_details()):
        it.set_tensor(d["index"], feed[i])
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]
