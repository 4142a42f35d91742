"""The tfsonify record of a ``.tflite`` sonifier, read without TensorFlow (``ai_edge_litert``'s flatbuffer schema).

:func:`tfsonify.export.tflite.convert` stores a JSON record as the flatbuffer metadata entry named
:data:`METADATA_NAME` (the TFLite format's ``Model.metadata``: a name and a buffer index; LiteRT ignores entries it
does not know). The record is :class:`tfsonify.models.metadata.ModelMetadata`'s fields (``sample_rate`` in Hz,
``layers``: per sonifiable layer its ``name``, ``block``, ``channels``, ``receptive_field`` and ``stride`` in input
samples and ``min_length``; ``class_names``; ``input_length``) plus what the export chose:

``length``
    the fixed clip length ``T`` in samples, or None for a dynamic-length model;
``top_k``
    ``K`` of the ``top_k_*`` signatures;
``signatures``
    per exported layer (a block index as a string, or a layer name) its signature suffix (``"l5"``,
    ``"conv4"``), so ``sonify_{suffix}`` / ``top_k_{suffix}`` / ``sonify_raw_{suffix}`` /
    ``peak_activations_{suffix}`` are its signatures.

The edge runtime (numpy + LiteRT only) plans windows from ``receptive_field`` and ``stride`` of the layer it runs,
instead of a table of one model's blocks::

    record = read_metadata("sonifier.tflite")
    geometry = layer_geometry(record, 11)        # {"receptive_field": 2370, "stride": 256, ...} for CNN12
"""
from __future__ import annotations

import json
import os

__all__ = ["METADATA_NAME", "FORMAT", "read_metadata", "layer_geometry", "signature_suffix"]

METADATA_NAME = "tfsonify"
FORMAT = "tfsonify-tflite/1"


def _model_bytes(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        with open(os.fspath(source), "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ValueError(f"cannot read TFLite model {str(source)!r}: {error.strerror}") from None


def read_metadata(source: str | os.PathLike | bytes) -> dict:
    """The tfsonify record of a ``.tflite`` file (path) or flatbuffer (bytes), as a dict (see the module docstring).

    Raises:
        ValueError: not a TFLite flatbuffer, or one without a tfsonify record (exported by another tool, or by a
            tfsonify older than the record); the message says which.
    """
    from ai_edge_litert import schema_py_generated as schema  # flatbuffers only, no TensorFlow

    data = _model_bytes(source)
    name = source if not isinstance(source, (bytes, bytearray, memoryview)) else "the model"
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{str(name)!r} is not a TFLite flatbuffer (no TFL3 identifier)")
    model = schema.Model.GetRootAs(data, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if (entry.Name() or b"").decode("utf-8", "replace") != METADATA_NAME:
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.Offset() > 1:  # a large model keeps buffers after the flatbuffer
            raw = data[buffer.Offset(): buffer.Offset() + buffer.Size()]
        else:
            raw = buffer.DataAsNumpy().tobytes()
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{str(name)!r}: its tfsonify metadata is not valid JSON: {error}") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{str(name)!r}: unknown tfsonify metadata format {record.get('format') if isinstance(record, dict) else record!r}; "
                             f"expected {FORMAT!r}")
        return record
    raise ValueError(f"{str(name)!r} holds no tfsonify metadata (export it with `tfsonify export tflite`)")


def signature_suffix(layer: int | str) -> str:
    """``l{L}`` for block ``L``, the layer name (non-alphanumerics as ``_``) for a named layer (as the exporter)."""
    if isinstance(layer, str) and not layer.isdecimal():
        return "".join(c if c.isalnum() else "_" for c in layer)
    return f"l{int(layer)}"


def layer_geometry(record: dict, layer: int | str) -> dict:
    """The ``layers`` entry of block index ``layer`` (int, 1-based) or of the layer named ``layer``:
    ``{"name", "block", "channels", "receptive_field", "stride", "min_length"}`` (samples).

    Raises:
        ValueError: the model has no such layer (the message lists its blocks and names).
    """
    for entry in record.get("layers", []):
        if (entry["name"] == layer) if isinstance(layer, str) else (entry["block"] == int(layer)):
            return entry
    names = [entry["name"] for entry in record.get("layers", [])]
    blocks = [entry["block"] for entry in record.get("layers", []) if entry["block"] is not None]
    what = f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"
    raise ValueError(f"{what} is not a layer of this model (blocks 1..{max(blocks, default=0)}, layers {names})")
