"""The demo's CNN12 starts where gradient descent can leave: the signal reaches the head at init.

CNN12 is 11 conv-ReLU blocks with no normalisation layer. With Keras' default Glorot-uniform kernels every ReLU
block roughly halves the activation variance, so at init conv11 carries ~1-3 % of conv1's RMS and the softmax is
flat to 1e-4 whatever the clip. Every demo run on the demo-generalise branch then died at chance (loss ln 10,
conv10/conv11 ~1 % active): the fragile start, not the data. He-uniform kernels keep the RMS through the stack.
"""
from __future__ import annotations

import numpy as np


def _rms_by_block(model, waves):
    import keras

    names = [f"conv{index}" for index in range(1, 12)] + ["classifier"]
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    outputs = [np.asarray(output) for output in probe(waves)]
    return {name: float(np.sqrt(np.mean(output ** 2))) for name, output in zip(names, outputs)}


def _waves(count=8, length=4000):
    rng = np.random.default_rng(0)
    t = np.arange(length) / 8000.0
    waves = [np.sin(2 * np.pi * rng.uniform(150, 900) * t) * np.exp(-((t - rng.uniform(0.1, 0.4)) / 0.08) ** 2)
             + 0.01 * rng.standard_normal(length) for _ in range(count)]
    return np.asarray(waves, np.float32)


def test_demo_model_keeps_the_signal_through_the_blocks():
    from tfsonify.train.demo import build_demo_model

    waves = _waves()
    for seed in (0, 1):
        model = build_demo_model(width=0.125, num_classes=10, dropout=0.1, seed=seed)
        rms = _rms_by_block(model, waves)
        ratio = rms["conv11"] / rms["conv1"]
        assert ratio > 0.3, f"seed {seed}: conv11 RMS is {ratio:.3f} x conv1's at init (vanishing signal): {rms}"
        probabilities = np.asarray(model(waves))
        spread = float(np.ptp(probabilities, axis=0).max())  # the head must tell clips apart before any step
        assert spread > 1e-3, f"seed {seed}: softmax outputs equal to {spread:.1e} across clips at init"


def test_demo_model_is_reproducible_by_seed():
    from tfsonify.train.demo import build_demo_model

    first = build_demo_model(width=0.125, num_classes=10, dropout=0.1, seed=3)
    again = build_demo_model(width=0.125, num_classes=10, dropout=0.1, seed=3)
    other = build_demo_model(width=0.125, num_classes=10, dropout=0.1, seed=4)
    kernel = lambda m, name: np.asarray(m.get_layer(name).kernel)  # noqa: E731
    for name in ("conv1", "conv11", "classifier"):
        np.testing.assert_array_equal(kernel(first, name), kernel(again, name))
    assert not np.allclose(kernel(first, "conv5"), kernel(other, "conv5"))
    assert first.count_params() == other.count_params()
