"""Clip-level evaluation metrics: mAP, mAUC and d' (paper Appendix A.3.1, Tables A.2-A.5).

Computed per class on predictions for *whole clips* (never crops), then averaged over the
classes that have at least one positive and one negative clip (others are undefined and
counted in ``skipped_classes``). Pure numpy/scipy, matching ``sklearn.metrics``'
``average_precision_score`` and ``roc_auc_score`` (ties handled the same way).

``d' = sqrt(2) * Phi^{-1}(AUC)`` (the AudioSet convention); an AUC of exactly 0 or 1 would give
an infinite d', so AUC is clipped to ``[1e-7, 1 - 1e-7]`` for d' only (|d'| <= 7.35).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["average_precision", "roc_auc", "d_prime", "clip_metrics", "accuracy"]

_AUC_CLIP = 1e-7


def _check_binary(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length; received shapes {labels.shape} and {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"labels must be 0/1; received values {np.unique(labels)[:5]}")
    return labels.astype(bool), scores


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds.

    Args:
        labels: 0/1 ``[clips]``; must contain at least one positive.
        scores: float ``[clips]``, higher = more likely positive.
    """
    labels, scores = _check_binary(labels, scores)
    if not labels.any():
        raise ValueError("average precision is undefined without a positive example")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_positives = np.cumsum(labels)[last_of_tie]
    predicted = last_of_tie + 1
    precision = true_positives / predicted
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / n_pos n_neg)."""
    labels, scores = _check_binary(labels, scores)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"ROC AUC needs positives and negatives; received {positives} positive, {negatives} negative")
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # average ranks for ties
    u_statistic = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u_statistic / (positives * negatives))


def d_prime(auc: float | np.ndarray) -> float | np.ndarray:
    """``sqrt(2) * Phi^{-1}(auc)``, with ``auc`` clipped to ``[1e-7, 1 - 1e-7]`` so it is always finite."""
    auc = np.clip(np.asarray(auc, np.float64), _AUC_CLIP, 1.0 - _AUC_CLIP)
    value = np.sqrt(2.0) * ndtri(auc)
    return float(value) if value.ndim == 0 else value


def clip_metrics(targets: np.ndarray, scores: np.ndarray, class_names: list[str] | None = None) -> dict:
    """mAP, mAUC and d' over classes, from whole-clip predictions.

    Args:
        targets: 0/1 ``[clips, classes]`` (multi-hot; for multi-class data, one-hot).
        scores: float ``[clips, classes]`` probabilities or logits.
        class_names: optional names for the per-class entries.

    Returns:
        ``{"mAP", "mAUC", "d_prime" (of mAUC), "mean_class_d_prime", "evaluated_classes",
        "skipped_classes", "per_class": {name: {"ap", "auc", "d_prime"}}}``. Classes without
        both a positive and a negative clip are skipped (listed by name), never NaN.
    """
    targets = np.asarray(targets)
    scores = np.asarray(scores, np.float64)
    if targets.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(f"targets and scores must both be [clips, classes]; received {targets.shape} and {scores.shape}")
    if targets.shape[0] == 0:
        raise ValueError("no clips to evaluate")
    names = class_names or [str(i) for i in range(targets.shape[1])]
    if len(names) != targets.shape[1]:
        raise ValueError(f"{len(names)} class names for {targets.shape[1]} classes")
    per_class, skipped = {}, []
    for index, name in enumerate(names):
        column = targets[:, index]
        if column.min() == column.max():
            skipped.append(name)
            continue
        auc = roc_auc(column, scores[:, index])
        per_class[name] = {"ap": average_precision(column, scores[:, index]), "auc": auc, "d_prime": d_prime(auc)}
    if not per_class:
        raise ValueError("no class has both positive and negative clips; mAP/mAUC are undefined")
    mean_ap = float(np.mean([c["ap"] for c in per_class.values()]))
    mean_auc = float(np.mean([c["auc"] for c in per_class.values()]))
    return {
        "mAP": mean_ap,
        "mAUC": mean_auc,
        "d_prime": d_prime(mean_auc),
        "mean_class_d_prime": float(np.mean([c["d_prime"] for c in per_class.values()])),
        "evaluated_classes": len(per_class),
        "skipped_classes": skipped,
        "per_class": per_class,
    }


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Top-1 accuracy: ``labels`` int ``[clips]`` (or one-hot ``[clips, classes]``), ``scores`` ``[clips, classes]``."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if scores.ndim != 2 or labels.shape[0] != scores.shape[0] or labels.shape[0] == 0:
        raise ValueError(f"need labels [clips] and scores [clips, classes] with clips > 0; received {labels.shape}, {scores.shape}")
    return float(np.mean(scores.argmax(axis=1) == labels))
