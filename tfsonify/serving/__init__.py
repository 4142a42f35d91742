"""TF-Serving-compatible serving of exported tfsonify SavedModels and its client.

:class:`Client` needs only numpy (REST) or ``tensorflow-serving-api`` (gRPC); it and the server
(:mod:`tfsonify.serving.server`) are imported on first use (PEP 562), so ``tfsonify request`` over REST loads no
TensorFlow.
"""
from __future__ import annotations

from tfsonify._lazy import lazy_exports as _lazy_exports

__all__ = ["Client", "ServingRequestError"]

__getattr__, __dir__ = _lazy_exports(__name__, dict.fromkeys(__all__, "tfsonify.serving.client"))
