"""SavedModel -> TFLite with ``tf.lite.TFLiteConverter.from_saved_model``, verified with LiteRT.

Quantization modes: ``none`` (float32), ``dynamic`` (int8 weights, float activations),
``float16`` (float16 weights) and ``int8`` (full integer; float32 inputs and outputs unless
``io_dtype`` asks for int8 or uint8 ones; calibrated on ``--calibration-data``, or on generated
inputs with ``allow_generated_calibration``: see :mod:`.calibration`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TFModelKitError, UnsupportedError, UserError
from ..formats import read
from ..formats import savedmodel as savedmodel_format
from ..lint import require_safe
from ..loaders.savedmodel import load_savedmodel, savedmodel_load_error
from ..loaders.tf import import_tensorflow, quiet_fds
from ..options import checked_options
from ..verify import DEFAULT_SAMPLES, SavedModelRunner, TFLiteRunner
from . import calibration as calib
from . import isolate, selective
from .base import ConversionReport, Progress, ProgressSink, VerifyOptions, run_verification, staged_output

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")


class TensorListError(UnsupportedError):
    """RNN layers traced with a dynamic batch: TFLite builtins need their batch size fixed."""

def _signature_keys(src: Path, signature: str | None, all_signatures: bool) -> list[str]:
    desc = read(src, format="savedmodel")
    keys = [s.key for s in desc.visible_signatures() if "serve" in s.tags]
    if not keys:
        raise UserError(f"{src}: no serving signature to convert (signatures: none with tag 'serve')")
    if all_signatures:
        return keys
    wanted = signature or "serving_default"
    if wanted not in keys:
        raise UserError(f"{src}: no signature {wanted!r}; it has {', '.join(keys)} (use --signature KEY)")
    return [wanted]


_UNSUPPORTED_OP = re.compile(r"'tf\.([A-Z][A-Za-z0-9_]*)'")


def _keeps_variables(flatbuffer: bytes) -> bool:
    """Whether a converted model still reads resource variables (they were not frozen)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(flatbuffer)
        f.flush()
        ops = read(f.name, format="tflite").ops
    return "VAR_HANDLE" in ops or "READ_VARIABLE" in ops


def _concrete_converter(tf: Any, original: Any, loaded: Any, keys: list[str]) -> Any:
    """The same conversion settings on the loaded model's signature functions."""
    functions = [loaded.signatures[k] for k in keys]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, loaded)
    for attr in ("optimizations", "representative_dataset", "inference_input_type", "inference_output_type"):
        setattr(converter, attr, getattr(original, attr))
    converter.target_spec.supported_ops = original.target_spec.supported_ops
    converter.target_spec.supported_types = original.target_spec.supported_types
    return converter


def _v1_convert(tf: Any, original: Any, src: Path, key: str, tags: set[str] | None) -> bytes:
    """Convert signature ``key`` of a TF1 graph model with TensorFlow 1's converter and the
    settings of ``original``: the model is loaded in a session (its assets and init ops run as
    TF Serving would run them) and frozen there. The TF2 converter cannot lift such a model's
    reference variables, and TF1's ``from_saved_model`` refuses any model with assets."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, sorted(tags or {"serve"}), str(src))
        sig = meta_graph.signature_def[key]
        names = sorted(sig.inputs)
        inputs = [graph.get_tensor_by_name(sig.inputs[k].name) for k in names]
        outputs = [graph.get_tensor_by_name(sig.outputs[k].name) for k in sorted(sig.outputs)]
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(session, inputs, outputs)
        for attr in ("optimizations", "inference_input_type", "inference_output_type"):
            setattr(converter, attr, getattr(original, attr))
        batches = original.representative_dataset
        if batches is not None:
            # TF1's converter takes each calibration batch as a list, in its inputs' order.
            def positional() -> Any:
                for batch in batches():
                    yield [batch[k] for k in names]

            converter.representative_dataset = positional
        converter.target_spec.supported_ops = original.target_spec.supported_ops
        converter.target_spec.supported_types = original.target_spec.supported_types
        with quiet_fds(replay=False):
            flatbuffer = bytes(converter.convert())
    return _with_signature(flatbuffer, key, sig)


def _with_signature(flatbuffer: bytes, key: str, sig: Any) -> bytes:
    """``flatbuffer`` with a SignatureDef ``key`` mapping the SavedModel signature's input and
    output names to the subgraph's tensors, which TF1's converter names after the graph
    tensors (``x`` for ``x:0``). Unchanged when a tensor cannot be found by its name."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    if model.signatureDefs or not model.subgraphs:
        return flatbuffer
    graph = model.subgraphs[0]
    index = {
        (t.name.decode() if isinstance(t.name, bytes) else t.name): i for i, t in enumerate(graph.tensors or [])
    }

    def maps(infos: Any, allowed: Any) -> list[Any] | None:
        out = []
        allowed = set(allowed)
        for name in sorted(infos):
            tensor = infos[name].name
            i = index.get(tensor.removesuffix(":0")) if tensor.endswith(":0") else None
            if i is None or i not in allowed:
                return None
            out.append(schema.TensorMapT(name=name, tensorIndex=i))
        return out

    inputs, outputs = maps(sig.inputs, graph.inputs), maps(sig.outputs, graph.outputs)
    if inputs is None or outputs is None:
        return flatbuffer
    model.signatureDefs = [schema.SignatureDefT(inputs=inputs, outputs=outputs, signatureKey=key, subgraphIndex=0)]
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _failed_ops(message: str) -> list[str]:
    """Op names from the converter's 'ops are not supported' error (none for other errors,
    which can mention ops too: 'tf.VariableV2' op expects all users to be 'tf.Identity')."""
    if "neither a custom op nor a flex op" not in message and "not supported by the native TFLite" not in message:
        return []
    return sorted(set(_UNSUPPORTED_OP.findall(message)))


