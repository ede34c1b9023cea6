"""The TFLite reader against LiteRT's own answers: the corpus, models built here, and mutants."""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import corpus_entries
from tfmodelkit.errors import CorruptFileError, FormatError, TFModelKitError
from tfmodelkit.formats import tflite

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

OK = [(k, v) for k, v in corpus_entries("tflite") if v.get("ok")]
BROKEN = [(k, v) for k, v in corpus_entries("tflite") if not v.get("ok")]
LITERT = "tflite/litert"


def _dims(shape):
    return [-1 if d is None else d for d in shape]


def _by_name(specs):
    return {s.name: {"dtype": s.dtype, "shape": _dims(s.shape)} for s in specs}


def _listed(specs):
    return [{"name": s.name, "dtype": s.dtype, "shape": _dims(s.shape)} for s in specs]


def _interpreter(path: Path):
    mod = pytest.importorskip("ai_edge_litert.interpreter")
    return mod.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def _allocated(path: Path):
    it = _interpreter(path)
    try:
        it.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        pytest.skip(f"LiteRT cannot allocate {path.name}: {e}")
    return it


# ----------------------------------------------------------------------------------------
# Models built here with LiteRT's schema object API


def _tensor(name, dtype, shape, buffer, quant=None):
    t = schema.TensorT()
    t.name = name
    t.type = dtype
    t.shape = np.array(shape, np.int32)
    t.buffer = buffer
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale = np.array(quant[0], np.float32)
        q.zeroPoint = np.array(quant[1], np.int64)
        q.quantizedDimension = quant[2] if len(quant) > 2 else 0
        t.quantization = q
    return t


def _buffer(data: bytes | None = None, offset: int = 0, size: int = 0):
    b = schema.BufferT()
    if data is not None:
        b.data = np.frombuffer(data, np.uint8)
    b.offset, b.size = offset, size
    return b


def _opcode(code: int, custom: str | None = None):
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.customCode = custom
    oc.version = 1
    return oc


def _operator(opcode_index, inputs, outputs):
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = np.array(inputs, np.int32)
    op.outputs = np.array(outputs, np.int32)
    return op


def _subgraph(tensors, operators, inputs, outputs, name="main"):
    sg = schema.SubGraphT()
    sg.name = name
    sg.tensors = tensors
    sg.operators = operators
    sg.inputs = np.array(inputs, np.int32)
    sg.outputs = np.array(outputs, np.int32)
    return sg


def _pack(subgraphs, buffers, opcodes, signature_defs=None) -> bytes:
    m = schema.ModelT()
    m.version = 3
    m.description = "built by test_tflite"
    m.subgraphs = subgraphs
    m.buffers = buffers
    m.operatorCodes = opcodes
    m.signatureDefs = signature_defs
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


F32, I32, I8, STR, INT4 = (
    schema.TensorType.FLOAT32,
    schema.TensorType.INT32,
    schema.TensorType.INT8,
    schema.TensorType.STRING,
    schema.TensorType.INT4,
)
ADD = schema.BuiltinOperator.ADD
CONST = np.array([0.5, 1.5, -2.5, 3.25], np.float32)


def _add_model(
    const: bytes = CONST.tobytes(), *, shape=(4,), const_buffer=2, opcode_index=0, quant=None
) -> bytes:
    """y = x + c with c a float32 constant in buffer 2."""
    tensors = [
        _tensor("x", F32, shape, 0),
        _tensor("y", F32, shape, 1),
        _tensor("c", F32, shape, const_buffer, quant),
    ]
    sg = _subgraph(tensors, [_operator(opcode_index, [0, 2], [1])], [0], [1])
    return _pack([sg], [_buffer(), _buffer(), _buffer(const)], [_opcode(ADD)])


