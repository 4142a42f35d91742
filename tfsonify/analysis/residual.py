"""Residual experiment (paper §4.1, Figure 6) with an equal-energy random-segment control.

For each clip ``x`` and block ``L``, ``s`` is the sonification of the block's most active map and
the residual ``r = x - s`` is the clip without the sound that drives that map. The classifier is
evaluated on the residuals and the drop of its metric against the unmodified clips is reported
per block.

Control (not in the paper): a random contiguous segment of ``x`` whose energy equals ``s``'s
(``sum x[a:b]^2 ~= sum s^2``, grown from a random start, wrapping around) is zeroed instead. If
removing the sonification hurts much more than removing the same energy at random, the
sonification holds what the classifier relies on.

Metrics (``metric=``):
    ``"accuracy"``  top-1 accuracy against integer labels ``[N]`` (single-label heads);
    ``"map"``       macro mean average precision against binary labels ``[N, classes]`` (multi-label);
    ``"agreement"`` top-1 agreement with the model's own predictions on the clean clips (no labels needed);
    ``"cosine"``    mean cosine similarity between residual and clean outputs (encoders without head).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from tfsonify.analysis.clip_batches import as_clip, check_layers, describe_layer
from tfsonify.models.checkpoint import sonifiable_of
from tfsonify.models.metadata import sample_rate_of

__all__ = ["average_precision", "mean_average_precision", "score", "random_segment_removal", "ResidualResult", "residual_experiment"]

METRICS = ("accuracy", "map", "agreement", "cosine")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one class: ``labels`` binary ``[N]``, ``scores`` float ``[N]``; NaN if no positive."""
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = labels[order]
    precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision_at[hits].mean())


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Macro mAP over classes with at least one positive; ``labels``/``scores`` ``[N, classes]``."""
    labels = np.asarray(labels)
    values = [average_precision(labels[:, c], scores[:, c]) for c in range(labels.shape[1]) if labels[:, c].any()]
    if not values:
        raise ValueError("mAP needs at least one positive label; every class column is all zero")
    return float(np.mean(values))


def score(metric: str, outputs: np.ndarray, labels: np.ndarray | None, clean_outputs: np.ndarray) -> float:
    """The chosen metric of model ``outputs`` ``[N, units]`` (see module docstring)."""
    if metric == "accuracy":
        return float(np.mean(np.argmax(outputs, axis=1) == np.asarray(labels)))
    if metric == "map":
        return mean_average_precision(labels, outputs)
    if metric == "agreement":
        return float(np.mean(np.argmax(outputs, axis=1) == np.argmax(clean_outputs, axis=1)))
    if metric == "cosine":
        a = outputs / np.maximum(np.linalg.norm(outputs, axis=1, keepdims=True), 1e-12)
        b = clean_outputs / np.maximum(np.linalg.norm(clean_outputs, axis=1, keepdims=True), 1e-12)
        return float(np.mean(np.sum(a * b, axis=1)))
    raise ValueError(f"metric must be one of {METRICS}; received {metric!r}")


def random_segment_removal(waveform: np.ndarray, energy: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Zero a random contiguous (circular) segment of ``waveform`` holding about ``energy`` (sum of squares).

    The segment starts at a uniformly random sample and grows until its energy reaches ``energy``;
    if the clip holds less energy than that, the whole clip is zeroed.

    Returns:
        ``(modified float32 [time], segment length in samples)``.
    """
    waveform = np.asarray(waveform, np.float32)
    if energy <= 0.0:
        return waveform.copy(), 0
    start = int(rng.integers(waveform.size))
    rolled = np.roll(waveform.astype(np.float64), -start)
    cumulative = np.cumsum(rolled**2)
    length = int(np.searchsorted(cumulative, energy) + 1) if cumulative[-1] >= energy else waveform.size
    mask = np.ones(waveform.size, np.float32)
    mask[:length] = 0.0
    return waveform * np.roll(mask, start), length


@dataclass
class ResidualResult:
    """Metric drop per block when the most active map's sonification (or a random segment) is removed.

    Attributes:
        metric: metric name; baseline: metric on the clean clips.
        layers: blocks; residual: metric on ``x - s``; control: metric with an equal-energy random
            segment removed (None entries if the control was off).
        energy_ratio: per block, mean ``sum s^2 / sum x^2`` (how much was removed).
        clips: clips evaluated; skipped: clips shorter than the deepest requested block needs.
    """

    metric: str
    baseline: float
    layers: list[int]
    residual: list[float]
    control: list[float | None]
    energy_ratio: list[float]
    clips: int
    skipped: int

    @property
    def drop(self) -> list[float]:
        return [self.baseline - value for value in self.residual]

    @property
    def control_drop(self) -> list[float | None]:
        return [None if value is None else self.baseline - value for value in self.control]

    def table(self) -> str:
        rows = [f"baseline {self.metric}: {self.baseline:.4f} over {self.clips} clips ({self.skipped} skipped)",
                f"{'layer':>5}  {'residual':>8}  {'drop':>7}  {'control':>7}  {'c.drop':>7}  {'E_s/E_x':>7}"]
        for i, layer in enumerate(self.layers):
            control = "    n/a" if self.control[i] is None else f"{self.control[i]:7.4f}"
            cdrop = "    n/a" if self.control[i] is None else f"{self.baseline - self.control[i]:7.4f}"
            rows.append(f"{layer:>5}  {self.residual[i]:8.4f}  {self.drop[i]:7.4f}  {control}  {cdrop}  {self.energy_ratio[i]:7.3f}")
        return "\n".join(rows)


