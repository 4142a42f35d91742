"""The one way a path becomes a model: loading tfsonify ``.keras`` files of every family.

A tfsonify checkpoint holds a model of one of the families in :mod:`tfsonify.models`: a
:class:`~tfsonify.models.cnn12.CNN12` (with or without a classifier head: supervised training, ``tfsonify demo``,
linear evaluation), a :class:`~tfsonify.models.contrastive.ContrastiveModel` (SimCLR pretraining: a CNN12
``encoder`` plus a projection head) or a truncated layer-importance classifier. Importing :mod:`tfsonify.models`
registers every custom class, so :func:`load_checkpoint` opens them all. :func:`cnn12_of` gives the CNN12 to
sonify or analyse (a contrastive model's encoder) from a path or a model; the CLI, the analyses, the report and the
training code all go through these two functions.

    model = load_checkpoint("runs/simclr/contrastive.keras")   # ContrastiveModel
    encoder = cnn12_of(model)                                   # its CNN12 encoder
    encoder = cnn12_of("runs/simclr/contrastive.keras")         # the same, from the path

Geometry travels with the file: :func:`save_model` stores a :class:`tfsonify.models.metadata.ModelMetadata`
(layer names, receptive fields, strides, minimum lengths, sample rate, class names) in the archive and
:func:`load_checkpoint` attaches it to the loaded model (``tfsonify.models.metadata.metadata_of(model)``; a model
without a ``sample_rate`` attribute gets the stored one), so any model, not only a tfsonify class, keeps its rate
and labels::

    save_model(my_cnn, "mine.keras", sample_rate=16000, class_names=["yes", "no"])
    load_checkpoint("mine.keras").sample_rate                   # 16000
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

from typing import Sequence

from tfsonify.io.audio import atomic_path
from tfsonify import models  # noqa: F401  (registers every serialisable class for load_model)
from tfsonify.models.cnn12 import CNN12
from tfsonify.models.metadata import attach, describe, read_archive_metadata, write_archive_metadata

__all__ = ["load_checkpoint", "cnn12_of", "sonifiable_of", "save_model"]


def load_checkpoint(path: str | os.PathLike, what: str = "model") -> keras.Model:
    """A ``.keras`` file saved from any tfsonify model, uncompiled.

    Args:
        path: the ``.keras`` file.
        what: the noun used in error messages ("model", "checkpoint").

    Raises:
        ValueError: the file does not exist, is not a ``.keras`` file, or Keras cannot load it (corrupt, not a
            ``.keras`` archive, or a model of unknown classes); the message names the file and Keras' reason.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.keras"))[:3]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise ValueError(f"{what} {str(path)!r} is a directory, not a .keras file{hint}")
    if not path.is_file():
        raise ValueError(f"{what} not found: {str(path)!r} does not exist (it must be an existing .keras file)")
    if path.suffix != ".keras":
        raise ValueError(f"{what} must be a .keras file (a whole saved model, not weights); received {str(path)!r}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # keras raises many types for corrupt archives
        raise ValueError(f"cannot load {what} {str(path)!r} (expected a .keras file saved from a tfsonify model): "
                         f"{error}") from None
    stored = read_archive_metadata(path)  # ValueError for a malformed record
    if stored is not None:
        attach(model, stored)
    return model


def cnn12_of(source: str | os.PathLike | keras.Model, what: str = "model") -> CNN12:
    """The CNN12 of ``source``: the model itself, or the ``encoder`` of a contrastive model.

    Args:
        source: a ``.keras`` path (opened with :func:`load_checkpoint`) or an in-memory Keras model.
        what: the noun used in error messages.

    Raises:
        ValueError: the path cannot be loaded, or the model holds no CNN12.
    """
    model = load_checkpoint(source, what) if isinstance(source, (str, os.PathLike)) else source
    if isinstance(model, CNN12):
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, CNN12):
        return encoder
    if not isinstance(model, keras.Model):
        raise ValueError(f"{what} must be a .keras path or a Keras model; received {type(model).__name__}")
    raise ValueError(f"{what} {getattr(model, 'name', model)!r} is a {type(model).__name__}; expected a tfsonify "
                     f"CNN12 or a ContrastiveModel (whose encoder is a CNN12)")


def sonifiable_of(source: str | os.PathLike | keras.Model, what: str = "model") -> keras.Model:
    """The model to sonify in ``source`` (a ``.keras`` path or a model): its CNN12 (a contrastive model's encoder)
    when it has one, else the model itself (any Keras raw-waveform CNN; :class:`tfsonify.Sonifier` checks it)."""
    model = load_checkpoint(source, what) if isinstance(source, (str, os.PathLike)) else source
    try:
        return cnn12_of(model, what)
    except ValueError:
        if not isinstance(model, keras.Model):
            raise
        return model


def save_model(model: keras.Model, path: str | os.PathLike, *, sample_rate: int | None = None,
               class_names: Sequence[str] | None = None) -> Path:
    """``model.save`` to the ``.keras`` file ``path`` atomically (a temporary file beside it, renamed on success),
    with the model's :class:`~tfsonify.models.metadata.ModelMetadata` in the archive.

    Args:
        model: any Keras model (its sonifiable layers are described when the deconvnet can walk it).
        path: the ``.keras`` file.
        sample_rate: the model's input rate in Hz (default: its stored metadata or ``sample_rate`` attribute).
        class_names: one name per output unit of the model's head (default: the stored ones, if any); checked
            against the output width.

    An interrupted or failed save leaves ``path`` as it was (never half-written). Returns ``path``.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a model is saved to a .keras file; received {str(path)!r}")
    metadata = describe(model, sample_rate=sample_rate, class_names=class_names)  # checks before writing
    with atomic_path(path, suffix=".keras", suffix_last=True) as temporary:
        model.save(temporary)
        write_archive_metadata(temporary, metadata)
    attach(model, metadata)
    return path
