"""Loading tfsonify ``.keras`` files of every kind, in one place.

A tfsonify checkpoint holds either a :class:`~tfsonify.CNN12` (with or without a classifier head: supervised
training, ``tfsonify demo``, linear evaluation) or a :class:`~tfsonify.train.contrastive.ContrastiveModel`
(SimCLR pretraining: a CNN12 ``encoder`` plus a projection head). Loading needs every custom class
registered; :func:`load_checkpoint` does that, so the CLI, the analyses and the linear evaluation all open
both kinds. :func:`cnn12_of` gives the CNN12 to sonify or analyse (a contrastive model's encoder).

    model = load_checkpoint("runs/simclr/contrastive.keras")   # ContrastiveModel
    encoder = cnn12_of(model)                                   # its CNN12 encoder
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

from tfsonify.cnn12 import CNN12

__all__ = ["load_checkpoint", "cnn12_of"]


def _register_custom_classes() -> None:
    import tfsonify  # noqa: F401  (CNN12 and its layers)
    import tfsonify.train.contrastive  # noqa: F401  (ContrastiveModel)


def load_checkpoint(path: str | os.PathLike, what: str = "model") -> keras.Model:
    """A ``.keras`` file saved from any tfsonify model, uncompiled.

    Args:
        path: the ``.keras`` file.
        what: the noun used in error messages ("model", "checkpoint").

    Raises:
        ValueError: the file does not exist, or Keras cannot load it (corrupt, not a ``.keras`` archive, or a
            model of unknown classes); the message names the file and Keras' reason.
    """
    _register_custom_classes()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # keras raises many types for corrupt archives
        raise ValueError(f"cannot load {what} {str(path)!r} (expected a .keras file saved from a tfsonify CNN12 or "
                         f"ContrastiveModel): {error}") from None


def cnn12_of(model: keras.Model) -> CNN12:
    """The CNN12 inside ``model``: the model itself, or the ``encoder`` of a contrastive model.

    Raises:
        ValueError: ``model`` is neither.
    """
    if isinstance(model, CNN12):
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, CNN12):
        return encoder
    raise ValueError(f"model {getattr(model, 'name', model)!r} is a {type(model).__name__}; expected a tfsonify CNN12 "
                     f"or a ContrastiveModel (whose encoder is a CNN12)")
