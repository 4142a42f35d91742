"""Exact sonification of long clips as overlapping fixed-length windows (numpy only, no TensorFlow).

A fixed-length LiteRT model (``tfsonify export tflite --length W``) runs 3-5x faster than
a dynamic-length one, but takes exactly ``W`` samples. This module runs a clip of any
length ``T >= effective_length`` through it window by window and gives the same
sonification as one pass over the whole clip (same float32 ops; measured differences
~1e-6 of the peak), using the model's raw signatures:

``sonify_raw_l{L}``
    ``waveform`` float32 ``[1, W]`` *already scaled by the whole clip's peak* (no
    peak normalisation inside), ``feature`` int32 ``[1]`` -> ``reconstruction`` float32
    ``[1, W]``: the deconvnet output before the unit-peak rescale.
``peak_activations_l{L}``
    same ``waveform`` -> ``activations`` float32 ``[1, C_L]``: each map's maximum over the
    window's block-``L`` time steps.

How it stays exact (block ``L``, cumulative pool stride ``S = 2**(pooled blocks 1..L)``,
receptive field ``R = min_length(L)`` samples; block-``L`` step ``i`` of a window sees
exactly samples ``[S*i, S*i + R)``):

1. **One global scale.** The clip is divided once by its own peak ``max|x|`` (as the
   full-clip pass does); windows are not re-normalised. The stitched raw reconstruction
   is scaled once at the end to unit peak and multiplied by ``max|x|``.
2. **Aligned starts.** Every window starts at a multiple of ``S``, so each block's conv
   outputs and max-pool pairs (hence switches) coincide with the full-clip pass: all
   of a window's activations equal the full clip's (valid convolutions, no padding).
3. **Margins.** The deconvnet maps block-``L`` step ``i`` back only onto samples
   ``[S*i, S*i+R)``: the value passed through any intermediate ReLU at a position sums
   contributions of the block-``L`` steps whose receptive field contains that
   position's receptive field. So sample ``t`` depends only on the block-``L`` steps
   whose receptive field contains ``t``. Propagating the exact interval down the
   deconvnet (unpool: ``[lo, hi] -> [2lo, 2hi+1]``; transposed conv of kernel ``k``:
   ``[lo, hi] -> [lo+k-1, hi]``) gives a window that is exact on
   ``[s + M, s + E - M)`` with margin ``M = R - S`` on each side, where
   ``E = R + (n-1)*S`` is the window's *effective length* (``n`` block-``L`` steps; the
   last ``W - E`` samples feed no block-``L`` step and change nothing). The first window
   is exact from sample 0 and the last from its margin to the clip's end (beyond its
   last step the full pass is exactly zero too). Windows advance by at most
   ``E - 2M`` rounded down to a multiple of ``S``; each keeps the part of its exact
   span between the midpoints of the overlaps. ``M`` is tight: one sample less and
   the output depends on a block-``L`` step outside the window.
4. **Top maps.** Every block-``L`` step of every window is a step of the full clip and
   the windows' steps cover all of the clip's steps, so the maximum over windows of the
   windows' per-map maxima is the full clip's per-map maximum: top-``k`` is exact.

For ``W = 8000``: block 11 (``S = 256``, ``R = 2370``) ``M = 2114``, ``E = 7746``, a hop of
3328 samples; block 5 (``S = 32``, ``R = 162``) ``M = 130``, ``E = 7970``, a hop of 7680.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["BLOCK_GEOMETRY", "WindowPlan", "stride", "receptive_field", "output_length", "plan_windows",
           "windowed_reconstruction", "sonify_windowed", "top_features_windowed", "litert_functions"]

# (kernel size, pooled) of CNN12's blocks 1..11 (tfsonify.models.cnn12.BLOCKS; a test keeps the two equal).
BLOCK_GEOMETRY: tuple[tuple[int, bool], ...] = (
    (7, True), (7, True), (5, True), (5, True), (5, True), (3, True), (3, True), (3, True),
    (3, False), (3, False), (3, False),
)


def _check_layer(layer) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= int(layer) <= len(BLOCK_GEOMETRY):
        raise ValueError(f"layer must be an integer block index in 1..{len(BLOCK_GEOMETRY)}; received {layer!r}")
    return int(layer)


def stride(layer: int) -> int:
    """Samples between consecutive block-``layer`` time steps: ``2**(pooled blocks 1..layer)``."""
    layer = _check_layer(layer)
    return 2 ** sum(pooled for _, pooled in BLOCK_GEOMETRY[:layer])


def receptive_field(layer: int) -> int:
    """Input samples one block-``layer`` time step sees (= ``tfsonify.models.cnn12.min_length(layer)``)."""
    layer = _check_layer(layer)
    needed = 1
    for kernel_size, pooled in reversed(BLOCK_GEOMETRY[:layer]):
        needed = needed * (2 if pooled else 1) + kernel_size - 1
    return needed


def output_length(num_samples: int, layer: int) -> int:
    """Number of block-``layer`` time steps for ``num_samples`` input samples (0 if too short)."""
    size, field = stride(layer), receptive_field(layer)
    return 0 if num_samples < field else (int(num_samples) - field) // size + 1


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one clip start and which samples each contributes.

    Attributes:
        layer: block 1..11.
        clip_length: ``T`` samples of the clip.
        window_length: ``W`` samples the model takes.
        effective_length: ``E <= W`` samples that feed block ``layer`` (the rest change nothing).
        margin: ``M = R - S`` samples dropped at each inner side of a window.
        starts: window start samples (multiples of ``stride(layer)``), increasing.
        keep: ``(begin, end)`` clip samples taken from each window; they tile ``[0, T)``.
    """

    layer: int
    clip_length: int
    window_length: int
    effective_length: int
    margin: int
    starts: tuple[int, ...]
    keep: tuple[tuple[int, int], ...]


