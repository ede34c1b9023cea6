"""Deploy-readiness and safety lint, read from the files alone: TensorFlow is never imported.

``lint(path, targets)`` returns a :class:`CheckReport` whose findings each end with a
``fix:`` note. The targets:

- ``serving``: a SavedModel TF Serving loads and its REST API can feed: a ``serve`` meta
  graph, a ``serving_default`` signature, input/output dtypes JSON can carry, the
  ``<base>/<version>/`` folder layout, and the integrity check (assets present, variables
  restorable).
- ``tflite``: what stands between the model and LiteRT. For a SavedModel, the ops the
  serving signatures reach (graph and every function they call), classified by the tables
  below; for a ``.tflite``, custom and Flex ops, dynamic and string I/O, quantization.
- ``safety``: ops that reach outside the model (files, network, Python, debug hooks) over
  the graph and every function body, judged by where they run (a serving signature, the
  init op, the saver); Python code in Keras files; Flex I/O ops in ``.tflite`` files.

The op tables are this module's own reading of TensorFlow 2.21's converter and kernels
(checked by converting single ops with TensorFlow 2.21); the converter stays the final word.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..description import CheckReport, Finding, ModelDescription
from ..errors import UserError
from ..formats import keras_config as kc
from ..formats.keras_config import CodeSite

TARGETS = ("serving", "tflite", "safety")

# ----------------------------------------------------------------------------------------
# Op tables


#: TF ops the TFLite converter turns into builtins, with what they become. Plumbing ops
#: disappear (constants folded, calls inlined, variables frozen); some ops are decomposed
#: into several builtins. Ops not listed here are not necessarily unsupported: the converter
#: lowers more patterns than any table can list, so they are reported as warnings only.
TFLITE_BUILTIN: Mapping[str, str] = {
    # plumbing: gone after conversion
    "Const": "(constant buffer)",
    "Placeholder": "(subgraph input)",
    "PlaceholderWithDefault": "(subgraph input)",
    "Identity": "(removed)",
    "IdentityN": "(removed)",
    "NoOp": "(removed)",
    "StopGradient": "(removed)",
    "PreventGradient": "(removed)",
    "Snapshot": "(removed)",
    "EnsureShape": "(removed)",
    "CheckNumerics": "(removed)",
    "Assert": "(removed)",
    "StatefulPartitionedCall": "(inlined)",
    "PartitionedCall": "(inlined)",
    "ReadVariableOp": "(frozen into a constant) READ_VARIABLE",
    "VarHandleOp": "(frozen into a constant) VAR_HANDLE",
    "VariableV2": "(frozen into a constant)",
    "Variable": "(frozen into a constant)",
    "VarIsInitializedOp": "(removed)",
    "DisableCopyOnRead": "(removed)",
    "AssignVariableOp": "ASSIGN_VARIABLE",
    # TF1 control flow: functionalized into IF/WHILE first
    "Switch": "IF",
    "Merge": "IF",
    "Enter": "WHILE",
    "Exit": "WHILE",
    "NextIteration": "WHILE",
    "LoopCond": "WHILE",
    "If": "IF",
    "StatelessIf": "IF",
    "While": "WHILE",
    "StatelessWhile": "WHILE",
    # element-wise math
    "Add": "ADD",
    "AddV2": "ADD",
    "AddN": "ADD_N",
    "Sub": "SUB",
    "Mul": "MUL",
    "Div": "DIV",
    "RealDiv": "DIV",
    "TruncateDiv": "DIV",
    "DivNoNan": "DIV EQUAL SELECT_V2",
    "Reciprocal": "DIV",
    "FloorDiv": "FLOOR_DIV",
    "FloorMod": "FLOOR_MOD",
    "Maximum": "MAXIMUM",
    "Minimum": "MINIMUM",
    "Pow": "POW",
    "SquaredDifference": "SQUARED_DIFFERENCE",
    "Abs": "ABS",
    "Neg": "NEG",
    "Sign": "SIGN",
    "Exp": "EXP",
    "Expm1": "EXP SUB",
    "Log": "LOG",
    "Log1p": "ADD LOG",
    "Xlogy": "LOG MUL EQUAL SELECT",
    "Sqrt": "SQRT",
    "Rsqrt": "RSQRT",
    "Square": "SQUARE",
    "Sin": "SIN",
    "Cos": "COS",
    "Atan2": "ATAN2",
    "Floor": "FLOOR",
    "Ceil": "CEIL",
    "Round": "ROUND",
    "Rint": "ROUND",
    "IsNan": "NOT_EQUAL",
    "Cast": "CAST",
    "Bitcast": "BITCAST",
    "BitwiseXor": "BITWISE_XOR",
    "RightShift": "RIGHT_SHIFT",
    "Equal": "EQUAL",
    "NotEqual": "NOT_EQUAL",
    "Less": "LESS",
    "LessEqual": "LESS_EQUAL",
    "Greater": "GREATER",
    "GreaterEqual": "GREATER_EQUAL",
    "LogicalAnd": "LOGICAL_AND",
    "LogicalOr": "LOGICAL_OR",
    "LogicalNot": "LOGICAL_NOT",
    "Select": "SELECT",
    "SelectV2": "SELECT_V2",
    "Real": "REAL",
    "Imag": "IMAG",
    "ComplexAbs": "COMPLEX_ABS",
    # activations
    "Relu": "RELU",
    "Relu6": "RELU6",
    "Elu": "ELU",
    "Selu": "EXP MUL SUB SELECT",
    "LeakyRelu": "LEAKY_RELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "Softplus": "EXP LOG ADD",
    "Softsign": "ABS ADD DIV",
    "Softmax": "SOFTMAX",
    "LogSoftmax": "LOG_SOFTMAX",
    # linear algebra, convolutions, pooling, normalization
    "MatMul": "FULLY_CONNECTED",
    "BatchMatMul": "BATCH_MATMUL",
    "BatchMatMulV2": "BATCH_MATMUL",
    "BatchMatMulV3": "BATCH_MATMUL",
    "Einsum": "BATCH_MATMUL FULLY_CONNECTED TRANSPOSE RESHAPE",
    "BiasAdd": "ADD",
    "Conv2D": "CONV_2D",
    "DepthwiseConv2dNative": "DEPTHWISE_CONV_2D",
    "Conv2DBackpropInput": "TRANSPOSE_CONV",
    "Conv3D": "CONV_3D",
    "Conv3DBackpropInputV2": "CONV_3D_TRANSPOSE",
    "MaxPool": "MAX_POOL_2D",
    "AvgPool": "AVERAGE_POOL_2D",
    "FusedBatchNorm": "MUL ADD",
    "FusedBatchNormV2": "MUL ADD",
    "FusedBatchNormV3": "MUL ADD",
    "LRN": "LOCAL_RESPONSE_NORMALIZATION",
    "L2Loss": "MUL SUM",
    "MatrixDiag": "MATRIX_DIAG",
    "MatrixSetDiag": "MATRIX_SET_DIAG",
    "MatrixBandPart": "GREATER_EQUAL LOGICAL_AND SELECT",
    # reductions and scans
    "Mean": "MEAN",
    "Sum": "SUM",
    "Prod": "REDUCE_PROD",
    "Max": "REDUCE_MAX",
    "Min": "REDUCE_MIN",
    "Any": "REDUCE_ANY",
    "All": "REDUCE_ALL",
    "ArgMax": "ARG_MAX",
    "ArgMin": "ARG_MIN",
    "Cumsum": "CUMSUM",
    "TopKV2": "TOPK_V2",
    "Unique": "UNIQUE",
    "SegmentSum": "SEGMENT_SUM",
    "UnsortedSegmentSum": "UNSORTED_SEGMENT_SUM",
    "UnsortedSegmentMax": "UNSORTED_SEGMENT_MAX",
    "UnsortedSegmentMin": "UNSORTED_SEGMENT_MIN",
    "UnsortedSegmentProd": "UNSORTED_SEGMENT_PROD",
    # shapes and data movement
    "Reshape": "RESHAPE",
    "Squeeze": "SQUEEZE",
    "ExpandDims": "EXPAND_DIMS",
    "Transpose": "TRANSPOSE",
    "ConcatV2": "CONCATENATION",
    "Concat": "CONCATENATION",
    "Pack": "PACK",
    "Unpack": "UNPACK",
    "Split": "SPLIT",
    "SplitV": "SPLIT_V",
    "Slice": "SLICE",
    "StridedSlice": "STRIDED_SLICE",
    "Gather": "GATHER",
    "GatherV2": "GATHER",
    "GatherNd": "GATHER_ND",
    "ScatterNd": "SCATTER_ND",
    "Tile": "TILE",
    "Pad": "PAD",
    "PadV2": "PADV2",
    "MirrorPad": "MIRROR_PAD",
    "Shape": "SHAPE",
    "Rank": "RANK",
    "Fill": "FILL",
    "ZerosLike": "ZEROS_LIKE",
    "OnesLike": "FILL",
    "Range": "RANGE",
    "BroadcastTo": "BROADCAST_TO",
    "BroadcastArgs": "BROADCAST_ARGS",
    "ReverseV2": "REVERSE_V2",
    "ReverseSequence": "REVERSE_SEQUENCE",
    "Roll": "SLICE CONCATENATION",
    "SpaceToDepth": "SPACE_TO_DEPTH",
    "DepthToSpace": "DEPTH_TO_SPACE",
    "SpaceToBatchND": "SPACE_TO_BATCH_ND",
    "BatchToSpaceND": "BATCH_TO_SPACE_ND",
    "Where": "WHERE",
    "OneHot": "ONE_HOT",
    "SparseToDense": "SPARSE_TO_DENSE",
    "Bucketize": "BUCKETIZE",
    # images, random, tables, signal, quantization
    "ResizeBilinear": "RESIZE_BILINEAR",
    "ResizeNearestNeighbor": "RESIZE_NEAREST_NEIGHBOR",
    "NonMaxSuppressionV4": "NON_MAX_SUPPRESSION_V4",
    "NonMaxSuppressionV5": "NON_MAX_SUPPRESSION_V5",
    "RandomUniform": "RANDOM_UNIFORM",
    "RandomStandardNormal": "RANDOM_STANDARD_NORMAL",
    "Multinomial": "MULTINOMIAL",
    "HashTableV2": "HASHTABLE",
    "LookupTableFindV2": "HASHTABLE_FIND",
    "LookupTableImportV2": "HASHTABLE_IMPORT",
    "LookupTableSizeV2": "HASHTABLE_SIZE",
    "RFFT2D": "RFFT2D",
    "FakeQuantWithMinMaxVars": "FAKE_QUANT",
    "FakeQuantWithMinMaxArgs": "FAKE_QUANT",
    "Dequantize": "DEQUANTIZE",
    # tf.TensorList ops of Keras RNNs and tf.while_loop: lowered to plain tensors in a WHILE
    "TensorListReserve": "WHILE",
    "TensorListFromTensor": "WHILE",
    "TensorListGetItem": "WHILE",
    "TensorListSetItem": "WHILE",
    "TensorListStack": "WHILE",
    "TensorListLength": "WHILE",
    "TensorListElementShape": "WHILE",
}

#: TF ops known to have no builtin that LiteRT's Flex delegate runs (``--select-tf-ops``),
#: by family. Each was seen converting to a ``Flex*`` op with TensorFlow 2.21, or is a member
#: of a family that does. Ops in neither table are reported as "probably Flex" warnings.
TFLITE_FLEX: frozenset[str] = frozenset(
    {
        # math the builtins lack
        "Erf", "Sinh", "Cosh", "Tan", "Atan", "Cumprod", "ClipByValue", "BitwiseAnd", "BitwiseOr",
        "MatrixInverse", "MatrixDeterminant", "Cholesky", "Qr", "MatrixTriangularSolve",
        "Bincount", "DenseBincount", "MaxPool3D", "AvgPool3D", "Dilation2D", "ExtractImagePatches",
        "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessRandomGetKeyCounter",
        "StatelessRandomUniform", "StatelessRandomNormal", "TruncatedNormal", "RandomUniformInt",
        # images
        "ResizeBicubic", "CropAndResize", "DecodeJpeg", "DecodePng", "DecodeImage", "DecodeBmp",
        "DecodeGif", "EncodeJpeg", "EncodePng", "AdjustContrastv2", "AdjustHue", "AdjustSaturation",
        "RGBToHSV", "HSVToRGB", "ImageProjectiveTransformV3", "CombinedNonMaxSuppression",
        # strings and parsing
        "ParseExample", "ParseExampleV2", "ParseSingleExample", "ParseSequenceExampleV2",
        "DecodeRaw", "DecodeBase64", "EncodeBase64", "AsString", "StringFormat", "StringJoin",
        "StringLength", "StringLower", "StringSplit", "StringSplitV2", "StringStrip",
        "StringToHashBucketFast", "StringToNumber", "Substr", "ReduceJoin", "RegexFullMatch",
        "RegexReplace", "StaticRegexFullMatch", "StaticRegexReplace", "UnicodeDecode",
        "UnicodeEncode", "ShardedFilename",
        # sparse and ragged
        "SparseReshape", "SparseFillEmptyRows", "SparseSegmentSum", "SparseSegmentMean",
        "SparseSegmentSqrtN", "SparseTensorDenseMatMul", "SparseCrossHashed", "SparseCrossV2",
        "RaggedTensorToTensor", "RaggedRange", "RaggedGather",
        # tables the builtins do not cover
        "MutableHashTableV2", "MutableDenseHashTableV2", "LookupTableInsertV2",
        "LookupTableExportV2", "InitializeTableV2",
        # logging
        "PrintV2", "Print",
    }
)  # fmt: skip

#: Ops with no TFLite builtin and no Flex kernel, or whose Flex kernel cannot do on a device
#: what they did on the exporting machine. The file-system ops (ReadFile, WriteFile,
#: Save/Restore, ...) do have Flex kernels, but a ``.tflite`` carries no assets and the
#: converter freezes the file path of the exporting machine into the model.
_TFLITE_NEVER_WHY = {
    "python": "calls Python, which LiteRT does not have (no builtin, no Flex kernel)",
    "read": "reads files: a .tflite carries no assets, and the path frozen into it is the exporting machine's",
    "write": "writes files on the device; summaries and dataset writers have no Flex kernel",
    "checkpoint": "saves or restores a checkpoint inside a served function",
    "network": "talks to other processes over the network (no TFLite builtin, no Flex kernel)",
    "dataset": "is a tf.data op: LiteRT runs no input pipelines",
}

#: Ops the converter has trouble with even though a kernel exists somewhere.
_TFLITE_QUIRKS = {
    "TRTEngineOp": "a TF-TRT engine: it runs only in TensorFlow with TensorRT (no builtin, no Flex kernel); "
    "fix: convert the SavedModel from before TF-TRT conversion",
    "Case": "tf.switch_case: TF 2.21's converter lowers it to IF with an int32 condition and fails, "
    "with or without Flex; fix: use tf.cond (nested for more branches)",
    "StatelessCase": "tf.switch_case: TF 2.21's converter lowers it to IF with an int32 condition and "
    "fails, with or without Flex; fix: use tf.cond (nested for more branches)",
}

#: Custom ops LiteRT's default op resolver registers itself (no app code needed).
_TFLITE_STOCK_CUSTOM = frozenset(
    {"TFLite_Detection_PostProcess", "AudioSpectrogram", "Mfcc", "NumericVerify"}
)


@dataclass(frozen=True)
class _Risk:
    kind: str  # checkpoint | read | write | python | network | remote | debug | dataset
    what: str
    #: Index of the input that names the file, for ops that may read the model's own assets.
    path_input: int | None = None


def _risks() -> dict[str, _Risk]:
    out: dict[str, _Risk] = {}

    def add(kind: str, what: str, names: Iterable[str], path_input: int | None = None) -> None:
        for name in names:
            out[name] = _Risk(kind, what, path_input)

    add("checkpoint", "writes a checkpoint", ("Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"))
    add("checkpoint", "reads a checkpoint", ("Restore", "RestoreV2", "RestoreSlice"))
    add("read", "reads a file", ("ReadFile",), 0)
    add("read", "lists the file system", ("MatchingFiles",), 0)
    add("read", "reads a text file into a lookup table",
        ("InitializeTableFromTextFile", "InitializeTableFromTextFileV2"), 1)  # fmt: skip
    add("read", "memory-maps a file named in its attributes", ("ImmutableConst",))
    add("read", "reads the text file named in its attributes", ("Skipgram",))
    add("read", "reads checkpoint files", ("LoadAndRemapMatrix", "GenerateVocabRemapping"))
    add("read", "opens a file reader",
        ("WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
         "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2",
         "LMDBReader"))  # fmt: skip
    add("read", "reads files as a dataset",
        ("TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
         "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
         "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
         "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "LoadDataset",
         "SnapshotDatasetReader", "SnapshotNestedDatasetReader"))  # fmt: skip
    add("write", "writes a file", ("WriteFile",))
    add("write", "writes TensorBoard summaries",
        ("CreateSummaryFileWriter", "CreateSummaryDbWriter", "SummaryWriter", "WriteSummary",
         "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
         "WriteGraphSummary", "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter",
         "CloseSummaryWriter"))  # fmt: skip
    add("write", "writes a dataset to files",
        ("SaveDataset", "SaveDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
         "SnapshotDataset", "SnapshotDatasetV2", "DistributedSave"))  # fmt: skip
    add("python", "calls a Python function", ("PyFunc", "PyFuncStateless", "EagerPyFunc"))
    add("network", "makes remote procedure calls",
        ("Rpc", "TryRpc", "RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcCall"))  # fmt: skip
    add("network", "reads data from a tf.data service",
        ("DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
         "RegisterDataset", "RegisterDatasetV2"))  # fmt: skip
    add("remote", "runs a function on another TensorFlow worker", ("RemoteCall",))
    add("remote", "exchanges tensors with other TensorFlow workers (collective op)",
        ("CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3", "CollectiveGather",
         "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastRecv", "CollectiveBcastSendV2",
         "CollectiveBcastRecvV2", "CollectiveAllToAllV2", "CollectiveAllToAllV3",
         "CollectiveInitializeCommunicator"))  # fmt: skip
    add("debug", "prints tensor values to the server's log", ("Print", "PrintV2"))
    add("debug", "is a tfdbg debug hook",
        ("DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
         "DebugNumericSummary", "DebugNumericSummaryV2"))  # fmt: skip
    add("read", "reads a protobuf descriptor file named in its attributes", ("DecodeProtoV2", "EncodeProto"))
    return out


RISKY_OPS: Mapping[str, _Risk] = _risks()

_FIX = {
    "checkpoint": "fix: save and restore outside the served functions (tf.train.Checkpoint in Python)",
    "read": "fix: read the data before export and ship it as a constant or a tf.saved_model.Asset, "
    "or run the model only with --unsafe if you trust it",
    "write": "fix: remove file writes (tf.io.write_file, tf.summary, dataset saves) from exported functions",
    "python": "fix: replace tf.py_function/tf.numpy_function with TensorFlow ops; the Python function is not "
    "in the file and whatever the loading process registered under its token runs instead",
    "network": "fix: fetch remote data outside the model and feed it as an input",
    "remote": "fix: export a single-worker model (no collectives or remote calls in exported functions)",
    "debug": "fix: remove tf.print and tfdbg hooks before export",
    "asset": "fix: none needed if assets/ holds what you expect (tf.saved_model.Asset paths are rewritten "
    "to the model's assets/ folder at load)",
}


# ----------------------------------------------------------------------------------------
# Protobuf wire decoding for the fields the project's proto subset leaves out (list-valued
# attributes, collections, saveable objects). Unknown fields survive parsing and come back
# in SerializeToString().


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a serialized message; stops at damage."""
    pos = 0
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos)
            number, wire = key >> 3, key & 7
            value: int | bytes
            if wire == 0:
                value, pos = _varint(buf, pos)
            elif wire == 1 or wire == 5:
                width = 8 if wire == 1 else 4
                if pos + width > len(buf):
                    return
                value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
            elif wire == 2:
                n, pos = _varint(buf, pos)
                if pos + n > len(buf):
                    return
                value, pos = buf[pos : pos + n], pos + n
            else:
                return
            yield number, value
    except ValueError:
        return


