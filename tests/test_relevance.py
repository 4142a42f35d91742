"""Relevance signals (Muckenhirn et al.): guided backprop vs. a tf.custom_gradient reference, spectral relevance, Eq. 1-2."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfsonify.explain.relevance import (cumulative_frequency_response, guided_backprop, input_frequency_response, output_logits,
                                short_time_spectral_relevance, spectral_relevance)
from tiny import randomise_weights, tiny_cnn12


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


# --- any supported model: the same walk as the sonifier, the guided ReLU rule ------------------------------------
import keras  # noqa: E402

from tfsonify.engine.walk import is_input_scaling  # noqa: E402

L = keras.layers


def conv1d_classifier():
    """Strided same conv, BN, overlapping pool, causal dilated conv, average pool, GAP, Dense-ReLU-Dense-softmax."""
    keras.utils.set_random_seed(3)
    return randomise_weights(keras.Sequential([
        keras.Input((None, 1)),
        L.Conv1D(4, 5, strides=2, padding="same", name="c1"), L.ReLU(name="r1"), L.BatchNormalization(name="bn1"),
        L.MaxPooling1D(3, 2, name="overlap"),
        L.Conv1D(5, 3, dilation_rate=2, padding="causal", activation="relu", name="c2"),
        L.AveragePooling1D(2, name="avg"),
        L.Conv1D(8, 3, activation="relu", name="c3"),
        L.GlobalAveragePooling1D(name="gap"), L.Dense(16, activation="relu", name="hidden"), L.Dropout(0.2),
        L.Dense(3, activation="softmax", name="out"),
    ], name="conv1d_classifier"))


def conv2d_flatten_model():
    """CREPE's shape in small: [time] -> [time, 1, 1], Conv2D-as-1-D, BN, pools, Flatten, Dense(sigmoid) bins."""
    keras.utils.set_random_seed(4)
    x = keras.Input((96,))
    h = L.Reshape((96, 1, 1))(x)
    h = L.ZeroPadding2D(((2, 2), (0, 0)), name="pad")(h)
    h = L.Conv2D(4, (8, 1), strides=(2, 1), activation="relu", name="c1")(h)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.MaxPooling2D((2, 1), name="p1")(h)
    h = L.Conv2D(5, (3, 1), activation="relu", name="c2")(h)
    h = L.MaxPooling2D((2, 1), name="p2")(h)
    out = L.Dense(7, activation="sigmoid", name="bins")(L.Flatten()(h))
    return randomise_weights(keras.Model(x, out, name="conv2d_flatten"))


def _linear_call(layer, h):
    """``layer(h)`` with its activation left out (a ReLU or a final sigmoid/softmax is applied by the caller)."""
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(h, training=False)
    finally:
        layer.activation = saved


def autodiff_guided(model, waveform, units, upto=None):
    """The gradient formulation: autodiff of the Keras layers (a chain) with every ReLU replaced by guided_relu,
    with respect to the output of the input-scaling layers; objective y_c (pre final sigmoid/softmax) or, with
    ``upto``, sum_t A_upto[c, t]."""
    chain = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
    h = tf.constant(waveform if len(model.inputs[0].shape) == 2 else waveform[..., None])
    while chain and is_input_scaling(chain[0]):
        h = chain.pop(0)(h)
    with tf.GradientTape() as tape:
        tape.watch(h)
        start = h
        for index, layer in enumerate(chain):
            last = index == len(chain) - 1 and upto is None
            activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
            if isinstance(layer, L.ReLU):
                h = guided_relu(h)
            elif activation in ("relu", "sigmoid", "softmax"):
                h = _linear_call(layer, h)
                h = guided_relu(h) if activation == "relu" else (h if last else layer.activation(h))
            else:
                h = layer(h, training=False)
            if layer.name == upto:
                break
        if upto is None:
            objective = tf.reduce_sum(h * tf.one_hot(units, h.shape[-1]))
        else:
            h = tf.reshape(h, [h.shape[0], -1, h.shape[-1]])
            objective = tf.reduce_sum(h * tf.one_hot(units, h.shape[-1])[:, None, :])
    gradient = tape.gradient(objective, start).numpy()
    return gradient.reshape(waveform.shape)


@pytest.fixture(scope="module")
def generic():
    return conv1d_classifier()


def test_guided_backprop_of_a_generic_model_equals_the_guided_relu_gradient(generic):
    waveform = np.random.default_rng(5).normal(0, 0.5, (3, 211)).astype("float32")
    logits = output_logits(generic, waveform)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), generic(waveform[..., None]).numpy(), rtol=1e-5, atol=1e-6)
    relevance, units = guided_backprop(generic, waveform)
    np.testing.assert_array_equal(units, np.argmax(logits, axis=1))
    expected = autodiff_guided(generic, waveform, units)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(relevance, expected, atol=1e-5 * np.abs(expected).max())
    one, unit = guided_backprop(generic, waveform[1], unit=2)
    assert unit == 2 and one.shape == (211,)
    expected = autodiff_guided(generic, waveform[1:2], np.array([2]))[0]
    np.testing.assert_allclose(one, expected, atol=1e-5 * np.abs(expected).max())


