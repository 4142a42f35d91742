"""Deployment exporters: TF Serving SavedModels (:mod:`.savedmodel`) and builtin-only TFLite (:mod:`.tflite`).

Names are imported on first use (PEP 562): the TensorFlow-free helpers of :mod:`.wav_graph` (WAV headers, encoding
and decoding WAV files with numpy) serve ``tfsonify request`` without loading TensorFlow.
"""
from __future__ import annotations

from tfsonify._lazy import lazy_exports as _lazy_exports

__all__ = ["export_saved_model", "next_version", "read_metadata", "write_batching_parameters", "write_model_config"]

__getattr__, __dir__ = _lazy_exports(__name__, dict.fromkeys(__all__, "tfsonify.export.savedmodel"))