@dataclass
class ConvertJob:
    """What the child needs: the model, the settings, where the flatbuffer goes, how to verify."""

    source: str  # the source as the user named it, for messages
    src_path: Path
    keys: list[str]
    tags: set[str] | None
    quantize: str
    select_tf_ops: bool
    calibration_data: str | None
    verify: VerifyOptions
    source_label: str | None
    quiet: bool  # the caller takes no progress lines
    io_dtype: str = "float32"  # int8 models: their inputs' and outputs' type
    allow_generated_calibration: bool = False
    stage: str = ""  # the staged output: the child writes the flatbuffer there
    destination: str = ""  # what the staged output becomes, for the reports
    spawned: float = 0.0  # time.time() when the child was started: its start-up counts as loading
    keep_float: selective.KeepFloat | None = None  # --keep-float: layers left in float


#: What runs in each stage of the child, for a crash message.
_IN_STAGE = {
    "load": "TensorFlow's import",
    "convert": "TensorFlow's TFLite converter",
    "verify": "the verification (TensorFlow and LiteRT running the models)",
}
_INT8_CRASH_HINT = (
    "TF 2.21's converter is known to crash in int8 calibration of RNN models (LSTM, GRU, SimpleRNN); "
    "--quantize dynamic or float16 need no calibration"
)


class _ChildSteps(Progress):
    """The child's Progress: lines go to the parent, and each stage is announced to it first,
    so that a crash names the stage it happened in."""

    def __init__(self, report: ConversionReport, job: ConvertJob, channel: isolate.ChildProgress) -> None:
        super().__init__(report, None if job.quiet else channel.say)
        self.channel, self.int8 = channel, job.quantize == "int8"

    @contextmanager
    def stage(self, name: str, text: str) -> Iterator[None]:
        hint = _INT8_CRASH_HINT if name == "convert" and self.int8 else ""
        self.channel.stage(name, _IN_STAGE.get(name, "the child process"), hint)
        with super().stage(name, text):
            yield


def warm_up() -> None:
    """What a converter child started ahead imports while it waits for its job."""
    import_tensorflow("converting to TFLite")


def converter_standby() -> Any:
    """A context in which the converter's child is started ahead (:func:`isolate.standby`):
    a route that makes the SavedModel first lets the child import TensorFlow meanwhile."""
    return isolate.standby(f"{__name__}:warm_up")


