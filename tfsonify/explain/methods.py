"""Attribution methods behind one call: ``explain(method, model, clips, target, **options) -> Explanation``.

The idea of captum's ``attribute()``: every method takes the same model, clips and target and returns an
:class:`Explanation`. Clips are float32 ``[n, T]`` at the model's rate (CNN12 8 kHz, CREPE 16 kHz); scores and
attributions live on the deconvnet's input ``z`` (the clip after input scaling, see
:mod:`tfsonify.explain.targets`). Waveform-domain methods return ``[n, T]`` float32 (units: score per unit of
``z``, or for the sonification a waveform); mask-domain methods return a time-frequency mask ``[n, frames, bins]``
in [0, 1] on the STFT of :mod:`tfsonify.explain.spectral`.

==========================  =======  ======================================================================
method                      domain   definition (all batched in TensorFlow)
==========================  =======  ======================================================================
``sonification``            wave     the paper's deconvnet of the target's signal: for a map ``A_L[c]`` its own
                                     activations (``Sonifier``'s raw reconstruction); for a unit, ``A_L`` times
                                     ``d y_c / d A_L`` at the read-out's base layer
``deconvnet``               wave     ``d y / d z`` with every ReLU's backward ``relu(upstream)`` (captum's
                                     ``Deconvolution``)
``guided_backprop``         wave     ReLU backward ``upstream`` where input and upstream > 0 (``GuidedBackprop``)
``gradient``                wave     ``d y / d z`` (saliency without the absolute value, ``Saliency(abs=False)``)
``gradient_x_input``        wave     ``z * d y / d z`` (``InputXGradient``)
``integrated_gradients``    wave     ``z * sum_k w_k d y / d z (a_k z)``: baseline all zeros (silence, ``z = 0``),
                                     ``steps`` Gauss-Legendre nodes on [0, 1] (default 32; captum's default rule)
                                     or ``rule="riemann_trapezoid"``; the steps run batched
``smoothgrad``              wave     mean gradient over ``samples`` (16) noisy copies ``z + N(0, s^2)``,
                                     ``s = noise * (max z - min z)`` per clip (``noise`` 0.15, Smilkov et al.);
                                     the noise is seeded by ``seed`` and the clip's samples
``occlusion``               wave     time windows of ``window`` samples (default ``T // 16``) every ``stride``
                                     (``window // 2``) set to 0; each sample gets the mean score drop of the
                                     windows covering it (captum's ``Occlusion`` on ``[n, T]``)
``occlusion_band``          mask     ``bands`` (16) equal-width frequency bands of the STFT zeroed one at a time;
                                     each band's score drop, clipped at 0 and divided by the largest
``nmf``                     mask     NMF (``components`` 8) of ``|STFT(z)|``; component ``k`` resynthesised with the
                                     input's phase through its Wiener mask ``m_k = W_k H_k / W H``; its weight is
                                     the model's response ``max(y(comp_k) - y(silence), 0)`` (L2I / audioLIME in
                                     spirit); mask ``sum_k w_k m_k / max_k w_k``
==========================  =======  ======================================================================
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from tfsonify.explain.spectral import Spectral, nmf, spectral_for
from tfsonify.explain.targets import Explained, Target, explained
from tfsonify.validation import check_names

__all__ = ["METHODS", "WAVEFORM_METHODS", "MASK_METHODS", "Explanation", "explain", "check_methods"]

WAVEFORM_METHODS = ("sonification", "deconvnet", "guided_backprop", "gradient", "gradient_x_input",
                    "integrated_gradients", "smoothgrad", "occlusion")
MASK_METHODS = ("occlusion_band", "nmf")
METHODS = WAVEFORM_METHODS + MASK_METHODS

_OPTIONS = {"integrated_gradients": {"steps", "rule", "batch_size"}, "smoothgrad": {"samples", "noise", "seed"},
            "occlusion": {"window", "stride", "batch_size"}, "occlusion_band": {"bands", "batch_size"},
            "nmf": {"components", "iterations", "seed", "batch_size"}}


@dataclass
class Explanation:
    """One method's explanation of ``n`` clips.

    Attributes:
        method: its name; domain: ``"waveform"`` (``values`` ``[n, T]``) or ``"mask"`` (``[n, frames, bins]``).
        values: float32 attributions; inputs: float32 ``[n, T]`` the explained ``z`` (after input scaling).
        index: int32 ``[n]`` target index per clip; target: the :class:`Target`.
        spectral: the STFT settings of a mask (and of every time-frequency metric).
        seconds: wall time of the call (s).
    """

    method: str
    domain: str
    values: np.ndarray
    inputs: np.ndarray
    index: np.ndarray
    target: Target
    spectral: Spectral
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def check_methods(methods) -> list[str]:
    """The method names, or a ValueError listing the unknown ones with the valid ones."""
    return check_names("method", methods, METHODS)


def _check_options(method: str, options: dict) -> None:
    extra = set(options) - _OPTIONS.get(method, set())
    if extra:
        valid = sorted(_OPTIONS.get(method, set()))
        raise ValueError(f"method {method!r} takes no option(s) {sorted(extra)}; its options: {valid or 'none'}")


def explain(method: str, model, clips, target: Target | None = None, *, spectral: Spectral | None = None,
            scaled: bool = False, **options) -> Explanation:
    """Explain ``target`` of ``model`` on ``clips`` with ``method`` (see the module table).

    Args:
        method: one of :data:`METHODS`.
        model: a Keras model the deconvnet walks, a :class:`tfsonify.Sonifier` or an ``Explained``.
        clips: float32 ``[n, T]`` (or ``[T]``) at the model's rate; with ``scaled`` already the deconvnet's input.
        target: a :class:`Target` (default ``Target.unit("top")``: the predicted class of a model with a head).
        spectral: STFT settings for mask methods (default :func:`spectral_for` the model's rate).
        **options: the method's options (module table); others are a ValueError.

    Returns:
        :class:`Explanation`. Every check (method, options, clip shape and length, target range) runs before any
        model computation.
    """
    check_methods([method])
    _check_options(method, options)
    state = explained(model)
    target = Target.unit("top") if target is None else target
    batch = state.check_clips(clips, target)
    spectral = spectral or spectral_for(state.sample_rate)
    z = batch if scaled else state.scale(batch)
    index = state.indices(target, z)
    started = time.perf_counter()
    values = _METHODS[method](state, target, z, index, spectral, **options)
    seconds = time.perf_counter() - started
    domain = "mask" if method in MASK_METHODS else "waveform"
    return Explanation(method, domain, values.astype(np.float32), z, index, target, spectral, seconds)


# ------------------------------------------------------------------------------ gradient family
def _rule(rule: str):
    return lambda state, target, z, index, spectral: state.run("backward", target, z, index, rule)


def _sonification(state: Explained, target, z, index, spectral):
    return state.run("sonification", target, z, index)


def _gradient_x_input(state, target, z, index, spectral):
    return z * state.run("backward", target, z, index, "gradient")


def ig_nodes(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """``(alphas [steps], weights [steps])`` on [0, 1]: Gauss-Legendre (captum's default) or the trapezoid rule."""
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"integrated gradients needs steps >= 2; received {steps!r}")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(int(steps))
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if rule == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, int(steps))
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] *= 0.5
        return alphas, weights
    raise ValueError(f"integrated gradients rule must be 'gausslegendre' or 'riemann_trapezoid'; received {rule!r}")


