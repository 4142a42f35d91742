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

The window arithmetic, stitching, top-k and the rescale are the library's one long-clip engine
(:mod:`tfsonify.engine.windows` plans, :mod:`tfsonify.engine.stitch` runs them with an array source and sink; both
numpy only, so no TensorFlow is imported). This file is the LiteRT adapter: CNN12's geometry (``R``, ``S`` per
block, a test keeps it equal to ``tfsonify.models.cnn12``) and the window runners of an interpreter, including a
live stream (:func:`litert_stream`).

For ``W = 8000``: block 11 (``S = 256``, ``R = 2370``) ``M = 2114``, ``E = 7746``, a hop of
3328 samples; block 5 (``S = 32``, ``R = 162``) ``M = 130``, ``E = 7970``, a hop of 7680.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tfsonify.engine import stitch, windows  # the one planner and stitcher (numpy only; no TensorFlow)

WindowPlan = windows.WindowPlan
WindowedStream = windows.WindowedStream
windowed_reconstruction = windows.windowed_reconstruction

__all__ = ["BLOCK_GEOMETRY", "WindowPlan", "WindowedStream", "stride", "receptive_field", "output_length",
           "min_window_length", "plan_windows", "windowed_reconstruction", "sonify_windowed", "top_features_windowed",
           "litert_functions", "litert_stream"]

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
    return windows.output_length(num_samples, receptive_field(layer), stride(layer))


def min_window_length(layer: int) -> int:
    """Shortest fixed window for which block ``layer``'s exact spans still overlap (``E - 2M >= S``)."""
    return windows.min_window_length(receptive_field(layer), stride(layer))


