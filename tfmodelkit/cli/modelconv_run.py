"""``modelconv run``: run any model tfmodelkit runs and print each output (``saved_model_cli run``
for every format). A thin shell over :func:`tfmodelkit.verify.run.run`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import TIMEOUT_HELP, seconds

HELP = "run one model (SavedModel, Keras, TFLite, TF.js, TF1 graph, checkpoint with its model) on given or generated inputs and print every output"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help=HELP, description=HELP)
    p.add_argument(
        "source",
        metavar="MODEL",
        help="a SavedModel, .h5, .keras, .tflite, TF.js model.json, frozen graph .pb/.pbtxt, .meta, or a checkpoint (with --meta, or --model/--architecture)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="one input's value; repeat for several",
    )
    p.add_argument(
        "--inputs", metavar="X.npz", help="inputs by name from an .npz (--input wins for the names it gives)"
    )
    p.add_argument("--out", metavar="Y.npz", help="write the outputs to this .npz")
    p.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (default table)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="rows of generated inputs where the batch is dynamic (default 1)",
    )
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=DIMS",
        help="full shape of a generated input, e.g. image=1,224,224,3 (NAME= for a scalar); needed where its rank is unknown",
    )
    p.add_argument(
        "--signature",
        metavar="KEY",
        help="SavedModel/TFLite/.meta signature (default serving_default or the only one)",
    )
    p.add_argument("--tag-set", metavar="TAGS", help="SavedModel tag set (default serve)")
    g = p.add_argument_group("TF1 graphs")
    g.add_argument(
        "--input-tensors",
        metavar="NAME[:0],...",
        help="graph tensors to feed (default: the signature, else the placeholders)",
    )
    g.add_argument(
        "--output-tensors",
        metavar="NAME[:0],...",
        help="graph tensors to fetch (default: the signature, else the tensors no node consumes)",
    )
    g.add_argument(
        "--meta", metavar="GRAPH.meta", help="the graph of a TF1 checkpoint (default: CKPT.meta beside it)"
    )
    c = p.add_argument_group("a checkpoint of a Keras or tf.Module model (as in ckpt-to-savedmodel)")
    c.add_argument("--model", metavar="MODULE:CALLABLE", help="code that builds the model")
    c.add_argument(
        "--architecture",
        metavar="FILE",
        help="the model's architecture as arch.json, a model .h5 or a .keras",
    )
    c.add_argument(
        "--input-spec",
        action="append",
        default=[],
        metavar="NAME:DTYPE:DIMS",
        help="a model input, e.g. x:float32:-1,3",
    )
    c.add_argument("--custom-objects", metavar="MODULE", help="import custom Keras classes from this module")
    p.add_argument("--report", metavar="FILE.json", help="write the run report as JSON")
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="allow Python code stored in the model and ops reaching files, network or Python to run; only for files you trust",
    )
    p.add_argument("--timeout", type=seconds, metavar="SECONDS", help=TIMEOUT_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def _input_files(values: list[str]) -> dict[str, str]:
    from tfmodelkit.errors import UserError

    out = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise UserError(f"--input {value!r}: write NAME=FILE.npy")
        out[name.strip()] = file.strip()
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_table(report: Any) -> str:
    """The run as text: the runner, the inputs, then one block per output."""
    runner = report.runner
    lines = [f"model: {report.model} ({runner.get('backend')})"]
    lines += [f"  note: {n}" for n in runner.get("notes", [])]
    lines.append(f"inputs: {report.inputs_source}")
    for s in report.inputs:
        lines.append(f"  {s.name}: {s.dtype} {_shape(s.shape)}")
    lines.append("outputs:")
    for s in report.outputs:
        lines.append(f"  {s.name}: {s.dtype} {_shape(s.shape)}")
        if s.min is not None:
            stats = f"min {_fmt(s.min)}  max {_fmt(s.max)}  mean {_fmt(s.mean)}  std {_fmt(s.std)}"
            lines.append("    " + stats + (f"  non-finite {s.nonfinite}" if s.nonfinite else ""))
        if s.values is not None:
            lines.append(f"    values: {json.dumps(s.values)}")
    if report.saved:
        lines.append(f"outputs written to {report.saved}")
    return "\n".join(lines)


def command(args: argparse.Namespace, say: Any) -> int:
    from tfmodelkit.util import atomic_write, jsonable
    from tfmodelkit.verify.gate import parse_shapes
    from tfmodelkit.verify.run import run

    checkpoint = {
        "model": args.model, "architecture": args.architecture,
        "input_specs": tuple(args.input_spec) or None, "custom_objects": args.custom_objects,
    }  # fmt: skip
    report = run(
        args.source, input_files=_input_files(args.input), inputs_file=args.inputs, out=args.out,
        signature=args.signature, tags=args.tag_set, input_tensors=args.input_tensors,
        output_tensors=args.output_tensors, meta=args.meta, checkpoint=checkpoint, seed=args.seed,
        batch=args.batch, shapes=parse_shapes(args.shape), unsafe=args.unsafe, progress=None if args.quiet else say,
    )  # fmt: skip
    if args.report:
        text = json.dumps(jsonable(report.as_dict()), indent=2) + "\n"

        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(text)

        atomic_write(args.report, write)
    print(json.dumps(jsonable(report.as_dict()), indent=2) if args.format == "json" else format_table(report))
    return 0


# --------------------------------------------------------------------------- TF1 graph conversions


def add_graph_options(p: Any, *, meta: bool) -> None:
    """The flags of a TF1 graph source (``graph-to-savedmodel``, ``ckpt-to-savedmodel --meta``)."""
    g = p.add_argument_group("TF1 graphs")
    if meta:
        g.add_argument(
            "--meta",
            metavar="CKPT.meta",
            help="the checkpoint's graph (MetaGraphDef): converts the TF1 graph, no model code needed",
        )
    g.add_argument(
        "--input-tensors",
        metavar="NAME[:0],...",
        help="graph tensors the signature feeds (default: the graph's signature, else its placeholders)",
    )
    g.add_argument(
        "--output-tensors",
        metavar="NAME[:0],...",
        help="graph tensors the signature returns (default: the graph's signature, else the tensors no node consumes)",
    )
    g.add_argument(
        "--input-names",
        metavar="NAME,...",
        help="serving_default's input keys, one per input tensor (default: the op names)",
    )
    g.add_argument(
        "--output-names",
        metavar="NAME,...",
        help="serving_default's output keys, one per output tensor (default: the op names)",
    )


def add_graph_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser(
        "graph-to-savedmodel",
        help="TF1 graph (frozen .pb/.pbtxt, or .meta with its checkpoint) to a SavedModel with serving_default",
    )
    p.add_argument("src", help="a frozen GraphDef (.pb, .pbtxt) or a .meta beside its checkpoint")
    p.add_argument("dst", help="the SavedModel folder to write")
    add_graph_options(p, meta=False)
    common(p)


def graph_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`add_graph_options` as keyword arguments."""
    return {
        "meta": getattr(args, "meta", None), "input_tensors": args.input_tensors,
        "output_tensors": args.output_tensors, "input_names": args.input_names, "output_names": args.output_names,
    }  # fmt: skip


def convert_graph(args: argparse.Namespace, common_kwargs: dict[str, Any]) -> Any:
    """``graph-to-savedmodel``, or ``ckpt-to-savedmodel`` given ``--meta``."""
    from tfmodelkit.convert.graph_to_savedmodel import graph_to_savedmodel

    return graph_to_savedmodel(args.src, args.dst, **graph_kwargs(args), unsafe=args.unsafe, **common_kwargs)