def _external_add_model() -> bytes:
    """The ADD model with its constant stored after the flatbuffer (Buffer.offset/size)."""
    offset = 0
    for _ in range(4):  # the offset's own encoding may change the flatbuffer's length
        tensors = [_tensor("x", F32, [4], 0), _tensor("y", F32, [4], 1), _tensor("c", F32, [4], 2)]
        sg = _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])
        buffers = [_buffer(), _buffer(), _buffer(None, offset=max(offset, 2), size=CONST.nbytes)]
        head = _pack([sg], buffers, [_opcode(ADD)])
        aligned = (len(head) + 15) // 16 * 16
        if aligned == offset:
            return head + b"\0" * (aligned - len(head)) + CONST.tobytes()
        offset = aligned
    raise AssertionError("offset did not settle")


def _strings(items: list[bytes]) -> bytes:
    n = len(items)
    offsets = [4 * (n + 2)]
    for item in items:
        offsets.append(offsets[-1] + len(item))
    return struct.pack(f"<{n + 2}i", n, *offsets) + b"".join(items)


def _write(tmp_path: Path, data: bytes, name: str = "model.tflite") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _errors(report, subject_part: str = "") -> list[str]:
    return [
        f"{f.subject}: {f.message}"
        for f in report.findings
        if f.severity == "error" and subject_part in f.subject
    ]


# ----------------------------------------------------------------------------------------
# 1. The corpus: signatures as LiteRT's interpreter reports them


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), OK, ids=[k for k, _ in OK])
def test_corpus_signatures_match_litert(corpus, rel, expected):
    d = tflite.read(corpus / rel)
    assert d.format == "tflite"
    # LiteRT's tensor_count is get_tensor_details(): the tensors of subgraph 0.
    assert (d.metadata["tensors_per_subgraph"] or [0])[0] == expected["tensor_count"]
    assert d.metadata["tensors"] == sum(d.metadata["tensors_per_subgraph"])
    if expected["signatures"]:
        assert d.metadata["signature_source"] == "signature_defs"
        ours = {s.key: {"inputs": _by_name(s.inputs), "outputs": _by_name(s.outputs)} for s in d.signatures}
        assert ours == expected["signatures"]
        # The first signature runs subgraph 0 in every corpus model: its tensors are the
        # interpreter's inputs and outputs.
        first = d.signatures[0]
        assert sorted(s.tensor for s in first.inputs) == sorted(x["name"] for x in expected["inputs"])
        assert sorted(s.tensor for s in first.outputs) == sorted(x["name"] for x in expected["outputs"])
    else:
        assert d.metadata["signature_source"] == "subgraph"
        assert [s.key for s in d.signatures] == ["subgraph_0"]
        assert any("no signatures" in w for w in d.warnings)
        (sig,) = d.signatures
        assert _listed(sig.inputs) == expected["inputs"]
        assert _listed(sig.outputs) == expected["outputs"]


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), OK, ids=[k for k, _ in OK])
def test_corpus_models_pass_check(corpus, rel, expected):
    report = tflite.check(corpus / rel)
    assert report.ok, report.findings
    assert report.checked["tensors"] >= expected["tensor_count"]


@pytest.mark.corpus
def test_corpus_quirks(corpus):
    """Facts about particular corpus files that LiteRT's interpreter agrees with."""
    # An empty shape_signature vector means "use shape" (LiteRT reports [1, 2, 2, 1]).
    d = tflite.read(corpus / LITERT / "no_signatures_no_tensor_names.tflite")
    assert [s.shape for s in d.signatures[0].inputs] == [(1, 2, 2, 1), (1, 2, 2, 1)]
    # An operator input with no data, no producer and not a graph input: LiteRT runs it.
    report = tflite.check(corpus / LITERT / "segment_sum_invalid_buffer.tflite")
    assert report.ok
    assert [f.subject for f in report.findings if f.severity == "warning"] == [
        "tensor 'pyx/y' (subgraph 0, index 2)"
    ]
    # A graph input with constant data.
    report = tflite.check(corpus / LITERT / "test_model.tflite")
    assert any("input0" in f.subject and "constant" in f.message for f in report.findings)
    # A zero-element constant keeps an empty data vector: LiteRT makes it a writable tensor,
    # so it is no weight, and nothing is missing when an operator reads it.
    path = corpus / LITERT / "zero_size_constant.tflite"
    assert tflite.read(path).weights == ()
    assert tflite.check(path).findings == ()
    # min_runtime_version: NUL-padded, unpadded in TOCO files, all NULs when unknown.
    assert (
        tflite.read(corpus / LITERT / "dynamic_shapes.tflite").producer.other["min_runtime_version"]
        == "1.13.1"
    )
    assert (
        tflite.read(corpus / "tflite/tfserving_half_plus_two.tflite").producer.other["min_runtime_version"]
        == "1.5.0"
    )
    assert "min_runtime_version" not in tflite.read(corpus / LITERT / "custom_sinh.tflite").producer.other
    p = tflite.read(corpus / "tflite/tfserving_half_plus_two.tflite").producer.other
    assert (p["description"], p["schema_version"]) == ("TOCO Converted.", "3")


