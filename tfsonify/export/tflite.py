"""Builtin-only TFLite sonifier for LiteRT (``ai_edge_litert``) on edge devices.

One ``.tflite`` file holds, for every exported block ``L``:

``sonify_l{L}``
    ``waveform`` float32 ``[1, T]`` (the model's rate, e.g. 8 kHz for CNN12; raw amplitude), ``feature`` int32 ``[1]``
    (runtime map index) -> ``sonification`` float32 ``[1, T]``.
``top_k_l{L}``
    ``waveform`` float32 ``[1, T]`` -> ``features`` int32 ``[1, K]``, ``activations``
    float32 ``[1, K]``, ``sonifications`` float32 ``[1, K, T]`` (the ``K`` most active
    maps; ``K`` fixed at export, default 4, capped at the block's width).

A fixed-length model also holds, per block, the two signatures that run long clips as
exact overlapping windows (``tfsonify/edge/windows.py``, numpy only, says how):

``sonify_raw_l{L}``
    ``waveform`` float32 ``[1, T]`` already divided by the *whole clip's* peak (not
    normalised again), ``feature`` int32 ``[1]`` -> ``reconstruction`` float32 ``[1, T]``
    (the deconvnet output before the unit-peak rescale).
``peak_activations_l{L}``
    ``waveform`` as above -> ``activations`` float32 ``[1, C_L]`` (each map's maximum over time).

``T`` is fixed (default ``length="auto"``: the model's fixed input length, else 1 s at its rate) or dynamic (``length=None``: any ``T >= min_length(L)``,
1.16-1.29x the fixed model's time at full width: the graph keeps its shape parameters
constant so XNNPACK takes the same ops as for a fixed length, see ``tfsonify.layers``;
call ``resize_tensor_input``/signature runners with the clip's length). Long clips
run exactly with the dynamic variant, or with the fixed variant as overlapping windows
(``tfsonify/edge/windows.py``); a clip shorter than ``T`` must be padded, which changes
the maps near the padded end.

Per-layer signatures rather than a runtime layer input: each block's graph has
different shapes, and LiteRT's control flow (``WHILE``/``IF``) would block XNNPACK
delegation. The converted model is checked to contain builtin ops only (no Flex,
no custom ops) by reading its operator codes with LiteRT's flatbuffer schema.

The file also holds the model's geometry (per layer: name, block, channels, receptive field, stride, minimum
length), sample rate, class names, ``T``, ``K`` and the signature suffix of each exported layer as the flatbuffer
metadata entry ``tfsonify`` (JSON; :func:`add_metadata`), read without TensorFlow by
:func:`tfsonify.edge.metadata.read_metadata`.

Weights are frozen from the Keras variables through a SavedModel written by
:class:`keras.export.ExportArchive` and stored once in the file: the backward convolutions are
traced as matmuls reading the forward ``CONV_2D`` filter's layout and the converter's transposed
copies are folded back (``export/tflite_weights.py``). ``quantize="fp16"`` stores float16
weights (half the file; computed in float32 on CPU), ``"dynamic"`` int8 weights, ``"int8"``
int8 weights and activations calibrated on real speech clips (traced with whole constant kernels:
the top block runs on all its channels, since int8 ``CONV_2D`` needs a constant, symmetric filter).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify.io.audio import atomic_path
from tfsonify.engine.lowering import TFLITE, TFLITE_INT8
from tfsonify.export.savedmodel import store_weights_once, trace_endpoints_once
from tfsonify.export.tflite_weights import share_weights
from tfsonify.edge.metadata import signature_suffix  # one naming rule for the exporter and the edge runtime
from tfsonify.engine.sonifier import Sonifier
from tfsonify.validation import check_int

__all__ = ["DEFAULT_TOP_K", "QUANTIZATIONS", "speech_clips", "convert", "raw_reconstruction_graph", "operator_names", "assert_builtin_only", "export_tflite"]

DEFAULT_TOP_K = 4


def operator_names(tflite_model: bytes) -> list[str]:
    """Names of the operator codes a ``.tflite`` flatbuffer uses (``CUSTOM:<code>`` for custom/Flex ops)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAs(tflite_model, 0)
    result = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            result.append(f"CUSTOM:{custom.decode() if custom else '?'}")
        else:
            result.append(names.get(builtin, f"UNKNOWN_{builtin}"))
    return result