def convert_in_child(job: ConvertJob, channel: isolate.ChildProgress) -> ConversionReport:
    """Everything of the conversion that runs TensorFlow or LiteRT, in the child process (their
    native code can kill the process): the converter with calibration and every converter
    path, writing the flatbuffer to ``job.stage``, then the verification. Returns the report of
    these stages (timings, details, verification, warnings, ok) for the parent to merge."""
    report = ConversionReport(job.source, "savedmodel", job.destination, ["savedmodel", "tflite"])
    report.timings["load"] = round(max(0.0, time.time() - job.spawned), 4)  # the child's start-up
    steps = _ChildSteps(report, job, channel)
    with steps.stage("load", "importing TensorFlow's converter"):
        tf = import_tensorflow("converting to TFLite")
    calibration = None
    with steps.stage("convert", f"converting {', '.join(job.keys)} (quantize: {job.quantize})"):
        converter = _converter(tf, job.src_path, job.keys, job.tags, job.quantize, job.select_tf_ops, job.io_dtype)
        if job.quantize == "int8":
            calibration = _calibrate(job, steps)
            converter.representative_dataset = calibration.dataset
            report.calibration = calibration.as_dict()
        if job.keep_float is not None:
            flatbuffer = selective.quantize_selectively(
                tf, converter, lambda c: _concrete_converter(tf, c, _loaded(job), job.keys), job.keep_float,
                source=job.source, src_path=job.src_path, key=job.keys[0], verify=job.verify, progress=steps,
                details=report.details, held_out=calibration.held_out if calibration is not None else None,
            )  # fmt: skip
        else:
            flatbuffer = _convert(
                tf, converter, job.source, job.src_path, job.keys, job.tags, job.select_tf_ops, report.details
            )
        Path(job.stage).write_bytes(flatbuffer)
    signatureless, flex = _describe_result(Path(job.stage), report, steps)
    if job.verify.enabled and flex:
        report.warnings.append("verification skipped: LiteRT cannot run Flex ops without the Flex delegate")
    elif job.verify.enabled:
        kind = "float32" if job.quantize == "none" else job.quantize
        for key in job.keys:
            with steps.stage("verify", f"loading {key} in LiteRT"):
                # Safety was checked at the start (or --unsafe).
                ref = SavedModelRunner(job.src_path, signature=key, safe_mode=False)
                if job.source_label:
                    ref.shown = job.source_label
                cand = TFLiteRunner(Path(job.stage), signature=None if signatureless else key)
                cand.shown = job.destination
            held = calibration.held_out if calibration is not None and key == job.keys[0] else None
            result = run_verification(
                ref, cand, job.verify, kind, steps, f"SavedModel vs TFLite [{key}]",
                feed=held, inputs_source="calibration" if held is not None else None,
                calibration=report.calibration,
            )  # fmt: skip
            report.ok = report.ok and result.ok
    return report


def _loaded(job: ConvertJob) -> Any:
    return load_savedmodel(job.src_path, sorted(job.tags) if job.tags else None, "converting to TFLite")


def _keep_float(src_path: Path, keys: list[str], quantize: str, keep_float: str | Sequence[str] | None,
                max_float_layers: int | None, source_model: str | None) -> selective.KeepFloat | None:  # fmt: skip
    """``--keep-float`` checked against the other options, with the Keras model's layer names
    (the source the SavedModel was made from, or a SavedModel Keras 2 / tf_keras wrote)."""
    if keep_float is None and max_float_layers is None:
        return None
    model = source_model or src_path
    try:
        layers = [layer.name for layer in read(model).layers]
    except TFModelKitError:
        layers = []
    request = selective.check_request(quantize, keep_float, max_float_layers, layers)
    if request is not None and len(keys) > 1:
        raise UserError(f"--keep-float converts one signature; choose one of {', '.join(keys)} with --signature")
    if request is not None and layers:
        request.reference = str(model)
    return request


def _calibrate(job: ConvertJob, steps: Progress) -> calib.Calibration:
    """The calibration of ``job``; held-out samples for verification when it gives no inputs."""
    hold_out = 0 if job.verify.inputs or not job.verify.enabled else (job.verify.samples or DEFAULT_SAMPLES)
    calibration = calib.make_calibration(
        job.src_path, job.keys[0], job.calibration_data, seed=job.verify.seed, hold_out=hold_out,
        ranges=job.verify.ranges,
    )  # fmt: skip
    if calibration.source == "generated":
        steps.warn(calib.generated_warning(calibration))
    elif calibration.held_out is not None:
        held = calibration.as_dict()["held_out"]
        steps.say(
            f"[convert] calibrating on {calibration.samples} samples of {job.calibration_data}; "
            f"{held} held out for verification"
        )
    elif hold_out:
        steps.warn(
            f"{job.calibration_data}: {calibration.samples} calibration samples, too few to hold any out "
            f"(one in {calib.HELD_OUT_SHARE}): verification runs on generated inputs (pass --inputs to choose them)"
        )
    return calibration