def _sub(buf: bytes, number: int) -> Iterator[bytes]:
    for n, v in _fields(buf):
        if n == number and isinstance(v, bytes):
            yield v


def _attr_list(attr: Any, number: int) -> list[bytes]:
    """Items of field ``number`` of an AttrValue's ``list`` (2 = s, 9 = func)."""
    if attr.WhichOneof("value") is not None:
        return []
    return [item for lst in _sub(attr.SerializeToString(), 1) for item in _sub(lst, number)]


def _attr_strings(attr: Any) -> list[str]:
    if attr.WhichOneof("value") == "s":
        return [attr.s.decode("utf-8", "replace")]
    return [s.decode("utf-8", "replace") for s in _attr_list(attr, 2)]


def _attr_functions(attr: Any) -> list[str]:
    if attr.WhichOneof("value") == "func":
        return [attr.func.name]
    names: list[str] = []
    for func in _attr_list(attr, 9):
        names.extend(n.decode("utf-8", "replace") for n in _sub(func, 1))
    return names


def _collection_nodes(mg: Any, key: str) -> list[str]:
    """Node names of a ``node_list`` collection (``saved_model_main_op``, ``legacy_init_op``)."""
    if key not in mg.collection_def:
        return []
    raw = mg.collection_def[key].SerializeToString()
    return [s.decode("utf-8", "replace") for lst in _sub(raw, 1) for s in _sub(lst, 1)]