def test_guided_backprop_of_a_feature_map(generic):
    waveform = np.random.default_rng(6).normal(0, 0.5, (2, 150)).astype("float32")
    for layer in ("avg", 3):
        relevance, units = guided_backprop(generic, waveform, layer=layer)
        name = {3: "c3"}.get(layer, layer)
        maps = tfsonify_activations(generic, waveform, name)
        np.testing.assert_array_equal(units, np.argmax(maps.max(axis=1), axis=1))
        expected = autodiff_guided(generic, waveform, units, upto=name)
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(relevance, expected, atol=1e-5 * np.abs(expected).max())
    with pytest.raises(ValueError, match="map index of layer 'c2' in 0..4"):
        guided_backprop(generic, waveform, layer="c2", unit=5)
    with pytest.raises(ValueError, match="not a sonifiable layer"):
        guided_backprop(generic, waveform, layer="nope")


def tfsonify_activations(model, waveform, name):
    from tfsonify import Sonifier

    return Sonifier(model).activations(waveform, name)


def test_guided_backprop_through_flatten_and_conv2d_as_1d():
    model = conv2d_flatten_model()
    waveform = np.random.default_rng(7).normal(0, 0.5, (2, 96)).astype("float32")
    np.testing.assert_allclose(tf.sigmoid(output_logits(model, waveform)).numpy(), model(waveform).numpy(), rtol=1e-5, atol=1e-6)
    for unit in (0, 6):
        relevance, units = guided_backprop(model, waveform, unit=unit)
        expected = autodiff_guided(model, waveform, units)
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(relevance, expected, atol=1e-5 * np.abs(expected).max())
    with pytest.raises(ValueError, match="takes exactly 96 samples per clip"):
        guided_backprop(model, waveform[:, :50])
    with pytest.raises(ValueError, match="needs at least"):
        guided_backprop(model, waveform[:, :5], layer="c2")
    relevance, _ = guided_backprop(model, np.tile(waveform, 2), layer="c2", unit=1)  # a map: any length
    assert relevance.shape == (2, 192) and np.abs(relevance).max() > 0


def test_generic_guided_backprop_under_xla_matches_eager(generic):
    waveform = np.random.default_rng(8).normal(0, 0.5, (2, 180)).astype("float32")
    eager, units = guided_backprop(generic, waveform, unit=1)
    xla, _ = guided_backprop(generic, waveform, unit=1, jit_compile=True)
    np.testing.assert_allclose(xla, eager, atol=1e-5 * np.abs(eager).max())
    eager, _ = guided_backprop(generic, waveform, unit=0, layer="c2")
    xla, _ = guided_backprop(generic, waveform, unit=0, layer="c2", jit_compile=True)
    np.testing.assert_allclose(xla, eager, atol=1e-5 * np.abs(eager).max())


def test_unsupported_readout_is_named_and_a_layer_still_works():
    keras.utils.set_random_seed(9)
    x = keras.Input((None, 1))
    h = L.Conv1D(3, 5, activation="relu", name="c1")(x)
    h = L.LSTM(4, name="lstm")(h)
    model = keras.Model(x, L.Dense(2)(h))
    waveform = np.random.default_rng(9).normal(size=(1, 40)).astype("float32")
    with pytest.raises(ValueError, match=r"'lstm' \(LSTM\).*pass layer=NAME"):
        guided_backprop(model, waveform)
    relevance, unit = guided_backprop(model, waveform[0], layer="c1", unit=1)
    expected = autodiff_guided(keras.Model(x, model.get_layer("c1").output), waveform, np.array([1]), upto="c1")[0]
    np.testing.assert_allclose(relevance, expected, atol=1e-5 * np.abs(expected).max())


def test_guided_backprop_of_a_crepe_pitch_bin():
    from tfsonify.models.crepe import pretrained_crepe

    model = pretrained_crepe("tiny")
    t = np.arange(1024) / 16000.0
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype("float32")[None]
    relevance, unit = guided_backprop(model, tone)
    assert relevance.shape == (1, 1024) and np.all(np.isfinite(relevance))
    np.testing.assert_array_equal(unit, np.argmax(model(tone).numpy(), axis=1))
    expected = autodiff_guided(model, tone, unit)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(relevance, expected, atol=1e-5 * np.abs(expected).max())
