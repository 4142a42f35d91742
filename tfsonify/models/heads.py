"""Classifier heads on a CNN12 encoder: the linear-evaluation / fine-tuning classifier and the truncated
layer-importance probe (paper Appendix A.2, A.3, B), and the headless encoder copy they start from.

``fconly`` freezes every encoder layer (``trainable=False``; the optimiser never sees its weights) and sets the
encoder's dropout to 0; ``full`` trains everything. The models are ordinary Keras models (a :class:`CNN12` with a
head, or a functional truncated CNN12), so they save and load as ``.keras`` files like any tfsonify model.
"""
from __future__ import annotations

import keras

from tfsonify.layers import PeakNormalization
from tfsonify.models.cnn12 import BLOCKS, CNN12, NUM_BLOCKS, block_widths
from tfsonify.models.contrastive import ContrastiveModel
from tfsonify.validation import check_choice, check_int

__all__ = ["MODES", "ENCODER_LAYERS", "check_mode", "encoder_copy", "freeze_encoder", "classifier_from_encoder",
           "truncated_classifier"]

MODES = ("fconly", "full")
#: Layers of CNN12 that hold the encoder's weights (the classifier head is not one of them).
ENCODER_LAYERS = tuple(f"conv{i}" for i in range(1, NUM_BLOCKS + 1)) + ("embedding",)

def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a ValueError naming both."""
    return check_choice("mode", mode, MODES, detail=" (fconly = linear evaluation, full = fine-tuning)")


def encoder_copy(model: keras.Model) -> CNN12:
    """A new headless :class:`CNN12` holding copies of the encoder weights of ``model``.

    Args:
        model: a :class:`CNN12` (with or without a head) or a :class:`~tfsonify.models.contrastive.ContrastiveModel`
            (its ``encoder``); open a file with :func:`tfsonify.models.checkpoint.cnn12_of` first.

    Returns:
        A :class:`CNN12` with ``num_classes=None`` (waveform float32 ``[batch, time]`` at 8 kHz -> embedding
        ``[batch, embedding_dim]``), named ``encoder``.

    Raises:
        ValueError: ``model`` holds no CNN12.
    """
    if isinstance(model, ContrastiveModel):
        trained = model.encoder
    elif isinstance(model, CNN12):
        trained = model
    else:
        raise ValueError(f"model is a {type(model).__name__}; expected a tfsonify CNN12 or a ContrastiveModel "
                         f"(whose encoder is a CNN12)")
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
        encoder: a CNN12 (from :func:`encoder_copy`, or any CNN12: its head, if any, is ignored).
        num_classes: classes of the new head.
        mode: ``"fconly"`` (encoder frozen, dropout 0) or ``"full"`` (everything trains).
        multi_label: sigmoid head (multi-label BCE) instead of softmax.
        dropout: encoder dropout; default 0 for ``fconly`` and the encoder's own rate for ``full``.

    Returns:
        An uncompiled :class:`CNN12` with ``num_classes`` outputs (probabilities), input float32
        ``[batch, time]`` at 8 kHz.
    """
    check_mode(mode)
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


def truncated_classifier(
    encoder: CNN12,
    num_blocks: int,
    num_classes: int,
    mode: str = "fconly",
    multi_label: bool = False,
) -> keras.Model:
    """The first ``num_blocks`` blocks of ``encoder`` (weights copied) + temporal average pooling + a new head.

    Args:
        encoder: a pretrained CNN12 (any head is ignored), e.g. from
            :func:`encoder_copy`.
        num_blocks: ``L`` in ``1 … 11``.
        num_classes: classes of the new head.
        mode: ``"fconly"`` (retained blocks frozen) or ``"full"``.
        multi_label: sigmoid head instead of softmax.

    Returns:
        A functional ``keras.Model``: waveform float32 ``[batch, time]`` at 8 kHz (``time ≥
        min_length(num_blocks)``) -> probabilities ``[batch, num_classes]``. Layer names match CNN12's
        (``conv1`` … ``conv{L}``, ``pool*``) plus ``temporal_pool`` and ``classifier``.
    """
    check_mode(mode)
    check_int("num_blocks", num_blocks, 1, NUM_BLOCKS)
    check_int("num_classes", num_classes, minimum=1)
    frozen = mode == "fconly"
    waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
    x = PeakNormalization(name="peak_normalization")(waveform)
    x = keras.layers.Reshape((-1, 1), name="add_channel")(x)
    widths = block_widths(encoder.width_multiplier)
    convs = []
    for index in range(1, num_blocks + 1):
        spec = BLOCKS[index - 1]
        conv = keras.layers.Conv1D(widths[index - 1], spec.kernel_size, padding="valid", activation="relu",
                                   name=f"conv{index}", trainable=not frozen)
        x = conv(x)
        convs.append(conv)
        if spec.pooled:
            x = keras.layers.MaxPooling1D(pool_size=2, strides=2, padding="valid", name=f"pool{index}")(x)
    x = keras.layers.GlobalAveragePooling1D(name="temporal_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax", name="classifier")(x)
    model = keras.Model(waveform, outputs, name=f"cnn12_first{num_blocks}_{mode}")
    for conv in convs:
        conv.set_weights(encoder.get_layer(conv.name).get_weights())
    return model
