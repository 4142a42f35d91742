"""Subcommands of the ``tfsonify`` CLI (see :mod:`tfsonify.cli`): thin, parse -> library -> print."""
from tfsonify.progress import progress

__all__ = ["add_command", "load_model", "progress"]


def load_model(path: str, any_model: bool = False):
    """The model to sonify from a ``.keras`` file, with a progress line: its CNN12 (a contrastive checkpoint gives
    its encoder); with ``any_model``, any other model as it is (the deconvnet checks it)."""
    from tfsonify.models.checkpoint import cnn12_of, sonifiable_of

    with progress(f"loading model {path}"):
        return sonifiable_of(path) if any_model else cnn12_of(path)


def add_command(subparsers, name: str, help: str, doc: str | None):
    """The subparser ``name``: ``help`` in ``tfsonify --help``, and as its description the command module's
    docstring ``doc`` after its first line (the usage line): one place for what a command does."""
    import argparse
    import inspect

    description = inspect.cleandoc((doc or "").partition("\n")[2]).strip() or None
    return subparsers.add_parser(name, help=help, description=description,
                                 formatter_class=argparse.HelpFormatter)
