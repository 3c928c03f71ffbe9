"""The `tinyemo` command line. Each command lives in its own module with `add_parser`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from tinyemo.errors import CommandError, TinyEmoError

__all__ = ["CommandError", "build_parser", "int_at_least", "main", "positive_int"]

COMMAND_MODULES = ("profile", "stage", "data", "fetch_emotion6", "encode", "explain", "classify",
                   "evaluate", "ablate_run", "dry_run")


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


def int_at_least(minimum: int):
    """An argparse type: an integer of at least `minimum` (argparse prints a refusal as a
    usage error naming the option, exit status 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)


BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def main(argv: list[str] | None = None) -> int:
    """Run one command. The project's own errors (`TinyEmoError`: bad input or set-up) print
    one line and exit 2; anything else is a bug and keeps its traceback. A reader that
    closes the pipe early (`tinyemo classify ... | head -3`) ends the command quietly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except TinyEmoError as err:
        print(f"tinyemo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at devnull
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
