"""Mixture check (beyond the paper): which maps keep the speech and drop the background?

For a mixture ``m = speech + background`` with known parts, a sonification ``y`` of a map gets

    W(y, c) = sum_f C_yc(f) P_c(f) / sum_f P_c(f)

for each part ``c`` (Welch magnitude-squared coherence ``C`` weighted by the part's power spectrum
``P_c``, so the frequencies where the part has energy count), and the map's selectivity is

    score(y) = [W(y, speech) - W(y, background)] - [W(m, speech) - W(m, background)]

The subtracted term is the mixture's own selectivity at that SNR: passing the input through
unchanged scores 0, a map that keeps more speech than the mixture has scores > 0, one that keeps
the background scores < 0. Scores are averaged per map over the mixtures where it was among the
clip's ``candidates`` most active maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import signal

from tfsonify.analysis.clip_batches import as_sonifier, as_clip, check_layers
from tfsonify.analysis.coherence import magnitude_squared_coherence

__all__ = ["weighted_coherence", "speech_selectivity", "MapScore", "MixtureResult", "mixture_check", "load_demo_mixtures"]


def weighted_coherence(y: np.ndarray, part: np.ndarray, sample_rate: float = 1.0, nperseg: int = 256) -> np.ndarray:
    """``W(y, part)``: coherence of ``y`` with ``part`` weighted by ``part``'s Welch power spectrum (independent of
    ``sample_rate``, which only labels frequencies).

    Args:
        y: float ``[time]`` or ``[n, time]``; ``part``: float ``[time]`` (broadcast over ``n``).

    Returns:
        float64 scalar or ``[n]`` in [0, 1]; 0 if ``part`` is silent.
    """
    y = np.asarray(y, np.float64)
    part = np.asarray(part, np.float64)
    _, power = signal.welch(part, fs=sample_rate, nperseg=int(min(nperseg, part.size)))
    total = power.sum()
    if total <= 0:
        return np.zeros(y.shape[:-1]) if y.ndim > 1 else np.float64(0.0)
    _, coherence = magnitude_squared_coherence(y, np.broadcast_to(part, y.shape), sample_rate, nperseg)
    return coherence @ (power / total)


def speech_selectivity(y: np.ndarray, mixture: np.ndarray, speech: np.ndarray, background: np.ndarray,
                       sample_rate: float = 1.0, nperseg: int = 256) -> np.ndarray:
    """The mixture-relative selectivity ``score(y)`` of the module docstring (scalar or ``[n]``)."""
    baseline = weighted_coherence(mixture, speech, sample_rate, nperseg) - weighted_coherence(mixture, background, sample_rate, nperseg)
    return weighted_coherence(y, speech, sample_rate, nperseg) - weighted_coherence(y, background, sample_rate, nperseg) - baseline


@dataclass
class MapScore:
    """A map's mean selectivity over the mixtures where it was a candidate (``count`` of them)."""

    layer: int | str
    feature: int
    score: float
    count: int


@dataclass
class MixtureResult:
    """Per block, maps sorted by decreasing mean selectivity; ``skipped`` mixtures were too short or silent."""

    best: dict[int | str, list[MapScore]]
    mixtures: int
    skipped: int

    def table(self, top: int = 5) -> str:
        rows = [f"{self.mixtures} mixtures ({self.skipped} skipped); score > 0: keeps more speech than the mixture does"]
        for layer, scores in self.best.items():
            listed = ", ".join(f"map {m.feature}: {m.score:+.3f} (n={m.count})" for m in scores[:top])
            what = f"layer {layer}" if isinstance(layer, str) else f"block {layer:>2}"
            rows.append(f"{what}: {listed or 'no map scored'}")
        return "\n".join(rows)


def mixture_check(sonifier, mixtures: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], layers: Iterable[int] | None = None,
                  candidates: int = 8, min_count: int = 1, nperseg: int = 256) -> MixtureResult:
    """Score the most active maps of each block by how selectively their sonifications keep the speech.

    Args:
        sonifier: a :class:`tfsonify.Sonifier` (or a CNN12 / contrastive model, wrapped in one).
        mixtures: ``(mixture, speech, background)`` triples of float32 ``[time]`` at the model's rate with
            ``mixture == speech + background`` (e.g. from :func:`tfsonify.data.sources.mix_at_snr`).
        layers: blocks (default all 11).
        candidates: maps sonified per mixture and block (its most active ones).
        min_count: maps seen in fewer mixtures than this are left out of ``best``.

    Returns:
        :class:`MixtureResult`.
    """
    sonifier = as_sonifier(sonifier)
    layers = check_layers(layers, sonifier)
    min_length = sonifier.min_length
    totals: dict[int, dict[int, list[float]]] = {layer: {} for layer in layers}
    used = skipped = 0
    for index, triple in enumerate(mixtures):
        if len(triple) != 3:
            raise ValueError(f"mixture {index} must be a (mixture, speech, background) triple")
        mixture, speech, background = (as_clip(part, index) for part in triple)
        if not mixture.size == speech.size == background.size:
            raise ValueError(f"mixture {index}: parts have lengths {mixture.size}, {speech.size}, {background.size}; they must match")
        if not np.allclose(mixture, speech + background, atol=1e-4 * max(float(np.max(np.abs(mixture))), 1e-6)):
            raise ValueError(f"mixture {index} is not speech + background (max difference "
                             f"{float(np.max(np.abs(mixture - speech - background))):.3g})")
        if mixture.size < min_length(layers[0]) or np.max(np.abs(speech)) == 0 or np.max(np.abs(background)) == 0:
            skipped += 1
            continue
        used += 1
        for layer in layers:
            if mixture.size < min_length(layer):
                continue
            k = min(candidates, sonifier.num_features(layer))
            features, _, sounds = sonifier.sonify_top(mixture, layer, k)
            values = speech_selectivity(sounds, mixture, speech, background, sonifier.sample_rate, nperseg)
            for feature, value in zip(features, np.atleast_1d(values)):
                totals[layer].setdefault(int(feature), []).append(float(value))
    if used == 0:
        raise ValueError(f"no usable mixture: {skipped} skipped (shorter than {min_length(layers[0])} samples or a silent part)")
    best = {}
    for layer in layers:
        scores = [MapScore(layer, feature, float(np.mean(values)), len(values))
                  for feature, values in totals[layer].items() if len(values) >= min_count]
        best[layer] = sorted(scores, key=lambda m: (-m.score, m.feature))
    return MixtureResult(best, used, skipped)


def load_demo_mixtures(root, limit: int | None = None, *, sample_rate: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(mixture, speech, background)`` triples from a demo dataset built by ``tfsonify build-demo-data``.

    Args:
        root: the demo data folder (with ``manifest.json``).
        limit: keep at most this many mixtures (in manifest order).
        sample_rate: the model's rate in Hz (the files are resampled to it), e.g. ``Sonifier.sample_rate``.
    """
    from pathlib import Path

    from tfsonify.io.audio import load_audio
    from tfsonify.data.demo import read_demo

    root = Path(root)
    clips = read_demo(root, "mixtures")
    count = len(clips.paths) if limit is None else min(int(limit), len(clips.paths))
    return [(load_audio(clips.paths[i], sample_rate), load_audio(root / clips.metadata["speech"][i], sample_rate),
             load_audio(root / clips.metadata["background"][i], sample_rate)) for i in range(count)]
