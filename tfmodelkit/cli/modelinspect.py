"""``modelinspect``: look inside any TensorFlow model file without TensorFlow.

A thin shell over :mod:`tfmodelkit` and :mod:`tfmodelkit.inspect`: every subcommand reads,
builds a view dict and renders it. Heavy modules are imported inside the handlers so
that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_CODES_HELP, atomic_write, run, write

PROG = "modelinspect"
FORMATS_HELP = "checkpoint, savedmodel, keras_h5, keras_zip, tflite (also: ckpt, h5, keras)"


def _common(p: argparse.ArgumentParser, path: bool = True) -> None:
    if path:
        p.add_argument("path", help="model file or folder: SavedModel, checkpoint prefix/folder, .h5, .keras, .tflite")
    p.add_argument("--as", dest="as_format", metavar="FORMAT", help=f"read as this format instead of detecting it ({FORMATS_HELP})")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="output format (default: table)")
    p.add_argument("--tag-set", metavar="TAGS", help="SavedModel meta graph to use, e.g. serve or serve,gpu (default: serve)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect TensorFlow models (checkpoints, SavedModels, Keras .h5/.keras, TFLite) "
        "without importing TensorFlow.",
        epilog=EXIT_CODES_HELP,
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

    for name, aliases in (("weights", ["variables"]),):
        p = sub.add_parser(name, aliases=aliases, help="stored tensors: name, dtype, shape, size (and --stats)")
        _common(p)
        p.add_argument("--match", metavar="REGEX", help="only tensors whose name matches REGEX")
        p.add_argument("--stats", action="store_true", help="min/max/mean/std and NaN/Inf counts (reads the values)")
        p.add_argument("--include-optimizer", action="store_true", help="also optimizer state (slots, iterations)")
        p.add_argument("--all", action="store_true", help="for a checkpoint folder: every prefix in it")

    p = sub.add_parser("layers", help="the Keras architecture stored in the file")
    _common(p)

    p = sub.add_parser("ops", help="op census over the graph and every function (SavedModel, TFLite)")
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
        "safety (ops touching files, network, Python or debug hooks; Lambda layers); exit 1 on any error",
    )  # fmt: skip

    p = sub.add_parser("diff", help="compare weights and signatures of two artifacts; exit 1 if they differ")
    p.add_argument("a", help="first model")
    p.add_argument("b", help="second model")
    _common(p, path=False)
    p.add_argument("--include-optimizer", action="store_true", help="also compare optimizer state")
    p.add_argument("--atol", type=float, default=0.0, help="values within this absolute difference count as equal")
    return parser


def _read(path: str, args: argparse.Namespace) -> Any:
    import tfmodelkit

    options = {"tags": args.tag_set} if args.tag_set else {}
    return tfmodelkit.read(path, format=args.as_format, **options)


def _paths(args: argparse.Namespace) -> list[str]:
    """The paths a command covers: one, or every checkpoint prefix of a folder with --all."""
    if getattr(args, "all", False) and args.command != "signatures":
        from tfmodelkit.formats import detect, normalize_format

        fmt = normalize_format(args.as_format) if args.as_format else detect(args.path)
        if fmt == "checkpoint":
            from tfmodelkit.formats import checkpoint

            found = checkpoint.prefixes(args.path)
            if found:
                return [str(p) for p in found]
    return [args.path]


def _emit(view: str, data: Any, args: argparse.Namespace) -> None:
    from tfmodelkit.inspect.render import render

    write(render(view, data, args.format))


def _many(view: str, args: argparse.Namespace, build: Any) -> int:
    items = [build(p) for p in _paths(args)]
    _emit(view, items[0] if len(items) == 1 else items, args)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import summary_view

    return _many("summary", args, lambda p: summary_view(_read(p, args)))


def cmd_signatures(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import signatures_view

    _emit("signatures", signatures_view(_read(args.path, args), all=args.all), args)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import weights_view

    from .progress import progress_bar

    with progress_bar("stats", args.quiet) as bar:
        return _many(
            "weights",
            args,
            lambda p: weights_view(
                _read(p, args),
                match=args.match,
                include_optimizer=args.include_optimizer,
                stats=args.stats,
                progress=bar if args.stats else None,
            ),
        )


def cmd_layers(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import layers_view

    _emit("layers", layers_view(_read(args.path, args)), args)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import ops_view

    _emit("ops", ops_view(_read(args.path, args)), args)
    return 0


def cmd_tensor(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.tensor import MAX_PRINT_ELEMENTS, printable, write_npy

    desc = _read(args.path, args)
    weight = desc.weight(args.name)
    data: dict[str, Any] = {
        "path": desc.path,
        "format": desc.format,
        "name": weight.name,
        "dtype": weight.dtype,
        "shape": list(weight.shape),
    }
    if args.out:
        from .progress import progress_bar

        notes: list[str] = []
        with progress_bar("tensor", args.quiet) as bar:

            def save(tmp: str) -> None:
                note = write_npy(weight, tmp, progress=bar)
                if note:
                    notes.append(note)

            atomic_write(args.out, save)
        data["out"] = args.out
        if notes and not args.quiet:
            print(f"{PROG}: note: {notes[0]}", file=sys.stderr)
    else:
        if weight.size > MAX_PRINT_ELEMENTS and args.format == "json":
            from tfmodelkit.errors import UserError

            raise UserError(
                f"{weight.name} has {weight.size:,} elements; too many for JSON output: use --out FILE.npy"
            )
        values = weight.read()
        data["values"], data["values_text"] = printable(values)
        if args.format == "json":
            data.pop("values_text")
    _emit("tensor", data, args)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import tfmodelkit
    from tfmodelkit.inspect.views import check_view

    from .progress import progress_bar

    if args.target:
        from tfmodelkit.inspect.lint import lint, parse_targets

        targets = parse_targets(args.target)
        reports = [lint(p, targets, format=args.as_format, tags=args.tag_set) for p in _paths(args)]
    else:
        with progress_bar("check", args.quiet) as bar:
            reports = [tfmodelkit.check(p, format=args.as_format, progress=bar) for p in _paths(args)]
    views = [check_view(r) for r in reports]
    _emit("check", views[0] if len(views) == 1 else views, args)
    return 0 if all(r.ok for r in reports) else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from tfmodelkit.inspect.views import diff_json, diff_view

    report = diff_view(
        _read(args.a, args), _read(args.b, args), include_optimizer=args.include_optimizer, atol=args.atol
    )
    _emit("diff", diff_json(report), args)
    return 0 if report.identical else 1


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
    return run(PROG, lambda: _COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
