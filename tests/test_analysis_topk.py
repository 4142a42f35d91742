"""Streaming top-k maximally activating clips per map equals a brute-force top-k."""
from __future__ import annotations

import numpy as np
import pytest

from tfsonify.analysis.topk import StreamingTopK, sonify_top_inputs, top_activating_inputs


def test_streaming_tracker_matches_sort_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(40, 6)).astype("float32")  # many ties: earlier clip must win
    tracker = StreamingTopK(6, 3)
    for start in range(0, 40, 7):
        tracker.update(scores[start : start + 7], np.arange(start, min(start + 7, 40)))
    for channel in range(6):
        order = sorted(range(40), key=lambda i: (-scores[i, channel], i))[:3]
        assert tracker.ids[channel].tolist() == order
        np.testing.assert_array_equal(tracker.scores[channel], scores[order, channel])


def test_top_activating_inputs_equals_brute_force(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    rng = np.random.default_rng(1)
    # Mixed lengths (batches break at length changes) and one clip too short for block 11.
    clips = [rng.normal(0, rng.uniform(0.05, 1.0), n).astype("float32") for n in [2600] * 5 + [3000] * 4 + [1000] + [2600] * 3]
    layers = [1, 5, 11]
    result = top_activating_inputs(sonifier, clips, layers, k=3, batch_size=3)
    for layer in layers:
        usable = [i for i, c in enumerate(clips) if c.size >= sonifier.min_length(layer)]
        scores = np.stack([sonifier.activations(clips[i], layer).max(axis=0) for i in usable])  # [clips, maps]
        for feature in range(sonifier.num_features(layer)):
            order = sorted(range(len(usable)), key=lambda j: (-scores[j, feature], j))[:3]
            assert result.ids[layer][feature].tolist() == [usable[j] for j in order]
            np.testing.assert_allclose(result.scores[layer][feature], scores[order, feature], rtol=1e-5, atol=1e-6)
    assert result.skipped == {1: 0, 5: 0, 11: 1} and result.clips[11] == len(clips) - 1
    entries = sonify_top_inputs(sonifier, result, clips, 5, features=[0, 2])
    assert [(e["feature"], e["rank"]) for e in entries] == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2)]
    np.testing.assert_allclose(entries[0]["sonification"], sonifier.sonify(clips[entries[0]["clip"]], 5, feature=0))


def test_fewer_clips_than_k_is_a_clear_error(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    clips = [np.random.default_rng(2).normal(size=2600).astype("float32")] * 2 + [np.ones(500, np.float32)]
    with pytest.raises(ValueError, match=r"2 usable clip\(s\) for block 11 but k=3.*1 clip\(s\) were skipped"):
        top_activating_inputs(sonifier, clips, [11], k=3)
    with pytest.raises(ValueError, match="k must be"):
        StreamingTopK(4, 0)


def test_streaming_scores_under_xla_match_eager(tiny_model):
    """The per-map maxima graph compiles with XLA (as on TPU) and gives the same top-k."""
    import tfsonify

    rng = np.random.default_rng(3)
    clips = [rng.normal(0, 0.3, 2600).astype("float32") for _ in range(4)]
    eager = top_activating_inputs(tfsonify.Sonifier(tiny_model), clips, [3, 11], k=2, batch_size=2)
    xla = top_activating_inputs(tfsonify.Sonifier(tiny_model, jit_compile=True), clips, [3, 11], k=2, batch_size=2)
    for layer in (3, 11):
        np.testing.assert_array_equal(xla.ids[layer], eager.ids[layer])
        np.testing.assert_allclose(xla.scores[layer], eager.scores[layer], rtol=1e-5, atol=1e-6)


def test_nan_or_non_mono_clip_is_named_in_the_error(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    good = np.random.default_rng(4).normal(size=2600).astype("float32")
    bad = good.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="clip 1 contains NaN"):
        top_activating_inputs(sonifier, [good, bad], [2], k=1)
    with pytest.raises(ValueError, match=r"clip 0 must be a non-empty mono waveform"):
        top_activating_inputs(sonifier, [np.stack([good, good])], [2], k=1)
