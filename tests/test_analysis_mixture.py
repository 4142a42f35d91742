"""Mixture check: selectivity of sonifications for the speech part of speech + background mixtures."""
from __future__ import annotations

import numpy as np
import pytest

from tfsonify.analysis.mixture import mixture_check, speech_selectivity, weighted_coherence


def _parts(seed: int, size: int = 6000):
    """A voiced 'speech' stand-in (harmonics of 140 Hz, syllable envelope) and a high-passed noise background."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    t = np.arange(size) / 8000.0
    speech = sum(np.sin(2 * np.pi * 140 * h * t + rng.uniform(0, 6)) / h for h in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    background = signal.lfilter(*signal.butter(4, 1500, "highpass", fs=8000), rng.normal(size=size))
    speech = (0.3 * speech / np.abs(speech).max()).astype("float32")
    background = (0.3 * background / np.abs(background).max()).astype("float32")
    return speech + background, speech, background


def test_selectivity_known_answers():
    mixture, speech, background = _parts(0)
    assert speech_selectivity(mixture, mixture, speech, background) == pytest.approx(0.0, abs=1e-12)
    keeps_speech = speech_selectivity(speech, mixture, speech, background)
    keeps_background = speech_selectivity(background, mixture, speech, background)
    assert keeps_speech > 0.2 and keeps_background < -0.2
    assert weighted_coherence(speech, speech) == pytest.approx(1.0)
    assert weighted_coherence(speech, np.zeros_like(speech)) == 0.0
    both = speech_selectivity(np.stack([speech, background]), mixture, speech, background)
    np.testing.assert_allclose(both, [keeps_speech, keeps_background])


def test_mixture_check_on_a_model(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    mixtures = [_parts(seed) for seed in range(3)] + [_parts(9, size=1000)]  # the last fits block 4 (82) not 11 (2370)
    result = mixture_check(sonifier, mixtures, layers=[4, 11], candidates=3)
    assert result.mixtures == 4 and result.skipped == 0
    assert sum(m.count for m in result.best[4]) == 4 * 3 and sum(m.count for m in result.best[11]) == 3 * 3
    for scores in result.best.values():
        values = [m.score for m in scores]
        assert values == sorted(values, reverse=True) and all(-2.0 <= v <= 2.0 for v in values)
    assert "block  4" in result.table()


def test_mixture_check_bad_input(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    mixture, speech, background = _parts(1)
    with pytest.raises(ValueError, match="not speech \\+ background"):
        mixture_check(sonifier, [(mixture, speech, 2 * background)], layers=[2])
    with pytest.raises(ValueError, match="no usable mixture"):
        mixture_check(sonifier, [(mixture[:50], speech[:50], background[:50])], layers=[11])