def _saveable_function_nodes(obj: Any) -> list[int]:
    """Object-graph node ids of a SavedObject's saveable save/restore functions (field 11)."""
    ids: list[int] = []
    for entry in _sub(obj.SerializeToString(), 11):
        for saveable in _sub(entry, 2):
            ids.extend(v for n, v in _fields(saveable) if n in (2, 3) and isinstance(v, int))
    return ids


# ----------------------------------------------------------------------------------------
# A SavedModel meta graph as a call graph with contexts


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":", 1)[0]


def _data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


# How a body is reached; higher ranks are judged more strictly.
_RANK = {"saver": 0, "init": 1, "unreached": 2, "unreferenced": 2, "callable": 3, "serving": 4}


@dataclass
class _Reach:
    kinds: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)
    callers: set[str] = field(default_factory=set)  # object paths

    def rank(self) -> int:
        return max((_RANK[k] for k in self.kinds), default=_RANK["unreferenced"])

    def describe(self) -> str:
        if "serving" in self.kinds:
            keys = ", ".join(repr(k) for k in sorted(self.signatures))
            return f"reached from signature{'s' if len(self.signatures) > 1 else ''} {keys}"
        if "callable" in self.kinds:
            # root.f.trace_0 (the concrete function under root.f) says nothing root.f does not
            named = {c for c in self.callers if ".trace_" not in c} or self.callers
            paths = ", ".join(sorted(named)) or "the object graph"
            return f"callable as {paths} after tf.saved_model.load"
        if "unreached" in self.kinds:
            return "in no signature, init op or saver (a Session could still fetch it)"
        if "init" in self.kinds:
            return "runs when the model loads (init op or resource initializer)"
        if "saver" in self.kinds:
            return "in the saver (runs on save/restore)"
        return "referenced by nothing in the file"


