"""Whole-clip sonification of clips of any length in exact overlapping windows, with bounded memory.

A 10-minute clip through the full-width CNN12 at block 11 in one pass peaks at ~5 GB (every block's
activations and switches of the whole clip are alive at once). Here the clip runs as windows of
``window_seconds`` (default :data:`AUTO`: clips over :data:`ONE_PASS_SECONDS` in windows of
:data:`DEFAULT_WINDOW_SECONDS`) planned by :mod:`tfsonify.engine.windows` with
exactly the whole-clip semantics:

- the clip is divided once by its own peak ``max|x|`` (windows are not re-normalised);
- windows start at multiples of the layer's total stride ``S`` (switches coincide with the whole pass),
  keep only their exact span (margins of ``R - S`` dropped, ``R`` the receptive field);
- raw reconstructions are stitched, then each map is scaled once to unit peak times ``max|x|``;
- the most active maps come from the maximum over windows of the per-window maxima (exact), then are
  sonified in a second pass over the windows.

Fixed-frame models (a fixed input length ``L``, CREPE) take the third path: frames as the model's tracker cuts
them, overlap-added (:mod:`tfsonify.engine.frames`). :func:`choose` is the one window policy: which of one pass,
exact windows or frames a request runs, decided from the model and the clip before any work starts. All three
share :mod:`tfsonify.engine.stitch` (sources, sinks, the one rescale).

The functions use only four hooks of the sonifier, so they work for any model the sonifier supports:
``sonifier.raw_reconstruction(normalised [T], layer, features) -> [F, T]``,
``sonifier.peak_activations(normalised [T], layer) -> [C]``, ``sonifier.geometry(layer) -> (R, S)`` and
``sonifier.sample_rate`` (and ``sonifier.input_scaling`` when present: windows are divided by the clip's peak
only when the model peak-normalises its input, see :func:`input_divisor`); :func:`activations` also calls ``sonifier.activations(..., window_seconds=None)``
on single windows. :class:`tfsonify.Sonifier`'s ``sonify``, ``sonify_top``, ``top_features`` and
``activations`` delegate here for clips longer than the window; a clip that fits takes the one-pass path.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from tfsonify.engine import frames as framing
from tfsonify.engine import stitch, windows

__all__ = ["AUTO", "DEFAULT_WINDOW_SECONDS", "ONE_PASS_SECONDS", "ONE_PASS", "WINDOWS", "FRAMES", "window_samples",
           "needs_windows", "choose", "fixed_length", "frame_plan", "layout", "runners", "plan", "sonify", "sonify_top",
           "top_features", "activations", "activation_windows", "pooled_activations", "calibrate", "stream",
           "normalised_reader", "input_divisor"]

#: The three ways a request runs (:func:`choose`).
ONE_PASS, WINDOWS, FRAMES = "one pass", "windows", "frames"

#: Default window: 5 s at the model's rate. Measured on full-width CNN12, block 11, top 3 maps, a 2-minute clip
#: (peak RSS of the process, TensorFlow's own ~0.78 GB included): 30 s windows 1.54 GB, 10 s 1.24 GB, 5 s 1.08 GB,
#: and 5 s was also the fastest of the three (smaller working sets stay in cache), although margins cost
#: 2(R - S) / 5 s = 11 % extra work at block 11.
DEFAULT_WINDOW_SECONDS = 5.0


#: The default of every ``window_seconds`` argument: clips up to :data:`ONE_PASS_SECONDS` run in one pass, longer
#: ones in windows of :data:`DEFAULT_WINDOW_SECONDS`.
AUTO = "auto"

#: Longest clip the default (:data:`AUTO`) runs in one pass. Measured on 2 idle cores, full-width CNN12, one map
#: (2026-12-02): one pass vs 5 s windows 211 vs 263 ms (10 s clip, block 11), 612 vs 745 ms (30 s, block 11),
#: 97 vs 104 ms (10 s, block 5), with peak RSS 1.06 GB for the 30 s one pass against 0.91 GB windowed: below
#: 30 s the margins and per-window calls cost more than the memory saved is worth. A 2-minute clip in one pass
#: peaks at 1.79 GB (windowed 0.91 GB).
ONE_PASS_SECONDS = 30.0


def _check_seconds(window_seconds) -> None:
    if window_seconds is None or (isinstance(window_seconds, str) and window_seconds == AUTO):
        return
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float, np.integer, np.floating)) \
            or not math.isfinite(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number of seconds, None (one pass) or 'auto'; received "
                         f"{window_seconds!r}")


def window_samples(sonifier, layer: int, window_seconds: float | str | None) -> int | None:
    """The window length in samples for ``window_seconds`` (None: no windows; :data:`AUTO`: the default window).

    Raises:
        ValueError: ``window_seconds`` is not a positive number, or gives a window shorter than block ``layer``
            needs for exact windows (its receptive field plus margins).
    """
    _check_seconds(window_seconds)
    if window_seconds is None:
        return None
    if isinstance(window_seconds, str):
        window_seconds = DEFAULT_WINDOW_SECONDS
    samples = int(round(float(window_seconds) * sonifier.sample_rate))
    field, stride = sonifier.geometry(layer)
    shortest = windows.min_window_length(field, stride)
    if samples < shortest:
        raise ValueError(f"window_seconds={window_seconds} ({samples} samples) is too short for layer {layer}: its "
                         f"receptive field is {field} samples (stride {stride}) and exact windows drop {field - stride} "
                         f"samples of margin on each side, so windows need at least {shortest} samples "
                         f"({shortest / sonifier.sample_rate:.3f} s)")
    return samples


def needs_windows(sonifier, num_samples: int, layer: int, window_seconds: float | str | None) -> bool:
    """True when a ``num_samples`` clip is longer than the window (validates ``window_seconds`` either way).

    With :data:`AUTO`, when it is longer than :data:`ONE_PASS_SECONDS` (then in :data:`DEFAULT_WINDOW_SECONDS`
    windows).
    """
    samples = window_samples(sonifier, layer, window_seconds)
    if isinstance(window_seconds, str):
        return num_samples > max(samples, int(round(ONE_PASS_SECONDS * sonifier.sample_rate)))
    return samples is not None and num_samples > samples


def fixed_length(sonifier) -> int | None:
    """The model's fixed input length ``L`` in samples (CREPE: 1024), or None for a model of any input length."""
    model = getattr(sonifier, "model", None)
    try:
        length = model.inputs[0].shape[1]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return int(length) if length is not None else None


