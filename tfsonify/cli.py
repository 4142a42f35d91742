"""``tfsonify`` command line: thin subcommands that parse, call the library and print.

Each subcommand lives in ``tfsonify/commands/<name>.py`` with ``register(subparsers)``
that adds its parser and sets ``func``; add new ones to ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, NoReturn

COMMANDS = [
    "tfsonify.commands.sonify",
    "tfsonify.commands.listen",
    "tfsonify.commands.demo",
    "tfsonify.commands.build_demo_data",
    "tfsonify.commands.export",
    "tfsonify.commands.serve",
    "tfsonify.commands.request",
    "tfsonify.commands.analyze",
    "tfsonify.commands.report",
]


def run_script(main: Callable[[], int | None], prog: str) -> NoReturn:
    """Run a script's ``main()`` and exit with its status, as the ``tfsonify`` CLI does.

    A ``ValueError`` (bad input, described for the user) becomes ``PROG: error: MESSAGE`` on stderr and exit
    status 2, like argparse's usage errors; other exceptions propagate with their traceback. Used by ``recipes/``.
    """
    try:
        status = int(main() or 0)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        status = 2
    sys.exit(status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfsonify", description="Listen to what raw-waveform CNNs (CNN12) have learned.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"tfsonify {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