def assert_builtin_only(tflite_model: bytes) -> list[str]:
    """Raise ``ValueError`` if the model uses Flex or custom ops; return its operator names."""
    ops = operator_names(tflite_model)
    bad = [op for op in ops if op.startswith("CUSTOM:") or op.startswith("UNKNOWN_")]
    if bad:
        raise ValueError(f"converted model uses non-builtin ops {bad}; only TFLITE_BUILTINS are allowed")
    return ops


def raw_reconstruction_graph(sonifier: Sonifier, normalized: tf.Tensor, layer: int, feature: tf.Tensor) -> tf.Tensor:
    """Deconvnet output of one map before any scaling, for a clip already divided by its peak.

    The windowed path (``tfsonify/edge/windows.py``) feeds windows of a clip scaled once by the
    whole clip's peak; this graph neither peak-normalises its input nor rescales its output,
    so the windows' outputs stitch into the full clip's raw reconstruction.

    Args:
        sonifier: the :class:`Sonifier` holding the model's kernels.
        normalized: float32 ``[1, time]`` (the model's rate), already scaled by the clip's global peak.
        layer: a layer name or block index (Python value).
        feature: int32 ``[1]``, the map of ``layer``.

    Returns:
        float32 ``[1, time]`` raw reconstruction (``Sonifier.deconvolve``'s output).
    """
    return sonifier.raw_reconstruction_graph(normalized, layer, tf.zeros([1], tf.int32), feature)


def _layers(sonifier: Sonifier, layers: Sequence[int | str] | None) -> list[int | str]:
    """Block indices (sorted) then layer names, each checked against the model (default: every block)."""
    chosen = list(range(1, len(sonifier.deconvnet.blocks) + 1)) if layers is None else list(layers)
    if not chosen:
        raise ValueError("layers must name at least one layer: a block index or a layer name")
    for layer in chosen:
        sonifier.num_features(layer)  # raises ValueError naming a bad block index or layer name
    blocks = sorted({int(layer) for layer in chosen if not isinstance(layer, str)})
    names = list(dict.fromkeys(layer for layer in chosen if isinstance(layer, str)))
    return blocks + names




def _add_endpoints(archive, keys: list[str], sonifier: Sonifier, layers, length, top_k: int, wave_spec, feature_spec) -> None:
    """Trace every signature of ``layers`` into ``archive``; append their names to ``keys``."""
    for layer in layers:
        k = min(top_k, sonifier.num_features(layer))

        def sonify(waveform, feature, layer=layer):
            sound = sonifier.sonify_selected_graph(waveform, layer, tf.zeros([1], tf.int32), feature)
            return {"sonification": sound}

        def top(waveform, layer=layer, k=k):
            features, scores, sounds = sonifier.sonify_top_graph(waveform, layer, k)
            return {"features": features, "activations": scores, "sonifications": sounds}

        archive.add_endpoint(f"sonify_{signature_suffix(layer)}", sonify, input_signature=[wave_spec, feature_spec])
        archive.add_endpoint(f"top_k_{signature_suffix(layer)}", top, input_signature=[wave_spec])
        keys += [f"sonify_{signature_suffix(layer)}", f"top_k_{signature_suffix(layer)}"]
        if length is not None:  # exact overlapping windows for long clips (tfsonify/edge/windows.py)

            def raw(waveform, feature, layer=layer):
                return {"reconstruction": raw_reconstruction_graph(sonifier, waveform, layer, feature)}

            def peaks(waveform, layer=layer):
                return {"activations": sonifier.peak_activations_graph(waveform, layer)}

            archive.add_endpoint(f"sonify_raw_{signature_suffix(layer)}", raw, input_signature=[wave_spec, feature_spec])
            archive.add_endpoint(f"peak_activations_{signature_suffix(layer)}", peaks, input_signature=[wave_spec])
            keys += [f"sonify_raw_{signature_suffix(layer)}", f"peak_activations_{signature_suffix(layer)}"]



QUANTIZATIONS = ("none", "fp16", "dynamic", "int8")


