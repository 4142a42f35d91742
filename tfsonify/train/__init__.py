"""Training: losses, clip metrics, the paper's optimiser and schedule, strategies, resumable fit, the distributed loop.

The names below are imported on first use (PEP 562), so a TensorFlow-free module of this package
(:mod:`tfsonify.train.config`, :mod:`tfsonify.train.experiment`'s ``Config``, :mod:`tfsonify.train.demo_config`: what
``tfsonify demo --help`` needs) imports without TensorFlow.
"""
from __future__ import annotations

import sys as _sys
import types as _types

from tfsonify._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "classification_loss": "tfsonify.train.losses", "per_example_loss": "tfsonify.train.losses",
    "accuracy": "tfsonify.train.metrics", "average_precision": "tfsonify.train.metrics",
    "clip_metrics": "tfsonify.train.metrics", "d_prime": "tfsonify.train.metrics", "roc_auc": "tfsonify.train.metrics",
    "adamw": "tfsonify.train.schedule", "scale_learning_rate": "tfsonify.train.schedule",
    "warmup_cosine": "tfsonify.train.schedule",
    "describe": "tfsonify.train.strategy", "global_batch_size": "tfsonify.train.strategy",
    "strategy": "tfsonify.train.strategy",
}

__all__ = ["classification_loss", "per_example_loss", "accuracy", "average_precision", "clip_metrics", "d_prime",
           "roc_auc", "adamw", "scale_learning_rate", "warmup_cosine", "describe", "global_batch_size", "strategy"]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)


class _Package(_types.ModuleType):
    """``tfsonify.train.strategy`` stays the *function* (as with eager imports) when the import system binds the
    submodule of the same name onto the package after loading it."""

    def __setattr__(self, name, value):
        if isinstance(value, _types.ModuleType) and _EXPORTS.get(name) == value.__name__ and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