@checked_options
def savedmodel_to_tflite(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    signature: str | None = None,
    all_signatures: bool = False,
    quantize: str = "none",
    calibration_data: str | None = None,
    allow_generated_calibration: bool = False,
    io_dtype: str = "float32",
    select_tf_ops: bool = False,
    tags: str | None = None,
    unsafe: bool = False,
    verify: VerifyOptions | None = None,
    overwrite: bool = False,
    keep_failed: bool = False,
    progress: ProgressSink | None = None,
    source_label: str | None = None,
    keep_float: str | Sequence[str] | None = None,
    max_float_layers: int | None = None,
    source_model: str | None = None,
) -> ConversionReport:
    """Convert a SavedModel to ``.tflite`` and verify each converted signature with LiteRT.

    A model with safety errors (ops reaching files, network or Python) is refused unless
    ``unsafe``. ``source_label`` names the source in reports when ``src`` is a temporary folder.
    ``keep_float`` (layer names, or ``"auto"`` with at most ``max_float_layers``) leaves layers
    of an int8 model in float (:mod:`.selective`); ``source_model`` is the Keras model the
    SavedModel was made from (its layer names are what ``keep_float`` takes).
    ``quantize="int8"`` needs ``calibration_data`` (verification then runs on held-out samples of
    it unless ``verify.inputs`` is given) or ``allow_generated_calibration``; ``io_dtype`` keeps
    its inputs and outputs float32 (the default) or makes them int8/uint8.
    TensorFlow and LiteRT run in a child process (:func:`convert_in_child`): if they crash
    there, the conversion fails with :class:`~tfmodelkit.convert.isolate.ChildCrashed` and
    leaves nothing behind.
    """
    if quantize not in QUANTIZE_MODES:
        raise UserError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE_MODES)}")
    calib.check_options(quantize, calibration_data, allow_generated_calibration, io_dtype)
    src_path = savedmodel_format.resolve(src).folder
    if not unsafe:  # conversion loads the model and verification runs it
        require_safe(src_path, format="savedmodel")
    report = ConversionReport(str(src), "savedmodel", str(dst), ["savedmodel", "tflite"])
    steps = Progress(report, progress)
    keys = _signature_keys(src_path, signature, all_signatures)
    report.details.update(signatures=keys, quantize=quantize, select_tf_ops=select_tf_ops)
    if quantize == "int8":
        report.details["io_dtype"] = io_dtype
    tag_set = {t.strip() for t in tags.split(",")} if tags else None
    job = ConvertJob(
        str(src), src_path, keys, tag_set, quantize, select_tf_ops, calibration_data,
        verify or VerifyOptions(), source_label, steps.quiet, io_dtype, allow_generated_calibration,
        keep_float=_keep_float(src_path, keys, quantize, keep_float, max_float_layers, source_model),
    )  # fmt: skip
    with staged_output(dst, overwrite) as stage:
        job.stage, job.destination, job.spawned = str(stage.path), str(stage.destination), time.time()
        what = _IN_STAGE["load"]
        with isolate.spawn(f"{__name__}:convert_in_child", job, stage="load", what=what, subject=src) as child:
            done: ConversionReport = child.result(steps)
        report.timings.update(done.timings)
        report.details.update(done.details)
        report.verification += done.verification
        report.warnings += done.warnings
        report.calibration = done.calibration
        report.ok = done.ok
        if report.ok or keep_failed:
            stage.commit()
            report.kept_failed = not report.ok
    return report