class _Program:
    """One meta graph: graph nodes and function bodies, who reaches what, and asset paths."""

    def __init__(self, folder: Path, mg: Any) -> None:
        from ..formats import savedmodel as sm

        self.folder = folder
        self.mg = mg
        self.graph = list(mg.graph_def.node)
        self.by_name = {n.name: n for n in self.graph}
        self.library = {f.signature.name: f for f in mg.graph_def.library.function}
        self.nodes: dict[str, list[Any]] = {"": self.graph}
        self.nodes.update((name, list(fn.node_def)) for name, fn in self.library.items())
        # (body, node name) -> functions the node calls, worked out once (list attributes
        # need a serialization each); and per function, everything its body calls.
        self.callees: dict[tuple[str, str], list[str]] = {}
        for body, nodes in self.nodes.items():
            for node in nodes:
                called = self._calls(node)
                if called:
                    self.callees[(body, node.name)] = called
        self.fn_callees: dict[str, set[str]] = defaultdict(set)
        for (body, _), called in self.callees.items():
            if body:
                self.fn_callees[body].update(called)
        self.fn_reach: dict[str, _Reach] = defaultdict(_Reach)
        self.node_reach: dict[str, _Reach] = defaultdict(_Reach)
        self.object_paths = sm.node_paths(mg.object_graph_def)
        self._mark_contexts(sm.INIT_OP_KEY)
        self.assets = self._asset_sources()

    # -- calls
    def _calls(self, node: Any) -> list[str]:
        names = [node.op] if node.op in self.library else []
        for attr in node.attr.values():
            names.extend(n for n in _attr_functions(attr) if n in self.library)
        return names

    def graph_calls(self, name: str) -> list[str]:
        return self.callees.get(("", name), [])

    def _closure(self, roots: Iterable[str], fed: frozenset[str] = frozenset()) -> set[str]:
        """The nodes ``roots`` depend on. A ``fed`` tensor (``x:0``, a signature input) cuts its
        edge: TF1 serving graphs often feed a tensor computed from another input (TF Serving's
        half_plus_two feeds ``x``, the Identity of a ParseExample output), and what lies behind
        it never runs for that signature."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.by_name]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for edge in self.by_name[name].input:
                if not edge.startswith("^") and (edge if ":" in edge else f"{edge}:0") in fed:
                    continue
                n = _node_name(edge)
                if n in self.by_name and n not in seen:
                    stack.append(n)
        return seen

    def _spread(
        self, functions: Iterable[str], kind: str, signature: str | None = None, caller: str | None = None
    ) -> None:
        stack = list(functions)
        done: set[str] = set()
        while stack:
            name = stack.pop()
            if name in done or name not in self.library:
                continue
            done.add(name)
            reach = self.fn_reach[name]
            if (
                kind in reach.kinds
                and (not signature or signature in reach.signatures)
                and (not caller or caller in reach.callers)
            ):
                continue  # marked so before, and so were its callees
            reach.kinds.add(kind)
            if signature:
                reach.signatures.add(signature)
            if caller:
                reach.callers.add(caller)
            stack.extend(self.fn_callees.get(name, ()))

    def _mark_nodes(
        self, roots: Iterable[str], kind: str, signature: str | None = None, fed: frozenset[str] = frozenset()
    ) -> set[str]:
        nodes = self._closure(roots, fed)
        for name in nodes:
            reach = self.node_reach[name]
            reach.kinds.add(kind)
            if signature:
                reach.signatures.add(signature)
            self._spread(self.graph_calls(name), kind, signature)
        return nodes

    def _mark_contexts(self, init_key: str) -> None:
        mg = self.mg
        self.serving_nodes: set[str] = set()
        for key, sd in mg.signature_def.items():
            roots = [_node_name(t) for t in _tensor_names(sd.outputs.values())]
            if key == init_key:
                self._mark_nodes(roots, "init")
            else:
                fed = frozenset(_tensor_names(sd.inputs.values()))
                self.serving_nodes |= self._mark_nodes(roots, "serving", key, fed)
        for collection in ("saved_model_main_op", "legacy_init_op", "table_initializer"):
            self._mark_nodes(_collection_nodes(mg, collection), "init")
        saver = mg.saver_def
        self._mark_nodes(
            [_node_name(n) for n in (saver.save_tensor_name, saver.restore_op_name) if n], "saver"
        )
        graph = mg.object_graph_def
        lifecycle: dict[int, str] = {}
        for obj in graph.nodes:
            for child in obj.children:
                if child.local_name in ("_create_resource", "_initialize", "_destroy_resource"):
                    lifecycle[child.node_id] = "init"
            for nid in _saveable_function_nodes(obj):
                lifecycle[nid] = "saver"
        for nid, obj in enumerate(graph.nodes):
            names = _object_functions(obj)
            if not names:
                continue
            kind = lifecycle.get(nid, "callable")
            self._spread(names, kind, caller=self.object_paths.get(nid) if kind == "callable" else None)
        for name in self.by_name:
            if name not in self.node_reach:
                self.node_reach[name].kinds.add("unreached")
                self._spread(self.graph_calls(name), "unreached")

    # -- assets
    def _asset_sources(self) -> dict[str, set[str]]:
        """Per body ('' = the graph), the node or argument names whose value is an asset path."""
        sources: dict[str, set[str]] = defaultdict(set)
        for asset in self.mg.asset_file_def:
            sources[""].add(_node_name(asset.tensor_info.name))
        graph = self.mg.object_graph_def
        for name, concrete in graph.concrete_functions.items():
            fn = self.library.get(name)
            if fn is None or not concrete.bound_inputs:
                continue
            args = [a.name for a in fn.signature.input_arg]
            first = len(args) - len(concrete.bound_inputs)
            for j, nid in enumerate(concrete.bound_inputs):
                if (
                    0 <= nid < len(graph.nodes)
                    and graph.nodes[nid].WhichOneof("kind") == "asset"
                    and first + j >= 0
                ):
                    sources[name].add(args[first + j])
        # Only nodes that can carry a path along: pass-throughs, variable assignments, calls.
        carriers = {
            body: [
                (
                    node.name,
                    node.op,
                    [_node_name(i) for i in _data_inputs(node)],
                    self.callees.get((body, node.name), []),
                )
                for node in nodes
                if node.op in _PASS_THROUGH
                or node.op in ("AssignVariableOp", "Assign")
                or (body, node.name) in self.callees
            ]
            for body, nodes in self.nodes.items()
        }
        for _ in range(len(carriers) + 2):
            changed = False
            for body, nodes in carriers.items():
                known = sources[body]
                if not known:
                    continue
                for name, op, ins, called in nodes:
                    if name not in known and op in _PASS_THROUGH and ins and ins[0] in known:
                        known.add(name)
                        changed = True
                    elif (
                        op in ("AssignVariableOp", "Assign")
                        and len(ins) > 1
                        and ins[1] in known
                        and ins[0] not in known
                    ):
                        known.add(ins[0])
                        changed = True
                    for callee in called:
                        args = [a.name for a in self.library[callee].signature.input_arg]
                        offset = 1 if op in ("If", "StatelessIf") else 0
                        for k, src in enumerate(ins[offset:]):
                            if src in known and k < len(args) and args[k] not in sources[callee]:
                                sources[callee].add(args[k])
                                changed = True
            if not changed:
                break
        return sources

    def reads_asset(self, body: str, node: Any, risk: _Risk) -> bool:
        ins = _data_inputs(node)
        if risk.path_input is None or risk.path_input >= len(ins):
            return False
        return _node_name(ins[risk.path_input]) in self.assets.get(body, set())

    def bodies(self) -> Iterator[tuple[str, list[Any], Mapping[str, _Reach]]]:
        """('', graph nodes, reach per node) and (function name, nodes, reach of the function)."""
        yield "", self.graph, self.node_reach
        for name in self.library:
            reach = self.fn_reach.get(name) or _Reach()
            yield name, self.nodes[name], _Constant(reach)

    def ops_outside_saver(self) -> dict[str, tuple[int, set[str]]]:
        """op -> (count, no signatures) over every body but the saver's and the init op's."""
        out: dict[str, tuple[int, set[str]]] = {}
        for _body, nodes, reach_of in self.bodies():
            for node in nodes:
                if reach_of[node.name].rank() > _RANK["init"]:
                    out[node.op] = (out.get(node.op, (0, set()))[0] + 1, set())
        return out

    def serving_ops(self) -> dict[str, tuple[int, set[str]]]:
        """op -> (count, signatures reaching it) over the graph and functions the signatures run."""
        out: dict[str, tuple[int, set[str]]] = {}

        def add(op: str, sigs: set[str]) -> None:
            count, seen = out.get(op, (0, set()))
            out[op] = (count + 1, seen | sigs)

        for name in self.serving_nodes:
            add(self.by_name[name].op, self.node_reach[name].signatures)
        for name, reach in self.fn_reach.items():
            if "serving" in reach.kinds:
                for node in self.nodes[name]:
                    add(node.op, reach.signatures)
        return out


class _Constant(Mapping[str, _Reach]):
    """The same reach for every node of a function body."""

    def __init__(self, reach: _Reach) -> None:
        self.reach = reach

    def __getitem__(self, key: str) -> _Reach:
        return self.reach

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_PASS_THROUGH = frozenset(
    {"Identity", "IdentityN", "Snapshot", "StopGradient", "ReadVariableOp", "Enter", "Switch", "Merge"}
)


def _tensor_names(infos: Iterable[Any]) -> list[str]:
    names = []
    for info in infos:
        kind = info.WhichOneof("encoding")
        if kind == "name":
            names.append(info.name)
        elif kind == "coo_sparse":
            sp = info.coo_sparse
            names.extend(
                n for n in (sp.values_tensor_name, sp.indices_tensor_name, sp.dense_shape_tensor_name) if n
            )
    return names


def _object_functions(obj: Any) -> list[str]:
    kind = obj.WhichOneof("kind")
    if kind == "function":
        return list(obj.function.concrete_functions)
    if kind == "bare_concrete_function":
        return [obj.bare_concrete_function.concrete_function_name]
    return []


# ----------------------------------------------------------------------------------------
# safety


def _writes_out(node: Any) -> bool:
    """Whether a debug op sends its tensors somewhere (a file or a gRPC address)."""
    if node.op == "PrintV2":
        stream = (
            node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else ""
        )
        return stream.startswith("file://")
    if node.op.startswith("Debug"):
        urls = _attr_strings(node.attr["debug_urls"]) if "debug_urls" in node.attr else []
        dump = node.attr["dump_root"].s if "dump_root" in node.attr else b""
        return any(urls) or bool(dump)
    return False


def _proto_descriptor_is_file(node: Any) -> bool:
    if "descriptor_source" not in node.attr:
        return False
    source = node.attr["descriptor_source"].s.decode("utf-8", "replace")
    return bool(source) and source != "local://" and not source.startswith("bytes://")


def _judge(risk: _Risk, node: Any, rank: int, reads_asset: bool) -> str | None:
    """The severity of a risky op in a body of ``rank``, or None when it is fine there."""
    kind = risk.kind
    if node.op in ("DecodeProtoV2", "EncodeProto") and not _proto_descriptor_is_file(node):
        return None
    if kind == "checkpoint":
        if rank <= _RANK["saver"]:
            return None
        return "warning" if rank == _RANK["unreached"] else "error"
    if kind == "read" and reads_asset:
        return "warning"
    if kind == "remote":
        return "warning"
    if kind == "debug":
        return "error" if _writes_out(node) else "warning"
    return "error"


def _savedmodel_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import savedmodel as sm

    folder = Path(desc.path)
    model = sm.load_proto(folder)
    findings: list[Finding] = []
    counted = {"graph nodes": 0, "functions": 0}
    several = len(model.meta_graphs) > 1
    for mg in model.meta_graphs:
        program = _Program(folder, mg)
        counted["graph nodes"] += len(program.graph)
        counted["functions"] += len(program.library)
        tags = f" [tags {','.join(mg.meta_info_def.tags)}]" if several else ""
        for body, nodes, reach_of in program.bodies():
            for node in nodes:
                risk = RISKY_OPS.get(node.op)
                if risk is None:
                    continue
                reach = reach_of[node.name]
                asset = program.reads_asset(body, node, risk)
                severity = _judge(risk, node, reach.rank(), asset)
                if severity is None:
                    continue
                where = f"function {body}, node {node.name}" if body else f"graph node {node.name}"
                what = risk.what + (" (one of the model's own assets)" if asset else "")
                if node.op == "PrintV2" and _writes_out(node):
                    what = "prints tensor values into a file"
                findings.append(
                    Finding(
                        severity,
                        f"op {node.op} ({where}){tags}",
                        f"{what}; {reach.describe()}; {_FIX['asset' if asset else risk.kind]}",
                        target="safety",
                    )
                )
        for asset in mg.asset_file_def:
            name = asset.filename
            parts = Path(name).parts
            if os.path.isabs(name) or ".." in parts or "\\" in name:
                findings.append(
                    Finding(
                        "error",
                        f"asset {name!r}",
                        "its file name leaves assets/: loading resolves it outside the SavedModel; "
                        "fix: re-export with the asset copied under assets/",
                        target="safety",
                    )
                )
    lambdas = [layer.name for layer in desc.layers if layer.class_name == "Lambda"]
    if lambdas:
        findings.append(
            Finding(
                "warning",
                f"Keras layers {', '.join(lambdas[:5])}",
                "Lambda layers: tf.saved_model.load runs only the traced graph, but loading this folder with "
                "tf_keras.models.load_model runs their Python code; fix: load it with tf.saved_model.load",
                target="safety",
            )
        )
    return findings, counted


def keras_code_sites(desc: ModelDescription) -> list[CodeSite]:
    """The :func:`~tfmodelkit.formats.keras_config.code_sites` of a Keras file, from its description:
    each layer record's config, the ``.keras`` compile config, and a config nested too deeply."""
    sites = [
        site
        for layer in desc.layers
        for site in kc.entry_code_sites({"class_name": layer.class_name, "config": layer.config}, layer.name)
    ]
    cls = str(desc.metadata.get("class_name") or "unknown")
    compile_config = desc.metadata.get("compile_config")
    if compile_config:
        sites.extend(kc.code_sites({"class_name": cls, "compile_config": compile_config}))
    if kc.TOO_DEEP_WARNING in desc.warnings:
        sites.append(CodeSite("<model>", cls, "layers", False, kc.UNCHECKED))
    return list(dict.fromkeys(sites))


