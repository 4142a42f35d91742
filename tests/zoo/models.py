"""The model zoo: small raw-waveform CNNs of every shape the deconvnet walks, each saved with its geometry.

Every entry builds a narrow model with random weights (fixed seeds) and is saved with
:func:`tfsonify.models.checkpoint.save_model` at its own sample rate (8, 11.025 or 16 kHz: a surface that
assumes 8 kHz shows up as a wrong rate) and, when it has a classifier head, its class names.

=============  ===========================================================================  =======  =======
name           architecture                                                                 rate Hz  head
=============  ===========================================================================  =======  =======
``cnn12``      tfsonify CNN12 at 1/16 width (PeakNormalization, blocks 1..11)               8000     3 names
``crepe``      CREPE tiny, random weights: fixed 1024-sample frames, per-frame               16000    none
               standardisation (a custom input-scaling layer: exact windows impossible)
``strided``    Functional: PeakNormalization, strided and dilated Conv1D, BatchNorm,        16000    4 names
               overlapping max pools, a Dense softmax head
``samplecnn``  Sequential SampleCNN-style stack: 3-tap convs, max pool 3, [batch, time, 1]  11025    2 names
``noscale``    Functional without input scaling (the deconvnet sees raw samples)           8000     none
=============  ===========================================================================  =======  =======
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: ``build()`` returns the Keras model; ``sample_rate`` Hz; ``class_names`` or None;
    ``layer``: the deep layer the battery sonifies (block index or name); ``fixed``: the fixed input length or None;
    ``stream_refusal``: None when exact windows (long clips, live streams) reproduce the whole-clip pass, else the
    start of the one-line refusal a live stream gets (a fixed frame, a custom input scaling, or a layer that pads:
    the engine then runs long clips in one pass)."""

    name: str
    build: Callable
    sample_rate: int
    class_names: tuple[str, ...] | None
    layer: int | str
    fixed: int | None = None
    stream_refusal: str | None = None

    @property
    def windows(self) -> bool:
        return self.stream_refusal is None

    def save(self, folder: Path) -> Path:
        from tfsonify.models.checkpoint import save_model

        path = Path(folder) / f"{self.name}.keras"
        save_model(self.build(), path, sample_rate=self.sample_rate,
                   class_names=None if self.class_names is None else list(self.class_names))
        return path


def _cnn12():
    from tiny import tiny_cnn12

    return tiny_cnn12(21, num_classes=3)


def _crepe():
    import keras

    from tfsonify.models.crepe import CREPE

    keras.utils.set_random_seed(22)
    return CREPE("tiny")


def _strided():
    import keras

    from tfsonify.layers import PeakNormalization
    from tiny import randomise_weights

    layers = keras.layers
    keras.utils.set_random_seed(23)
    x = keras.Input((None,), name="waveform")
    h = PeakNormalization(name="peak")(x)
    h = layers.Reshape((-1, 1), name="channel")(h)
    h = layers.Conv1D(8, 9, strides=2, padding="same", use_bias=False, name="front")(h)
    h = layers.BatchNormalization(name="front_bn")(h)
    h = layers.ReLU(name="front_relu")(h)
    h = layers.MaxPooling1D(3, 2, name="front_pool")(h)  # overlapping
    h = layers.Conv1D(8, 5, dilation_rate=2, padding="same", activation="relu", name="dilated")(h)
    h = layers.MaxPooling1D(4, 3, padding="same", name="mid_pool")(h)  # overlapping, same
    h = layers.Conv1D(12, 3, strides=2, name="top")(h)
    h = layers.BatchNormalization(name="top_bn")(h)
    h = layers.ReLU(name="top_relu")(h)
    out = layers.Dense(4, activation="softmax", name="scores")(layers.GlobalAveragePooling1D()(h))
    return randomise_weights(keras.Model(x, out, name="strided16k"), seed=3)


def _samplecnn():
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(24)
    stack = [keras.Input((None, 1)), layers.Conv1D(6, 3, strides=3, activation="relu", name="stem")]
    for i in range(1, 4):
        stack += [layers.Conv1D(6 + 2 * i, 3, padding="same", activation="relu", name=f"conv{i}"),
                  layers.MaxPooling1D(3, name=f"pool{i}")]
    stack += [layers.GlobalMaxPooling1D(), layers.Dense(2, activation="softmax", name="scores")]
    return keras.Sequential(stack, name="samplecnn")


def _noscale():
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(25)
    x = keras.Input((None, 1))
    h = layers.Conv1D(6, 7, strides=2, activation="relu", name="c1")(x)
    h = layers.MaxPooling1D(2, name="p1")(h)
    h = layers.Conv1D(8, 5, activation="relu", name="c2")(h)
    h = layers.AveragePooling1D(2, name="avg")(h)
    h = layers.Conv1D(8, 3, activation="relu", name="c3")(h)
    return keras.Model(x, layers.GlobalMaxPooling1D()(h), name="noscale")


ZOO = [
    ZooModel("cnn12", _cnn12, 8000, ("yes", "no", "up"), 11),
    ZooModel("crepe", _crepe, 16000, None, 4, fixed=1024,
             stream_refusal="live streams need a model of any input length"),
    ZooModel("strided", _strided, 16000, ("dog", "cat", "bird", "cow"), "top_relu",
             stream_refusal="live streams run exact windows, which layer 'front' ('same' padding) prevents"),
    ZooModel("samplecnn", _samplecnn, 11025, ("speech", "music"), 4,
             stream_refusal="live streams run exact windows, which layer 'conv1' ('same' padding) prevents"),
    ZooModel("noscale", _noscale, 8000, None, "c3"),
]
BY_NAME = {entry.name: entry for entry in ZOO}


def test_clip(rate: int, seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    """A deterministic float32 ``[seconds * rate]`` clip at ``rate`` Hz: a chirp under noise bursts, peak < 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (200 + 1500 * t) * t)
    bursts = rng.normal(0, 0.3, t.size) * (np.sin(2 * np.pi * 3 * t) > 0.5)
    wave = 0.4 * chirp + bursts
    return (0.8 * wave / np.max(np.abs(wave))).astype("float32")


test_clip.__test__ = False  # a helper, not a test
