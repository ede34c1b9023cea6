"""``modelconv``: convert TensorFlow models between formats; every conversion verifies itself.

A thin shell over :mod:`tfmodelkit.convert`: parse options, call one library function,
print its summary and write its report. TensorFlow is imported only by the conversion.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import EXIT_CODES_HELP, TIMEOUT_HELP, atomic_write, run, seconds, with_timeout

PROG = "modelconv"

EXIT_HELP = EXIT_CODES_HELP.replace(
    "1  a check or verification found problems (or diff found differences)",
    "1  the result did not verify (nothing is left at the destination unless --keep-failed)",
)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    g.add_argument("--keep-failed", action="store_true", help="keep the result at the destination even if it fails verification")
    g.add_argument("--report", metavar="FILE.json", help="write the conversion report (route, loader, timings, verification) as JSON")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    v = p.add_argument_group("verification")
    v.add_argument("--no-verify", action="store_true", help="skip the numerical verification")
    v.add_argument("--inputs", metavar="X.npz|DIR", help="verify on these inputs (an .npz, or a folder of <input>.npy files); default: held-out samples of --calibration-data, else generated ones")
    v.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    v.add_argument("--samples", type=int, metavar="N", help="how many generated samples to verify on (default 32; all of --inputs when given)")
    v.add_argument("--batch", type=int, metavar="N", help="samples per run where the batch is dynamic (default: all at once; a fixed batch runs as often as it takes)")
    v.add_argument("--input-range", action="append", default=[], metavar="NAME=LO,HI", help="range of a generated input (default: what the model declares, else -1,1 for floats)")
    v.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS", help="full shape of a generated input, e.g. image=1,224,224,3 (NAME= for a scalar); needed where its rank is unknown (old TF1 graphs)")
    v.add_argument("--atol", type=float, help="absolute tolerance (default 1e-5 float32, 1e-2 float16, 2e-2 dynamic, 4 output steps int8)")
    v.add_argument("--rtol", type=float, help="relative tolerance (default 1e-5 float32, 1e-2 float16, 2e-2 dynamic)")
    s = p.add_argument_group("safety")
    s.add_argument("--unsafe", action="store_true", help="allow Python code stored in the model (Lambda layers) and SavedModels with safety errors (file, network or Python ops; see modelinspect check --target safety) to run; only for files you trust")
    s.add_argument("--custom-objects", metavar="MODULE", help="import custom Keras classes from this module (its `custom_objects` dict or public classes)")
    s.add_argument("--timeout", type=seconds, metavar="SECONDS", help=TIMEOUT_HELP)


def _keras_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--architecture", metavar="FILE", help="for a weights-only .h5: the architecture as arch.json, a model .h5 or a .keras")


def _batch_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, metavar="N", help="fix the batch dimension of the exported signature (default dynamic); TFLite needs it for RNN layers, and `convert` to .tflite fixes it at 1 by itself when they need it")


def _ckpt_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--model", metavar="MODULE:CALLABLE", help="code that builds the model: pkg.module:fn or path/to/file.py:fn")
    p.add_argument("--architecture", metavar="FILE", help="the model's architecture as arch.json, a model .h5 or a .keras")
    p.add_argument("--root-key", metavar="KEY", help="the checkpoint's root object holding the model (found from the object graph by default)")
    p.add_argument("--input-spec", action="append", default=[], metavar="NAME:DTYPE:DIMS", help="a model input, e.g. image:float32:-1,28,28,1 (-1 = dynamic); repeat for several")
    p.add_argument("--allow-partial", action="store_true", help="proceed when some model variables found no value or checkpoint values went unused")


def _include_optimizer_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include-optimizer", action="store_true", help="carry the source's Adam, SGD or RMSprop state (step counter and slots) into the .keras: a Keras 2/3 .h5's optimizer_weights, or a checkpoint's slots when --model returns the model compiled with its optimizer")


def _keras_backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keras-backend", default="tensorflow", metavar="NAMES", help="verify the .keras under these Keras backends, comma-separated: tensorflow, jax (default tensorflow)")


def _tflite_options(p: argparse.ArgumentParser, tfjs: bool = False) -> None:
    p.add_argument("--signature", metavar="KEY", help="signature to convert (default serving_default)")
    p.add_argument("--all-signatures", action="store_true", help="keep every serving signature")
    if tfjs:  # convert: the destination decides which apply
        p.add_argument("--quantize", choices=("none", "dynamic", "float16", "int8", "uint8", "uint16"), default="none", help="post-training quantization (default none): dynamic, float16 or int8 for a .tflite; float16, uint8 or uint16 weights for a TF.js model.json")
    else:
        p.add_argument("--quantize", choices=("none", "dynamic", "float16", "int8"), default="none", help="post-training quantization (default none)")
    p.add_argument("--calibration-data", metavar="DATA.npz|DIR", help="representative inputs for --quantize int8 (required): an .npz of arrays named after the model's inputs, or a folder of <input>.npy files, first dimension = samples; one sample in four (at most --samples) is held out to verify on unless --inputs is given")
    p.add_argument("--allow-generated-calibration", action="store_true", help="--quantize int8 without --calibration-data: calibrate on generated inputs; the result is marked as such")
    p.add_argument("--io-dtype", choices=("float32", "int8", "uint8"), default="float32", help="--quantize int8: type of the model's inputs and outputs (default float32, TensorFlow's default; int8/uint8 for integer-only runtimes)")
    p.add_argument("--keep-float", metavar="LAYER[,LAYER...]|auto", help="with --quantize int8: leave these layers in float, or 'auto': the fewest layers (worst quantized first) that make the model verify")
    p.add_argument("--max-float-layers", type=int, metavar="N", help="with --keep-float auto: keep at most N layers float (default a quarter of the layers, at least 1)")
    p.add_argument("--select-tf-ops", action="store_true", help="allow TensorFlow ops through Flex when TFLite has no builtin for them")
    p.add_argument("--tag-set", metavar="TAGS", help="SavedModel tag set (default serve)")


def _tfjs_options(p: Any, quantize: bool = True) -> None:  # a parser or an argument group
    p.add_argument("--shard-size", type=int, default=4 * 1024 * 1024, metavar="BYTES", help="largest weight shard file (default 4194304, 4 MiB, as TF.js writes them)")
    if quantize:
        p.add_argument("--quantize", choices=("none", "float16", "uint8", "uint16"), default="none", help="store float32 weights as float16, or affine uint8/uint16 (TF.js dequantizes them when loading; default none)")
    p.add_argument("--quantize-weights", action="append", default=[], metavar="GLOB", help="quantize only the weights matching this pattern (e.g. 'dense*/kernel'); repeatable")
    p.add_argument("--graph", action="store_true", help="write a Keras model as a TF.js graph model (frozen through a SavedModel; runs layers tfjs-layers lacks when TF.js has their ops) instead of a layers model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert TensorFlow models between formats and prove each conversion numerically: "
        "the source and the result run on the same inputs and every output is compared.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("h5-to-savedmodel", help="Keras .h5 (Keras 1/2/3) to a SavedModel named like the model")
    p.add_argument("src", help="the .h5 file")
    p.add_argument("dst", help="the SavedModel folder to write")
    _keras_options(p)
    _batch_option(p)
    _common(p)

    p = sub.add_parser("keras-to-savedmodel", help="Keras 3 .keras to a SavedModel named like the model")
    p.add_argument("src", help="the .keras file")
    p.add_argument("dst", help="the SavedModel folder to write")
    _batch_option(p)
    _common(p)

    p = sub.add_parser("ckpt-to-savedmodel", help="checkpoint + model code or architecture to a SavedModel")
    p.add_argument("src", metavar="ckpt", help="checkpoint prefix, .index file or folder")
    p.add_argument("dst", help="the SavedModel folder to write")
    _ckpt_options(p)
    _common(p)
    from .modelconv_run import add_graph_options, add_graph_parser

    add_graph_options(p, meta=True)
    add_graph_parser(sub, _common)

    p = sub.add_parser("savedmodel-to-tflite", help="SavedModel to TFLite (float, dynamic, float16, int8)")
    p.add_argument("src", help="the SavedModel folder")
    p.add_argument("dst", help="the .tflite file to write")
    _tflite_options(p)
    _common(p)

    p = sub.add_parser("to-keras", help="any Keras .h5 (Keras 1/2/3), .keras, Keras 2 SavedModel or TF2 checkpoint (+ --model or --architecture) to a native Keras 3 .keras (or .weights.h5) that plain keras.saving.load_model reads")
    p.add_argument("src", help="the .h5 or .keras file, a Keras 2 / tf_keras SavedModel folder, or a checkpoint prefix, .index file or folder")
    p.add_argument("dst", help="the .keras file to write (or a .weights.h5 for the weights only)")
    c = p.add_argument_group("a checkpoint source (as in ckpt-to-savedmodel); --architecture also completes a weights-only .h5")
    _ckpt_options(c)
    _include_optimizer_option(p)
    _keras_backend_option(p)
    _common(p)

    p = sub.add_parser("convert", help="any supported route, picked from the source format and the destination (.tflite, .keras, .weights.h5, DST/model.json for TF.js, or a folder)")
    p.add_argument("src", help="a .h5, .keras, SavedModel, checkpoint, TF1 frozen graph (.pb/.pbtxt) or .meta")
    p.add_argument("dst", help="a .tflite file, a .keras or .weights.h5 file, a TF.js DST/model.json, or a SavedModel folder")
    _ckpt_options(p)
    add_graph_options(p, meta=True)
    _tflite_options(p, tfjs=True)
    _tfjs_options(p.add_argument_group("a TF.js destination (DST/model.json)"), quantize=False)
    _batch_option(p)
    _include_optimizer_option(p)
    _keras_backend_option(p)
    _common(p)
    p = sub.add_parser("to-tfjs", help="Keras .h5/.keras to a TF.js layers model (--graph: a graph model), a SavedModel to a graph model (model.json + weight shards), verified in TF.js itself (Node.js)")
    p.add_argument("src", help="the .h5 or .keras file, or a SavedModel folder")
    p.add_argument("dst", help="DST/model.json (or the folder DST) to write")
    _tfjs_options(p)
    _keras_options(p)
    _common(p)

    p = sub.add_parser("verify", help="run two artifacts (or one and golden outputs) on the same inputs and compare every output")
    p.add_argument("a", help="the trusted model: .h5, .keras, SavedModel, .tflite, TF.js model.json, or a checkpoint with --model/--architecture")
    p.add_argument("b", help="the model about to ship, or an .npz of golden outputs (needs --inputs)")
    p.add_argument("--signature", metavar="KEY", help="SavedModel/TFLite signature (default serving_default or the only one)")
    p.add_argument("--signature-b", metavar="KEY", help="B's signature when it differs from A's")
    p.add_argument("--tag-set", metavar="TAGS", help="SavedModel tag set (default serve)")
    p.add_argument("--inputs", metavar="X.npz", help="inputs to feed (default: generated from A's signature)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    p.add_argument("--samples", type=int, metavar="N", help="how many generated samples to run (default 32; all of --inputs when given)")
    p.add_argument("--batch", type=int, metavar="N", help="samples per run where the batch is dynamic (default: all at once; a fixed batch runs as often as it takes)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS", help="full shape of an input with dynamic dims, e.g. image=1,224,224,3")
    p.add_argument("--input-range", action="append", default=[], metavar="NAME=LO,HI", help="range of a generated input (default: what the model declares: ids below an Embedding's input_dim, a Rescaling's or a quantized input's range; else -1,1 for floats)")
    p.add_argument("--atol", action="append", default=[], metavar="[OUTPUT=]TOL", help="absolute tolerance, default 1e-5 (4 output steps for dequantized int8 outputs); OUTPUT=TOL for one output")
    p.add_argument("--rtol", action="append", default=[], metavar="[OUTPUT=]TOL", help="relative tolerance, default 1e-5; OUTPUT=TOL for one output")
    p.add_argument("--save-inputs", metavar="X.npz", help="write the inputs used, to replay the run")
    p.add_argument("--save-outputs", metavar="Y.npz", help="write A's outputs, to serve as the next golden file")
    p.add_argument("--report", metavar="FILE.json", help="write every figure as JSON")
    p.add_argument("--html", metavar="FILE.html", help="write a self-contained HTML report (verdict, per-output table, error histogram and expected-vs-actual plot per output; opens offline)")
    p.add_argument("--unsafe", action="store_true", help="allow Python code stored in a Keras file, and SavedModel/TFLite files with safety errors (modelinspect check --target safety), to run")
    p.add_argument("--layerwise", action="store_true", help="also compare layer by layer (A: a Keras file or a SavedModel Keras wrote; B: its .tflite or another Keras-family artifact): per layer the max and mean error, the error relative to the layer's range, the quantization scale; names the first layer over the tolerance and the one whose error grows most")
    p.add_argument("--layer-tolerance", type=float, metavar="REL", help="relative error a layer may reach under --layerwise (default 1e-3 for a float pair, 0.05 for a B with float16 weights, 0.25 for a quantized B)")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS", help=TIMEOUT_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    c = p.add_argument_group("a checkpoint on either side (as in ckpt-to-savedmodel)")
    _ckpt_options(c)
    c.add_argument("--custom-objects", metavar="MODULE", help="import custom Keras classes from this module")
    from .modelconv_run import add_parser as add_run_parser

    add_run_parser(sub)
    return parser


def _write_json(path: str, value: Any) -> None:
    from tfmodelkit.util import jsonable

    text = json.dumps(jsonable(value), indent=2) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def _verify(args: argparse.Namespace) -> int:
    from tfmodelkit.verify.gate import parse_ranges, parse_shapes, parse_tolerances, save_run, verify_models
    from tfmodelkit.verify.report import format_report, verdict_line

    atol, per_atol = parse_tolerances(args.atol, "--atol")
    rtol, per_rtol = parse_tolerances(args.rtol, "--rtol")
    report = verify_models(
        args.a, args.b, signature=args.signature, signature_b=args.signature_b, tags=args.tag_set,
        inputs=args.inputs, seed=args.seed, samples=args.samples, batch=args.batch, shapes=parse_shapes(args.shape),
        ranges=parse_ranges(args.input_range), atol=atol, rtol=rtol, per_output_atol=per_atol,
        per_output_rtol=per_rtol, unsafe=args.unsafe, layerwise=args.layerwise, layer_tolerance=args.layer_tolerance,
        checkpoint={
            "model": args.model, "architecture": args.architecture, "root_key": args.root_key,
            "input_specs": tuple(args.input_spec), "allow_partial": args.allow_partial,
            "custom_objects": args.custom_objects,
        },
    )  # fmt: skip
    save_run(report, inputs=args.save_inputs, outputs=args.save_outputs)
    if args.report:
        _write_json(args.report, report.as_dict())
    if args.html:
        from tfmodelkit.verify.html import write_html

        write_html(report, args.html)
    if not args.quiet:
        print(format_report(report))
        print()
    print(verdict_line(report))
    return 0 if report.ok else 1


def _verify_options(args: argparse.Namespace) -> Any:
    from tfmodelkit.convert.base import VerifyOptions
    from tfmodelkit.verify.gate import parse_ranges, parse_shapes

    return VerifyOptions(
        enabled=not args.no_verify, inputs=args.inputs, seed=args.seed, samples=args.samples, batch=args.batch,
        ranges=parse_ranges(args.input_range) or None, shapes=parse_shapes(args.shape) or None, atol=args.atol,
        rtol=args.rtol,
    )


def _say(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "verify": _verify_options(args), "overwrite": args.overwrite, "keep_failed": args.keep_failed,
        "progress": None if args.quiet else _say,
    }  # fmt: skip


def _tflite_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "signature": args.signature,
        "all_signatures": args.all_signatures,
        "quantize": args.quantize,
        "calibration_data": args.calibration_data,
        "allow_generated_calibration": args.allow_generated_calibration,
        "io_dtype": args.io_dtype,
        "keep_float": args.keep_float,
        "max_float_layers": args.max_float_layers,
        "select_tf_ops": args.select_tf_ops,
        "tags": args.tag_set,
    }


def _ckpt_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "architecture": args.architecture,
        "root_key": args.root_key,
        "input_specs": tuple(args.input_spec),
        "allow_partial": args.allow_partial,
        "unsafe": args.unsafe,
        "custom_objects": args.custom_objects,
    }


def _keras_backends(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(b.strip() for b in args.keras_backend.split(",") if b.strip())


def _convert(args: argparse.Namespace) -> Any:
    if args.command in ("h5-to-savedmodel", "keras-to-savedmodel"):
        from tfmodelkit.convert.keras_to_savedmodel import keras_to_savedmodel

        return keras_to_savedmodel(
            args.src, args.dst, architecture=getattr(args, "architecture", None), unsafe=args.unsafe,
            custom_objects=args.custom_objects, batch_size=args.batch_size,
            source_format="keras_h5" if args.command == "h5-to-savedmodel" else "keras_zip", **_common_kwargs(args),
        )  # fmt: skip
    if args.command == "graph-to-savedmodel" or (args.command == "ckpt-to-savedmodel" and args.meta):
        from .modelconv_run import convert_graph

        return convert_graph(args, _common_kwargs(args))
    if args.command == "ckpt-to-savedmodel":
        from tfmodelkit.convert.ckpt_to_savedmodel import ckpt_to_savedmodel

        return ckpt_to_savedmodel(args.src, args.dst, **_ckpt_kwargs(args), **_common_kwargs(args))
    if args.command == "to-keras":
        from tfmodelkit.convert.to_keras import to_keras

        return to_keras(
            args.src, args.dst, **_ckpt_kwargs(args), include_optimizer=args.include_optimizer,
            keras_backends=_keras_backends(args), **_common_kwargs(args),
        )  # fmt: skip
    if args.command == "savedmodel-to-tflite":
        from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite

        # Not in _tflite_kwargs: `convert` already passes --unsafe through _ckpt_kwargs.
        return savedmodel_to_tflite(
            args.src, args.dst, **_tflite_kwargs(args), unsafe=args.unsafe, **_common_kwargs(args)
        )
    if args.command == "to-tfjs":
        from tfmodelkit.convert.to_tfjs import to_tfjs

        return to_tfjs(
            args.src, args.dst, shard_size=args.shard_size, quantize=args.quantize,
            quantize_weights=tuple(args.quantize_weights), graph=args.graph, architecture=args.architecture, unsafe=args.unsafe,
            custom_objects=args.custom_objects, **_common_kwargs(args),
        )  # fmt: skip
    from tfmodelkit.convert.route import convert

    from .modelconv_run import graph_kwargs

    return convert(
        args.src, args.dst, **_ckpt_kwargs(args), **_tflite_kwargs(args), **graph_kwargs(args),
        batch_size=args.batch_size, include_optimizer=args.include_optimizer,
        shard_size=args.shard_size, quantize_weights=tuple(args.quantize_weights), graph=args.graph,
        keras_backends=_keras_backends(args), **_common_kwargs(args),
    )  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from tfmodelkit.convert.base import summary_line
    from tfmodelkit.convert.selective import kept_float_line

    report = _convert(args)
    if args.report:
        _write_json(args.report, report.as_dict())
    print(summary_line(report))
    kept = kept_float_line(report.details)
    if kept:
        print(kept)
    if not report.ok:
        where = "kept at the destination (--keep-failed)" if report.kept_failed else "nothing was written to the destination"
        print(f"{PROG}: error: the converted model did not verify; {where}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from tfmodelkit import __version__

        print(f"{PROG} {__version__}")
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "verify":
        return run(PROG, with_timeout(args.timeout, lambda: _verify(args)))
    if args.command == "run":
        from .modelconv_run import command as run_command

        return run(PROG, with_timeout(args.timeout, lambda: run_command(args, _say)))
    return run(PROG, with_timeout(args.timeout, lambda: _run(args)))


if __name__ == "__main__":
    sys.exit(main())
