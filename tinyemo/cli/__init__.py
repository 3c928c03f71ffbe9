"""The `tinyemo` command line. Each command lives in its own module with `add_parser`."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("profile", "stage", "data", "fetch_emotion6", "encode", "explain", "classify",
                   "evaluate", "ablate_run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyemo",
        description="TinyEmo companion: classify and explain the emotion of images, and run "
        "the pipeline that reproduces the paper's results.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"tinyemo.cli.{name}").add_parser(commands)
    return parser


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except (CommandError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"tinyemo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