def _code_finding(site: CodeSite) -> Finding:
    subject = "model config" if site.layer == "<model>" else f"layer {site.layer!r} ({site.class_name})"
    if site.detail == kc.UNCHECKED:
        what = f"nests too deeply in {site.field!r} to be checked for Python code, which loading could run"
    elif site.bytecode:
        what = f"holds Python code ({site.detail}, marshalled bytecode) in {site.field!r} that loading with safe_mode=False runs"
    else:
        what = (
            f"holds Python code ({site.detail}, a function named in {site.field!r}) that loading with "
            "safe_mode=False looks up and runs"
        )
    fix = (
        "fix: replace it with a registered custom layer, or load the file only with --unsafe if you trust it"
    )
    return Finding("error", subject, f"{what}; {fix}", target="safety")


def _keras_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    findings = [_code_finding(site) for site in keras_code_sites(desc)]
    return findings, {"layers": len(desc.layers)}


def _tflite_safety(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    findings = []
    for name in desc.metadata.get("flex_ops", []):
        risk = RISKY_OPS.get(name.removeprefix("Flex"))
        if risk is None:
            continue
        severity = "warning" if risk.kind in ("debug", "remote") else "error"
        findings.append(
            Finding(
                severity,
                f"op {name}",
                f"Flex op that {risk.what} on the device running the model; {_FIX[risk.kind]}",
                target="safety",
            )
        )
    return findings, {"op kinds": len(desc.ops)}


# ----------------------------------------------------------------------------------------
# serving

#: dtypes TF Serving's REST API turns into and out of JSON (tensorflow_serving/util/
#: json_tensor.cc): numbers, bools and strings (binary ones as {"b64": "..."}).
REST_DTYPES = frozenset(
    {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool", "string"}
)
#: dtypes no client can send or receive: handles that only mean something inside the process.
UNSERVABLE_DTYPES = frozenset({"resource", "variant", "invalid"})


def _serving_layout(folder: Path) -> list[Finding]:
    if folder.name.isdigit():
        return []
    return [
        Finding(
            "warning",
            "layout",
            f"{folder.name}/ is not a numbered version folder: TF Serving loads <base>/<version>/saved_model.pb "
            f"and would find no version here; fix: mkdir -p base/1 && mv {folder}/* base/1/ "
            "then serve --model_base_path=base",
            target="serving",
        )
    ]


def _savedmodel_serving(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    import tfmodelkit

    folder = Path(desc.path)
    findings = _serving_layout(folder)
    wanted = tuple(sorted(t.strip() for t in (tags or "serve").split(",") if t.strip()))
    sigs = [s for s in desc.visible_signatures() if tuple(sorted(s.tags)) == wanted]
    tag_sets = sorted({",".join(sorted(s.tags)) for s in desc.signatures})
    if not any(tuple(sorted(mg["tags"])) == wanted for mg in desc.metadata.get("meta_graphs", [])):
        findings.append(
            Finding(
                "error",
                "meta graph",
                f"no meta graph tagged {','.join(wanted)} (tag sets: {'; '.join(tag_sets) or 'none'}); TF Serving "
                "loads the 'serve' tag set unless told otherwise; fix: re-export with tags=['serve'] or start "
                "tensorflow_model_server with --saved_model_tags=TAGS",
                target="serving",
            )
        )
    keys = [s.key for s in sigs]
    if "serving_default" not in keys:
        findings.append(
            Finding(
                "error",
                "signature 'serving_default'",
                f"missing (signatures: {', '.join(keys) or 'none'}); requests without signature_name use "
                "serving_default; fix: re-export with signatures={'serving_default': fn}, or name the "
                "signature in every request",
                target="serving",
            )
        )
    for sig in sigs:
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                subject = f"{role} {spec.name!r} of {sig.key!r}"
                if spec.dtype in UNSERVABLE_DTYPES:
                    findings.append(
                        Finding(
                            "error",
                            subject,
                            f"dtype {spec.dtype}: a handle that means nothing outside the serving process, "
                            "neither REST nor gRPC clients can carry it; fix: export a signature that takes "
                            "and returns plain tensors",
                            target="serving",
                        )
                    )
                elif spec.dtype not in REST_DTYPES:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            f"dtype {spec.dtype}: gRPC Predict carries it as a TensorProto, but the REST API's JSON "
                            "only carries float32/64, int8/16/32/64, uint8/32/64, bool and string; fix: tf.cast "
                            "to float32 (or a wider integer) in the exported signature",
                            target="serving",
                        )
                    )
                if spec.tensor and spec.tensor.startswith("sparse("):
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "a sparse (COO) tensor: TF Serving's Predict API feeds and returns dense tensors; "
                            "fix: export a signature with dense tensors",
                            target="serving",
                        )
                    )
                # Classify/Regress requests carry tf.Examples, not tensors: the shape is TF Serving's.
                example_api = (sig.method or "").endswith(("/classify", "/regress"))
                if role == "input" and spec.shape is None and not example_api:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "unknown rank: clients cannot tell which shape to send and TF Serving cannot "
                            "batch requests; fix: give the input signature a shape, e.g. "
                            "tf.TensorSpec([None, 3], tf.float32)",
                            target="serving",
                        )
                    )
    # "variables restorable": the integrity check, whose findings keep their own target name
    report = tfmodelkit.check(folder, format="savedmodel")
    fix = "fix: re-export the model (TF Serving restores these variables and assets at load)"
    findings.extend(
        Finding(
            f.severity,
            f.subject,
            f.message if "fix:" in f.message else f"{f.message}; {fix}",
            target="integrity",
        )
        for f in report.findings
        if f.subject != "folder"  # the base-folder note: the layout check speaks for it
    )
    return findings, {"signatures": len(sigs), **dict(report.checked)}


