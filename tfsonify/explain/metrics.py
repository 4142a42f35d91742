"""Faithfulness metrics of explanations (:class:`tfsonify.explain.methods.Explanation`).

* :func:`mixture_scores` - ground-truth mixtures ``z = s + b`` (speech over music or drums): the share of the
  explanation's energy (``R^2`` of its relevance map, :func:`tfsonify.explain.spectral.relevance_map`) in the
  time-frequency bins where the known source dominates (``|S| > |B|``, the ideal binary mask), and SI-SDR (dB)
  against the source of (a) the mixture filtered by the explanation's soft mask (every method) and (b) the
  explanation itself as a waveform (waveform-domain methods; the sonification's own claim).
* :func:`deletion_insertion` - bins of the STFT of ``z`` removed (deletion) or kept (insertion) in decreasing
  relevance, ``steps + 1`` fractions 0, 1/steps, ..., 1; the curve is the target's probability (unit targets with
  a softmax/sigmoid head) or its score divided by the unperturbed score (maps, logits); areas by the trapezoid
  rule over the fraction; ``insertion - deletion`` as WAM's "faithfulness".
* :func:`lmac_protocol` - for unit targets (SpeechBrain's L-MAC / L2I protocol) on the masked-in audio
  ``istft(M X)`` and masked-out audio ``istft((1 - M) X)`` with the soft mask ``M``: AI (% of clips where the
  class probability rises), AD / AG (mean relative drop / gain, %, gain relative to ``1 - p``), FF (mean drop of
  the probability on the masked-out audio), Fid-In (share of clips whose masked-in top-1 class is the original's).
* :func:`similarity` - Spearman rank correlation and SSIM of two explanations' relevance maps per clip (the
  sanity checks of :mod:`tfsonify.explain.sanity`).

Scores in ``z`` (after input scaling); references ``s``, ``b`` may be the raw parts - SI-SDR and the dominance
mask do not depend on a common scale.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from tfsonify.explain.spectral import relevance_map, soft_mask
from tfsonify.explain.targets import Explained, explained
from tfsonify.validation import check_names

__all__ = ["METRICS", "check_metrics", "check_parts", "si_sdr", "mixture_scores", "deletion_insertion",
           "deletion_insertion_masks", "curve_values", "lmac_protocol", "similarity", "ssim", "auc"]

METRICS = ("mixture", "deletion", "lmac", "randomisation", "cost")


def check_metrics(metrics) -> list[str]:
    """The metric names, or a ValueError listing the unknown ones with the valid ones."""
    return check_names("metric", metrics, METRICS)


def check_parts(clips: np.ndarray, sources, backgrounds) -> tuple[np.ndarray, np.ndarray]:
    """``(sources, backgrounds)`` as float32 ``[n, T]`` matching ``clips``; ValueError if any length differs."""
    sources = [np.asarray(s, np.float32) for s in sources]
    backgrounds = [np.asarray(b, np.float32) for b in backgrounds]
    if len(sources) != len(backgrounds) or len(sources) != len(clips):
        raise ValueError(f"{len(clips)} mixtures need as many sources and backgrounds; received {len(sources)} "
                         f"sources and {len(backgrounds)} backgrounds")
    for i, (s, b) in enumerate(zip(sources, backgrounds)):
        if s.shape != b.shape or s.shape != np.shape(clips[i]):
            raise ValueError(f"mixture {i}: source has {s.shape[-1] if s.ndim else 0} samples, background "
                             f"{b.shape[-1] if b.ndim else 0}, mixture {np.shape(clips[i])[-1]}; they must match")
    return np.stack(sources), np.stack(backgrounds)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale-invariant SDR (dB) of ``estimate`` vs ``reference``, both ``[n, T]`` (means removed) -> ``[n]``.

    ``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / |r|^2``; an all-zero estimate gives -inf clipped
    to -100 dB.
    """
    e = np.asarray(estimate, np.float64)
    r = np.asarray(reference, np.float64)
    e = e - e.mean(axis=-1, keepdims=True)
    r = r - r.mean(axis=-1, keepdims=True)
    alpha = (e * r).sum(-1, keepdims=True) / np.maximum((r * r).sum(-1, keepdims=True), 1e-20)
    target = alpha * r
    ratio = (target ** 2).sum(-1) / np.maximum(((target - e) ** 2).sum(-1), 1e-20)
    return np.maximum(10.0 * np.log10(np.maximum(ratio, 1e-10)), -100.0)


def mixture_scores(explanation, sources: np.ndarray, backgrounds: np.ndarray) -> dict[str, np.ndarray]:
    """``{"energy_share": [n] in [0, 1], "si_sdr_mask": [n] dB, "si_sdr_wave": [n] dB (waveform methods)}``."""
    spectral = explanation.spectral
    dominant = spectral.magnitude(sources) > spectral.magnitude(backgrounds)
    energy = relevance_map(explanation, spectral).astype(np.float64) ** 2
    total = energy.sum(axis=(1, 2))
    share = np.where(total > 0, (energy * dominant).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0), 0.0)
    filtered = spectral.apply_mask(explanation.inputs, soft_mask(explanation, spectral))
    result = {"energy_share": share, "si_sdr_mask": si_sdr(filtered, sources)}
    if explanation.domain == "waveform":
        result["si_sdr_wave"] = si_sdr(explanation.values, sources)
    return result