def _integrated_gradients(state, target, z, index, spectral, steps: int = 32, rule: str = "gausslegendre",
                          batch_size: int = 64):
    alphas, weights = ig_nodes(steps, rule)
    n, length = z.shape
    total = np.zeros_like(z, dtype=np.float64)
    per = max(1, int(batch_size) // max(n, 1))  # steps per batch (the whole batch of clips at each)
    for s in range(0, len(alphas), per):
        a, w = alphas[s : s + per], weights[s : s + per]
        scaled = (a[:, None, None] * z[None]).reshape(-1, length).astype(np.float32)
        grads = state.run("backward", target, scaled, np.tile(index, len(a)), "gradient", batch_size=max(batch_size, n))
        total += np.tensordot(w, grads.reshape(len(a), n, length), axes=1)
    return (z * total).astype(np.float32)


def _smoothgrad(state, target, z, index, spectral, samples: int = 16, noise: float = 0.15, seed: int = 0):
    if not isinstance(samples, (int, np.integer)) or samples < 1 or not noise >= 0:
        raise ValueError(f"smoothgrad needs samples >= 1 and noise >= 0; received samples={samples!r}, noise={noise!r}")
    sigma = noise * (z.max(axis=1) - z.min(axis=1))
    # each clip's noise comes from (seed, the clip's bytes): the same clip gets the same noise in any batch
    draws = np.stack([np.random.default_rng([int(seed), zlib.crc32(clip.tobytes())]).standard_normal((samples, z.shape[1]))
                      for clip in z], axis=1).astype(np.float32)
    noisy = z[None] + draws * sigma[None, :, None]
    grads = state.run("backward", target, noisy.reshape(-1, z.shape[1]).astype(np.float32), np.tile(index, samples))
    return grads.reshape(samples, *z.shape).mean(axis=0)


def occlusion_windows(length: int, window: int, stride: int) -> np.ndarray:
    """Start samples of the occlusion windows: ``ceil((T - window) / stride) + 1`` of them (captum's count; the
    last may reach past ``T`` and is cut there)."""
    if not 1 <= window <= length or not 1 <= stride <= window:
        raise ValueError(f"occlusion needs 1 <= window <= clip length ({length}) and 1 <= stride <= window; "
                         f"received window={window}, stride={stride}")
    count = int(np.ceil((length - window) / stride)) + 1
    return np.arange(count) * stride


def _occlusion(state, target, z, index, spectral, window: int | None = None, stride: int | None = None,
               batch_size: int = 64):
    n, length = z.shape
    window = max(1, length // 16) if window is None else int(window)
    stride = max(1, window // 2) if stride is None else int(stride)
    starts = occlusion_windows(length, window, stride)
    base = state.run("score", target, z, index)
    masks = np.ones((len(starts), length), np.float32)
    for i, s in enumerate(starts):
        masks[i, s : s + window] = 0.0
    occluded = (z[:, None, :] * masks[None]).reshape(-1, length)
    scores = state.run("score", target, occluded, np.repeat(index, len(starts)), batch_size=batch_size)
    drops = base[:, None] - scores.reshape(n, len(starts))  # [n, windows]
    covered = 1.0 - masks  # [windows, T]
    return (drops @ covered) / covered.sum(axis=0)[None]


def _occlusion_band(state, target, z, index, spectral: Spectral, bands: int = 16, batch_size: int = 64):
    if not isinstance(bands, (int, np.integer)) or not 1 <= bands <= spectral.bins:
        raise ValueError(f"occlusion_band needs 1 <= bands <= {spectral.bins} STFT bins; received {bands!r}")
    n, length = z.shape
    frames, bins = spectral.frames(length), spectral.bins
    edges = np.linspace(0, bins, bands + 1).round().astype(int)
    masks = np.ones((bands, frames, bins), np.float32)
    for b in range(bands):
        masks[b, :, edges[b] : edges[b + 1]] = 0.0
    waves = np.concatenate([spectral.apply_mask(z[i : i + 1], masks) for i in range(n)], axis=0)
    scores = state.run("score", target, waves, np.repeat(index, bands), batch_size=batch_size).reshape(n, bands)
    drops = np.clip(state.run("score", target, z, index)[:, None] - scores, 0.0, None)
    peak = drops.max(axis=1, keepdims=True)
    drops = np.where(peak > 0, drops / np.where(peak > 0, peak, 1.0), 0.0)
    return np.einsum("nb,bfk->nfk", drops, 1.0 - masks)


def _nmf(state, target, z, index, spectral: Spectral, components: int = 8, iterations: int = 200, seed: int = 0,
         batch_size: int = 64):
    if not isinstance(components, (int, np.integer)) or components < 1:
        raise ValueError(f"nmf needs components >= 1; received {components!r}")
    n, length = z.shape
    magnitude = spectral.magnitude(z)  # [n, frames, bins]
    w, h = nmf(magnitude, int(components), iterations, seed)
    parts = np.einsum("nbk,nkf->nkfb", w, h)  # [n, K, frames, bins]
    masks = parts / (parts.sum(axis=1, keepdims=True) + 1e-9)
    waves = np.concatenate([spectral.apply_mask(z[i : i + 1], masks[i]) for i in range(n)], axis=0)
    response = state.run("score", target, waves, np.repeat(index, components), batch_size=batch_size)
    silence = state.run("score", target, np.zeros((n, length), np.float32), index)
    weights = np.clip(response.reshape(n, components) - silence[:, None], 0.0, None)
    peak = weights.max(axis=1, keepdims=True)
    weights = np.where(peak > 0, weights / np.where(peak > 0, peak, 1.0), 0.0)
    return np.einsum("nk,nkfb->nfb", weights, masks)


_METHODS = {
    "sonification": _sonification,
    "deconvnet": _rule("deconvnet"),
    "guided_backprop": _rule("guided"),
    "gradient": _rule("gradient"),
    "gradient_x_input": _gradient_x_input,
    "integrated_gradients": _integrated_gradients,
    "smoothgrad": _smoothgrad,
    "occlusion": _occlusion,
    "occlusion_band": _occlusion_band,
    "nmf": _nmf,
}
