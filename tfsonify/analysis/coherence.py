"""Mean top-k magnitude-squared coherence between inputs and sonifications (paper §4.2.1, Eq. 2-3, Figure 7).

For each clip ``x_i`` and block ``L``, ``s_i`` is the sonification of the block's most active map
(largest ``max_t A_L[f, t]``). The magnitude-squared coherence

    C_xs(f) = |P_xs(f)|^2 / (P_xx(f) P_ss(f))

is estimated as ``scipy.signal.coherence`` does (Welch's method, Hann window, ``nperseg`` samples,
50 % overlap, constant detrend; vectorised here, tested equal to scipy), and the clip's score is the mean of its ``k`` (= 5) largest values over frequency.
The layer's score ``M_c`` is the mean over clips, reported with a 95 % Student-t confidence interval
over clips, clipped to [0, 1] (the paper's intervals are over three training runs: pass several results per model to
:func:`plot_coherence` to draw one curve per run set, see :func:`combine_runs`).

Where a power spectral density is zero (a silent sonification from a dead map) the coherence is
defined as 0 at that frequency instead of scipy's 0/0 = NaN.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import signal, stats

from tfsonify.analysis.clip_batches import as_sonifier, Skipped, check_layers, describe_layer, equal_length_batches
from tfsonify.validation import check_int

__all__ = [
    "magnitude_squared_coherence",
    "top_k_coherence",
    "confidence_interval",
    "CoherenceResult",
    "layer_coherence",
    "combine_runs",
    "plot_coherence",
]


def magnitude_squared_coherence(x: np.ndarray, y: np.ndarray, sample_rate: float = 1.0,
                                nperseg: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Welch magnitude-squared coherence of two equal-length signals (``scipy.signal.coherence``'s estimate).

    Args:
        x, y: float ``[time]`` or ``[batch, time]`` (coherence along the last axis), same shape.
        sample_rate: Hz, only sets the frequency axis (default 1.0: frequencies in cycles per sample).
        nperseg: Welch segment length in samples (shortened to the signal length if longer).

    Returns:
        ``(freqs_hz [nperseg // 2 + 1], coherence [..., freqs])`` in [0, 1]; 0 where either
        signal has no power at a frequency (never NaN).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim not in (1, 2) or x.shape[-1] < 2:
        raise ValueError(f"x and y must have the same shape [time] or [batch, time] with time >= 2; "
                         f"received {x.shape} and {y.shape}")
    nperseg = int(min(nperseg, x.shape[-1]))
    # scipy.signal.coherence's estimate (Hann window, 50 % overlap, constant detrend, mean over segments),
    # vectorised: scipy detrends segment by segment in Python (76 ms for 10 s at 8 kHz; this: a few ms).
    # The density scaling and the one-sided doubling cancel in the ratio. Tested equal to scipy.
    step = nperseg - nperseg // 2
    window = signal.get_window("hann", nperseg)
    spectra = []
    for z in (x, y):
        frames = np.lib.stride_tricks.sliding_window_view(z, nperseg, axis=-1)[..., ::step, :]
        spectra.append(np.fft.rfft((frames - frames.mean(axis=-1, keepdims=True)) * window, axis=-1))
    sx, sy = spectra
    pxx = np.mean(sx.real ** 2 + sx.imag ** 2, axis=-2)
    pyy = np.mean(sy.real ** 2 + sy.imag ** 2, axis=-2)
    pxy = np.mean(np.conj(sx) * sy, axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        coherence = (pxy.real ** 2 + pxy.imag ** 2) / (pxx * pyy)
    # 0/0 = NaN where a spectrum vanishes (e.g. the silent sonification of a dead map): defined as 0.
    coherence = np.where(np.isfinite(coherence), coherence, 0.0)
    return np.fft.rfftfreq(nperseg, 1.0 / sample_rate), np.clip(coherence, 0.0, 1.0)


def min_coherence_length(nperseg: int = 256) -> int:
    """Shortest clip whose coherence means something: two Welch segments of ``nperseg`` (half overlap). A shorter
    clip has one segment, and one segment's magnitude-squared coherence is 1 at every frequency, whatever the
    signals."""
    return int(nperseg) + int(nperseg) - int(nperseg) // 2


def top_k_coherence(x: np.ndarray, y: np.ndarray, k: int = 5, sample_rate: float = 1.0, nperseg: int = 256) -> np.ndarray:
    """Mean of the ``k`` most coherent frequencies of ``x`` and ``y`` (the summand of Eq. 3); the value does not
    depend on ``sample_rate`` (Hz; it only labels the frequencies).

    Returns a float (for ``[time]`` inputs) or ``[batch]`` float64 array, in [0, 1].
    """
    check_int("k", k, minimum=1)
    _, coherence = magnitude_squared_coherence(x, y, sample_rate, nperseg)
    if k > coherence.shape[-1]:
        raise ValueError(f"k={k} exceeds the {coherence.shape[-1]} frequencies of a {nperseg}-sample Welch segment")
    top = -np.sort(-coherence, axis=-1)[..., :k]
    return top.mean(axis=-1)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student-t interval of the mean; a single value gives a zero-width interval."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("cannot compute a confidence interval of no values")
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2.0, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


@dataclass
class CoherenceResult:
    """Per-layer mean top-k coherence of one model over a dataset.

    Attributes:
        layers: block indices.
        mean, low, high: per layer, the mean over clips and its 95 % confidence bounds.
        clips: per layer, the number of clips scored.
        skipped: per layer, the number of clips too short for that block (or silent).
        scores: per layer, every clip's top-k mean (for re-aggregation).
        k, nperseg, sample_rate: the measurement's settings.
    """

    layers: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    clips: list[int]
    skipped: list[int]
    scores: list[list[float]] = field(repr=False)
    k: int = 5
    nperseg: int = 256
    sample_rate: int | None = None

    def to_json(self, path: str | os.PathLike) -> None:
        from tfsonify.io.audio import atomic_path

        with atomic_path(path, suffix=".json") as temporary:
            temporary.write_text(json.dumps(asdict(self), indent=1))

    def table(self) -> str:
        rows = [f"{'layer':>5}  {'M_c':>6}  {'95% CI':>17}  {'clips':>5}  {'skipped':>7}"]
        for i, layer in enumerate(self.layers):
            rows.append(f"{str(layer):>5}  {self.mean[i]:6.3f}  [{self.low[i]:6.3f}, {self.high[i]:6.3f}]  {self.clips[i]:>5}  {self.skipped[i]:>7}")
        return "\n".join(rows)


def layer_coherence(sonifier, clips: Iterable, layers: Iterable[int] | None = None, k: int = 5, nperseg: int = 256,
                    batch_size: int = 8, level: float = 0.95) -> CoherenceResult:
    """Mean top-k coherence between each clip and the sonification of its most active map, per block.

    Args:
        sonifier: a :class:`tfsonify.Sonifier` (or a CNN12 / contrastive model, wrapped in one).
        clips: iterable of mono float32 ``[time]`` waveforms at ``sonifier.sample_rate`` (any
            lengths; consecutive equal-length clips are batched).
        layers: block indices or layer names of the sonifier's model (:meth:`tfsonify.Sonifier.layers`;
            default all blocks: CNN12's 11, CREPE's 6).
        k: number of most coherent frequencies averaged per clip (5 in the paper).
        nperseg: Welch segment length (samples).
        batch_size: clips per forward pass.

    Returns:
        :class:`CoherenceResult`. Clips shorter than a block needs are skipped for that block and
        counted; so are silent clips (peak 0) and clips shorter than two Welch segments
        (:func:`min_coherence_length`: their coherence is 1 by construction). A block with no usable clip has
        NaN-free zero-count entries (mean 0) and is listed with ``clips == 0``.
    """
    sonifier = as_sonifier(sonifier)
    layers = check_layers(layers, sonifier=sonifier)
    scores: dict[int | str, list[float]] = {layer: [] for layer in layers}
    skipped = {layer: 0 for layer in layers}
    shallow = Skipped()
    welch = min_coherence_length(nperseg)
    for _, batch in equal_length_batches(clips, batch_size, layers[0], shallow, sonifier=sonifier):
        silent = np.max(np.abs(batch), axis=1) == 0.0
        if batch.shape[1] < welch:  # one Welch segment: coherence 1 whatever the signals
            for layer in layers:
                skipped[layer] += batch.shape[0]
            continue
        for layer in layers:
            skipped[layer] += int(silent.sum())
            if batch.shape[1] < sonifier.min_length(layer):
                skipped[layer] += int((~silent).sum())
                continue
            usable = batch[~silent]
            if usable.shape[0] == 0:
                continue
            _, _, sounds = sonifier.sonify_top(usable, layer, 1)
            scores[layer].extend(top_k_coherence(usable, sounds[:, 0], k, sonifier.sample_rate, nperseg).tolist())
    for layer in layers:
        skipped[layer] += shallow.too_short
    result = CoherenceResult(layers=layers, mean=[], low=[], high=[], clips=[], skipped=[skipped[layer] for layer in layers],
                             scores=[scores[layer] for layer in layers], k=k, nperseg=nperseg, sample_rate=sonifier.sample_rate)
    for layer in layers:
        values = scores[layer]
        mean, low, high = confidence_interval(values, level) if values else (0.0, 0.0, 0.0)
        result.mean.append(mean)
        result.low.append(max(low, 0.0))  # coherence lives in [0, 1]; a t-interval of few clips can overshoot
        result.high.append(min(high, 1.0))
        result.clips.append(len(values))
    if sum(result.clips) == 0:
        raise ValueError(f"no clip could be scored: {result.skipped[0]} skipped (shorter than "
                         f"{max(sonifier.min_length(layers[0]), welch)} samples for {describe_layer(layers[0])} and two "
                         f"{nperseg}-sample Welch segments, or silent)")
    return result


def combine_runs(runs: Sequence[CoherenceResult], level: float = 0.95) -> CoherenceResult:
    """Combine results of several training runs of one model type as the paper's Figure 7 does.

    Each run contributes its per-layer mean; the interval is a Student-t interval over runs.
    """
    if not runs:
        raise ValueError("combine_runs needs at least one CoherenceResult")
    layers = runs[0].layers
    if any(run.layers != layers for run in runs):
        raise ValueError(f"all runs must cover the same layers; received {[run.layers for run in runs]}")
    combined = CoherenceResult(layers=list(layers), mean=[], low=[], high=[], clips=[], skipped=[], scores=[],
                               k=runs[0].k, nperseg=runs[0].nperseg, sample_rate=runs[0].sample_rate)
    for i in range(len(layers)):
        run_means = [run.mean[i] for run in runs if run.clips[i] > 0]
        mean, low, high = confidence_interval(run_means, level) if run_means else (0.0, 0.0, 0.0)
        combined.mean.append(mean)
        combined.low.append(max(low, 0.0))
        combined.high.append(min(high, 1.0))
        combined.clips.append(sum(run.clips[i] for run in runs))
        combined.skipped.append(sum(run.skipped[i] for run in runs))
        combined.scores.append(run_means)
    return combined


def plot_coherence(results: Mapping[str, CoherenceResult], path: str | os.PathLike, title: str = "") -> str:
    """Plot ``M_c`` per layer with 95 % bands, one curve per model (e.g. supervised vs. contrastive), like Figure 7.

    Args:
        results: model label -> :class:`CoherenceResult` (use :func:`combine_runs` for run-level intervals).
        path: PNG file to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfsonify.io.audio import atomic_path

    if not results:
        raise ValueError("plot_coherence needs at least one model's result")
    figure, axis = plt.subplots(figsize=(6.0, 3.6), constrained_layout=True)
    named = any(isinstance(layer, str) for r in results.values() for layer in r.layers)
    order: list = []
    for r in results.values():
        order.extend(layer for layer in r.layers if layer not in order)
    position = (lambda layer: order.index(layer)) if named else (lambda layer: layer)  # noqa: E731
    for label, result in results.items():
        keep = [i for i, n in enumerate(result.clips) if n > 0]
        layers = [position(result.layers[i]) for i in keep]
        axis.plot(layers, [result.mean[i] for i in keep], marker="o", label=label)
        axis.fill_between(layers, [result.low[i] for i in keep], [result.high[i] for i in keep], alpha=0.25)
    first = next(iter(results.values()))
    axis.set_xlabel("layer (block)")
    axis.set_ylabel(f"mean top-{first.k} MSC")
    axis.set_ylim(0.0, 1.02)
    if named:  # layer names (any model): one tick per layer in graph order
        axis.set_xticks(range(len(order)), [str(layer) for layer in order], rotation=30, fontsize=7)
    else:
        axis.set_xticks(sorted({layer for r in results.values() for layer in r.layers}))
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title(title or "input vs. sonification of the most active map (95% CI)", fontsize=9)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    plt.close(figure)
    return str(path)
