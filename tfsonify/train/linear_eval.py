"""Linear evaluation (``fconly``) and fine-tuning (``full``) of a pretrained CNN12 encoder (App. A.2, A.3).

The encoder ``f_enc`` (``conv1`` … ``conv11`` and the 512-d ``embedding`` layer) loads from either kind of
checkpoint without hand-editing:

* a :class:`~tfsonify.train.contrastive.ContrastiveModel` ``.keras`` file (SimCLR pretraining): its
  ``encoder``; the projection head is dropped;
* a :class:`~tfsonify.CNN12` ``.keras`` file, with or without a classifier head (supervised
  pretraining): every layer but ``classifier``.

A *new* classifier head (``Dense(num_classes)``, softmax or sigmoid) goes on top of the embedding. In
``fconly`` mode every encoder layer is frozen (``trainable=False``; the optimiser never sees its weights,
so they stay bit-identical) and the encoder's dropout is set to 0 (the classifier sees the deterministic
features); in ``full`` mode everything trains. The result is an ordinary ``CNN12`` with a head, so the
supervised recipes, losses and metrics of :mod:`tfsonify.train.supervised` apply unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

import tfsonify  # noqa: F401  (registers the serializable classes for load_model)
from tfsonify.cnn12 import CNN12, NUM_BLOCKS
from tfsonify.train.contrastive import ContrastiveModel

__all__ = ["MODES", "ENCODER_LAYERS", "load_encoder", "classifier_from_encoder", "classifier_from_checkpoint",
           "encoder_weights", "freeze_encoder"]

MODES = ("fconly", "full")
#: Layers of CNN12 that hold the encoder's weights (the classifier head is not one of them).
ENCODER_LAYERS = tuple(f"conv{i}" for i in range(1, NUM_BLOCKS + 1)) + ("embedding",)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (fconly = linear evaluation, full = fine-tuning); received {mode!r}")
    return mode


def load_encoder(source: str | os.PathLike | keras.Model) -> CNN12:
    """The pretrained CNN12 encoder (no head) of a contrastive or supervised checkpoint.

    Args:
        source: a ``.keras`` file path, or an in-memory :class:`ContrastiveModel` / :class:`CNN12`.

    Returns:
        A new :class:`CNN12` with ``num_classes=None`` (waveform float32 ``[batch, time]`` at 8 kHz ->
        embedding ``[batch, embedding_dim]``) holding copies of the checkpoint's encoder weights.

    Raises:
        ValueError: the path does not exist, is not a ``.keras`` file, or holds another kind of model.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"checkpoint not found: {str(path)!r} (expected a .keras file written by fit or save)")
        if path.suffix != ".keras":
            raise ValueError(f"checkpoint must be a .keras file (full model); received {str(path)!r}")
        model = keras.saving.load_model(path, compile=False)
    elif isinstance(source, keras.Model):
        model = source
    else:
        raise ValueError(f"source must be a .keras path or a Keras model; received {type(source).__name__}")

    if isinstance(model, ContrastiveModel):
        trained = model.encoder
    elif isinstance(model, CNN12):
        trained = model
    else:
        raise ValueError(
            f"checkpoint holds a {type(model).__name__}; expected a tfsonify ContrastiveModel or CNN12 (with or without a head)"
        )
    encoder = CNN12(
        width_multiplier=trained.width_multiplier,
        embedding_dim=trained.embedding_dim,
        dropout=trained.dropout,
        sample_rate=trained.sample_rate,
        name="encoder",
    )
    for name in ENCODER_LAYERS:
        encoder.get_layer(name).set_weights(trained.get_layer(name).get_weights())
    return encoder


def freeze_encoder(model: keras.Model, frozen: bool = True) -> None:
    """Set ``trainable = not frozen`` on every layer of ``model`` except ``classifier``.

    Call before ``compile``.
    """
    for layer in model.layers:
        if layer.name != "classifier":
            layer.trainable = not frozen


def classifier_from_encoder(
    encoder: CNN12,
    num_classes: int,
    mode: str = "fconly",
    multi_label: bool = False,
    dropout: float | None = None,
) -> CNN12:
    """A CNN12 with a new classifier head on a copy of ``encoder``'s weights.

    Args:
        encoder: a CNN12 (from :func:`load_encoder`, or any CNN12: its head, if any, is ignored).
        num_classes: classes of the new head.
        mode: ``"fconly"`` (encoder frozen, dropout 0) or ``"full"`` (everything trains).
        multi_label: sigmoid head (multi-label BCE) instead of softmax.
        dropout: encoder dropout; default 0 for ``fconly`` and the encoder's own rate for ``full``.

    Returns:
        An uncompiled :class:`CNN12` with ``num_classes`` outputs (probabilities), input float32
        ``[batch, time]`` at 8 kHz.
    """
    _check_mode(mode)
    if dropout is None:
        dropout = 0.0 if mode == "fconly" else encoder.dropout
    model = CNN12(
        width_multiplier=encoder.width_multiplier,
        num_classes=num_classes,
        multi_label=multi_label,
        embedding_dim=encoder.embedding_dim,
        dropout=dropout,
        sample_rate=encoder.sample_rate,
        name=f"cnn12_{mode}",
    )
    for name in ENCODER_LAYERS:
        model.get_layer(name).set_weights(encoder.get_layer(name).get_weights())
    freeze_encoder(model, frozen=(mode == "fconly"))
    return model


def classifier_from_checkpoint(
    source: str | os.PathLike | keras.Model | None,
    num_classes: int,
    mode: str = "fconly",
    multi_label: bool = False,
    width_multiplier: float = 1.0,
    dropout: float | None = None,
) -> CNN12:
    """:func:`classifier_from_encoder` on :func:`load_encoder` (``source``), or on a random encoder.

    ``source=None`` gives the randomly initialised baseline of the same ``width_multiplier`` (the
    reference linear evaluation is compared against).
    """
    encoder = CNN12(width_multiplier=width_multiplier, name="encoder") if source is None else load_encoder(source)
    return classifier_from_encoder(encoder, num_classes, mode, multi_label, dropout)


def encoder_weights(model: keras.Model) -> dict[str, list]:
    """``{layer name: [numpy weights]}`` of the encoder layers present in ``model`` (for comparisons)."""
    names = {layer.name for layer in model.layers}
    return {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in ENCODER_LAYERS if name in names}
