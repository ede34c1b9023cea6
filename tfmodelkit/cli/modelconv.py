"""``modelconv``: conversions between TensorFlow model formats, each verified numerically.

The conversions land with the conversion work; until then every subcommand says so.
"""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_CODES_HELP

PROG = "modelconv"

SUBCOMMANDS = {
    "h5-to-savedmodel": "Keras .h5 (Keras 1/2/3) to a SavedModel with the model's own signature names",
    "keras-to-savedmodel": "Keras 3 .keras to a SavedModel",
    "ckpt-to-savedmodel": "checkpoint + model code or architecture to a SavedModel",
    "savedmodel-to-tflite": "SavedModel to TFLite (float, dynamic, float16, int8)",
    "convert": "pick the route from the source format and destination suffix",
    "verify": "run two artifacts on the same inputs and compare their outputs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert TensorFlow models between formats and prove each conversion numerically.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=f"{text} (not yet available)")
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, _unknown = parser.parse_known_args(argv)
    if args.version:
        from tfmodelkit import __version__

        print(f"{PROG} {__version__}")
        return 0
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    print(
        f"{PROG}: error: {args.command} is not available yet in this version of tfmodelkit; "
        "use `modelinspect` to look inside models meanwhile",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