def min_window_length(layer: int) -> int:
    """Shortest fixed window for which block ``layer``'s exact spans still overlap (``E - 2M >= S``)."""
    size, field = stride(layer), receptive_field(layer)
    return field + (-(-field // size) - 1) * size


def plan_windows(clip_length: int, window_length: int, layer: int) -> WindowPlan:
    """Plan exact overlapping windows of ``window_length`` samples over a ``clip_length``-sample clip.

    Args:
        clip_length: ``T`` samples (8 kHz) of the clip; at least the window's effective length.
        window_length: ``W`` samples of the fixed-length model.
        layer: block 1..11.

    Returns:
        A :class:`WindowPlan`.

    Raises:
        ValueError: if the window is too short for block ``layer`` with its margins, or the
            clip is shorter than the window's effective length (run it on a dynamic-length
            model, or pad it knowing the maps near the padded end change).
    """
    layer = _check_layer(layer)
    for name, value in (("clip_length", clip_length), ("window_length", window_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer number of samples; received {value!r}")
    clip_length, window_length = int(clip_length), int(window_length)
    size, field = stride(layer), receptive_field(layer)
    shortest = min_window_length(layer)
    if window_length < shortest:
        raise ValueError(f"a {window_length}-sample window is too short for exact windows at block {layer}: its margins "
                         f"({field - size} samples each side) need windows of at least {shortest} samples")
    steps = output_length(window_length, layer)
    effective = field + (steps - 1) * size
    margin = field - size
    if clip_length < effective:
        raise ValueError(f"clip has {clip_length} samples but windowing at block {layer} needs at least {effective} "
                         f"(the {window_length}-sample window's effective length); use a dynamic-length model")
    hop = (effective - 2 * margin) // size * size
    last = (clip_length - effective) // size * size
    starts = list(range(0, last, hop)) + [last]
    bounds = [0] + [(previous + current + effective) // 2 for previous, current in zip(starts, starts[1:])] + [clip_length]
    keep = tuple(zip(bounds[:-1], bounds[1:]))
    return WindowPlan(layer, clip_length, window_length, effective, margin, tuple(starts), keep)


def _normalise(clip: np.ndarray) -> tuple[np.ndarray, np.float32]:
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"clip must be a non-empty mono float32 array [time]; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"clip contains {int(array.size - np.count_nonzero(np.isfinite(array)))} NaN or Inf samples")
    peak = np.float32(np.max(np.abs(array)))
    return (array / peak if peak > 0 else array).astype(np.float32), peak


def _window(normalised: np.ndarray, start: int, length: int) -> np.ndarray:
    piece = normalised[start:start + length]
    return np.pad(piece, (0, length - piece.size)) if piece.size < length else piece


def windowed_reconstruction(normalised: np.ndarray, plan: WindowPlan,
                            raw: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Stitch the raw reconstructions of the planned windows.

    Args:
        normalised: float32 ``[T]``, the clip divided by its own peak.
        plan: from :func:`plan_windows` for this clip.
        raw: one window float32 ``[W]`` -> its raw reconstruction ``[W]`` (``sonify_raw_l{L}``).

    Returns:
        float32 ``[T]``, equal to the full-clip raw reconstruction.
    """
    normalised = np.asarray(normalised, np.float32)
    out = np.zeros(plan.clip_length, np.float32)
    for start, (begin, end) in zip(plan.starts, plan.keep):
        piece = np.asarray(raw(_window(normalised, start, plan.window_length)), np.float32).reshape(-1)
        if piece.shape != (plan.window_length,):
            raise ValueError(f"the raw sonifier returned shape {piece.shape}; expected ({plan.window_length},)")
        stop = min(end, start + plan.window_length)  # past the window: beyond every receptive field, exactly 0
        out[begin:stop] = piece[begin - start:stop - start]
    return out


def sonify_windowed(clip: np.ndarray, layer: int, window_length: int,
                    raw: Callable[[np.ndarray, int], np.ndarray], features) -> np.ndarray:
    """Sonify maps of block ``layer`` over a long clip with a fixed-length model, exactly.

    Args:
        clip: float32 ``[T]`` at 8 kHz, raw amplitude, ``T >=`` the window's effective length.
        layer: block 1..11.
        window_length: ``W``, the model's fixed length.
        raw: ``(window [W] float32, feature int) -> raw reconstruction [W]`` (``sonify_raw_l{L}``).
        features: map indices (ints) of block ``layer``.

    Returns:
        float32 ``[len(features), T]``, each scaled to unit peak times ``max|x|`` (the
        ``sonify_l{L}`` / ``Sonifier.sonify`` convention); a silent clip gives zeros.
    """
    normalised, peak = _normalise(clip)
    plan = plan_windows(normalised.size, window_length, layer)
    chosen = [int(feature) for feature in np.atleast_1d(features)]
    sounds = np.zeros((len(chosen), normalised.size), np.float32)
    for row, feature in enumerate(chosen):
        stitched = windowed_reconstruction(normalised, plan, lambda window, feature=feature: raw(window, feature))
        top = np.float32(np.max(np.abs(stitched)))
        if top > 0:
            sounds[row] = stitched / top * peak
    return sounds


def top_features_windowed(clip: np.ndarray, layer: int, window_length: int,
                          activations: Callable[[np.ndarray], np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most active maps of block ``layer`` over a long clip, from per-window maxima.

    Args:
        clip: float32 ``[T]`` at 8 kHz, raw amplitude.
        layer: block 1..11.
        window_length: ``W``.
        activations: one window ``[W]`` -> ``[C_L]`` per-map maxima (``peak_activations_l{L}``).
        k: number of maps, ``1 <= k <= C_L``.

    Returns:
        ``(features [k] int32, activations [k] float32)`` by decreasing activation (ties: lower index first,
        as ``tf.math.top_k``).
    """
    normalised, _ = _normalise(clip)
    plan = plan_windows(normalised.size, window_length, layer)
    best = None
    for start in plan.starts:
        scores = np.asarray(activations(_window(normalised, start, plan.window_length)), np.float32).reshape(-1)
        best = scores if best is None else np.maximum(best, scores)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= best.size:
        raise ValueError(f"k must be an integer in 1..{best.size} (block {layer}'s maps); received {k!r}")
    order = np.argsort(-best, kind="stable")[:k]
    return order.astype(np.int32), best[order]


def litert_functions(interpreter, layer: int) -> tuple[int, Callable, Callable]:
    """Window runners for block ``layer`` of a fixed-length tfsonify ``.tflite`` (LiteRT ``Interpreter``).

    Returns:
        ``(window_length, raw(window, feature) -> [W], activations(window) -> [C_L])``.

    Raises:
        ValueError: (``raw``) for a feature outside ``0..C_L-1``; if the model lacks ``sonify_raw_l{L}`` / ``peak_activations_l{L}`` or is dynamic-length.
    """
    layer = _check_layer(layer)
    names = interpreter.get_signature_list()
    missing = [key for key in (f"sonify_raw_l{layer}", f"peak_activations_l{layer}") if key not in names]
    if missing:
        raise ValueError(f"this model has no {missing} signature(s) (export it with a current `tfsonify export tflite`)")
    raw_runner = interpreter.get_signature_runner(f"sonify_raw_l{layer}")
    peak_runner = interpreter.get_signature_runner(f"peak_activations_l{layer}")
    length = int(raw_runner.get_input_details()["waveform"]["shape_signature"][1])
    if length == -1:
        raise ValueError("windows need a fixed-length model; a dynamic-length model takes the whole clip at once")

    width = int(peak_runner.get_output_details()["activations"]["shape"][1])

    def raw(window: np.ndarray, feature: int) -> np.ndarray:
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < width:
            raise ValueError(f"feature must be a map index in 0..{width - 1} of block {layer}; received {feature!r}")
        return raw_runner(waveform=window.reshape(1, -1), feature=np.array([feature], np.int32))["reconstruction"][0]

    def peaks(window: np.ndarray) -> np.ndarray:
        return peak_runner(waveform=window.reshape(1, -1))["activations"][0]

    return length, raw, peaks
