"""Keras callbacks for training runs."""
from __future__ import annotations

import time

import keras

__all__ = ["TimeLimit"]


class TimeLimit(keras.callbacks.Callback):
    """Stop training after ``minutes`` of wall-clock time (checked after each batch); the model so far is kept."""

    def __init__(self, minutes: float):
        super().__init__()
        if not minutes > 0:
            raise ValueError(f"the time limit must be > 0 minutes; received {minutes!r}")
        self.minutes = float(minutes)

    def on_train_begin(self, logs=None):
        self.deadline = time.monotonic() + 60.0 * self.minutes

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() > self.deadline:
            self.model.stop_training = True
