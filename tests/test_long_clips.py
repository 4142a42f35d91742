"""Long clips as exact windows in the library (tfsonify/engine/long_clips.py through Sonifier's public methods).

Reference: the same Sonifier in one pass over the whole clip (``window_seconds=None``). A numpy deconvnet with
a strided conv and an overlapping pool (a geometry CNN12 does not have) runs the same functions through the
four hooks.
"""
from __future__ import annotations

import numpy as np
import pytest

from tfsonify.engine import long_clips, windows
from tiny import gated_chirp

LENGTH = 20011  # prime: a multiple of no stride
WINDOW_SECONDS = {1: 0.4, 5: 0.5, 8: 0.6, 11: 0.75}  # 3-12 windows per clip


@pytest.fixture(scope="module")
def long_clip():
    return gated_chirp(LENGTH, 3, start_hz=120, sweep=700, noise=0.15, gate_hz=0.9, peak=0.7)


def test_geometry_hook_matches_the_model(sonifier):
    from tfsonify.models.cnn12 import min_length, output_length

    for layer in range(1, 12):
        field, stride = sonifier.geometry(layer)
        assert field == min_length(layer)
        for n in (field, field + stride - 1, field + stride, 12345):
            assert windows.output_length(n, field, stride) == output_length(n, layer)
    assert sonifier.geometry(11) == (2370, 256) and sonifier.geometry(5) == (162, 32)
    with pytest.raises(ValueError, match="layer must be"):
        sonifier.geometry(12)