def _predict(model, waveforms: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """Model outputs ``[N, units]`` for clips of possibly different lengths (equal-length runs batched)."""
    outputs = []
    start = 0
    while start < len(waveforms):
        stop = start + 1
        while stop < len(waveforms) and stop - start < batch_size and waveforms[stop].size == waveforms[start].size:
            stop += 1
        batch = np.stack(waveforms[start:stop]).astype(np.float32)
        outputs.append(np.asarray(model(batch, training=False), np.float64))
        start = stop
    return np.concatenate(outputs)


def residual_experiment(model, clips: Iterable, labels: Sequence | np.ndarray | None = None, layers: Iterable[int] | None = None,
                        metric: str = "agreement", control: bool = True, seed: int = 0, batch_size: int = 8,
                        sonify_fn: Callable[[np.ndarray, int], np.ndarray] | None = None) -> ResidualResult:
    """Run the residual experiment for the given blocks.

    Args:
        model: any model the deconvnet walks (a classifier head for accuracy/mAP/agreement; any output for
            cosine): CNN12, a contrastive model (its encoder is sonified, the whole model scored), your own CNN.
        clips: mono float32 ``[time]`` waveforms at the model's rate. Clips shorter than the deepest
            requested layer needs are skipped (counted), together with their labels; a model with a fixed
            input length (CREPE: 1024 samples) scores only clips of exactly that length.
        labels: int ``[N]`` for ``"accuracy"``, binary ``[N, classes]`` for ``"map"``; ignored otherwise.
        layers: block indices or layer names to test (default every block of the model).
        metric: one of ``accuracy``, ``map``, ``agreement``, ``cosine``.
        control: also run the equal-energy random-segment control.
        seed: seed of the control's random segment starts.
        sonify_fn: ``(waveforms [B, T], layer) -> [B, T]`` sonifications to remove; default the
            most active map's sonification from :class:`tfsonify.Sonifier` (exposed for tests and
            other attribution methods).

    Returns:
        :class:`ResidualResult`.
    """
    from tfsonify.engine.sonifier import Sonifier

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; received {metric!r}")
    if metric in ("accuracy", "map") and labels is None:
        raise ValueError(f"metric {metric!r} needs labels; use metric='agreement' to compare with the clean predictions")
    sonifier = Sonifier(sonifiable_of(model), sample_rate=sample_rate_of(model))
    layers = check_layers(layers, sonifier)
    needed = max(sonifier.min_length(layer) for layer in layers)
    fixed = model.inputs[0].shape[1] if getattr(model, "inputs", None) else None
    kept, kept_labels, skipped = [], [], 0
    label_list = None if labels is None or metric not in ("accuracy", "map") else list(np.asarray(labels))
    for index, clip in enumerate(clips):
        clip = as_clip(clip, index)
        if label_list is not None and index >= len(label_list):
            raise ValueError(f"got more clips than labels ({len(label_list)})")
        if clip.size < needed or np.max(np.abs(clip)) == 0.0 or (fixed is not None and clip.size != fixed):
            skipped += 1
            continue
        kept.append(clip)
        if label_list is not None:
            kept_labels.append(label_list[index])
    if label_list is not None and len(kept) + skipped != len(label_list):
        raise ValueError(f"got {len(kept) + skipped} clips but {len(label_list)} labels; they must match")
    if not kept:
        if fixed is not None:
            raise ValueError(f"no usable clip: {skipped} skipped (model {model.name!r} takes inputs of exactly "
                             f"{fixed} samples, so the residual experiment scores only clips of that length, or silent)")
        raise ValueError(f"no usable clip: {skipped} skipped (shorter than {needed} samples, which "
                         f"{describe_layer(max(layers, key=sonifier.min_length))} needs, or silent)")
    kept_labels = np.asarray(kept_labels) if label_list is not None else None
    if sonify_fn is None:
        sonify_fn = lambda batch, layer: sonifier.sonify_top(batch, layer, 1)[2][:, 0]  # noqa: E731
    clean = _predict(model, kept, batch_size)
    baseline = score(metric, clean, kept_labels, clean)
    rng = np.random.default_rng(seed)
    result = ResidualResult(metric, baseline, layers, [], [], [], len(kept), skipped)
    for layer in layers:
        residuals, controls, ratios = [], [], []
        start = 0
        while start < len(kept):
            stop = start + 1
            while stop < len(kept) and stop - start < batch_size and kept[stop].size == kept[start].size:
                stop += 1
            batch = np.stack(kept[start:stop])
            sounds = np.asarray(sonify_fn(batch, layer), np.float32).reshape(batch.shape)
            for x, s in zip(batch, sounds):
                residuals.append(x - s)
                energy = float(np.sum(s.astype(np.float64) ** 2))
                ratios.append(energy / float(np.sum(x.astype(np.float64) ** 2)))
                if control:
                    controls.append(random_segment_removal(x, energy, rng)[0])
            start = stop
        result.residual.append(score(metric, _predict(model, residuals, batch_size), kept_labels, clean))
        result.control.append(score(metric, _predict(model, controls, batch_size), kept_labels, clean) if control else None)
        result.energy_ratio.append(float(np.mean(ratios)))
    return result
