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
numpy only, so no TensorFlow is imported). This file is the LiteRT adapter: a layer's ``R`` and ``S`` come from the
model's own record (:class:`Geometry`, read from the ``.tflite`` by :mod:`tfsonify.edge.metadata`; no table of one
model's blocks), and :class:`tfsonify.edge.model.EdgeModel` gives the window runners of an interpreter.

For CNN12 and ``W = 8000``: block 11 (``S = 256``, ``R = 2370``) ``M = 2114``, ``E = 7746``, a hop of
3328 samples; block 5 (``S = 32``, ``R = 162``) ``M = 130``, ``E = 7970``, a hop of 7680.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from tfsonify.edge.metadata import layer_geometry
from tfsonify.engine import stitch, windows  # the one planner and stitcher (numpy only; no TensorFlow)

WindowPlan = windows.WindowPlan
WindowedStream = windows.WindowedStream
windowed_reconstruction = windows.windowed_reconstruction

__all__ = ["Geometry", "check_windows", "WindowPlan", "WindowedStream", "output_length", "min_window_length", "plan_windows",
           "windowed_reconstruction", "sonify_windowed", "top_features_windowed", "stream"]


class Geometry(NamedTuple):
    """One layer's window geometry, in input samples: ``receptive_field`` ``R`` (what one time step sees), ``stride``
    ``S`` (between consecutive steps), ``name`` (how messages call it: "block 11", "layer 'conv4'") and
    ``obstacle`` (why exact windows cannot reproduce the whole clip there, e.g. "layer 'c1' ('same' padding)", or
    None; :func:`check_windows` refuses such a layer) and ``min_length`` (fewest input samples giving one step: ``R``
    without padding, fewer with it)."""

    receptive_field: int
    stride: int
    name: str
    obstacle: str | None = None
    min_length: int | None = None

    @classmethod
    def of(cls, record: dict, layer: int | str) -> "Geometry":
        """The geometry of ``layer`` (block index or layer name) in a model record
        (:func:`tfsonify.edge.metadata.read_metadata`); ``ValueError`` naming the model's layers otherwise."""
        entry = layer_geometry(record, layer)
        name = f"block {entry['block']}" if not isinstance(layer, str) and entry.get("block") else f"layer {entry['name']!r}"
        return cls(int(entry["receptive_field"]), int(entry["stride"]), name, entry.get("window_obstacle"),
                   int(entry.get("min_length") or entry["receptive_field"]))


def check_windows(geometry: Geometry, why: str = "") -> None:
    """``ValueError`` (one line, prefixed by ``why``) when ``geometry``'s layer cannot be run as exact windows
    (:attr:`Geometry.obstacle`)."""
    if geometry.obstacle:
        raise ValueError(f"{why}exact windows cannot reproduce {geometry.name} of this model ({geometry.obstacle} "
                         f"changes the samples at a window's edges); export it with --length 0 (dynamic length) to "
                         f"sonify a whole clip in one call")


def output_length(num_samples: int, geometry: Geometry) -> int:
    """Number of the layer's time steps for ``num_samples`` input samples (0 if too short)."""
    return windows.output_length(num_samples, geometry.receptive_field, geometry.stride)


def min_window_length(geometry: Geometry) -> int:
    """Shortest fixed window for which the layer's exact spans still overlap (``E - 2M >= S``)."""
    return windows.min_window_length(geometry.receptive_field, geometry.stride)


