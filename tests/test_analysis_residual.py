"""Residual experiment (paper §4.1) and its equal-energy random-segment control."""
from __future__ import annotations

import numpy as np
import pytest

from tfsonify.analysis.residual import average_precision, mean_average_precision, random_segment_removal, residual_experiment
from tiny import tiny_cnn12


@pytest.fixture(scope="module")
def classifier():
    return tiny_cnn12(5, num_classes=4)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(1)
    t = np.arange(2600) / 8000.0
    clips = [(np.sin(2 * np.pi * f * t) + rng.normal(0, a, t.size)).astype("float32")
             for f, a in zip((200, 500, 900, 1500, 2500, 3100), (0.1, 0.5, 0.2, 0.8, 0.3, 0.05))]
    return clips


def test_zero_sonification_leaves_metric_unchanged(classifier, dataset):
    labels = np.arange(len(dataset)) % 4
    zero = lambda batch, layer: np.zeros_like(batch)  # noqa: E731
    result = residual_experiment(classifier, dataset, labels, layers=[2, 9], metric="accuracy", sonify_fn=zero)
    assert result.residual == [result.baseline, result.baseline]
    assert result.drop == [0.0, 0.0] and result.control_drop == [0.0, 0.0]  # zero energy -> nothing removed
    assert result.energy_ratio == [0.0, 0.0]


def test_real_sonifications_change_predictions(classifier, dataset):
    result = residual_experiment(classifier, dataset + [np.ones(100, np.float32)], layers=[1, 11], metric="cosine")
    assert result.skipped == 1 and result.clips == len(dataset)
    assert result.baseline == pytest.approx(1.0, abs=1e-6)
    assert all(value < 1.0 for value in result.residual)  # removing s changes the embedding
    assert all(0.0 < ratio for ratio in result.energy_ratio)
    assert "baseline" in result.table()


def test_random_segment_has_the_requested_energy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=5000).astype("float32")
    energy = 0.3 * float(np.sum(x.astype(np.float64) ** 2))
    removed, length = random_segment_removal(x, energy, rng)
    taken = float(np.sum((x - removed).astype(np.float64) ** 2))
    assert energy <= taken <= energy + float(np.max(x.astype(np.float64) ** 2)) + 1e-3
    assert np.count_nonzero(removed == 0) == length  # one contiguous (circular) segment zeroed
    everything, length = random_segment_removal(x, 10 * energy, rng)
    assert length == x.size and not everything.any()


def test_average_precision():
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert mean_average_precision(np.eye(3), np.eye(3)) == 1.0
    with pytest.raises(ValueError, match="at least one positive"):
        mean_average_precision(np.zeros((2, 2)), np.ones((2, 2)))


def test_bad_input(classifier, dataset):
    with pytest.raises(ValueError, match="needs labels"):
        residual_experiment(classifier, dataset, metric="accuracy")
    with pytest.raises(ValueError, match="metric must be"):
        residual_experiment(classifier, dataset, metric="f1")
    with pytest.raises(ValueError, match="labels"):
        residual_experiment(classifier, dataset, labels=[0, 1], metric="accuracy", layers=[1])
    with pytest.raises(ValueError, match="no usable clip"):
        residual_experiment(classifier, [np.ones(50, np.float32)], layers=[11])
