"""Relevance signals (Muckenhirn et al.): guided backprop vs. a tf.custom_gradient reference, spectral relevance, Eq. 1-2."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfsonify.relevance import (cumulative_frequency_response, guided_backprop, input_frequency_response, output_logits,
                                short_time_spectral_relevance, spectral_relevance)
from tiny import tiny_cnn12


@tf.custom_gradient
def guided_relu(x):
    def grad(upstream):
        return tf.where((x > 0.0) & (upstream > 0.0), upstream, tf.zeros_like(upstream))

    return tf.nn.relu(x), grad


def reference_guided_backprop(model, waveform, units):
    """Autodiff through the model's forward pass with guided ReLUs; the peak is a constant (stop_gradient)."""
    import tfsonify

    x = tf.constant(waveform)
    with tf.GradientTape() as tape:
        tape.watch(x)
        hidden = tf.expand_dims(x / tf.stop_gradient(tf.reduce_max(tf.abs(x), axis=-1, keepdims=True)), -1)
        for conv, spec in zip(model.conv_layers, tfsonify.BLOCKS):
            hidden = guided_relu(tf.nn.conv1d(hidden, conv.kernel, 1, "VALID") + conv.bias)
            if spec.pooled:
                hidden = tf.nn.max_pool1d(hidden, 2, 2, "VALID")
        hidden = tf.reduce_mean(hidden, axis=1)
        for name in ("embedding", "classifier"):
            layer = model.get_layer(name)
            hidden = tf.matmul(hidden, layer.kernel) + layer.bias
        output = tf.reduce_sum(hidden * tf.one_hot(units, hidden.shape[-1]))
    # d y / d x = (1 / peak) d y / d x_normalised
    return tape.gradient(output, x).numpy() * np.max(np.abs(waveform), axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def classifier():
    return tiny_cnn12(11, num_classes=5)


def test_guided_backprop_equals_custom_gradient_reference(classifier):
    rng = np.random.default_rng(1)
    waveform = rng.normal(0, 0.4, (2, 3001)).astype("float32")
    relevance, units = guided_backprop(classifier, waveform)
    assert relevance.shape == waveform.shape and relevance.dtype == np.float32 and units.shape == (2,)
    expected = reference_guided_backprop(classifier, waveform, units)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(relevance, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    # Other unit, single clip, and amplitude independence (relevance is w.r.t. the normalised input).
    one, unit = guided_backprop(classifier, waveform[0] * 3.0, unit=4)
    assert unit == 4
    np.testing.assert_allclose(one, reference_guided_backprop(classifier, waveform[:1], np.array([4]))[0], rtol=1e-4,
                               atol=1e-6 * np.abs(one).max())


def test_guided_backprop_under_xla_matches_eager(classifier):
    waveform = np.random.default_rng(4).normal(0, 0.4, (2, 2600)).astype("float32")
    eager, units = guided_backprop(classifier, waveform)
    xla, xla_units = guided_backprop(classifier, waveform, jit_compile=True)
    np.testing.assert_array_equal(xla_units, units)
    np.testing.assert_allclose(xla, eager, rtol=1e-4, atol=1e-5 * np.abs(eager).max())


def test_output_logits_are_the_pre_softmax_scores(classifier):
    waveform = np.random.default_rng(2).normal(size=(2, 2500)).astype("float32")
    np.testing.assert_allclose(tf.nn.softmax(output_logits(classifier, waveform)).numpy(), classifier(waveform).numpy(), rtol=1e-4, atol=1e-6)


def test_guided_backprop_bad_input(classifier):
    with pytest.raises(ValueError, match="unit must be"):
        guided_backprop(classifier, np.ones(3000, np.float32), unit=5)
    with pytest.raises(ValueError, match="needs at least 2370"):
        guided_backprop(classifier, np.ones(1000, np.float32))


def test_spectral_relevance_of_a_pure_tone_peaks_at_its_frequency():
    rate, size = 8000, 4000
    for frequency in (250.0, 1000.0, 3100.0):
        tone = np.sin(2 * np.pi * frequency * np.arange(size) / rate)
        freqs, magnitude = spectral_relevance(tone, rate)
        assert freqs.shape == magnitude.shape == (2000,)
        assert freqs[np.argmax(magnitude)] == pytest.approx(frequency)
        assert magnitude.max() == pytest.approx(0.5, rel=1e-6)  # |IDFT| of a unit sine at its bin is 1/2
        freqs, times, frames = short_time_spectral_relevance(tone, rate, window_ms=25, hop_ms=10)
        assert frames.shape == (times.size, 100)
        assert np.all(np.abs(freqs[np.argmax(frames, axis=1)] - frequency) <= rate / 200)


def test_first_layer_responses_match_their_equations(classifier):
    freqs, cumulative = cumulative_frequency_response(classifier, n_fft=256)
    filters = np.asarray(classifier.get_layer("conv1").kernel)[:, 0, :].T
    spectra = np.abs(np.fft.rfft(filters, 256))
    np.testing.assert_allclose(cumulative, (spectra / np.linalg.norm(spectra, axis=1, keepdims=True)).sum(0), rtol=1e-6)
    assert freqs[-1] == 4000.0
    x = np.random.default_rng(3).normal(size=70)
    freqs, response = input_frequency_response(classifier, x, n_fft=256)
    assert response.shape == (10, 129)
    segment = x[7:14] / np.abs(x).max()
    direct = np.abs(sum(np.dot(segment, f) * np.fft.rfft(f, 256) for f in filters.astype(np.float64)))
    np.testing.assert_allclose(response[1], direct, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 7"):
        input_frequency_response(classifier, x[:3])
