"""Clip metrics (mAP, mAUC, d'), losses and the warm-up + cosine schedule against references."""
import keras
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from tfsonify.train.losses import classification_loss, per_example_loss
from tfsonify.train.metrics import accuracy, average_precision, clip_metrics, d_prime, roc_auc
from tfsonify.train.schedule import adamw, scale_learning_rate, warmup_cosine


def test_hand_worked_examples():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    # ranks: P(0.9), N(0.8), P(0.7), N(0.1): precision at the positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    # positive-negative pairs ordered correctly: (0.9>0.8, 0.9>0.1, 0.7>0.1) of 4 -> 0.75
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(norm.cdf(1.0)) == pytest.approx(np.sqrt(2.0))
    assert np.isfinite(d_prime(1.0)) and np.isfinite(d_prime(0.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    targets = (rng.random((200, 6)) < 0.2).astype(int)
    scores = np.round(rng.random((200, 6)) + 0.4 * targets, 1)  # rounding makes many ties
    result = clip_metrics(targets, scores)
    for column in range(6):
        reference_ap = average_precision_score(targets[:, column], scores[:, column])
        reference_auc = roc_auc_score(targets[:, column], scores[:, column])
        assert result["per_class"][str(column)]["ap"] == pytest.approx(reference_ap, abs=1e-12)
        assert result["per_class"][str(column)]["auc"] == pytest.approx(reference_auc, abs=1e-12)
    assert result["mAP"] == pytest.approx(average_precision_score(targets, scores, average="macro"), abs=1e-12)
    assert result["mAUC"] == pytest.approx(roc_auc_score(targets, scores, average="macro"), abs=1e-12)
    assert result["d_prime"] == pytest.approx(np.sqrt(2) * norm.ppf(result["mAUC"]))


def test_classes_without_positives_are_skipped_not_nan():
    targets = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.3], [0.8, 0.2, 0.1]])
    result = clip_metrics(targets, scores, ["a", "b", "c"])
    assert result["skipped_classes"] == ["b", "c"] and result["evaluated_classes"] == 1
    assert result["mAP"] == 1.0 and result["mAUC"] == 1.0 and np.isfinite(result["d_prime"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match=r"\[clips, classes\]"):
        clip_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no class"):
        clip_metrics(np.zeros((3, 2)), np.zeros((3, 2)))
    assert accuracy(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])) == pytest.approx(2 / 3)


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=5).astype("float32")
    targets = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0]]
    expected_cce = -np.log(np.sum(targets * probabilities, axis=1))
    np.testing.assert_allclose(per_example_loss(targets, probabilities, multi_label=False), expected_cce, rtol=1e-5)
    sigmoid = rng.uniform(0.05, 0.95, (5, 4)).astype("float32")
    multi_hot = (rng.random((5, 4)) < 0.5).astype("float32")
    expected_bce = -np.mean(multi_hot * np.log(sigmoid) + (1 - multi_hot) * np.log(1 - sigmoid), axis=1)
    np.testing.assert_allclose(per_example_loss(multi_hot, sigmoid, multi_label=True), expected_bce, rtol=1e-4)
    assert float(classification_loss(True)(multi_hot, sigmoid)) == pytest.approx(expected_bce.mean(), rel=1e-4)
    with pytest.raises(ValueError, match="multi_label"):
        classification_loss("yes")


def test_schedule_values_at_chosen_steps():
    schedule = warmup_cosine(1e-3, steps_per_epoch=10, epochs=30, warmup_epochs=10)
    expected = {0: 0.0, 50: 0.5e-3, 100: 1e-3, 150: 1e-3 * 0.5 * (1 + np.cos(np.pi * 50 / 200)),
                200: 0.5e-3, 300: 0.0, 400: 0.0}
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, abs=1e-9), step
    no_warmup = warmup_cosine(2e-3, steps_per_epoch=5, epochs=4, warmup_epochs=0)
    assert float(no_warmup(0)) == pytest.approx(2e-3) and float(no_warmup(10)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="warmup_epochs"):
        warmup_cosine(1e-3, steps_per_epoch=10, epochs=10, warmup_epochs=10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        warmup_cosine(1e-3, steps_per_epoch=0, epochs=10)
    assert scale_learning_rate(1e-3, 1024) == pytest.approx(8e-3)


def test_weight_decay_spares_biases():
    layer = keras.layers.Dense(2, bias_initializer="ones")
    layer.build((None, 3))
    optimizer = adamw(0.1, weight_decay=0.5)
    kernel_before = np.asarray(layer.kernel).copy()
    optimizer.apply_gradients([(np.zeros((3, 2), "float32"), layer.kernel), (np.zeros(2, "float32"), layer.bias)])
    # zero gradients: Adam's update is 0, so only decoupled decay acts: w -= lr * wd * w on kernels only
    np.testing.assert_allclose(layer.kernel, kernel_before * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(layer.bias, np.ones(2))