def choose(sonifier, num_samples: int, layer, window_seconds: float | str | None) -> str:
    """The one window policy: :data:`ONE_PASS`, :data:`WINDOWS` or :data:`FRAMES` for a ``num_samples`` clip.

    - ``window_seconds=None``: one pass over the whole clip, whatever the model;
    - a fixed-frame model (:func:`fixed_length` ``L``): frames as its tracker cuts them (:func:`frame_plan`),
      except a clip of exactly ``L`` samples, which *is* one model input (one pass); ``window_seconds`` (a number or
      :data:`AUTO`) only has to be valid, frames need no window;
    - a model windows cannot reproduce exactly at ``layer`` (``sonifier.window_obstacle(layer)``: a custom input
      scaling, e.g. per-clip standardisation, or a layer that pads or crops, e.g. ``'same'`` padding): one pass,
      whatever ``window_seconds`` says (memory then grows with the clip);
    - otherwise exact windows when the clip is longer than the window (:func:`needs_windows`), else one pass.

    Raises:
        ValueError: an invalid ``window_seconds``, or (windows) one too short for ``layer``.
    """
    _check_seconds(window_seconds)
    if window_seconds is None:
        return ONE_PASS
    length = fixed_length(sonifier)
    if length is not None:
        return ONE_PASS if num_samples == length else FRAMES
    if window_obstacle(sonifier, layer) is not None:
        return ONE_PASS
    return WINDOWS if needs_windows(sonifier, num_samples, layer, window_seconds) else ONE_PASS