# ----------------------------------------------------------------------------------------
# 2. Files LiteRT refuses


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "expected"), BROKEN, ids=[k for k, _ in BROKEN])
def test_corpus_broken_models(corpus, rel, expected):
    path = corpus / rel
    no_subgraphs = "No subgraph" in expected["error"]
    try:
        d = tflite.read(path)
    except TFModelKitError as e:
        assert isinstance(e, CorruptFileError)
        assert str(path) in str(e)
        assert not no_subgraphs, "a model without subgraphs should still be described"
    else:
        assert no_subgraphs, "LiteRT says this is not a flatbuffer; we should too"
        assert any("has no subgraphs" in w for w in d.warnings)
        assert d.signatures == () and d.metadata["subgraphs"] == 0
    assert _check_fails(path)


def _check_fails(path: Path) -> bool:
    """check() finds damage (exit 1), or, for a file nothing identifies as TFLite (no 'TFL3'
    at bytes 4-8), cannot read it at all (exit 2)."""
    try:
        report = tflite.check(path)
    except FormatError as e:
        assert path.read_bytes()[4:8] != b"TFL3" and "not a valid TFLite flatbuffer" in str(e)
        return True
    return not report.ok and bool(_errors(report))


def test_registry_dispatch(tmp_path):
    import tfmodelkit.formats as formats

    path = _write(tmp_path, _add_model(), "renamed.bin")
    assert formats.detect(path) == "tflite"  # by the TFL3 identifier, not the name
    d = formats.read(path)
    assert (d.format, d.path) == ("tflite", str(path))
    assert d.producer.other["description"] == "built by test_tflite"
    assert formats.check(path).ok


def test_not_a_tflite_file(tmp_path):
    for data in (b"", b"TFL3", b"\0" * 64, b"PK\x03\x04" + b"\0" * 60):
        p = _write(tmp_path, data)
        with pytest.raises(CorruptFileError, match="not a valid TFLite flatbuffer"):
            tflite.read(p)
        # Nothing identifies it as TFLite: check cannot read it at all (exit 2, not 1).
        with pytest.raises(FormatError, match="not a valid TFLite flatbuffer"):
            tflite.check(p)
    # The identifier, then damage: read and found damaged (exit 1).
    p = _write(tmp_path, b"\xff\xff\x00\x00TFL3" + b"\0" * 56)
    with pytest.raises(CorruptFileError, match="not a valid TFLite flatbuffer"):
        tflite.read(p)
    assert not tflite.check(p).ok


# ----------------------------------------------------------------------------------------
# 3. Weights: the values LiteRT's interpreter holds for constant tensors

WEIGHT_MODELS = {
    "tflite/tfserving_half_plus_two.tflite": 2,
    "tflite/tfserving_half_plus_two_with_sigdef.tflite": 2,
    f"{LITERT}/dynamic_shapes.tflite": 16,
    f"{LITERT}/multi_signatures.tflite": 2,
    f"{LITERT}/zero_size_constant.tflite": 0,
    f"{LITERT}/add.tflite": 0,
    f"{LITERT}/add_quantized_int8.tflite": 0,
}


