"""Deployment exporters: TF Serving SavedModels (:mod:`.savedmodel`) and builtin-only TFLite (:mod:`.tflite`).

Names are imported on first use (PEP 562): the TensorFlow-free helpers of :mod:`.wav_graph` (WAV headers, encoding
and decoding WAV files with numpy) serve ``tfsonify request`` without loading TensorFlow.
"""
from __future__ import annotations

import importlib as _importlib

__all__ = ["export_saved_model", "next_version", "read_metadata", "write_batching_parameters", "write_model_config"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'tfsonify.export' has no attribute {name!r}")
    value = getattr(_importlib.import_module("tfsonify.export.savedmodel"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