def window_obstacle(sonifier, layer) -> str | None:
    """``sonifier.window_obstacle(layer)`` (why windows cannot be exact there, or None); for a sonifier without the
    method, its custom input scaling if any."""
    method = getattr(sonifier, "window_obstacle", None)
    if method is not None:
        return method(layer)
    if getattr(sonifier, "input_scaling", "peak") not in ("peak", None):
        return "the model scales its input with a custom layer"
    return None


def frame_plan(sonifier, num_samples: int) -> framing.FramePlan:
    """The :class:`tfsonify.engine.frames.FramePlan` of a fixed-frame model: its own ``frame_hop`` (samples) and
    ``frame_center`` attributes when it has them, else 10 ms (:data:`tfsonify.engine.frames.DEFAULT_HOP_SECONDS`)
    centred, CREPE's tracker (:func:`tfsonify.models.crepe.crepe_pitch`: hop 160 at 16 kHz, ``center=True``)."""
    model = getattr(sonifier, "model", None)
    hop = getattr(model, "frame_hop", None) or int(round(framing.DEFAULT_HOP_SECONDS * sonifier.sample_rate))
    return framing.plan_frames(int(num_samples), fixed_length(sonifier), int(hop), bool(getattr(model, "frame_center", True)))


def plan(sonifier, num_samples: int, layer: int, window_seconds: float | str) -> windows.WindowPlan:
    """The :class:`tfsonify.engine.windows.WindowPlan` of a ``num_samples`` clip at block ``layer``."""
    field, stride = sonifier.geometry(layer)
    return windows.plan_windows(num_samples, window_samples(sonifier, layer, window_seconds), field, stride, balanced=True)


def layout(sonifier, num_samples: int, layer, window_seconds: float | str | None):
    """The plan of a ``num_samples`` clip for the path :func:`choose` picks: a :class:`~tfsonify.engine.windows.WindowPlan`
    (one window for one pass) or a :class:`~tfsonify.engine.frames.FramePlan`."""
    path = choose(sonifier, num_samples, layer, window_seconds)
    if path == FRAMES:
        return frame_plan(sonifier, num_samples)
    if path == WINDOWS:
        return plan(sonifier, num_samples, layer, window_seconds)
    field, stride = sonifier.geometry(layer)
    return windows.single_window_plan(num_samples, field, stride)


def input_divisor(sonifier, peak) -> np.float32:
    """What the model's own input scaling divides a clip of peak ``peak`` by: ``peak`` (1 for a silent clip) when
    it peak-normalises (``sonifier.input_scaling == "peak"``, CNN12; also the default for sonifiers without the
    attribute), 1 when it has no input scaling (a generic Keras model sees the samples as given).

    Raises:
        ValueError: a custom input-scaling layer, whose effect on a window is not the effect on the whole clip
            (:func:`choose` never sends such a model to windows).
    """
    scaling = getattr(sonifier, "input_scaling", "peak")
    if scaling is None:
        return np.float32(1)
    if scaling != "peak":
        raise ValueError("this model scales its input with a custom layer (not PeakNormalization), so windows cannot "
                         "reproduce the whole-clip input; sonify it in one pass (window_seconds=None)")
    peak = np.float32(peak)
    return peak if peak > 0 else np.float32(1)


def normalised_reader(clip: np.ndarray, divisor=None) -> tuple[Callable[[int, int], np.ndarray], np.float32]:
    """``(read(start, stop) -> clip[start:stop] / divisor, peak)``: windows as the deconvnet sees them, divided on
    the fly (no scaled copy of the clip) with the same float32 division as the one-pass path. ``divisor`` defaults
    to the clip's peak (:func:`input_divisor` gives the model's)."""
    source = stitch.ArraySource(clip)
    scale = np.float32(divisor) if divisor is not None else (source.peak if source.peak > 0 else np.float32(1))
    return stitch.divided(source.read, scale), source.peak