# ----------------------------------------------------------------------------------------
# tflite


def _tflite_op_finding(op: str, count: int, sigs: set[str] | None) -> Finding | None:
    if op in TFLITE_BUILTIN:
        return None
    where = f" in {', '.join(repr(s) for s in sorted(sigs))}" if sigs else ""
    subject = f"op {op} (x{count}{where})"
    risk = RISKY_OPS.get(op)
    if risk is not None and risk.kind in _TFLITE_NEVER_WHY:
        return Finding(
            "error", subject, f"{_TFLITE_NEVER_WHY[risk.kind]}; {_FIX[risk.kind]}", target="tflite"
        )
    if op.endswith("Dataset") or op in (
        "IteratorV2",
        "IteratorGetNext",
        "MakeIterator",
        "AnonymousIteratorV3",
    ):
        return Finding(
            "error", subject, f"{_TFLITE_NEVER_WHY['dataset']}; fix: feed the model tensors, not a dataset",
            target="tflite",
        )  # fmt: skip
    if op in _TFLITE_QUIRKS:
        return Finding("warning", subject, _TFLITE_QUIRKS[op], target="tflite")
    if op in TFLITE_FLEX:
        return Finding(
            "warning", subject,
            "no TFLite builtin: converts only as a Flex (select TF) op; fix: convert with --select-tf-ops and "
            "link the Flex delegate into the app, or replace the op",
            target="tflite",
        )  # fmt: skip
    return Finding(
        "warning", subject,
        "not in tfmodelkit's builtin table: the converter may lower it, or it needs Flex (select TF ops) if the "
        "Flex allowlist has it; fix: convert with modelconv savedmodel-to-tflite and read its op report",
        target="tflite",
    )  # fmt: skip


