"""Subcommands of the ``tfsonify`` CLI (see :mod:`tfsonify.cli`): thin, parse -> library -> print."""
from tfsonify.progress import progress

__all__ = ["load_model", "progress"]


def load_model(path: str, any_model: bool = False):
    """The model to sonify from a ``.keras`` file, with a progress line: its CNN12 (a contrastive checkpoint gives
    its encoder); with ``any_model``, any other model as it is (the deconvnet checks it)."""
    from tfsonify.models.checkpoint import cnn12_of, sonifiable_of

    with progress(f"loading model {path}"):
        return sonifiable_of(path) if any_model else cnn12_of(path)