def _frame_gains(frames: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """``g_i = max|x_i| / max|s(x_i)|`` float32 ``[m]`` (0 where either is 0): the scaled frames back to their level."""
    raw_peak = np.abs(frames).max(axis=1)
    scaled_peak = np.abs(scaled).max(axis=1)
    return np.where((raw_peak > 0) & (scaled_peak > 0), raw_peak / np.where(scaled_peak > 0, scaled_peak, 1),
                    0).astype(np.float32)


def runners(sonifier, plan_, layer, source) -> tuple[Callable, Callable, Callable[[Sequence[int]], Callable]]:
    """``(read, peaks, raw_of)`` for ``plan_`` over ``source`` (a :mod:`tfsonify.engine.stitch` source).

    Windows: ``read`` divides by the model's input divisor (:func:`input_divisor`), ``peaks(window [n]) -> [C]``,
    ``raw_of(features)(window [n]) -> [F, n]``. Frames: ``read`` is the raw source, ``peaks(frames [m, L]) -> [m, C]``
    and ``raw_of(features)(frames) -> [m, F, L]``, each frame through the model's own input scaling
    (``sonifier.scaled_input``) and its reconstruction times the frame's gain (:mod:`tfsonify.engine.frames`).
    """
    if isinstance(plan_, framing.FramePlan):
        def peaks(frames):
            return sonifier.peak_activations(sonifier.scaled_input(frames), layer)

        def raw_of(features):
            chosen = np.asarray(features, np.int32)

            def raw(frames):
                scaled = sonifier.scaled_input(frames)
                out = sonifier.raw_reconstruction(scaled, layer, chosen)
                return out * _frame_gains(frames, scaled)[:, None, None]
            return raw
        return source.read, peaks, raw_of
    read = stitch.divided(source.read, input_divisor(sonifier, source.peak))

    def raw_of(features):
        chosen = np.asarray(features, np.int32)
        return lambda window: sonifier.raw_reconstruction(window, layer, chosen)
    return read, (lambda window: sonifier.peak_activations(window, layer)), raw_of


def _check_clips(batch) -> np.ndarray:
    batch = np.asarray(batch, np.float32)
    if batch.ndim != 2:
        raise ValueError(f"expected a validated float32 batch [batch, time]; received shape {batch.shape}")
    return batch


def _reconstruct(sonifier, clip: np.ndarray, layer: int, features: np.ndarray, window_seconds: float,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Stitched (or overlap-added), scaled sonifications ``[F, T]`` of one clip, written into ``out`` (float32
    ``[F, T]``, e.g. a row of the caller's preallocated batch or a memmap) when given: the only full-length buffer
    is the result."""
    source = stitch.ArraySource(clip)
    plan_ = layout(sonifier, source.length, layer, window_seconds)
    read, _, raw_of = runners(sonifier, plan_, layer, source)
    sink = stitch.ArraySink(len(features), source.length, out=out)
    stitch.reconstruct(plan_, read, raw_of(features), sink)
    return sink.finish(source.peak)


def _peaks(sonifier, clip: np.ndarray, layer: int, window_seconds: float) -> np.ndarray:
    source = stitch.ArraySource(clip)
    plan_ = layout(sonifier, source.length, layer, window_seconds)
    read, peaks, _ = runners(sonifier, plan_, layer, source)
    return stitch.maxima(plan_, read, peaks)


def sonify(sonifier, batch, layer: int, features: Sequence[int], window_seconds: float) -> np.ndarray:
    """Sonifications ``[batch, F, T]`` of maps ``features`` of each clip of a validated ``[batch, T]`` (windows or
    frames, as :func:`choose` says)."""
    batch = _check_clips(batch)
    chosen = np.asarray(features, np.int32)
    out = np.empty((batch.shape[0], chosen.size, batch.shape[1]), np.float32)  # the result, filled in place
    for clip, rows in zip(batch, out):
        _reconstruct(sonifier, clip, layer, chosen, window_seconds, out=rows)
    return out


def top_features(sonifier, batch, layer: int, k: int, window_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [batch, k] int32, scores [batch, k] float32)``: the most active maps over each whole clip."""
    batch = _check_clips(batch)
    pairs = [stitch.top_k(_peaks(sonifier, clip, layer, window_seconds), k) for clip in batch]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def sonify_top(sonifier, batch, layer: int, k: int, window_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features [batch, k], activations [batch, k], sonifications [batch, k, T])``: two passes over the windows
    or frames (per-window maxima, then the chosen maps' reconstructions)."""
    batch = _check_clips(batch)
    features, scores = top_features(sonifier, batch, layer, k, window_seconds)
    sounds = np.empty((batch.shape[0], features.shape[1], batch.shape[1]), np.float32)  # the result, filled in place
    for clip, row, rows in zip(batch, features, sounds):
        _reconstruct(sonifier, clip, layer, row, window_seconds, out=rows)
    return features, scores, sounds


def activation_windows(sonifier, clip: np.ndarray, layer: int, window_seconds: float):
    """Yield ``(first_step, frames [steps, C_L])``: one validated ``[T]`` clip's exact activation frames of block
    ``layer``, window by window in order, tiling the clip's ``T_L`` steps (for overviews that never hold them all).

    Each window is run through ``sonifier.activations(..., window_seconds=None)`` with one extra sample equal to
    the whole clip's peak appended: the one-pass path then divides the window by exactly the whole clip's peak,
    and the appended sample only feeds steps after the window's own, which are dropped.
    """
    clip = np.asarray(clip, np.float32)
    layout_ = plan(sonifier, clip.size, layer, window_seconds)
    peak = np.float32(np.max(np.abs(clip)))
    for window, (first, stop) in zip(layout_.windows, layout_.step_keep()):
        piece = np.append(clip[window.start:window.stop], peak).astype(np.float32)
        out = sonifier.activations(piece, layer, window_seconds=None)
        offset = window.start // layout_.stride
        yield first, out[first - offset:stop - offset]


def activations(sonifier, batch, layer: int, window_seconds: float) -> np.ndarray:
    """Block ``layer``'s output ``[batch, T_L, C_L]`` stitched from windows' exact activation frames
    (:func:`activation_windows`)."""
    batch = _check_clips(batch)
    results = []
    for clip in batch:
        num_steps = plan(sonifier, clip.size, layer, window_seconds).num_steps
        frames = None
        for first, piece in activation_windows(sonifier, clip, layer, window_seconds):
            if frames is None:
                frames = np.empty((num_steps, piece.shape[1]), np.float32)
            frames[first:first + piece.shape[0]] = piece
        results.append(frames)
    return np.stack(results)


def pooled_activations(sonifier, clip: np.ndarray, layer, columns: int,
                       window_seconds: float | str = AUTO) -> tuple[np.ndarray, int]:
    """``(pooled float32 [rows, C], steps)``: layer ``layer``'s activations of a validated ``[T]`` clip max-pooled over
    time into ``rows = min(steps, columns)`` bins (``ceil(steps / columns)`` steps each), memory bounded by one
    window (:func:`activation_windows`); a clip the policy runs in one pass gives its exact frames (``rows ==
    steps``). The per-map maxima over the whole clip are ``pooled.max(axis=0)``, exact."""
    clip = np.asarray(clip, np.float32)
    if choose(sonifier, clip.size, layer, window_seconds) != WINDOWS:
        acts = np.asarray(sonifier.activations(clip, layer, window_seconds=None), np.float32)
        return acts, int(acts.shape[0])
    field, stride = sonifier.geometry(layer)
    steps = windows.output_length(clip.size, field, stride)
    rows = min(steps, int(columns))
    pooled = None
    for first, frames in activation_windows(sonifier, clip, layer, window_seconds):
        if pooled is None:
            pooled = np.full((rows, frames.shape[1]), -np.inf, np.float32)
        bins = np.arange(first, first + frames.shape[0], dtype=np.int64) * rows // steps
        starts = np.flatnonzero(np.r_[True, np.diff(bins) > 0])
        pooled[bins[starts]] = np.maximum(pooled[bins[starts]], np.maximum.reduceat(frames, starts, axis=0))
    return pooled, int(steps)


def calibrate(sonifier, clip, layer: int, features: Sequence[int],
              window_seconds: float | str | None = AUTO) -> tuple[float, np.ndarray]:
    """``(reference_peak, reconstruction_peak [F])`` of a recording, for :meth:`Sonifier.stream`.

    A stream built with these reproduces ``sonifier.sonify(clip, layer, features=features)`` (delayed by its
    latency): ``reference_peak = max|clip|``, and ``reconstruction_peak[f]`` is the peak of map ``f``'s raw
    reconstruction of ``clip / max|clip|``.
    """
    clip = sonifier.validate(clip, layer)[0]
    _check_streamable(sonifier, layer)
    chosen = np.asarray(features, np.int32)
    source = stitch.ArraySource(clip)
    if source.peak == 0:
        raise ValueError("the calibration recording is silent (all zeros); use a recording of the expected level")
    plan_ = layout(sonifier, source.length, layer, window_seconds)
    read, _, raw_of = runners(sonifier, plan_, layer, source)
    sink = stitch.ArraySink(len(chosen), source.length)
    stitch.reconstruct(plan_, read, raw_of(chosen), sink)
    return float(source.peak), sink.tops  # 0: the map is silent there (zeros, as offline)


def _check_streamable(sonifier, layer) -> None:
    """``ValueError`` (one line, before any work) for a model a live stream cannot reproduce offline."""
    length = fixed_length(sonifier)
    if length is not None:
        raise ValueError(f"live streams need a model of any input length; this one takes fixed {length}-sample frames "
                         f"(sonify recordings with Sonifier.sonify, which frames them as the model's tracker does)")
    if getattr(sonifier, "input_scaling", "peak") not in ("peak", None):
        raise ValueError("live streams divide the input by a reference peak; this model scales its input with a custom "
                         "layer, which a stream cannot reproduce (sonify recordings with Sonifier.sonify, one pass)")
    obstacle = window_obstacle(sonifier, layer)
    if obstacle is not None:
        raise ValueError(f"live streams run exact windows, which {obstacle} prevents (it changes the samples at a "
                         f"window's edges); sonify recordings with Sonifier.sonify, which runs this model in one pass")


def stream(sonifier, layer: int, features: Sequence[int], reference_peak: float, reconstruction_peak=None,
           hop: int | None = None) -> windows.WindowedStream:
    """A :class:`tfsonify.engine.windows.WindowedStream` of maps ``features`` of block ``layer`` on ``sonifier``.

    Args:
        features: map indices of block ``layer`` (validated by the caller).
        reference_peak: input level divided out (e.g. 1.0 for full-scale audio; ``calibrate(...)[0]``).
        reconstruction_peak: None (running peak), or per-map raw peaks (``calibrate(...)[1]``).
        hop: samples computed per step (default: the margin, at least 512); latency = margin + hop - 1.
    """
    _check_streamable(sonifier, layer)
    chosen = np.asarray(features, np.int32).reshape(-1)
    field, stride = sonifier.geometry(layer)
    if getattr(sonifier, "input_scaling", "peak") is None:
        # no input scaling in the model: it sees the samples as given, so undo the stream's division
        def raw(window):
            return sonifier.raw_reconstruction(window * live.reference_peak, layer, chosen)
    else:
        def raw(window):
            return sonifier.raw_reconstruction(window, layer, chosen)
    live = windows.WindowedStream(raw, field, stride, len(chosen), reference_peak, reconstruction_peak, hop=hop)
    return live
