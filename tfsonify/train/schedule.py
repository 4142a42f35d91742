"""Optimiser and learning-rate schedule of the paper (Section 3.2, Appendix A.2/A.3).

Adam with weight decay 1e-3 (decoupled: ``keras.optimizers.AdamW``), not applied to biases,
with a linear warm-up over the first 10 epochs followed by a cosine decay to 0 without restarts
(``keras.optimizers.schedules.CosineDecay(warmup_target=..., warmup_steps=...)``).
"""
from __future__ import annotations

import keras

from tfsonify.validation import check_int

__all__ = ["warmup_cosine", "adamw", "scale_learning_rate", "BASE_LEARNING_RATE"]

BASE_LEARNING_RATE = 1e-3  # Adam's default, the paper's "default learning rate"


def _positive_int(name: str, value) -> int:
    check_int(name, value, minimum=1)
    return value


def warmup_cosine(learning_rate: float, steps_per_epoch: int, epochs: int, warmup_epochs: int = 10
                  ) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_epochs``, then cosine decay to 0.

    Args:
        learning_rate: peak learning rate (after warm-up), > 0.
        steps_per_epoch: optimiser steps per epoch (global batches), >= 1.
        epochs: total epochs; must exceed ``warmup_epochs`` so that some decay remains.
        warmup_epochs: epochs of linear warm-up (10 in the paper; 0 for none).

    Returns:
        A schedule ``step -> learning rate`` (float32): ``lr * step / W`` for ``step < W``
        (``W = warmup_epochs * steps_per_epoch``), then ``lr * 0.5 (1 + cos(pi (step - W) / D))``
        with ``D = (epochs - warmup_epochs) * steps_per_epoch``, and 0 after ``W + D``.
    """
    if not float(learning_rate) > 0:
        raise ValueError(f"learning_rate must be > 0; received {learning_rate!r}")
    _positive_int("steps_per_epoch", steps_per_epoch)
    _positive_int("epochs", epochs)
    check_int("warmup_epochs", warmup_epochs, minimum=0)
    if warmup_epochs >= epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) must be smaller than epochs ({epochs}) to leave room for the "
                         "cosine decay; lower --warmup-epochs or raise --epochs")
    warmup_steps = warmup_epochs * steps_per_epoch
    decay_steps = (epochs - warmup_epochs) * steps_per_epoch
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(float(learning_rate), decay_steps, alpha=0.0)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=decay_steps, alpha=0.0,
        warmup_target=float(learning_rate), warmup_steps=warmup_steps)


def adamw(learning_rate, weight_decay: float = 1e-3, exclude: tuple[str, ...] = ("bias",),
          **kwargs) -> keras.optimizers.AdamW:
    """``keras.optimizers.AdamW`` with decoupled weight decay skipped for variables named like ``exclude``.

    Args:
        learning_rate: float or schedule (e.g. :func:`warmup_cosine`).
        weight_decay: decoupled decay rate (1e-3 in the paper); the update is
            ``w -= lr * weight_decay * w`` for kernels only.
        exclude: substrings of variable names that get no decay (biases by default).
        **kwargs: passed to ``AdamW`` (``beta_1``, ``clipnorm``, ...).
    """
    if not float(weight_decay) >= 0:
        raise ValueError(f"weight_decay must be >= 0; received {weight_decay!r}")
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
    optimizer.exclude_from_weight_decay(var_names=list(exclude))
    return optimizer


def scale_learning_rate(base_learning_rate: float, global_batch_size: int, base_batch_size: int = 128) -> float:
    """Linear scaling rule: ``base_lr * global_batch / base_batch`` (base batch 128 as in A.3.3)."""
    _positive_int("global_batch_size", global_batch_size)
    _positive_int("base_batch_size", base_batch_size)
    return float(base_learning_rate) * global_batch_size / base_batch_size