@pytest.mark.corpus
@pytest.mark.parametrize(("rel", "count"), sorted(WEIGHT_MODELS.items()))
def test_corpus_weights_equal_interpreter(corpus, rel, count):
    path = corpus / rel
    d = tflite.read(path)
    assert len(d.weights) == count
    it = _allocated(path)
    for w in d.weights:
        assert w.location.startswith(f"buffer {w.extra['buffer']} @ ")
        if w.extra["subgraph"] != 0:
            continue
        if w.size == 0:  # LiteRT gives zero-size tensors no data pointer: nothing to fetch
            assert w.read().shape == w.shape
            continue
        ours, theirs = w.read(), it.get_tensor(w.extra["tensor_index"])
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == w.shape, w.name
        np.testing.assert_array_equal(ours, theirs)
        assert ours.nbytes == w.nbytes


@pytest.mark.corpus
def test_weights_of_both_subgraphs(corpus):
    d = tflite.read(corpus / LITERT / "multi_signatures.tflite")
    values = {w.name: (w.extra["subgraph"], float(w.read())) for w in d.weights}
    assert values == {"Variable": (0, 2.0), "Variable_1": (1, 3.0)}


def test_external_buffer_equals_interpreter(tmp_path):
    path = _write(tmp_path, _external_add_model())
    d = tflite.read(path)
    (w,) = d.weights
    assert w.extra.get("external") is True
    assert w.location == f"buffer 2 @ {path.stat().st_size - CONST.nbytes}"
    np.testing.assert_array_equal(w.read(), CONST)
    np.testing.assert_array_equal(w.read(), _allocated(path).get_tensor(2))
    assert tflite.check(path).ok


def test_external_buffer_past_the_end(tmp_path):
    data = _external_add_model()
    path = _write(tmp_path, data[:-4])
    d = tflite.read(path)
    assert any(w.startswith("buffer 2:") for w in d.warnings)
    with pytest.raises(CorruptFileError, match="past the end"):
        d.weights[0].read()
    assert _errors(tflite.check(path), "buffer 2")


def _gather_model(table: bytes, n: int) -> bytes:
    tensors = [_tensor("idx", I32, [2], 0), _tensor("table", STR, [n], 1), _tensor("out", STR, [2], 0)]
    sg = _subgraph(tensors, [_operator(0, [1, 0], [2])], [0], [2])
    return _pack([sg], [_buffer(), _buffer(table)], [_opcode(schema.BuiltinOperator.GATHER)])


def test_string_constant_equals_interpreter(tmp_path):
    items = [b"alpha", b"", b"\xff\xfe not utf-8", b"delta"]
    path = _write(tmp_path, _gather_model(_strings(items), len(items)))
    (w,) = tflite.read(path).weights
    values = w.read()
    assert values.dtype == object and values.shape == (4,)
    assert list(values) == items
    assert list(_allocated(path).get_tensor(1)) == items
    assert tflite.check(path).ok


def test_string_constant_with_bad_layout(tmp_path):
    items = [b"alpha", b"beta"]
    bad = bytearray(_strings(items))
    bad[8:12] = struct.pack("<i", 1000)  # the second offset points past the buffer
    path = _write(tmp_path, _gather_model(bytes(bad), 2))
    with pytest.raises(CorruptFileError, match="string offsets"):
        tflite.read(path).weights[0].read()
    assert _errors(tflite.check(path), "'table'")
    # Three strings stored for a shape that holds two.
    path = _write(tmp_path, _gather_model(_strings([b"a", b"b", b"c"]), 2))
    assert any("needs 2" in e for e in _errors(tflite.check(path), "'table'"))


