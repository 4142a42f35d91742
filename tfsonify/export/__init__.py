"""Deployment exporters: TF Serving SavedModels (:mod:`.savedmodel`) and builtin-only TFLite (:mod:`.tflite`)."""
from tfsonify.export.savedmodel import export_saved_model, next_version, read_metadata, write_batching_parameters, write_model_config

__all__ = ["export_saved_model", "next_version", "read_metadata", "write_batching_parameters", "write_model_config"]