def plan_windows(clip_length: int, window_length: int, layer: int) -> WindowPlan:
    """:func:`windows.plan_windows` for block ``layer`` of CNN12 (``ValueError`` as there, naming the block)."""
    layer = _check_layer(layer)
    for name, value in (("clip_length", clip_length), ("window_length", window_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer number of samples; received {value!r}")
    field, size = receptive_field(layer), stride(layer)
    if window_length < min_window_length(layer):
        raise ValueError(f"a {window_length}-sample window is too short for exact windows at block {layer}: its margins "
                         f"({field - size} samples each side) need windows of at least {min_window_length(layer)} samples")
    return windows.plan_windows(clip_length, window_length, field, size)


def _source(clip: np.ndarray) -> stitch.ArraySource:
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"clip must be a non-empty mono float32 array [time]; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"clip contains {int(array.size - np.count_nonzero(np.isfinite(array)))} NaN or Inf samples")
    return stitch.ArraySource(array)


def sonify_windowed(clip: np.ndarray, layer: int, window_length: int,
                    raw: Callable[[np.ndarray, int], np.ndarray], features) -> np.ndarray:
    """Sonify maps of block ``layer`` over a long clip with a fixed-length model, exactly.

    Args:
        clip: float32 ``[T]`` at 8 kHz, raw amplitude, ``T >=`` the window's effective length.
        layer: block 1..11.
        window_length: ``W``, the model's fixed length.
        raw: ``(window [n <= W] float32, feature int) -> raw reconstruction [n]`` (``sonify_raw_l{L}``).
        features: map indices (ints) of block ``layer``.

    Returns:
        float32 ``[len(features), T]``, each scaled to unit peak times ``max|x|`` (the
        ``sonify_l{L}`` / ``Sonifier.sonify`` convention, :func:`tfsonify.engine.stitch.scale_rows`); a silent clip
        gives zeros.
    """
    source = _source(clip)
    plan = plan_windows(source.length, window_length, layer)
    chosen = [int(feature) for feature in np.atleast_1d(features)]
    sink = stitch.ArraySink(len(chosen), source.length)
    read = stitch.divided(source.read, source.peak if source.peak > 0 else 1)
    stitch.reconstruct(plan, read, lambda window: np.stack([raw(window, feature) for feature in chosen]), sink)
    return sink.finish(source.peak)


def top_features_windowed(clip: np.ndarray, layer: int, window_length: int,
                          activations: Callable[[np.ndarray], np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most active maps of block ``layer`` over a long clip, from per-window maxima.

    Args:
        clip: float32 ``[T]`` at 8 kHz, raw amplitude.
        layer: block 1..11.
        window_length: ``W``.
        activations: one window ``[n <= W]`` -> ``[C_L]`` per-map maxima (``peak_activations_l{L}``).
        k: number of maps, ``1 <= k <= C_L``.

    Returns:
        ``(features [k] int32, activations [k] float32)`` by decreasing activation (ties: lower index first,
        as ``tf.math.top_k``).
    """
    source = _source(clip)
    plan = plan_windows(source.length, window_length, layer)
    best = stitch.maxima(plan, stitch.divided(source.read, source.peak if source.peak > 0 else 1), activations)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= best.size:
        raise ValueError(f"k must be an integer in 1..{best.size} (block {layer}'s maps); received {k!r}")
    return stitch.top_k(best, k)


def litert_functions(interpreter, layer: int) -> tuple[int, Callable, Callable]:
    """Window runners for block ``layer`` of a fixed-length tfsonify ``.tflite`` (LiteRT ``Interpreter``).

    Windows shorter than the model's ``W`` are zero-padded at the end and the output cut back: padding adds
    only steps after the window's own, whose reconstruction lands after the window's exact span.

    Returns:
        ``(window_length, raw(window, feature) -> [n], activations(window) -> [C_L])``.

    Raises:
        ValueError: (``raw``) for a feature outside ``0..C_L-1`` or a window longer than ``W``; if the model lacks
            ``sonify_raw_l{L}`` / ``peak_activations_l{L}`` or is dynamic-length.
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

    def padded(window: np.ndarray) -> np.ndarray:
        window = np.asarray(window, np.float32).reshape(-1)
        if window.size > length:
            raise ValueError(f"a {window.size}-sample window is longer than this model's fixed {length} samples")
        return np.pad(window, (0, length - window.size)).reshape(1, -1)

    def raw(window: np.ndarray, feature: int) -> np.ndarray:
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < width:
            raise ValueError(f"feature must be a map index in 0..{width - 1} of block {layer}; received {feature!r}")
        out = raw_runner(waveform=padded(window), feature=np.array([feature], np.int32))["reconstruction"][0]
        return out[:np.size(window)]

    def peaks(window: np.ndarray) -> np.ndarray:
        # zero padding must add no step (its maxima are not the clip's): at least the W-window's effective length
        if output_length(np.size(window), layer) != output_length(length, layer):
            raise ValueError(f"peak_activations_l{layer} needs a window of {length - (length - receptive_field(layer)) % stride(layer)}"
                             f"..{length} samples; received {np.size(window)}")
        return peak_runner(waveform=padded(window))["activations"][0]

    return length, raw, peaks


def litert_stream(interpreter, layer: int, features, reference_peak: float, reconstruction_peak=None,
                  hop: int | None = None) -> WindowedStream:
    """A live :class:`WindowedStream` of block ``layer``'s ``features`` on a fixed-length LiteRT model.

    Every call runs one whole ``W``-sample window whatever its content, so the default hop is the largest whose
    windows fit ``W`` (``windows.max_stream_hop``: 3328 samples at block 11, W = 8000), a given one is capped to
    it; the latency is ``stream.latency`` samples (margin + hop - 1). See :class:`WindowedStream` for the
    normalisation.
    """
    length, raw, _ = litert_functions(interpreter, layer)
    hop = windows.max_stream_hop(length, receptive_field(layer), stride(layer)) if hop is None else hop
    chosen = [int(feature) for feature in np.atleast_1d(features)]
    for feature in chosen:  # validate now, not on the first full span
        raw(np.zeros(receptive_field(layer), np.float32), feature)

    def rows(window: np.ndarray) -> np.ndarray:
        return np.stack([raw(window, feature) for feature in chosen])

    return WindowedStream(rows, receptive_field(layer), stride(layer), len(chosen), reference_peak,
                          reconstruction_peak, hop=hop, max_window=length)
