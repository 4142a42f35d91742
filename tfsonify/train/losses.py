"""Classification losses of the paper's supervised experiments (Appendix A.3).

Multi-label binary cross-entropy (AudioSet, FSD50K) and multi-class categorical
cross-entropy (Speech Commands v2). Both act on the *probabilities* CNN12's head
outputs (sigmoid or softmax), with one-hot / multi-hot float32 targets so that
mixup's soft targets work unchanged.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["classification_loss", "per_example_loss"]


def classification_loss(multi_label: bool, *, from_logits: bool = False, reduction: str | None = "sum_over_batch_size"
                        ) -> keras.losses.Loss:
    """The loss object for a head: BCE if ``multi_label`` else categorical CE.

    Args:
        multi_label: True for sigmoid heads (multi-hot targets ``[batch, classes]``),
            False for softmax heads (one-hot or mixup-soft targets ``[batch, classes]``).
        from_logits: whether predictions are logits (CNN12 heads output probabilities: keep False).
        reduction: Keras reduction; ``None`` gives the per-example loss ``[batch]`` a custom
            distributed loop averages with ``tf.nn.compute_average_loss``.

    Returns:
        A ``keras.losses.Loss``; ``loss(targets, predictions)`` is float32 (scalar, or ``[batch]``
        with ``reduction=None``; BCE is averaged over classes).
    """
    if not isinstance(multi_label, bool):
        raise ValueError(f"multi_label must be True or False; received {multi_label!r}")
    if multi_label:
        return keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=reduction, name="bce")
    return keras.losses.CategoricalCrossentropy(from_logits=from_logits, reduction=reduction, name="cce")


def per_example_loss(targets: tf.Tensor, predictions: tf.Tensor, multi_label: bool) -> tf.Tensor:
    """Per-example loss ``[batch]`` float32 of probability ``predictions`` ``[batch, classes]``.

    Graph-safe (usable in ``strategy.run`` and under ``jit_compile=True``).
    """
    targets = tf.cast(targets, tf.float32)
    predictions = tf.cast(predictions, tf.float32)
    return classification_loss(multi_label, reduction=None)(targets, predictions)
