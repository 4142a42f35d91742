"""The small test model every suite uses: CNN12 at 1/16 width with random, non-zero conv biases (fixed seeds)."""
from __future__ import annotations

import numpy as np


def tiny_cnn12(seed: int, num_classes: int | None = None, bias_seed: int = 0, width: float = 0.0625):
    """CNN12(``width``, ``num_classes``) built after ``keras.utils.set_random_seed(seed)``, conv biases drawn from
    N(0, 0.05²) with ``numpy.random.default_rng(bias_seed)`` (zero biases would hide the bias path of the deconvnet)."""
    import keras

    import tfsonify

    keras.utils.set_random_seed(seed)
    model = tfsonify.CNN12(width_multiplier=width, num_classes=num_classes)
    rng = np.random.default_rng(bias_seed)
    for conv in model.conv_layers:
        conv.bias.assign(rng.normal(0.0, 0.05, conv.bias.shape).astype("float32"))
    return model


def randomise_weights(model, seed: int = 0):
    """Non-zero biases and BatchNormalization statistics far from the identity (in place; returns ``model``)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.05, layer.bias.shape).astype("float32"))
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.1, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, size).astype("float32"))
    return model


def gated_chirp(length: int, seed: int, start_hz: float, sweep: float, noise: float, gate_hz: float, peak: float):
    """``length`` samples at 8 kHz: a linear chirp (0.5 sin 2π(start_hz + sweep t)t) plus N(0, noise²) noise gated on
    where sin 2π gate_hz t > 0 (``numpy.random.default_rng(seed)``), scaled to ``peak``; float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 8000.0
    gate = np.sin(2 * np.pi * gate_hz * t) > 0
    wave = 0.5 * np.sin(2 * np.pi * (start_hz + sweep * t) * t) + rng.normal(0, noise, t.size) * gate
    return (peak * wave / np.abs(wave).max()).astype(np.float32)


def saved_classifier(path, seed: int, class_names=("yes", "no", "maybe")):
    """A tiny CNN12 with a head of ``len(class_names)`` classes, saved at 8 kHz with its class names; its path."""
    from tfsonify.models.checkpoint import save_model

    return save_model(tiny_cnn12(seed, num_classes=len(class_names)), path, sample_rate=8000,
                      class_names=list(class_names))


def write_clips(folder, seed: int, tone: tuple[str, int, float], noises: dict[str, int], rate: int = 8000):
    """``folder`` (created) holding float32 WAVs at ``rate``: a 0.5-peak sine ``tone = (name, samples, hz)`` and
    Gaussian noise clips (std 0.2) ``{name: samples}`` drawn from ``seed``; the folder."""
    import soundfile

    folder.mkdir()
    rng = np.random.default_rng(seed)
    name, samples, hz = tone
    soundfile.write(folder / name, (0.5 * np.sin(2 * np.pi * hz * np.arange(samples) / rate)).astype("float32"), rate)
    for name, samples in noises.items():
        soundfile.write(folder / name, rng.normal(0, 0.2, samples).astype("float32"), rate)
    return folder