def test_int4_constant_equals_interpreter(tmp_path):
    values = np.array([-8, -1, 0, 7, 3, -3, 5], np.int8)
    nibbles = np.append(values.astype(np.uint8) & 0xF, np.uint8(0))
    packed = (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()  # low nibble first
    tensors = [_tensor("w4", INT4, [7], 1, quant=([0.5], [0])), _tensor("out", F32, [7], 0)]
    sg = _subgraph(tensors, [_operator(0, [0], [1])], [], [1])
    path = _write(
        tmp_path, _pack([sg], [_buffer(), _buffer(packed)], [_opcode(schema.BuiltinOperator.DEQUANTIZE)])
    )
    (w,) = tflite.read(path).weights
    assert (w.dtype, w.nbytes) == ("int4", 4)
    ours = w.read()
    assert str(ours.dtype) == "int4"
    np.testing.assert_array_equal(ours.astype(np.int8), values)
    np.testing.assert_array_equal(ours.astype(np.int8), _allocated(path).get_tensor(0))
    assert tflite.check(path).ok


@pytest.mark.corpus
def test_sparse_constant_is_densified(corpus):
    d = tflite.read(corpus / LITERT / "sparse_tensor.tflite")
    (w,) = d.weights
    assert w.extra["sparse"] is True and w.nbytes == 12
    # 2x2 blocks, block rows compressed (CSR): the dense matrix of TFLite's sparsity example.
    expected = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.int8)
    np.testing.assert_array_equal(w.read(), expected)
    assert w.read().dtype == np.int8


def test_duplicate_and_missing_names(tmp_path):
    def graph(name):
        tensors = [_tensor("x", F32, [4], 0), _tensor("y", F32, [4], 0), _tensor(name, F32, [4], 1)]
        return _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])

    unnamed = [_tensor("x", F32, [4], 0), _tensor("y", F32, [4], 0), _tensor("", F32, [4], 1)]
    third = _subgraph(unnamed, [_operator(0, [0, 2], [1])], [0], [1])
    path = _write(
        tmp_path,
        _pack([graph("w"), graph("w"), third], [_buffer(), _buffer(CONST.tobytes())], [_opcode(ADD)]),
    )
    d = tflite.read(path)
    assert [w.name for w in d.weights] == ["subgraph_0/w", "subgraph_1/w", "tensor_2"]
    assert [(w.extra["subgraph"], w.extra["tensor_index"]) for w in d.weights] == [(0, 2), (1, 2), (2, 2)]
    for w in d.weights:
        np.testing.assert_array_equal(w.read(), CONST)
    assert d.ops == {"ADD": 3}
    assert d.metadata["subgraphs"] == 3 and d.metadata["operators"] == 3


# ----------------------------------------------------------------------------------------
# 4. Op census and quantization


@pytest.mark.corpus
def test_ops_flex_and_custom(corpus):
    flex = tflite.read(corpus / LITERT / "softplus_flex.tflite")
    assert flex.ops == {"FlexSoftplus": 1}
    assert flex.metadata["flex_ops"] == ["FlexSoftplus"] == flex.metadata["custom_ops"]
    assert any("Flex" in w and "FlexSoftplus" in w for w in flex.warnings)

    custom = tflite.read(corpus / LITERT / "custom_sinh.tflite")
    assert custom.ops == {"Sinh": 1}
    assert (custom.metadata["custom_ops"], custom.metadata["flex_ops"]) == (["Sinh"], [])

    # builtin_code 32 (CUSTOM) with deprecated_builtin_code 0: the larger code counts.
    npu = tflite.read(corpus / LITERT / "with_metadata.tflite")
    assert npu.ops == {"NPU_OP": 1}
    assert npu.metadata["metadata_names"] == ["min_runtime_version", "LiteRtStamp", "NPU_BYTE_CODE"]

    normal = tflite.read(corpus / LITERT / "add.tflite")
    assert normal.ops == {"ADD": 2}
    assert (normal.metadata["custom_ops"], normal.metadata["flex_ops"]) == ([], [])
    # Every subgraph counts, not only the main one.
    assert tflite.read(corpus / LITERT / "nested_while.tflite").ops == {
        "ADD": 1,
        "EQUAL": 2,
        "MUL": 2,
        "WHILE": 2,
    }


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel",
    [
        f"{LITERT}/dynamic_shapes.tflite",
        f"{LITERT}/reverse_signature_model.tflite",
        f"{LITERT}/segment_sum_invalid_buffer.tflite",
        f"{LITERT}/test_model.tflite",
        f"{LITERT}/softplus_flex.tflite",
        "tflite/tfserving_half_plus_two.tflite",
    ],
)
def test_ops_equal_interpreter(corpus, rel):
    """Single-subgraph models: our census equals the interpreter's node list."""
    it = _interpreter(corpus / rel)
    theirs = Counter(op["op_name"] for op in it._get_ops_details())
    assert tflite.read(corpus / rel).ops == dict(theirs)