def plan_windows(clip_length: int, window_length: int, geometry: Geometry) -> WindowPlan:
    """:func:`tfsonify.engine.windows.plan_windows` for one layer (``ValueError`` as there, naming the layer)."""
    for name, value in (("clip_length", clip_length), ("window_length", window_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer number of samples; received {value!r}")
    check_windows(geometry)
    field, size = geometry.receptive_field, geometry.stride
    if window_length < min_window_length(geometry):
        raise ValueError(f"a {window_length}-sample window is too short for exact windows at {geometry.name}: its "
                         f"margins ({field - size} samples each side) need windows of at least "
                         f"{min_window_length(geometry)} samples")
    return windows.plan_windows(clip_length, window_length, field, size)


def _source(clip: np.ndarray) -> stitch.ArraySource:
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"clip must be a non-empty mono float32 array [time]; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"clip contains {int(array.size - np.count_nonzero(np.isfinite(array)))} NaN or Inf samples")
    return stitch.ArraySource(array)


def sonify_windowed(clip: np.ndarray, geometry: Geometry, window_length: int,
                    raw: Callable[[np.ndarray, int], np.ndarray], features) -> np.ndarray:
    """Sonify maps of block ``layer`` over a long clip with a fixed-length model, exactly.

    Args:
        clip: float32 ``[T]`` at the model's rate, raw amplitude, ``T >=`` the window's effective length.
        geometry: the layer's :class:`Geometry`.
        window_length: ``W``, the model's fixed length.
        raw: ``(window [n <= W] float32, feature int) -> raw reconstruction [n]`` (``sonify_raw_{layer}``).
        features: map indices (ints) of the layer.

    Returns:
        float32 ``[len(features), T]``, each scaled to unit peak times ``max|x|`` (the
        ``sonify_l{L}`` / ``Sonifier.sonify`` convention, :func:`tfsonify.engine.stitch.scale_rows`); a silent clip
        gives zeros.
    """
    source = _source(clip)
    plan = plan_windows(source.length, window_length, geometry)
    chosen = [int(feature) for feature in np.atleast_1d(features)]
    sink = stitch.ArraySink(len(chosen), source.length)
    read = stitch.divided(source.read, source.peak if source.peak > 0 else 1)
    stitch.reconstruct(plan, read, lambda window: np.stack([raw(window, feature) for feature in chosen]), sink)
    return sink.finish(source.peak)


def top_features_windowed(clip: np.ndarray, geometry: Geometry, window_length: int,
                          activations: Callable[[np.ndarray], np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most active maps of one layer over a long clip, from per-window maxima.

    Args:
        clip: float32 ``[T]`` at the model's rate, raw amplitude.
        geometry: the layer's :class:`Geometry`.
        window_length: ``W``.
        activations: one window ``[n <= W]`` -> ``[C_L]`` per-map maxima (``peak_activations_{layer}``).
        k: number of maps, ``1 <= k <= C_L``.

    Returns:
        ``(features [k] int32, activations [k] float32)`` by decreasing activation (ties: lower index first,
        as ``tf.math.top_k``).
    """
    source = _source(clip)
    plan = plan_windows(source.length, window_length, geometry)
    best = stitch.maxima(plan, stitch.divided(source.read, source.peak if source.peak > 0 else 1), activations)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= best.size:
        raise ValueError(f"k must be an integer in 1..{best.size} ({geometry.name}'s maps); received {k!r}")
    return stitch.top_k(best, k)


def stream(raw: Callable[[np.ndarray, int], np.ndarray], geometry: Geometry, window_length: int, features,
           reference_peak: float, reconstruction_peak=None, hop: int | None = None) -> WindowedStream:
    """A live :class:`WindowedStream` of ``features`` of one layer on a fixed-length model's ``raw`` runner.

    Every call runs one whole ``W``-sample window whatever its content, so the default hop is the largest whose
    windows fit ``W`` (``windows.max_stream_hop``: 3328 samples at CNN12's block 11, W = 8000), a given one is capped
    to it; the latency is ``stream.latency`` samples (margin + hop - 1). See :class:`WindowedStream` for the
    normalisation.
    """
    check_windows(geometry, "live streams run exact windows, but ")
    field, size = geometry.receptive_field, geometry.stride
    hop = windows.max_stream_hop(window_length, field, size) if hop is None else hop
    chosen = [int(feature) for feature in np.atleast_1d(features)]
    for feature in chosen:  # validate now, not on the first full span
        raw(np.zeros(field, np.float32), feature)

    def rows(window: np.ndarray) -> np.ndarray:
        return np.stack([raw(window, feature) for feature in chosen])

    return WindowedStream(rows, field, size, len(chosen), reference_peak, reconstruction_peak, hop=hop,
                          max_window=window_length)
