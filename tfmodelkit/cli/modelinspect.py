"""``modelinspect``: look inside any TensorFlow model file without TensorFlow.

A thin shell over :mod:`tfmodelkit.inspect`: every subcommand parses its options, calls
one ``inspect_*`` function and renders what it returns (output on stdout; notes and
warnings on stderr). Heavy modules are imported inside the handlers so that ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import TYPE_CHECKING, Any

from .common import (
    EXIT_CODES_HELP,
    TIMEOUT_HELP,
    WIDTH_HELP,
    run,
    say,
    seconds,
    table_width,
    with_timeout,
    write,
)

if TYPE_CHECKING:
    from tfmodelkit.inspect.views import Inspection

PROG = "modelinspect"
FORMATS_HELP = "checkpoint, savedmodel, keras_h5, keras_zip, tflite, tfjs, checkpoint_v1, metagraph, graphdef (also: ckpt, h5, keras, pb, meta)"
OUTPUT_HELP = f"""output:
  results go to stdout; progress bars, notes and the file's warnings to stderr (-q silences them).
  {WIDTH_HELP}."""


def _common(p: argparse.ArgumentParser, path: bool = True) -> None:
    p.epilog = OUTPUT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    if path:
        p.add_argument("path", help="model file or folder: SavedModel, checkpoint prefix/folder, .h5, .keras, .tflite, TF.js model.json, frozen .pb, .meta")
    p.add_argument("--as", dest="as_format", metavar="FORMAT", help=f"read as this format instead of detecting it ({FORMATS_HELP})")
    p.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table",
        help="output format (default: table, fitted to the terminal: see below; json and markdown keep the full text)",
    )  # fmt: skip
    p.add_argument("--tag-set", metavar="TAGS", help="SavedModel meta graph to use, e.g. serve or serve,gpu (default: serve)")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS", help=TIMEOUT_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr (errors still print)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect TensorFlow models (checkpoints, SavedModels, Keras .h5/.keras, TFLite, TF.js, TF1 graphs) "
        "without importing TensorFlow.",
        epilog=f"{OUTPUT_HELP}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("summary", help="what the file is, who wrote it, what it holds")
    _common(p)
    p.add_argument("--all", action="store_true", help="for a checkpoint folder: every prefix in it")

    p = sub.add_parser("signatures", help="serving signatures: inputs and outputs with dtypes and shapes")
    _common(p)
    p.add_argument("--all", action="store_true", help="also bookkeeping signatures and the object graph's functions")
    g = p.add_argument_group("TF1 graphs (frozen .pb/.pbtxt, .meta)")
    g.add_argument("--input-tensors", metavar="NAME[:0],...", help="the graph tensors the signature feeds, instead of the inferred ones (the placeholders); as modelconv's --input-tensors")
    g.add_argument("--output-tensors", metavar="NAME[:0],...", help="the graph tensors the signature returns, instead of the inferred ones (tensors no node consumes)")

    for name, aliases in (("weights", ["variables"]),):
        p = sub.add_parser(name, aliases=aliases, help="stored tensors: name, dtype, shape, size (and --stats)")
        _common(p)
        p.add_argument("--match", metavar="REGEX", help="only tensors whose name matches REGEX")
        p.add_argument("--stats", action="store_true", help="min/max/mean/std and NaN/Inf counts (reads the values)")
        p.add_argument("--include-optimizer", action="store_true", help="also optimizer state (slots, iterations)")
        p.add_argument("--all", action="store_true", help="for a checkpoint folder: every prefix in it")

    p = sub.add_parser("layers", help="the Keras architecture stored in the file")
    _common(p)

    p = sub.add_parser("ops", help="op census over the graph and every function (SavedModel, TFLite, TF.js graph models, TF1 graphs)")
    _common(p)

    p = sub.add_parser("tensor", help="print one tensor's values or save them to .npy")
    _common(p)
    p.add_argument("name", help="tensor name as `weights` lists it")
    p.add_argument("--out", metavar="FILE.npy", help="write the values to a .npy file")

    p = sub.add_parser("check", help="integrity: shards, sizes, every tensor's checksum; exit 1 on damage")
    _common(p)
    p.add_argument("--all", action="store_true", help="for a checkpoint folder: every prefix in it")
    p.add_argument(
        "--target", action="append", metavar="TARGET",
        help="instead of the integrity check, lint for deployment (repeat or comma list): serving (TF Serving "
        "can load and feed it; includes the integrity check), tflite (ops and tensors LiteRT can run), "
        "safety (ops touching files, network, Python or debug hooks; Lambda layers), tfjs (layers or ops TF.js "
        "cannot run); exit 1 on any error",
    )  # fmt: skip

    p = sub.add_parser("diff", help="compare weights and signatures of two artifacts; exit 1 if they differ")
    p.add_argument("a", help="first model")
    p.add_argument("b", help="second model")
    _common(p, path=False)
    p.add_argument("--include-optimizer", action="store_true", help="also compare optimizer state")
    p.add_argument("--atol", type=float, default=0.0, help="values within this absolute difference count as equal")
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """What every reading command passes on: the format override and the SavedModel tag set."""
    return {"format": args.as_format, "tags": args.tag_set}


def _show(result: Inspection, args: argparse.Namespace) -> int:
    """Print an inspection: its rendering on stdout, then its notes and warnings on stderr."""
    from tfmodelkit.inspect.render import render

    write(render(result.view, result.document, args.format, width=table_width()))
    if not args.quiet:
        say(PROG, "note", result.notes)
        say(PROG, "warning", result.warnings_left_out(args.format))
    return 0 if result.ok else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_summary

    return _show(inspect_summary(args.path, every_prefix=args.all, **_options(args)), args)


def cmd_signatures(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_signatures

    return _show(
        inspect_signatures(
            args.path, all=args.all, input_tensors=args.input_tensors, output_tensors=args.output_tensors,
            **_options(args),
        ),
        args,
    )  # fmt: skip


def cmd_weights(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_weights

    from .progress import progress_bar

    with progress_bar("stats", args.quiet) as bar:  # closed (and cleared) before the table prints
        result = inspect_weights(
            args.path,
            match=args.match,
            include_optimizer=args.include_optimizer,
            stats=args.stats,
            every_prefix=args.all,
            progress=bar if args.stats else None,
            **_options(args),
        )
    return _show(result, args)


def cmd_layers(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_layers

    return _show(inspect_layers(args.path, **_options(args)), args)


def cmd_ops(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_ops

    return _show(inspect_ops(args.path, **_options(args)), args)


def cmd_tensor(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_tensor

    from .progress import progress_bar

    with progress_bar("tensor", args.quiet) as bar:
        result = inspect_tensor(
            args.path, args.name, out=args.out, for_json=args.format == "json", progress=bar, **_options(args)
        )
    return _show(result, args)


def cmd_check(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import inspect_check

    from .progress import progress_bar

    with progress_bar("check", args.quiet) as bar:
        result = inspect_check(
            args.path, targets=args.target, every_prefix=args.all, progress=bar, **_options(args)
        )
    return _show(result, args)


def cmd_diff(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.diff import inspect_diff

    result = inspect_diff(args.a, args.b, include_optimizer=args.include_optimizer, atol=args.atol, **_options(args))
    return _show(result, args)


_COMMANDS = {
    "summary": cmd_summary,
    "signatures": cmd_signatures,
    "weights": cmd_weights,
    "variables": cmd_weights,
    "layers": cmd_layers,
    "ops": cmd_ops,
    "tensor": cmd_tensor,
    "check": cmd_check,
    "diff": cmd_diff,
}


#: Allocations between two young-generation collections while the program runs (Python's
#: default is 700). Start-up creates ~100,000 objects (modules, the parser, the description)
#: and frees few, so those collections find little: at 700 they cost ~3% of a small file's
#: run. Reference cycles are still collected.
GC_THRESHOLD = 20_000


def main(argv: list[str] | None = None) -> int:
    """The command; called without ``argv`` it is the ``modelinspect`` program (the console
    script, ``python -m``), which also tunes the garbage collector for a short-lived process."""
    if argv is not None:
        return _main(argv)
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    code = _main(None)
    # What is left is freed as the interpreter exits; the full collection it would run over
    # every object first finds nothing worth it (~6% of a small file's run).
    gc.freeze()
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from tfmodelkit import __version__

        print(f"{PROG} {__version__}")
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    return run(PROG, with_timeout(args.timeout, lambda: _COMMANDS[args.command](args)))


if __name__ == "__main__":
    sys.exit(main())
