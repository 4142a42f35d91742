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
    "tfsonify.commands.sonify_dataset",
    "tfsonify.commands.report",
    "tfsonify.commands.import_model",
    "tfsonify.commands.explore",
    "tfsonify.commands.evaluate",
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


def quiet_native_logs(filter_stderr: bool = False) -> None:
    """Quieter TensorFlow C++ logs, errors kept (user values win).

    ``TF_CPP_MIN_LOG_LEVEL=2`` (3 would hide real errors too; effective only if TensorFlow is not imported
    yet). With ``filter_stderr`` (a real CLI run), :mod:`tfsonify.commands.native_log_filter` also drops oneDNN's ``E0000 ... util.cc] oneDNN supports DT_BOOL only
    on platforms with AVX-512`` notice, which is logged at ERROR level on every CPU without AVX-512
    (``TF_ENABLE_ONEDNN_OPTS=0`` would silence it too, but also turns off oneDNN's kernels).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if filter_stderr:  # works after TensorFlow's import too (`import tfsonify` loads it): C++ writes to fd 2
        from tfsonify.commands import native_log_filter

        native_log_filter.install()


def main(argv: list[str] | None = None) -> int:
    quiet_native_logs(filter_stderr=argv is None)  # argv None: run as the `tfsonify` program
    from tfsonify.commands import beam_options

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    argv, pipeline_args = beam_options.split_pipeline_args(argv)  # `... --runner R -- --beam_flag=value`
    args = parser.parse_args(argv)
    beam_options.finish(parser, args, pipeline_args)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"tfsonify {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
