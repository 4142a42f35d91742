"""Subcommands of the ``tfsonify`` CLI (see :mod:`tfsonify.cli`): thin, parse -> library -> print."""
from tfsonify.progress import progress

__all__ = ["load_model", "progress"]


def load_model(path: str):
    """The CNN12 of a ``.keras`` file (a contrastive checkpoint gives its encoder), with a progress line."""
    from tfsonify.checkpoint import cnn12_of

    with progress(f"loading model {path}"):
        return cnn12_of(path)