def speech_clips(count: int = 8, length: int | None = None, seed: int = 0, sample_rate: int = 8000) -> list[np.ndarray]:
    """``count`` real speech clips for a representative dataset: espeak-ng keywords, float32 ``[length]`` at
    ``sample_rate`` Hz (int8 calibration at the model's rate; ``length`` defaults to 1 s).

    Words and voices cycle through :data:`tfsonify.data.demo.KEYWORDS` and ``ESPEAK_ACCENTS``; each
    word sits at a random offset (``seed``) in a silent clip of ``length`` samples.
    """
    from tfsonify.data import sources
    from tfsonify.data.demo import ESPEAK_ACCENTS, KEYWORDS

    length = int(sample_rate) if length is None else int(length)
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(count):
        wave = sources.speak(KEYWORDS[index % len(KEYWORDS)], ESPEAK_ACCENTS[index % len(ESPEAK_ACCENTS)],
                             speed=int(rng.integers(110, 170)), pitch=int(rng.integers(30, 70)),
                             sample_rate=sample_rate)[:length]
        clip = np.zeros(length, np.float32)
        offset = int(rng.integers(0, length - wave.size + 1))
        clip[offset : offset + wave.size] = wave
        clips.append(clip)
    return clips


def _quantize(converter, quantize: str, keys: list[str], length: int | None, representative,
              sample_rate: int) -> None:
    """Set ``converter`` up for ``quantize`` (see :func:`convert`)."""
    if quantize == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        clips = list(representative) if representative is not None else speech_clips(8, length, sample_rate=sample_rate)

        def dataset():
            for clip in clips:
                wave = np.asarray(clip, np.float32).reshape(1, -1)
                wave = wave if length is None else np.resize(wave, (1, length))
                for key in keys:
                    inputs = {"waveform": wave}
                    if key.startswith(("sonify_", "sonify_raw_")):
                        inputs["feature"] = np.zeros([1], np.int32)
                    yield key, inputs

        converter.representative_dataset = dataset