@pytest.mark.corpus
def test_quantization_of_add_quantized_int8(corpus):
    path = corpus / LITERT / "add_quantized_int8.tflite"
    d = tflite.read(path)
    (sig,) = d.signatures
    q = sig.inputs[0].quantization
    assert q is not None
    assert q.scale == pytest.approx((0.003922,))
    assert (q.zero_point, q.quantized_dimension, q.min, q.max) == ((0,), 0, (0.0,), (1.0,))
    assert sig.outputs[0].quantization == q
    details = _interpreter(path).get_input_details()[0]["quantization_parameters"]
    assert list(q.scale) == pytest.approx(details["scales"].tolist())
    assert list(q.zero_point) == details["zero_points"].tolist()
    assert q.quantized_dimension == details["quantized_dimension"]
    # Float models carry none.
    assert tflite.read(corpus / LITERT / "add.tflite").signatures[0].inputs[0].quantization is None


def test_per_channel_quantization_of_a_weight(tmp_path):
    weights = np.array([[1, -2], [3, -4], [5, -6]], np.int8)
    tensors = [
        _tensor("x", I8, [3, 2], 0),
        _tensor("y", I8, [3, 2], 0),
        _tensor("w", I8, [3, 2], 1, quant=([0.5, 0.25, 0.125], [0, 1, -1], 0)),
    ]
    sg = _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])
    path = _write(tmp_path, _pack([sg], [_buffer(), _buffer(weights.tobytes())], [_opcode(ADD)]))
    (w,) = tflite.read(path).weights
    assert w.extra["quantization"] == {
        "scale": [0.5, 0.25, 0.125],
        "zero_point": [0, 1, -1],
        "quantized_dimension": 0,
    }
    np.testing.assert_array_equal(w.read(), weights)
    assert tflite.check(path).ok


# ----------------------------------------------------------------------------------------
# check(): one finding per problem, naming what is wrong


def test_check_findings(tmp_path):
    assert tflite.check(_write(tmp_path, _add_model(), "good.tflite")).ok

    report = tflite.check(_write(tmp_path, _add_model(const_buffer=9), "a.tflite"))
    assert _errors(report) == ["tensor 'c' (subgraph 0, index 2): buffer index 9 is out of range (3 buffers)"]

    report = tflite.check(_write(tmp_path, _add_model(opcode_index=5), "b.tflite"))
    assert _errors(report) == ["operator 0 (subgraph 0): opcode index 5 is out of range (1 operator codes)"]

    report = tflite.check(_write(tmp_path, _add_model(CONST.tobytes()[:12]), "c.tflite"))
    assert _errors(report) == [
        "tensor 'c' (subgraph 0, index 2): buffer 2 holds 12 bytes, but float32[4] needs 16"
    ]
    with pytest.raises(CorruptFileError, match="needs 16"):
        tflite.read(report.path).weights[0].read()

    q = ([0.0], [0])
    int8 = np.zeros(4, np.int8).tobytes()
    tensors = [_tensor("x", I8, [4], 0), _tensor("y", I8, [4], 0), _tensor("q", I8, [4], 1, quant=q)]
    sg = _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])
    report = tflite.check(
        _write(tmp_path, _pack([sg], [_buffer(), _buffer(int8)], [_opcode(ADD)]), "d.tflite")
    )
    assert [e for e in _errors(report) if "scale 0.0" in e] == [
        "tensor 'q' (subgraph 0, index 2): quantization scale 0.0 (channel 0) is not a positive finite number"
    ]

    tensors[2] = _tensor("q", I8, [4], 1, quant=([0.1], [300]))
    sg = _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])
    report = tflite.check(
        _write(tmp_path, _pack([sg], [_buffer(), _buffer(int8)], [_opcode(ADD)]), "e.tflite")
    )
    assert _errors(report) == [
        "tensor 'q' (subgraph 0, index 2): zero point 300 is outside the int8 range [-128, 127]"
    ]

    tensors[2] = _tensor("q", I8, [4], 1, quant=([0.1, 0.2], [0, 0], 0))  # 2 channels for a dim of 4
    sg = _subgraph(tensors, [_operator(0, [0, 7], [1])], [0], [1])
    report = tflite.check(
        _write(tmp_path, _pack([sg], [_buffer(), _buffer(int8)], [_opcode(ADD)]), "f.tflite")
    )
    assert sorted(_errors(report)) == [
        "operator 0 (subgraph 0): input tensor index 7 is out of range (3 tensors)",
        "tensor 'q' (subgraph 0, index 2): 2 per-channel scales for dimension 0, which has size 4",
    ]
    assert report.checked == {"subgraphs": 1, "tensors": 3, "buffers": 2, "operators": 1}


