"""The ``tfjs`` target: what stands between a model and TF.js, read before a conversion tries.

For Keras files (and TF.js layers models): every layer class must be one tfjs-layers (4.x)
implements, the model Sequential or functional (not subclassed), its dtype policy float32,
no Python code (``Lambda``). For TF.js graph models: every op must be one tfjs-converter
executes. For SavedModels, ops that would survive freezing and that TF.js lacks (warnings: the
conversion itself checks the frozen signature's ops and refuses naming them).
"""

from __future__ import annotations

from ..description import Finding, ModelDescription
from .graph import TF1_GRAPHS, TF1_VARIABLE_OPS, tf1_program

#: Layer classes tfjs-layers 4.x deserializes (``tf.layers.*`` registered names).
TFJS_LAYERS = frozenset(
    """Activation Add AlphaDropout Average AveragePooling1D AveragePooling2D AveragePooling3D
    AvgPool1D AvgPool2D AvgPool3D BatchNormalization Bidirectional CategoryEncoding CenterCrop
    Concatenate Conv1D Conv2D Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM2D ConvLSTM2DCell
    Cropping2D Dense DepthwiseConv2D Dot Dropout ELU Embedding Flatten GaussianDropout
    GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D GlobalAvgPool1D GlobalAvgPool2D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPool1D GlobalMaxPool2D GRU GRUCell InputLayer
    LayerNormalization LeakyReLU LSTM LSTMCell Masking Maximum MaxPooling1D MaxPooling2D
    MaxPooling3D MaxPool1D MaxPool2D MaxPool3D Minimum Multiply Permute PReLU RandomWidth ReLU
    Rescaling Reshape Resizing RepeatVector RNN SeparableConv2D SimpleRNN SimpleRNNCell Softmax
    SpatialDropout1D StackedRNNCells Subtract ThresholdedReLU TimeDistributed UpSampling2D
    ZeroPadding2D Sequential Functional Model""".split()
)

#: Ops the TF.js graph executor runs (tfjs-converter 4.x op mappers), for graph models.
TFJS_OPS = frozenset(
    """Abs Acos Acosh Add AddN AddV2 All Any ArgMax ArgMin Asin Asinh Atan Atan2 Atanh AvgPool
    AvgPool3D BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchToSpaceND Bincount BiasAdd BroadcastArgs
    BroadcastTo Cast Ceil ClipByValue Complex ComplexAbs Concat ConcatV2 Const Conv1D Conv2D
    Conv2DBackpropInput Conv3D Cos Cosh CropAndResize Cumprod Cumsum DenseBincount DepthToSpace
    DepthwiseConv2d DepthwiseConv2dNative Dilation2D Div DivNoNan Einsum Elu Enter Equal Erf Exit Exp
    ExpandDims Expm1 FFT Fill FloorDiv Floor FloorMod FusedBatchNorm FusedBatchNormV2
    FusedBatchNormV3 FusedDepthwiseConv2dNative Gather GatherNd GatherV2 Greater GreaterEqual IFFT
    IRFFT Identity IdentityN If Imag IsFinite IsInf IsNan LeakyRelu Less LessEqual LinSpace Log
    Log1p LogSoftmax LogicalAnd LogicalNot LogicalOr LoopCond LRN MatMul Max MaxPool MaxPool3D
    MaxPoolWithArgmax Maximum Mean Merge Min Minimum MirrorPad Mod Mul Multinomial Neg NextIteration
    NoOp NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5 NotEqual
    OneHot Ones OnesLike Pack Pad PadV2 Placeholder PlaceholderWithDefault Pow Prelu Prod
    RandomStandardNormal RandomUniform RandomUniformInt Range Rank Real RealDiv Reciprocal Relu Relu6
    Reshape ResizeBilinear ResizeNearestNeighbor Reverse ReverseV2 RFFT Round Rsqrt Select SelectV2
    Selu Shape ShapeN Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToBatchND
    SparseFillEmptyRows SparseReshape SparseSegmentMean SparseSegmentSum SparseToDense Split SplitV
    Sqrt Square SquaredDifference Squeeze StatelessIf StatelessWhile StopGradient StridedSlice
    StringNGrams StringSplit StringToHashBucketFast Sub Sum Switch Tan Tanh TensorArrayV3
    TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3 TensorArrayScatterV3 TensorArrayConcatV3
    TensorArraySplitV3 TensorArraySizeV3 TensorArrayCloseV3 TensorListSetItem TensorListGetItem
    TensorListReserve TensorListFromTensor TensorListStack TensorListGather TensorListScatter
    TensorListScatterV2 TensorListConcat TensorListConcatV2 TensorListSplit TensorListLength
    TensorListPopBack TensorListPushBack TensorListResize Tile TopKV2 Transpose Unique UniqueV2 Unpack
    Where While ZerosLike _FusedConv2D _FusedMatMul Swish Sigmoid HashTable HashTableV2
    LookupTableImport LookupTableImportV2 LookupTableFind LookupTableFindV2 LookupTableSize
    LookupTableSizeV2 EnsureShape Erfc Dilation2D""".split()
)