def _savedmodel_tflite(desc: ModelDescription, tags: str | None) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import savedmodel as sm

    folder = Path(desc.path)
    model = sm.load_proto(folder)
    mg = sm.select_meta_graph(model, tags)
    program = _Program(folder, mg)
    ops = program.serving_ops()
    findings = []
    if ops:
        census, scope = ops, "op kinds the signatures reach"
    else:
        census = program.ops_outside_saver()
        scope = "op kinds (all but saver and init, no signature)"
        findings.append(
            Finding(
                "warning",
                "signatures",
                "no serving signature: the TFLite converter converts signatures, and this model has none; "
                "fix: re-export with signatures={'serving_default': fn}",
                target="tflite",
            )
        )
    for op in sorted(census):
        count, sigs = census[op]
        finding = _tflite_op_finding(op, count, sigs)
        if finding is not None:
            findings.append(finding)
    if any(op.startswith("LookupTable") for op in census):
        # Tables filled from a vocabulary file in the init function: the converter keeps the
        # table ops but drops the file read (TFLite reads no files), and LiteRT then fails at
        # the first lookup ("hashtable need to be initialized"). Seen with tf 2.21/LiteRT 2.3.
        file_inits = sorted(
            {n.op for _, nodes, _ in program.bodies() for n in nodes if n.op in _FILE_TABLE_INITS}
        )
        if file_inits:
            findings.append(
                Finding(
                    "error",
                    f"op {file_inits[0]}",
                    "fills a lookup table from a file at load time; TFLite reads no files, so the converted "
                    "table stays empty and every lookup fails at run time; fix: build the table from "
                    "constants (tf.lookup.KeyValueTensorInitializer over the vocabulary as tensors) "
                    "before exporting",
                    target="tflite",
                )
            )
    return findings, {scope: len(census)}


#: Keras layers whose loop the converter keeps as TensorList ops unless the batch is fixed.
RNN_LAYERS = frozenset(
    {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
     "CuDNNLSTM", "CuDNNGRU", "LSTMV1", "GRUV1"}
)  # fmt: skip

_FILE_TABLE_INITS = frozenset(
    {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "InitializeTableFromDataset"}
)