def test_signature_defs_and_bad_references(tmp_path):
    def tensor_map(name, index):
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    sd = schema.SignatureDefT()
    sd.signatureKey = "serving_default"
    sd.subgraphIndex = 0
    sd.inputs = [tensor_map("in", 0), tensor_map("bad", 42)]
    sd.outputs = [tensor_map("out", 1)]
    tensors = [_tensor("x", F32, [4], 0), _tensor("y", F32, [4], 0), _tensor("c", F32, [4], 1)]
    sg = _subgraph(tensors, [_operator(0, [0, 2], [1])], [0], [1])
    path = _write(tmp_path, _pack([sg], [_buffer(), _buffer(CONST.tobytes())], [_opcode(ADD)], [sd]))
    d = tflite.read(path)
    (sig,) = d.signatures
    assert sig.key == "serving_default"
    assert [(s.name, s.tensor, s.shape) for s in sig.inputs] == [("in", "x", (4,))]
    assert [(s.name, s.tensor) for s in sig.outputs] == [("out", "y")]
    assert any("'bad' maps to tensor 42" in w for w in d.warnings)
    assert _errors(tflite.check(path)) == [
        "signature 'serving_default': input 'bad' maps to tensor 42, out of range (3 tensors)"
    ]


# ----------------------------------------------------------------------------------------
# 5. Robustness: damaged bytes give our errors, quickly


def _exercise(path: Path, limit: float = 2.0) -> None:
    """read(), every weight's values and check(): only our errors, within ``limit`` seconds."""
    start = time.monotonic()
    try:
        d = tflite.read(path)
    except TFModelKitError:
        pass
    else:
        for w in d.weights:
            try:
                w.read()
            except TFModelKitError:
                pass
    try:
        report = tflite.check(path)
    except FormatError:  # no 'TFL3' identifier: not a TFLite file at all
        assert path.read_bytes()[4:8] != b"TFL3"
    else:
        assert report.format == "tflite"
    elapsed = time.monotonic() - start
    assert elapsed < limit, f"{path.name} took {elapsed:.2f}s"


