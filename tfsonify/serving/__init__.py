"""TF-Serving-compatible serving of exported tfsonify SavedModels and its client.

:class:`Client` needs only numpy (REST) or ``tensorflow-serving-api`` (gRPC); the server
(:mod:`tfsonify.serving.server`) is imported on demand.
"""
from tfsonify.serving.client import Client, ServingRequestError

__all__ = ["Client", "ServingRequestError"]