def add_metadata(tflite_model: bytes, record: dict) -> bytes:
    """``tflite_model`` with ``record`` (JSON) as the flatbuffer metadata entry ``tfsonify``
    (:data:`tfsonify.edge.metadata.METADATA_NAME`; read back by :func:`tfsonify.edge.metadata.read_metadata`)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from tfsonify.edge.metadata import METADATA_NAME

    flat = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(record).encode("utf-8"), np.uint8)
    flat.buffers = list(flat.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(flat.buffers) - 1
    flat.metadata = [m for m in (flat.metadata or []) if (m.name or b"") not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    builder = flatbuffers.Builder(max(1024, len(tflite_model) + 4096))
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _record(model: keras.Model, sonifier: Sonifier, layers, length: int | None, top_k: int) -> dict:
    """The tfsonify record stored in the ``.tflite`` file (see :mod:`tfsonify.edge.metadata`)."""
    from tfsonify.edge.metadata import FORMAT
    from tfsonify.models.metadata import describe

    record = describe(model, sample_rate=sonifier.sample_rate).to_dict()
    record.update({"format": FORMAT, "length": length, "top_k": int(top_k),
                   "signatures": {str(layer): signature_suffix(layer) for layer in layers}})
    return record


def convert(model: keras.Model, length: int | None | str = "auto", layers: Sequence[int | str] | None = None,
            top_k: int = DEFAULT_TOP_K, fp16: bool = False, quantize: str = "none", representative=None) -> bytes:
    """Convert the sonifier of ``model`` to a builtin-only TFLite flatbuffer, with the model's geometry, sample
    rate and class names as its ``tfsonify`` metadata (:func:`tfsonify.edge.metadata.read_metadata`).

    Args:
        model: a :class:`tfsonify.CNN12` or any model :class:`tfsonify.Sonifier` supports (its rate is the one
            stored with it, :func:`tfsonify.models.metadata.sample_rate_of`).
        length: fixed clip length ``T`` in samples, ``"auto"`` (the model's fixed input length if it has one, as
            CREPE's 1024, else 1 s at its rate: 8000 for CNN12), or None for dynamic.
        layers: block indices and/or layer names to export (default every block; CNN12: 1..11). Signatures
            are suffixed ``l{L}`` for block ``L`` and with the layer name for a name (``sonify_conv4``).
        top_k: ``K`` of the ``top_k_l{L}`` signatures (capped at each block's width).
        fp16: store float16 weights (the same as ``quantize="fp16"``).
        quantize: ``"none"`` (float32), ``"fp16"`` (float16 weights, computed in float32), ``"dynamic"``
            (int8 weights, dynamic-range: activations quantized on the fly where the kernel allows) or
            ``"int8"`` (weights and activations int8 with scales calibrated on ``representative``;
            ops without an int8 kernel stay float; inputs and outputs stay float32).
        representative: ``int8`` only: clips (float32 ``[T]``, 8 kHz) to calibrate on; default
            :func:`speech_clips` (8 espeak-ng keywords, needs ``espeak-ng``).

    Returns:
        The ``.tflite`` bytes.

    Raises:
        ValueError: for a bad length/layer/top_k or if the conversion needed non-builtin ops.
    """
    from tfsonify.models.metadata import sample_rate_of

    # backward convs read the forward filter's layout, so share_weights can keep one copy of each kernel;
    # int8: every filter a constant (the quantiser gives a computed filter a zero point CONV_2D refuses)
    sonifier = Sonifier(model, sample_rate=sample_rate_of(model),
                        lowering=TFLITE_INT8 if quantize == "int8" else TFLITE)
    layers = _layers(sonifier, layers)
    if length == "auto":
        fixed = model.inputs[0].shape[1]
        length = int(fixed) if fixed is not None else sonifier.sample_rate
    if length is not None:
        deepest = max(layers, key=sonifier.min_length)
        needed = sonifier.min_length(deepest)
        if isinstance(length, bool) or not isinstance(length, int) or length < needed:
            where = f"layer {deepest!r}" if isinstance(deepest, str) else f"block {deepest}"
            raise ValueError(f"length must be an integer >= {needed} samples ({where}'s minimum) or None for dynamic "
                             f"length; received {length!r}")
    check_int("top_k", top_k, minimum=1)
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZATIONS)}; received {quantize!r}")
    if fp16 and quantize not in ("none", "fp16"):
        raise ValueError(f"fp16=True conflicts with quantize={quantize!r}; give one of them")
    quantize = "fp16" if fp16 else quantize
    wave_spec = tf.TensorSpec([1, length], tf.float32, name="waveform")
    feature_spec = tf.TensorSpec([1], tf.int32, name="feature")

    archive = keras.export.ExportArchive()
    keys = []
    with tempfile.TemporaryDirectory(prefix="tfsonify-tflite-") as folder:
        _add_endpoints(archive, keys, sonifier, layers, length, top_k, wave_spec, feature_spec)
        store_weights_once(archive)
        trace_endpoints_once(archive)
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=keys)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        _quantize(converter, quantize, keys, length, representative, sonifier.sample_rate)
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError for unsupported ops
            raise ValueError(f"TFLite conversion with builtin ops only failed: {error}") from None
    flatbuffer = share_weights(flatbuffer)
    assert_builtin_only(flatbuffer)
    return add_metadata(flatbuffer, _record(model, sonifier, layers, length, top_k))


def export_tflite(model: keras.Model, path: str | os.PathLike, **kwargs) -> Path:
    """:func:`convert` and write the flatbuffer atomically to ``path``; returns the path.

    The folder of ``path`` is created if missing and checked to be writable *before* the (slow)
    conversion; ``ValueError`` naming it otherwise.
    """
    from tfsonify.io.render import check_writable_dir

    check_writable_dir(Path(path).parent)
    if Path(path).is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name such as {str(Path(path) / 'sonifier.tflite')!r}")
    flatbuffer = convert(model, **kwargs)
    with atomic_path(path, suffix=".tflite") as temporary:
        Path(temporary).write_bytes(flatbuffer)
    return Path(path)


def interpreter(path_or_bytes, num_threads: int | None = None):
    """An ``ai_edge_litert`` Interpreter on all cores (or ``num_threads``) for a model file or bytes."""
    from ai_edge_litert.interpreter import Interpreter

    threads = num_threads or os.cpu_count() or 1
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return Interpreter(model_content=bytes(path_or_bytes), num_threads=threads)
    return Interpreter(model_path=str(path_or_bytes), num_threads=threads)


def run_signature(runner_interpreter, key: str, waveform: np.ndarray, **inputs) -> dict[str, np.ndarray]:
    """Run signature ``key`` on one clip ``[T]`` or ``[1, T]``; returns the outputs by name.

    The signature runner resizes a dynamic-length input to the clip's length by itself.
    """
    wave = np.asarray(waveform, np.float32).reshape(1, -1)
    runner = runner_interpreter.get_signature_runner(key)
    details = runner.get_input_details()["waveform"]
    if details["shape_signature"][1] != -1 and details["shape"][1] != wave.shape[1]:
        raise ValueError(f"this model takes clips of exactly {details['shape'][1]} samples; received {wave.shape[1]}")
    feeds = {name: np.asarray(value, np.int32).reshape(1) for name, value in inputs.items()}
    return runner(waveform=wave, **feeds)