ROBUST_BASES = [
    f"{LITERT}/dynamic_shapes.tflite",
    f"{LITERT}/multi_signatures.tflite",
    f"{LITERT}/sparse_tensor.tflite",
    f"{LITERT}/add_quantized_int8.tflite",
]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", ROBUST_BASES)
def test_truncations(corpus, tmp_path, rel):
    data = (corpus / rel).read_bytes()
    n = len(data)
    cuts = sorted(
        {0, 1, 4, 7, 8, 9, 12, 16, 24, 32, 64, 100, n // 4, n // 2, 3 * n // 4, n - 16, n - 4, n - 1}
    )
    for cut in cuts:
        path = _write(tmp_path, data[:cut], f"cut{cut}.tflite")
        _exercise(path)
        if cut <= n // 2:
            # Half a flatbuffer cannot be whole: the root's tables and vectors run past the end.
            assert _check_fails(path), cut
        if cut < 8:
            with pytest.raises(CorruptFileError):
                tflite.read(path)


@pytest.mark.corpus
def test_bit_flips(corpus, tmp_path):
    rng = random.Random(20240611)
    bases = [(corpus / rel).read_bytes() for rel in ROBUST_BASES]
    outcomes = Counter()
    for k in range(400):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.randrange(256)
        path = _write(tmp_path, bytes(data), f"flip{k}.tflite")
        _exercise(path)
        try:
            tflite.read(path)
            outcomes["described"] += 1
        except CorruptFileError:
            outcomes["corrupt"] += 1
    # Both outcomes occur, or the mutants exercise nothing.
    assert outcomes["described"] > 20 and outcomes["corrupt"] > 20, outcomes


def _length_position(data: bytes, table, slot: int) -> int:
    """Where the length of the vector in field ``slot`` of ``table`` is stored."""
    o = table._tab.Offset(slot)
    assert o, "field absent"
    pos = table._tab.Pos + o
    return pos + struct.unpack_from("<I", data, pos)[0]


@pytest.mark.corpus
def test_huge_vector_lengths(corpus, tmp_path):
    data = (corpus / LITERT / "dynamic_shapes.tflite").read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)
    targets = {
        "subgraphs": _length_position(data, model, 8),
        "buffers": _length_position(data, model, 12),
        "tensors": _length_position(data, sg, 4),
        "operators": _length_position(data, sg, 10),
        "shape": _length_position(data, sg.Tensors(0), 4),
    }
    for what, pos in targets.items():
        for huge in (0x7FFFFFFF, 0xFFFFFFFF, len(data)):
            mutant = bytearray(data)
            struct.pack_into("<I", mutant, pos, huge)
            path = _write(tmp_path, bytes(mutant), f"{what}_{huge}.tflite")
            with pytest.raises(CorruptFileError, match="claims"):
                tflite.read(path)
            _exercise(path, limit=1.0)

    # A constant's data vector claiming more bytes than the file: described, flagged, not read.
    buffer_index = next(
        w.extra["buffer"] for w in tflite.read(corpus / LITERT / "dynamic_shapes.tflite").weights
    )
    mutant = bytearray(data)
    struct.pack_into("<I", mutant, _length_position(data, model.Buffers(buffer_index), 4), 0x7FFFFFFF)
    path = _write(tmp_path, bytes(mutant), "data.tflite")
    d = tflite.read(path)
    assert any(w.startswith(f"buffer {buffer_index}:") for w in d.warnings)
    assert _errors(tflite.check(path), f"buffer {buffer_index}")


def test_overlapping_vectors_do_not_multiply_work(tmp_path):
    """Subgraph slots all pointing at one large subgraph must fail fast, not parse n*m tensors."""
    big = _subgraph([_tensor(f"t{i}", F32, [1], 0) for i in range(400)], [], [], [])
    small = [_subgraph([], [], [], [], name="") for _ in range(299)]
    data = bytearray(_pack([big, *small], [_buffer()], []))
    model = schema.Model.GetRootAs(bytes(data), 0)
    start = _length_position(bytes(data), model, 8) + 4
    target = start + struct.unpack_from("<I", data, start)[0]  # the big subgraph's table
    assert target > start + 4 * 300
    for k in range(300):
        struct.pack_into("<I", data, start + 4 * k, target - (start + 4 * k))  # uoffsets are relative
    path = _write(tmp_path, bytes(data))
    # The entry budget is what stops it (the error proves it); the time limit only catches a
    # hang, and is loose enough for a loaded machine.
    with pytest.raises(CorruptFileError, match="more entries in total"):
        tflite.read(path)
    _exercise(path, limit=5.0)
