"""Mean top-k magnitude-squared coherence (paper §4.2.1): known answers and the per-layer pass."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from tfsonify.analysis.coherence import (combine_runs, confidence_interval, layer_coherence,
                                         magnitude_squared_coherence, plot_coherence, top_k_coherence)


def test_signal_with_itself_is_one_everywhere():
    x = np.random.default_rng(0).normal(size=4000)
    freqs, coherence = magnitude_squared_coherence(x, x)
    assert freqs.shape == coherence.shape == (129,)
    np.testing.assert_allclose(coherence, 1.0, atol=1e-9)
    assert top_k_coherence(x, x, k=5) == pytest.approx(1.0, abs=1e-9)
    # Linear filtering keeps coherence 1 where the filter passes energy: coherence is not waveform equality.
    assert top_k_coherence(x, signal.lfilter([1.0, 0.5], [1.0], x), k=5) > 0.99


def test_independent_noises_are_near_zero():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 4, 16000))
    _, coherence = magnitude_squared_coherence(x, y)
    # Welch with 124 half-overlapping segments: E[C] ~ 1/segments; the top-5 mean sits in the upper tail.
    assert coherence.mean() < 0.03
    assert np.all(top_k_coherence(x, y, k=5) < 0.1)


def test_matches_scipy_and_silence_gives_zero_not_nan():
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    y = x + rng.normal(size=3000)
    np.testing.assert_allclose(magnitude_squared_coherence(x, y)[1], signal.coherence(x, y, nperseg=256)[1])
    assert top_k_coherence(x, np.zeros(3000)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        magnitude_squared_coherence(x, y[:10])
    with pytest.raises(ValueError, match="k="):
        top_k_coherence(x, y, k=500)


@pytest.mark.parametrize("length, nperseg", [(80000, 256), (257, 256), (300, 256), (100, 256), (1000, 64), (1001, 65)])
def test_vectorised_welch_equals_scipy_batched_and_offset(length, nperseg):
    """The vectorised estimate equals scipy.signal.coherence (segments, detrend, odd lengths, short signals)."""
    rng = np.random.default_rng(length)
    x = rng.normal(size=(3, length))
    y = 0.5 * x + rng.normal(size=(3, length)) + 0.3  # an offset: the constant detrend matters
    freqs, ours = magnitude_squared_coherence(x, y, 8000, nperseg)
    want_freqs, want = signal.coherence(x, y, fs=8000, nperseg=min(nperseg, length), axis=-1)
    np.testing.assert_allclose(freqs, want_freqs)
    np.testing.assert_allclose(ours, want, rtol=1e-9, atol=1e-12)


def test_confidence_interval():
    mean, low, high = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)
    assert confidence_interval([0.5]) == (0.5, 0.5, 0.5)


def test_layer_coherence_over_a_dataset(tiny_model, clip, tmp_path):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    rng = np.random.default_rng(3)
    clips = [clip, clip[::-1].copy(), rng.normal(0, 0.2, clip.size).astype("float32"),
             np.zeros(clip.size, np.float32),  # silent: skipped
             rng.normal(0, 0.2, 1000).astype("float32")]  # fits block 1 (8 samples) but not block 11 (2370)
    result = layer_coherence(sonifier, clips, layers=[1, 11], k=5, batch_size=2)
    assert result.clips == [4, 3] and result.skipped == [1, 2]
    for i in range(2):
        assert 0.0 <= result.low[i] <= result.mean[i] <= result.high[i] <= 1.0 + 1e-9
    # The per-clip score equals the direct computation on Sonifier.sonify (most active map).
    expected = top_k_coherence(clip, sonifier.sonify(clip, 11), k=5)
    assert result.scores[1][0] == pytest.approx(expected, abs=1e-6)
    assert layer_coherence(tiny_model, [clip], layers=[11]).scores[0][0] == pytest.approx(expected, abs=1e-6)  # a model works too
    both = combine_runs([result, result])
    assert both.mean == pytest.approx(result.mean) and both.low == pytest.approx(result.mean)
    path = plot_coherence({"a": result, "b": both}, tmp_path / "coherence.png")
    assert (tmp_path / "coherence.png").stat().st_size > 5000 and str(path).endswith(".png")
    result.to_json(tmp_path / "c.json")
    assert "M_c" in result.table()


def test_layer_coherence_no_usable_clip(tiny_model):
    import tfsonify

    with pytest.raises(ValueError, match="no clip could be scored"):
        layer_coherence(tfsonify.Sonifier(tiny_model), [np.ones(100, np.float32)], layers=[11])
