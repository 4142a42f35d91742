"""TF-Serving-compatible serving of exported tfsonify SavedModels and its client.

:class:`Client` needs only numpy (REST) or ``tensorflow-serving-api`` (gRPC); it and the server
(:mod:`tfsonify.serving.server`) are imported on first use (PEP 562), so ``tfsonify request`` over REST loads no
TensorFlow.
"""
from __future__ import annotations

import importlib as _importlib

__all__ = ["Client", "ServingRequestError"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'tfsonify.serving' has no attribute {name!r}")
    value = getattr(_importlib.import_module("tfsonify.serving.client"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