def auc(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``curves`` ``[n, k]`` over ``fractions`` ``[k]`` -> ``[n]``."""
    widths = np.diff(fractions)
    return ((curves[:, 1:] + curves[:, :-1]) * 0.5 * widths).sum(axis=1)


def deletion_insertion_masks(relevance: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of one clip: ``relevance`` ``[frames, bins]`` -> ``(fractions [steps + 1], deletion [steps + 1, frames,
    bins], insertion [...])``; bin order: decreasing relevance, ties by flat index."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"deletion/insertion needs steps >= 1; received {steps!r}")
    order = np.argsort(-relevance.ravel(), kind="stable")
    size = order.size
    fractions = np.arange(steps + 1) / steps
    counts = np.round(fractions * size).astype(int)
    rank = np.empty(size, np.int64)
    rank[order] = np.arange(size)
    keep = rank[None, :] < counts[:, None]  # [steps + 1, size]: the top ``count`` bins
    insertion = keep.reshape((steps + 1,) + relevance.shape).astype(np.float32)
    return fractions, 1.0 - insertion, insertion


def curve_values(state: Explained, explanation, waves: np.ndarray, index: np.ndarray, reference: np.ndarray,
                 batch_size: int = 64) -> np.ndarray:
    """The curve's y for ``waves``: probability (unit targets with a head activation) or score / ``reference``."""
    target = explanation.target
    if target.layer is None and state.activation != "none":
        return state.run("probability", target, waves, index, batch_size=batch_size)
    scores = state.run("score", target, waves, index, batch_size=batch_size)
    return scores / np.where(np.abs(reference) > 0, reference, 1.0)


def deletion_insertion(model, explanation, steps: int = 20, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Deletion and insertion curves of ``explanation`` (module docstring).

    Returns ``{"fractions": [steps + 1], "deletion": [n, steps + 1], "insertion": [n, steps + 1],
    "deletion_auc": [n], "insertion_auc": [n], "insertion_minus_deletion": [n]}``.
    """
    state = explained(model)
    spectral = explanation.spectral
    relevance = relevance_map(explanation, spectral)
    z, index, target = explanation.inputs, explanation.index, explanation.target
    reference = state.run("score", target, z, index)
    deletion, insertion = [], []
    for i in range(z.shape[0]):
        fractions, delete, insert = deletion_insertion_masks(relevance[i], steps)
        waves = spectral.apply_mask(z[i : i + 1], np.concatenate([delete, insert]))
        ref = np.full(waves.shape[0], reference[i])
        values = curve_values(state, explanation, waves, np.full(waves.shape[0], index[i], np.int32), ref, batch_size)
        deletion.append(values[: steps + 1])
        insertion.append(values[steps + 1 :])
    deletion, insertion = np.stack(deletion), np.stack(insertion)
    d, s = auc(fractions, deletion), auc(fractions, insertion)
    return {"fractions": fractions, "deletion": deletion, "insertion": insertion, "deletion_auc": d,
            "insertion_auc": s, "insertion_minus_deletion": s - d}


def lmac_protocol(model, explanation, batch_size: int = 64) -> dict[str, np.ndarray]:
    """SpeechBrain's L-MAC protocol for a unit (class) target; per-clip values (average them for the table).

    Returns ``{"AI": [n] 0/100, "AD": [n] %, "AG": [n] %, "FF": [n], "Fid-In": [n] 0/1}``.

    Raises:
        ValueError: a map target, or a model without a read-out.
    """
    state = explained(model)
    target = explanation.target
    if target.layer is not None:
        raise ValueError("the L-MAC protocol (AI, AD, AG, FF, Fid-In) needs a class target (Target.unit), not a map")
    spectral, z, index = explanation.spectral, explanation.inputs, explanation.index
    mask = soft_mask(explanation, spectral)
    masked_in = spectral.apply_mask(z, mask)
    masked_out = spectral.apply_mask(z, 1.0 - mask)
    p = state.run("probability", target, z, index, batch_size=batch_size)
    p_in = state.run("probability", target, masked_in, index, batch_size=batch_size)
    p_out = state.run("probability", target, masked_out, index, batch_size=batch_size)
    top = np.argmax(state.run_all(target, z), axis=1)
    top_in = np.argmax(state.run_all(target, masked_in), axis=1)
    return {"AI": 100.0 * (p_in > p), "AD": 100.0 * np.clip(p - p_in, 0, None) / np.maximum(p, 1e-12),
            "AG": 100.0 * np.clip(p_in - p, 0, None) / np.maximum(1.0 - p, 1e-12), "FF": p - p_out,
            "Fid-In": (top_in == top).astype(np.float64)}


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """SSIM of two ``[frames, bins]`` maps, each min-max normalised to [0, 1], with a ``window`` x ``window``
    uniform filter (Wang et al.'s constants ``K1 = 0.01``, ``K2 = 0.03``, data range 1); the mean SSIM."""
    def unit(x):
        x = np.asarray(x, np.float64)
        span = x.max() - x.min()
        return (x - x.min()) / span if span > 0 else np.zeros_like(x)

    a, b = unit(a), unit(b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    f = lambda x: ndimage.uniform_filter(x, size=window, mode="reflect")  # noqa: E731
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
    return float(np.mean(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))))


def similarity(before, after) -> dict[str, np.ndarray]:
    """``{"spearman": [n], "ssim": [n]}`` between two explanations' relevance maps (absolute values), per clip."""
    ra, rb = relevance_map(before, before.spectral), relevance_map(after, after.spectral)
    rho = []
    for x, y in zip(ra, rb):
        x, y = x.ravel(), y.ravel()
        rho.append(0.0 if np.ptp(x) == 0 or np.ptp(y) == 0 else float(stats.spearmanr(x, y).statistic))
    return {"spearman": np.asarray(rho), "ssim": np.asarray([ssim(x, y) for x, y in zip(ra, rb)])}