def test_raw_and_peak_hooks_give_the_one_pass_result(sonifier, clip):
    peak = np.abs(clip).max()
    raw = sonifier.raw_reconstruction(clip / peak, 5, [2, 7])
    assert raw.shape == (2, clip.size) and raw.dtype == np.float32
    np.testing.assert_allclose(raw / np.abs(raw).max(axis=1, keepdims=True) * peak,
                               sonifier.sonify(clip, 5, features=[2, 7]), atol=1e-6)
    np.testing.assert_allclose(sonifier.peak_activations(clip / peak, 5), sonifier.activations(clip, 5).max(axis=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2370 samples"):
        sonifier.raw_reconstruction(clip[:2000], 11, [0])
    with pytest.raises(ValueError, match="outside block 5's 16 maps"):
        sonifier.raw_reconstruction(clip, 5, [16])


def test_raw_hook_compiles_with_xla(tiny_model, clip):
    import tfsonify

    eager, xla = tfsonify.Sonifier(tiny_model), tfsonify.Sonifier(tiny_model, jit_compile=True)
    normalised = clip / np.abs(clip).max()
    for layer in (5, 11):
        np.testing.assert_allclose(xla.raw_reconstruction(normalised, layer, [1, 3]),
                                   eager.raw_reconstruction(normalised, layer, [1, 3]), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(xla.peak_activations(normalised, layer), eager.peak_activations(normalised, layer),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [1, 5, 8, 11])
def test_windowed_equals_whole_clip(sonifier, long_clip, layer):
    seconds = WINDOW_SECONDS[layer]
    plan = long_clips.plan(sonifier, LENGTH, layer, seconds)
    assert len(plan.starts) >= 3
    peak = np.abs(long_clip).max()
    features, scores, sounds = sonifier.sonify_top(long_clip, layer, 3, window_seconds=seconds)
    whole_features, whole_scores, whole_sounds = sonifier.sonify_top(long_clip, layer, 3, window_seconds=None)
    np.testing.assert_array_equal(features, whole_features)
    np.testing.assert_allclose(scores, whole_scores, rtol=1e-5)
    assert sounds.shape == (3, LENGTH)
    np.testing.assert_allclose(sounds, whole_sounds, atol=1e-5 * peak)
    np.testing.assert_allclose(np.abs(sounds).max(axis=1), peak, rtol=1e-6)
    indices, top_scores = sonifier.top_features(long_clip, layer, 3, window_seconds=seconds)
    np.testing.assert_array_equal(indices, whole_features)
    np.testing.assert_allclose(top_scores, whole_scores, rtol=1e-5)
    chosen = sonifier.sonify(long_clip, layer, features=[0, 3], window_seconds=seconds)
    np.testing.assert_allclose(chosen, sonifier.sonify(long_clip, layer, features=[0, 3], window_seconds=None),
                               atol=1e-5 * peak)
    frames = sonifier.activations(long_clip, layer, window_seconds=seconds)
    whole_frames = sonifier.activations(long_clip, layer, window_seconds=None)
    assert frames.shape == whole_frames.shape
    np.testing.assert_allclose(frames, whole_frames, rtol=1e-5, atol=1e-6 * np.abs(whole_frames).max())


def test_defaults_batches_and_the_most_active_map(sonifier, long_clip):
    batch = np.stack([long_clip, 0.3 * long_clip[::-1]])
    np.testing.assert_allclose(sonifier.sonify(batch, 11, window_seconds=0.75),
                               sonifier.sonify(batch, 11, window_seconds=None), atol=1e-5)
    features, _, sounds = sonifier.sonify_top(batch, 5, 2, window_seconds=0.5)
    whole = sonifier.sonify_top(batch, 5, 2, window_seconds=None)
    np.testing.assert_array_equal(features, whole[0])
    np.testing.assert_allclose(sounds, whole[2], atol=1e-5)
    single = sonifier.sonify(long_clip, 8, feature=4, window_seconds=0.6)
    assert single.shape == (LENGTH,)
    np.testing.assert_allclose(single, sonifier.sonify(long_clip, 8, feature=4, window_seconds=None), atol=1e-5)
    # the default window (5 s) holds this clip: the one-pass path, identical
    np.testing.assert_array_equal(sonifier.sonify(long_clip, 5, feature=1), sonifier.sonify(long_clip, 5, feature=1, window_seconds=None))
    assert long_clips.DEFAULT_WINDOW_SECONDS * sonifier.sample_rate > LENGTH
    silent = sonifier.sonify(np.zeros(LENGTH, np.float32), 11, features=[0, 1], window_seconds=0.75)
    assert silent.shape == (2, LENGTH) and not np.any(silent)


def test_bad_window_seconds(sonifier, long_clip):
    with pytest.raises(ValueError, match=r"window_seconds=0.5 \(4000 samples\) is too short for layer 11.*receptive "
                                         r"field is 2370.*at least 4674 samples"):
        sonifier.sonify(long_clip, 11, feature=0, window_seconds=0.5)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "30"):
        with pytest.raises(ValueError, match="window_seconds must be a positive number"):
            sonifier.sonify_top(long_clip, 5, 2, window_seconds=bad)
    with pytest.raises(ValueError, match="too short for layer 5"):
        sonifier.activations(long_clip, 5, window_seconds=0.001)


def test_auto_windows_only_past_the_one_pass_length(sonifier):
    """The default ``"auto"``: one pass up to ONE_PASS_SECONDS (faster, little memory), windows of 5 s beyond."""
    rate = sonifier.sample_rate
    one_pass = int(long_clips.ONE_PASS_SECONDS * rate)
    assert long_clips.DEFAULT_WINDOW_SECONDS < long_clips.ONE_PASS_SECONDS
    assert not long_clips.needs_windows(sonifier, 10 * rate, 11, long_clips.AUTO)
    assert not long_clips.needs_windows(sonifier, one_pass, 11, long_clips.AUTO)
    assert long_clips.needs_windows(sonifier, one_pass + 1, 11, long_clips.AUTO)
    assert long_clips.needs_windows(sonifier, 10 * rate, 11, 5.0)  # an explicit window is honoured
    plan = long_clips.plan(sonifier, one_pass + 1, 11, long_clips.AUTO)
    assert plan.window_length <= long_clips.DEFAULT_WINDOW_SECONDS * rate and len(plan.starts) >= 7
    with pytest.raises(ValueError, match="or 'auto'"):
        long_clips.needs_windows(sonifier, 10 * rate, 11, "fast")


def test_calibrated_stream_reproduces_sonify(sonifier, long_clip):
    reference, peaks = long_clips.calibrate(sonifier, long_clip, 8, [1, 2], window_seconds=0.6)
    assert reference == pytest.approx(float(np.abs(long_clip).max()))
    stream = sonifier.stream(8, [1, 2], reference_peak=reference, reconstruction_peak=peaks)
    out = np.concatenate([stream.process(long_clip[i:i + 4000]) for i in range(0, LENGTH, 4000)] + [stream.flush()], 1)
    np.testing.assert_allclose(out[:, stream.latency:], sonifier.sonify(long_clip, 8, features=[1, 2]),
                               atol=1e-5 * reference)
    with pytest.raises(ValueError, match="silent"):
        long_clips.calibrate(sonifier, np.zeros(8000, np.float32), 8, [1])


class NumpyDeconvnet:
    """A small deconvnet in numpy exposing the Sonifier hooks: conv(k=5, stride 2) -> ReLU -> max pool(size 3,
    stride 2: overlapping windows, switches to the first maximum) = layer 1 -> conv(k=3) -> ReLU = layer 2."""

    sample_rate = 100

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w1, self.b1 = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
        self.w2, self.b2 = rng.normal(size=(3, 3, 4)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)

    def geometry(self, layer):
        return {1: (9, 4), 2: (17, 4)}[layer]

    def num_features(self, layer):
        return {1: 3, 2: 4}[layer]

    def _forward(self, x):
        p1 = (x.size - 5) // 2 + 1
        a1 = np.maximum(np.stack([x[2 * p:2 * p + 5] @ self.w1 for p in range(p1)]) + self.b1, 0)
        q1 = (p1 - 3) // 2 + 1
        windows_ = np.stack([a1[2 * q:2 * q + 3] for q in range(q1)])  # [q, 3, c]
        pooled, switches = windows_.max(axis=1), windows_.argmax(axis=1)
        a2 = np.maximum(np.stack([np.einsum("kc,kcd->d", pooled[r:r + 3], self.w2) for r in range(q1 - 2)]) + self.b2, 0)
        return a1, pooled, switches, a2

    def _down(self, x, p1, g, switches):
        u = np.zeros((p1, g.shape[1]), np.float32)
        for q in range(g.shape[0]):
            for c in range(g.shape[1]):
                u[2 * q + switches[q, c], c] += g[q, c]
        u = np.maximum(u, 0)
        y = np.zeros(x.size, np.float32)
        for p in range(p1):
            y[2 * p:2 * p + 5] += self.w1 @ u[p]
        return y

    def raw_reconstruction(self, normalised, layer, features):
        x = np.asarray(normalised, np.float32)
        a1, pooled, switches, a2 = self._forward(x)
        rows = []
        for f in features:
            if layer == 1:
                g = np.zeros_like(pooled)
                g[:, f] = pooled[:, f]
            else:
                z = np.maximum(a2[:, f], 0)
                g = np.zeros_like(pooled)
                for r in range(z.size):
                    g[r:r + 3] += z[r] * self.w2[:, :, f]
                g = np.maximum(g, 0)
            rows.append(self._down(x, a1.shape[0], g, switches))
        return np.stack(rows)

    def peak_activations(self, normalised, layer):
        _, pooled, _, a2 = self._forward(np.asarray(normalised, np.float32))
        return (pooled if layer == 1 else a2).max(axis=0)

    def activations(self, waveform, layer, window_seconds=None):
        x = np.asarray(waveform, np.float32)
        peak = np.abs(x).max()
        _, pooled, _, a2 = self._forward(x / (peak if peak > 0 else 1))
        return pooled if layer == 1 else a2


@pytest.mark.parametrize("layer", [1, 2])
def test_strided_conv_and_overlapping_pool_through_the_hooks(layer):
    net = NumpyDeconvnet()
    field, stride = net.geometry(layer)
    x = np.random.default_rng(5).normal(0, 0.4, 1001).astype(np.float32)
    peak = np.abs(x).max()
    raw = net.raw_reconstruction(x / peak, layer, [0, 2])
    whole = raw / np.abs(raw).max(axis=1, keepdims=True) * peak
    assert windows.output_length(x.size, field, stride) == net.activations(x, layer).shape[0]
    seconds = 0.6  # 60 samples: many windows
    assert len(long_clips.plan(net, x.size, layer, seconds).starts) > 10
    np.testing.assert_allclose(long_clips.sonify(net, x[None], layer, [0, 2], seconds)[0], whole, atol=1e-5 * peak)
    features, scores = long_clips.top_features(net, x[None], layer, 2, seconds)
    best = net.peak_activations(x / peak, layer)
    np.testing.assert_array_equal(features[0], np.argsort(-best, kind="stable")[:2])
    np.testing.assert_allclose(scores[0], np.sort(best)[::-1][:2], rtol=1e-6)
    frames = long_clips.activations(net, x[None], layer, seconds)[0]
    np.testing.assert_allclose(frames, net.activations(x, layer), rtol=1e-5, atol=1e-6)
    stream = long_clips.stream(net, layer, [0, 2], reference_peak=peak, reconstruction_peak=np.abs(raw).max(axis=1))
    out = np.concatenate([stream.process(x[i:i + 7]) for i in range(0, x.size, 7)] + [stream.flush()], axis=1)
    np.testing.assert_allclose(out[:, stream.latency:], whole, atol=1e-5 * peak)


# ---------------------------------------------------------------- a real Keras model through the generic deconvnet
KERAS_LENGTH = 9973  # prime


@pytest.fixture(scope="module")
def strided_sonifier():
    """Conv1D strides 2 -> MaxPooling1D(3, strides 2) (overlapping) -> dilated conv -> strided conv -> pool: a
    Keras raw-waveform CNN with geometries CNN12 lacks, sonified by the generic deconvnet walk."""
    import keras
    from keras import layers as L

    import tfsonify

    keras.utils.set_random_seed(11)
    x = keras.Input((None,))
    h = L.Reshape((-1, 1))(x)
    h = L.Conv1D(6, 5, strides=2, activation="relu", name="conv_s2")(h)
    h = L.MaxPooling1D(3, strides=2, name="pool_overlap")(h)
    h = L.Conv1D(8, 3, dilation_rate=3, activation="relu", name="conv_dilated")(h)
    h = L.Conv1D(8, 4, strides=3, activation="relu", name="conv_s3")(h)
    h = L.MaxPooling1D(2, name="pool2")(h)
    h = L.Conv1D(6, 3, activation="relu", name="conv_top")(h)
    model = keras.Model(x, L.Dense(3)(L.GlobalMaxPooling1D()(h)), name="strided_overlapping")
    return tfsonify.Sonifier(model, sample_rate=8000)


@pytest.mark.parametrize("layer", ["pool_overlap", "conv_dilated", "conv_top"])
def test_keras_strided_overlapping_model_windowed_equals_whole_clip(strided_sonifier, long_clip, layer):
    sonifier, x = strided_sonifier, long_clip[:KERAS_LENGTH]
    field, stride = sonifier.geometry(layer)
    assert stride in (4, 12, 24) and field > stride  # strides 2 x 2 (x 3 x 2): not powers of two only
    seconds = 4 * windows.min_window_length(field, stride) / 8000  # the shortest exact window x 4: many windows
    layout = long_clips.plan(sonifier, x.size, layer, seconds)
    assert len(layout.starts) >= 5 and all(start % stride == 0 for start in layout.starts)
    peak = np.abs(x).max()
    maps = sonifier.num_features(layer)
    # top maps over the whole clip, sonified: windowed == one pass
    f_win, a_win, s_win = sonifier.sonify_top(x, layer, 3, window_seconds=seconds)
    f_one, a_one, s_one = sonifier.sonify_top(x, layer, 3, window_seconds=None)
    np.testing.assert_array_equal(f_win, f_one)
    np.testing.assert_allclose(a_win, a_one, rtol=1e-5)
    np.testing.assert_allclose(s_win, s_one, atol=1e-5 * peak)
    assert np.all(np.abs(s_one).max(axis=1) > 0.5 * peak)  # real signals, not zeros on both sides
    every = list(range(maps))
    np.testing.assert_allclose(sonifier.sonify(x, layer, features=every, window_seconds=seconds),
                               sonifier.sonify(x, layer, features=every, window_seconds=None), atol=1e-5 * peak)
    np.testing.assert_allclose(sonifier.activations(x, layer, window_seconds=seconds),
                               sonifier.activations(x, layer, window_seconds=None), rtol=1e-5, atol=1e-6)


def test_keras_model_without_input_scaling_streams_and_calibrates(strided_sonifier, long_clip):
    """No PeakNormalization in the model: windows, calibration and the stream feed it the samples as given."""
    sonifier, x = strided_sonifier, long_clip[:KERAS_LENGTH]
    assert sonifier.input_scaling is None and long_clips.input_divisor(sonifier, 0.7) == 1
    layer = "conv_dilated"
    offline = sonifier.sonify(x, layer, features=[1, 4], window_seconds=None)
    reference, peaks = long_clips.calibrate(sonifier, x, layer, [1, 4], window_seconds=0.2)
    stream = sonifier.stream(layer, [1, 4], reference_peak=reference, reconstruction_peak=peaks)
    out = np.concatenate([stream.process(x[i:i + 1001]) for i in range(0, x.size, 1001)] + [stream.flush()], axis=1)
    np.testing.assert_allclose(out[:, stream.latency:], offline, atol=1e-5 * np.abs(x).max())