_KERAS = ("keras_h5", "keras_zip")
#: SavedModel ops that freezing a signature removes (variables, calls, the saver, bookkeeping).
_FROZEN_AWAY = frozenset(
    """VarHandleOp ReadVariableOp AssignVariableOp StatefulPartitionedCall PartitionedCall SaveV2
    RestoreV2 MergeV2Checkpoints ShardedFilename StringJoin StaticRegexFullMatch DisableCopyOnRead
    VarIsInitializedOp AssignAddVariableOp AssignSubVariableOp""".split()
)
#: Keras 1 class names the loaders upgrade to Keras 2 ones before a conversion writes them.
KERAS1_NAMES = {
    "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "Convolution3D": "Conv3D",
    "Deconvolution2D": "Conv2DTranspose", "AtrousConvolution1D": "Conv1D", "AtrousConvolution2D": "Conv2D",
    "SeparableConvolution2D": "SeparableConv2D", "Merge": "Concatenate",
}  # fmt: skip


def _finding(severity: str, subject: str, message: str) -> Finding:
    return Finding(severity, subject, message, target="tfjs")


def _layers(desc: ModelDescription) -> list[Finding]:
    found = []
    cls = desc.metadata.get("class_name") or desc.metadata.get("model_class")
    if isinstance(cls, str) and cls not in ("Sequential", "Functional", "Model"):
        found.append(_finding("error", "model", f"a {cls} model (subclassed): TF.js layers models are Sequential or functional; "
                              "fix: rebuild it with the functional API, or export a SavedModel"))
    known = [layer for layer in desc.layers if layer.class_name != "unknown"]
    for layer in known:
        where = f"{layer.name} ({layer.class_name})"
        if layer.code is not None or layer.class_name == "Lambda":
            found.append(_finding("error", where, "holds Python code, which TF.js cannot run; fix: replace it with "
                                  "built-in layers (or a custom TF.js layer registered in JavaScript)"))
        elif KERAS1_NAMES.get(layer.class_name, layer.class_name) not in TFJS_LAYERS:
            found.append(_finding("error", where, f"{layer.class_name} is not a layer tfjs-layers has; fix: replace it "
                                  "with layers TF.js has, register a custom layer of that name in JavaScript, or convert with --graph "
                                  "(a graph model needs only TF.js's ops)"))
        policy = layer.config.get("dtype") if isinstance(layer.config, dict) else None
        name = (policy.get("config") or {}).get("name") if isinstance(policy, dict) else policy
        if isinstance(name, str) and name.startswith("mixed"):
            found.append(_finding("error", where, f"dtype policy {name}: TF.js layers compute in float32; fix: "
                                  "set the policy to float32 and save again"))
    if not known:  # a weights-only file lists its layers by name, classes unknown
        found.append(_finding("error", "model", "no architecture in the file (weights only); fix: save the whole model"))
    return found


def _ops(desc: ModelDescription) -> list[Finding]:
    return [
        _finding("error", f"op {op}", f"used {n} time{'s' if n != 1 else ''}; the TF.js graph executor has no {op}; "
                 "fix: build the model from ops TF.js has")
        for op, n in sorted(desc.ops.items()) if op not in TFJS_OPS
    ]  # fmt: skip


def run(desc: ModelDescription, _tags: str | None = None) -> tuple[list[Finding], dict[str, int]]:
    if desc.format in _KERAS or (desc.format == "tfjs" and desc.layers):
        return _layers(desc), {"layers": len(desc.layers)}
    if desc.format == "tfjs":
        return _ops(desc), {"ops": sum(desc.ops.values())}
    if desc.format == "savedmodel":
        # Freezing removes the variable, call and saver ops; what is left must be TF.js's.
        left = {op: n for op, n in desc.ops.items() if op not in _FROZEN_AWAY and op not in TFJS_OPS}
        return [
            _finding("warning", f"op {op}", f"used {n} time{'s' if n != 1 else ''}; the TF.js graph executor has no "
                     f"{op}: a conversion fails if the frozen signature still needs it; fix: build the model from ops TF.js has")
            for op, n in sorted(left.items())
        ], {"ops": sum(desc.ops.values())}  # fmt: skip
    if desc.format in TF1_GRAPHS:  # `convert` freezes its signature through a SavedModel
        program = tf1_program(desc)
        reached = {op: n for op, (n, _) in program.serving_ops().items()}
        left = {op: n for op, n in reached.items() if op not in _FROZEN_AWAY | TF1_VARIABLE_OPS and op not in TFJS_OPS}
        return [
            _finding("error", f"op {op}", f"used {n} time{'s' if n != 1 else ''} by the signature; the TF.js graph "
                     f"executor has no {op}; fix: build the model from ops TF.js has")
            for op, n in sorted(left.items())
        ], {"ops": sum(reached.values())}  # fmt: skip
    return [_finding("error", "model", f"a {desc.format}: TF.js models are made from Keras .h5/.keras files, "
                     "SavedModels and TF1 graphs here; fix: convert its Keras source or its graph")], {}
