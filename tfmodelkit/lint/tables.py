"""The op tables the lint targets judge by: what becomes a TFLite builtin, what needs Flex,
what reaches outside the model, and the dtypes TF Serving's REST API carries.

They are this project's own reading of TensorFlow 2.21's converter and kernels (checked by
converting single ops with TensorFlow 2.21); the converter stays the final word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
TFLITE_NEVER_WHY = {
    "python": "calls Python, which LiteRT does not have (no builtin, no Flex kernel)",
    "read": "reads files: a .tflite carries no assets, and the path frozen into it is the exporting machine's",
    "write": "writes files on the device; summaries and dataset writers have no Flex kernel",
    "checkpoint": "saves or restores a checkpoint inside a served function",
    "network": "talks to other processes over the network (no TFLite builtin, no Flex kernel)",
    "dataset": "is a tf.data op: LiteRT runs no input pipelines",
}

#: Ops the converter has trouble with even though a kernel exists somewhere.
TFLITE_QUIRKS = {
    "TRTEngineOp": "a TF-TRT engine: it runs only in TensorFlow with TensorRT (no builtin, no Flex kernel); "
    "fix: convert the SavedModel from before TF-TRT conversion",
    "Case": "tf.switch_case: TF 2.21's converter lowers it to IF with an int32 condition and fails, "
    "with or without Flex; fix: use tf.cond (nested for more branches)",
    "StatelessCase": "tf.switch_case: TF 2.21's converter lowers it to IF with an int32 condition and "
    "fails, with or without Flex; fix: use tf.cond (nested for more branches)",
}

#: Custom ops stock LiteRT (ai-edge-litert 2.3's Python ``Interpreter``, default options) runs
#: with no app code, and how. ``kernel``: its default op resolver registers a kernel. ``xnnpack``:
#: no kernel is registered, but the XNNPACK delegate LiteRT applies by default on CPU claims
#: these MediaPipe ops, on float32 tensors only (with the default delegates off, or on int8
#: tensors, LiteRT stops at "unresolved custom op"). Found by building a one-op model for every
#: name in LiteRT's shared libraries; tests/lint/test_tables.py proves each entry, and that
#: other names stay unresolved, against the installed LiteRT.
TFLITE_STOCK_CUSTOM: Mapping[str, str] = {
    "AudioSpectrogram": "kernel",
    "Mfcc": "kernel",
    "NumericVerify": "kernel",
    "TFLite_Detection_PostProcess": "kernel",
    "Convolution2DTransposeBias": "xnnpack",
    "MaxPoolingWithArgmax2D": "xnnpack",
    "MaxUnpooling2D": "xnnpack",
}


@dataclass(frozen=True)
class Risk:
    kind: str  # checkpoint | read | write | python | network | remote | debug | dataset
    what: str
    #: Index of the input that names the file, for ops that may read the model's own assets.
    path_input: int | None = None


def _risks() -> dict[str, Risk]:
    out: dict[str, Risk] = {}

    def add(kind: str, what: str, names: Iterable[str], path_input: int | None = None) -> None:
        for name in names:
            out[name] = Risk(kind, what, path_input)

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


RISKY_OPS: Mapping[str, Risk] = _risks()

FIX = {
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


#: Keras layers whose loop the converter keeps as TensorList ops unless the batch is fixed.
RNN_LAYERS = frozenset(
    {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
     "CuDNNLSTM", "CuDNNGRU", "LSTMV1", "GRUV1"}
)  # fmt: skip

FILE_TABLE_INITS = frozenset(
    {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "InitializeTableFromDataset"}
)


#: dtypes TF Serving's REST API turns into and out of JSON (tensorflow_serving/util/
#: json_tensor.cc): numbers, bools and strings (binary ones as {"b64": "..."}).
REST_DTYPES = frozenset(
    {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool", "string"}
)
#: dtypes no client can send or receive: handles that only mean something inside the process.
UNSERVABLE_DTYPES = frozenset({"resource", "variant", "invalid"})