def _tflite_tflite(desc: ModelDescription) -> tuple[list[Finding], dict[str, int]]:
    from ..formats import tflite as tfl

    findings = []
    flex = set(desc.metadata.get("flex_ops", []))
    for name in desc.metadata.get("custom_ops", []):
        if name in flex:
            findings.append(
                Finding(
                    "warning",
                    f"op {name}",
                    "a Flex (select TF) op: it runs only with the Flex delegate linked into the app "
                    "(tensorflow-lite-select-tf-ops on Android, the full TensorFlow pip package in Python); "
                    "fix: re-convert without --select-tf-ops if builtins can express it",
                    target="tflite",
                )
            )
        elif name in _TFLITE_STOCK_CUSTOM:
            findings.append(
                Finding(
                    "warning",
                    f"op {name}",
                    "a custom op LiteRT's default op resolver provides; fix: keep it in a selective build's op list",
                    target="tflite",
                )
            )
        else:
            findings.append(
                Finding(
                    "error",
                    f"op {name}",
                    "a custom op: LiteRT cannot run the model until the app registers a kernel for it; "
                    "fix: register the kernel (op resolver AddCustom), or re-convert without "
                    "allow_custom_ops (builtins, or Flex with --select-tf-ops)",
                    target="tflite",
                )
            )
    for sig in desc.signatures:
        for role, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs:
                subject = f"{role} {spec.name!r} of {sig.key!r}"
                dynamic = [i for i, d in enumerate(spec.shape or ()) if d is None and i > 0]
                if dynamic:
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            f"dynamic dimension{'s' if len(dynamic) > 1 else ''} {dynamic} besides the batch: "
                            "GPU/NNAPI delegates and TFLite Micro need static shapes; fix: fix the dims in the "
                            "input signature before conversion, or call resize_tensor_input before "
                            "allocate_tensors",
                            target="tflite",
                        )
                    )
                if spec.dtype == "string":
                    findings.append(
                        Finding(
                            "warning",
                            subject,
                            "a string tensor: delegates (GPU, NNAPI, XNNPACK) and TFLite Micro do not take "
                            "strings; fix: tokenize or hash outside the model and feed numbers",
                            target="tflite",
                        )
                    )
    model = tfl.load_model(Path(desc.path))
    checked_quant = 0
    for i, sg in enumerate(model.subgraphs):
        for t in sg.tensors:
            if t.quant is None:
                continue
            checked_quant += 1
            qd = t.quant.quantized_dimension
            known = (
                t.shape_signature is None
                or not (0 <= qd < len(t.shape_signature))
                or t.shape_signature[qd] >= 0
            )
            for severity, message in tfl.quant_problems(t, constant=known):
                findings.append(
                    Finding(
                        severity,
                        tfl.tensor_subject(i, t),
                        f"{message}; fix: re-quantize the model (the converter never writes this: the file was "
                        "edited or damaged)",
                        target="tflite",
                    )
                )
    return findings, {"op kinds": len(desc.ops), "quantized tensors": checked_quant}


# ----------------------------------------------------------------------------------------
# entry points


def parse_targets(values: Iterable[str] | str) -> tuple[str, ...]:
    """Targets from repeated and comma-separated values, in the order given, without repeats."""
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip().lower()
            if not name:
                continue
            if name not in TARGETS:
                raise UserError(
                    f"--target {item.strip()!r}: choose from {', '.join(TARGETS)} (comma list or repeated)"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise UserError(f"--target: give at least one of {', '.join(TARGETS)}")
    return tuple(out)


_CONVERT_HINT = {
    "checkpoint": "a checkpoint holds weights only; build a SavedModel with modelconv ckpt-to-savedmodel",
    "keras_h5": "convert with modelconv h5-to-savedmodel",
    "keras_zip": "convert with modelconv keras-to-savedmodel",
    "tflite": "keep the SavedModel it was converted from (TF Serving's TFLite support is experimental)",
}


def _run_target(
    desc: ModelDescription, target: str, tags: str | None
) -> tuple[list[Finding], dict[str, int]]:
    fmt = desc.format
    if target == "serving":
        if fmt != "savedmodel":
            return [
                Finding(
                    "error",
                    "format",
                    f"TF Serving serves SavedModels, this is a {fmt} file; fix: {_CONVERT_HINT.get(fmt, 'convert it with modelconv')}",
                    target="serving",
                )  # fmt: skip
            ], {}
        return _savedmodel_serving(desc, tags)
    if target == "tflite":
        if fmt == "savedmodel":
            return _savedmodel_tflite(desc, tags)
        if fmt == "tflite":
            return _tflite_tflite(desc)
        if fmt == "checkpoint":
            return [
                Finding(
                    "error",
                    "format",
                    "a checkpoint holds weights only, there is no graph to convert; fix: build a SavedModel with "
                    "modelconv ckpt-to-savedmodel, then convert or lint that",
                    target="tflite",
                )  # fmt: skip
            ], {}
        rnn = [layer for layer in desc.layers if layer.class_name in RNN_LAYERS]
        findings = [
            Finding(
                "warning",
                "format",
                "a Keras file has no op census to check; fix: run modelconv convert MODEL out.tflite (it reports "
                "ops that need Flex), or lint the SavedModel modelconv keras-to-savedmodel writes",
                target="tflite",
            )  # fmt: skip
        ]
        if rnn:
            names = ", ".join(f"{layer.name} ({layer.class_name})" for layer in rnn[:3]) + (
                ", ..." if len(rnn) > 3 else ""
            )
            findings.append(
                Finding(
                    "warning",
                    f"layers {names}",
                    "recurrent layers become TFLite builtins only with a fixed batch size; fix: nothing to do "
                    "with modelconv convert MODEL out.tflite (it fixes the batch at 1; --batch-size N for "
                    "another), or keep a dynamic batch with --select-tf-ops (Flex)",
                    target="tflite",
                )
            )
        return findings, {"layers": len(desc.layers)}
    if fmt == "savedmodel":
        return _savedmodel_safety(desc)
    if fmt in ("keras_h5", "keras_zip"):
        return _keras_safety(desc)
    if fmt == "tflite":
        return _tflite_safety(desc)
    return [], {"tensors": len(desc.weights)}  # a checkpoint is data: nothing in it runs


def lint(
    desc_or_path: ModelDescription | str | os.PathLike[str],
    targets: Sequence[str] | str,
    *,
    format: str | None = None,
    tags: str | None = None,
) -> CheckReport:
    """Deploy-readiness and safety findings for ``targets`` (``serving``, ``tflite``, ``safety``).

    ``desc_or_path`` is a :class:`ModelDescription` or a path (read with ``format``/``tags``).
    The report is ``ok`` when no finding is an error.
    """
    chosen = parse_targets(targets)
    if isinstance(desc_or_path, ModelDescription):
        desc = desc_or_path
    else:
        from ..formats import read

        options = {"tags": tags} if tags else {}
        desc = read(desc_or_path, format=format, **options)
    findings: list[Finding] = []
    checked: dict[str, int] = {}
    for target in chosen:
        found, counted = _run_target(desc, target, tags)
        findings.extend(found)
        for key, value in counted.items():
            checked[key] = max(checked.get(key, 0), value)
    return CheckReport(desc.path, desc.format, checked, tuple(findings), targets=chosen)


def safety_errors(
    path: str | os.PathLike[str] | ModelDescription, *, format: str | None = None
) -> list[Finding]:
    """The safety findings of ``path`` that are errors (what conversions refuse to execute)."""
    report = lint(path, ("safety",), format=format)
    return [f for f in report.findings if f.severity == "error"]


def require_safe(path: str | os.PathLike[str], *, format: str | None = None) -> None:
    """Raise :class:`UserError` when ``path`` holds safety errors (conversions call this before running it)."""
    errors = safety_errors(path, format=format)
    if not errors:
        return
    listed = "; ".join(f"{f.subject}: {f.message.split(';')[0]}" for f in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    raise UserError(
        f"{path}: refusing to run a model with safety errors: {listed}{more}; "
        f"`modelinspect check {path} --target safety` lists them; pass --unsafe only if you trust this model"
    )
