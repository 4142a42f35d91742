"""Small constructed models for the tfsonify.explain tests (no input scaling, so z == the clip)."""
from __future__ import annotations

import numpy as np


def small_classifier(seed: int = 0, classes: int = 3, length: int | None = None):
    """Input [T] -> conv(6, 9) relu -> maxpool 2 -> conv(5, 5) relu -> GAP -> Dense(8) relu -> Dense(classes)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(length,), name="waveform")
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Conv1D(6, 9, activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling1D(2, name="pool1")(x)
    x = keras.layers.Conv1D(5, 5, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="small_classifier")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.05, layer.bias.shape).astype("float32"))
    return model


def first_half_model(length: int, seed: int = 0):
    """A model whose output depends only on the first half of a ``length``-sample clip (Cropping1D)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(length,), name="waveform")
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Cropping1D((0, length // 2), name="crop")(x)
    x = keras.layers.Conv1D(4, 9, activation="relu", name="conv1")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    return keras.Model(inputs, outputs, name="first_half")


def band_model(frequency: float, sample_rate: int = 8000, taps: int = 129):
    """A model that hears one band: a fixed Hann-windowed cosine at ``frequency`` Hz (a band-pass), relu, its
    mean, and a positive dense unit."""
    import keras

    inputs = keras.Input(shape=(None,), name="waveform")
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Conv1D(2, taps, activation="relu", name="bandpass")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(1, name="logit")(x)
    model = keras.Model(inputs, outputs, name="band")
    t = np.arange(taps) / sample_rate
    kernel = (np.hanning(taps) * np.cos(2 * np.pi * frequency * t)).astype("float32")
    conv = model.get_layer("bandpass")
    conv.kernel.assign(np.stack([kernel, -kernel], axis=-1)[:, None, :])
    conv.bias.assign(np.zeros(2, "float32"))
    model.get_layer("logit").kernel.assign(np.ones((2, 1), "float32"))
    model.get_layer("logit").bias.assign(np.zeros(1, "float32"))
    return model