def _converter(
    tf: Any, src_path: Path, keys: list[str], tag_set: set[str] | None, quantize: str, select_tf_ops: bool,
    io_dtype: str = "float32",
) -> Any:  # fmt: skip
    """``TFLiteConverter.from_saved_model`` set up for ``quantize`` (calibration data aside)."""
    try:
        with quiet_fds(replay=False):
            converter = tf.lite.TFLiteConverter.from_saved_model(str(src_path), signature_keys=keys, tags=tag_set)
    except Exception as e:  # from_saved_model loads the model with tf.saved_model.load
        raise savedmodel_load_error(src_path, e) from None
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("dynamic", "float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_dtype != "float32":
            # TensorFlow's default keeps float32 inputs and outputs (a QUANTIZE op after each
            # input, a DEQUANTIZE before each output); integer I/O only when asked.
            converter.inference_input_type = converter.inference_output_type = getattr(tf, io_dtype)
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        # RNN loops with a dynamic batch then stay TensorList ops run by Flex, as the
        # converter itself suggests, instead of failing to lower.
        converter._experimental_lower_tensor_list_ops = False  # noqa: SLF001
    converter.target_spec.supported_ops = ops
    return converter


def _convert(
    tf: Any, converter: Any, src: object, src_path: Path, keys: list[str], tag_set: set[str] | None,
    select_tf_ops: bool, details: dict[str, Any],
) -> bytes:  # fmt: skip
    """The flatbuffer, by whichever converter path the model needs (named in ``details``);
    converter errors said for the user."""
    try:
        unfrozen: bool | None
        try:
            with quiet_fds(replay=False):
                flatbuffer = converter.convert()
            unfrozen = _keeps_variables(flatbuffer)
        except Exception as e:
            if "lift variables" in str(e):
                unfrozen = None  # reference variables of a TF1 graph: see below
            elif "READ_VARIABLE" in str(e) or "read_variable" in str(e):
                unfrozen = True
            else:
                raise
        if unfrozen is None:
            # TF1 graph models (TF Serving exports of the TF 1.x era) hold reference
            # variables (VariableV2 with Assign users); the TF2 converter cannot lift
            # them ("Failed to prepare to lift variables"), even from the signatures
            # tf.saved_model.load makes. TF1's converter freezes them in a session; it
            # writes one signature's subgraph and no SignatureDef.
            if len(keys) > 1:
                raise UserError(
                    f"{src}: a TF1 graph model converts one signature at a time; "
                    f"choose one of {', '.join(keys)} with --signature"
                )
            details["converter_path"] = "TF1 converter (variables frozen in a session)"
            return _v1_convert(tf, converter, src_path, keys[0], tag_set)
        if unfrozen:
            # TF 2.21 quirk: from_saved_model does not freeze the variables of a model
            # written by tf.saved_model.save around a Keras model (Keras's own
            # model.export is fine): the flatbuffer keeps VAR_HANDLE/READ_VARIABLE ops that
            # read uninitialized memory, and int8 calibration fails in READ_VARIABLE.
            # Converting the loaded signatures as concrete functions freezes them.
            loaded = load_savedmodel(src_path, sorted(tag_set) if tag_set else None, "converting to TFLite")
            converter = _concrete_converter(tf, converter, loaded, keys)
            details["converter_path"] = "concrete functions (variables frozen)"
            with quiet_fds(replay=False):
                flatbuffer = converter.convert()
        return bytes(flatbuffer)
    except TFModelKitError:
        raise
    except Exception as e:
        raise _converter_error(src, str(e), select_tf_ops) from None


def _converter_error(src: object, text: str, select_tf_ops: bool) -> UserError:
    if "Lowering tensor list ops is failed" in text:
        # Keras RNN layers (LSTM, GRU, SimpleRNN, Bidirectional) traced with a
        # dynamic batch keep a TensorListReserve whose element shape is unknown.
        return TensorListError(
            f"{src}: its RNN layers (TensorList ops) become TFLite builtins only with a fixed "
            "batch size: convert from the Keras file (`modelconv convert model.h5 out.tflite` "
            "fixes it at 1, or --batch-size N), or keep a dynamic batch with --select-tf-ops (Flex)"
        )
    failed = _failed_ops(text)
    if failed and not select_tf_ops:
        return UserError(
            f"{src}: ops not supported by TFLite builtins: {', '.join(failed)}; retry with "
            "--select-tf-ops (needs the Flex delegate at run time) or change the model"
        )
    first = next((ln for ln in text.splitlines() if "error" in ln.lower()), text.splitlines()[0] if text else "")
    return UserError(f"{src}: the TFLite converter failed: {first.strip()[:300]}")


def _describe_result(path: Path, report: ConversionReport, steps: Progress) -> tuple[bool, list[str]]:
    """Record the converted model's size and ops; (whether it lacks SignatureDefs, its Flex ops)."""
    converted = read(path, format="tflite")
    size = path.stat().st_size
    flex = list(converted.metadata.get("flex_ops", []))
    report.details.update(
        bytes=size, ops=dict(converted.ops), flex_ops=flex,
        custom_ops=list(converted.metadata.get("custom_ops", [])),
    )  # fmt: skip
    # Only TF1's converter writes none, when its tensors could not be named (_with_signature).
    signatureless = converted.metadata.get("signature_source") != "signature_defs"
    if signatureless:
        names = ", ".join(t.name for t in converted.signatures[0].inputs) if converted.signatures else "?"
        report.warnings.append(
            f"the .tflite has no SignatureDef (TF1's converter, used for a graph model with reference "
            f"variables, writes none, and the signature's tensors could not be found by name to add one): "
            f"runtimes address its tensors by name or position (inputs: {names})"
        )
    if flex:
        report.warnings.append(
            f"the model needs TensorFlow ops through Flex ({', '.join(flex)}): the runtime must link the "
            "Flex delegate (tensorflow-lite-select-tf-ops on Android, the full TF pip package in Python)"
        )
    steps.say(f"[convert] {size:,} bytes, {sum(converted.ops.values())} ops")
    return signatureless, flex
