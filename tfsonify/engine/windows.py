"""Exact windows over long clips and live streams: the one window planner (numpy only, no TensorFlow).

A layer of a valid-padded conv/pool network is described by two numbers in input samples:
``R``, its receptive field (samples one time step sees), and ``S``, its total stride (samples between
consecutive time steps; the product of every conv and pool stride up to the layer). Time step ``i``
sees exactly the samples ``[S*i, S*i + R)``. The deconvnet maps step ``i`` back only onto those samples
(transposed convolutions and unpooling spread a value over exactly the receptive field; whatever passes an
intermediate ReLU at a position sums contributions of the steps whose receptive field contains that
position's), so **output sample ``t`` depends only on the steps whose receptive field contains ``t``**:
steps ``ceil((t - R + 1) / S)`` ... ``floor(t / S)``.

Hence a window of the clip gives the whole clip's result exactly on a span when

1. the clip is divided once by one peak (the whole clip's, or a reference for a stream) and windows are
   not re-normalised; the stitched raw reconstruction is scaled once at the end;
2. the window starts at a multiple of ``S``, so every layer's conv outputs and pool windows (hence
   max-pool switches) coincide with the whole clip's (valid convolutions, no padding);
3. it holds every step containing the span: a window of effective length ``E`` (``n`` steps,
   ``E = R + (n - 1) * S``) starting at ``s`` is exact on ``[s + M, s + E - M)`` with the margin
   ``M = R - S`` (from sample 0 for the first window, up to the clip's end for the last). ``M`` is tight.
4. Per-map maxima over time are exact from windows that together hold every step: the whole clip's
   top maps are the top of the maximum over windows of the per-window maxima.

This module only does the arithmetic and the stitching; the network runs behind callables
(``raw(window) -> [F, n]``), so the same code serves the TensorFlow :class:`tfsonify.Sonifier`
(:mod:`tfsonify.engine.long_clips`) and a LiteRT model with no TensorFlow installed (``tfsonify/edge/windows.py``
loads this file by path). Nothing here depends on a particular model: ``R`` and ``S`` are arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tfsonify.validation import integer_pcm_hint

__all__ = ["WindowPlan", "Window", "output_length", "min_window_length", "plan_windows", "single_window_plan", "span_input",
           "max_stream_hop", "windowed_reconstruction", "stitch_reconstruction", "max_over_windows",
           "WindowedStream", "check_block"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer number of samples; received {value!r}")
    return int(value)


def _geometry(receptive_field, stride) -> tuple[int, int]:
    field, step = _positive_int("receptive_field", receptive_field), _positive_int("stride", stride)
    if step > field:
        raise ValueError(f"stride ({step}) larger than the receptive field ({field}) leaves input samples unseen; "
                         f"exact windows need stride <= receptive field")
    return field, step


def output_length(num_samples: int, receptive_field: int, stride: int) -> int:
    """Time steps of a layer with receptive field ``R`` and stride ``S`` over ``num_samples`` (0 if too short)."""
    field, step = _geometry(receptive_field, stride)
    return 0 if num_samples < field else (int(num_samples) - field) // step + 1


def min_window_length(receptive_field: int, stride: int) -> int:
    """Shortest window whose exact spans still overlap (``E - 2M >= S``) for ``R`` and ``S``."""
    field, step = _geometry(receptive_field, stride)
    return field + (-(-field // step) - 1) * step


@dataclass(frozen=True)
class Window:
    """One planned window: input samples ``[start, stop)`` (all the window's steps), output ``[begin, end)`` kept.

    ``end`` may exceed ``stop`` only for the last window: those samples lie past every step of the clip, where
    the whole-clip reconstruction is exactly zero.
    """

    start: int
    stop: int
    begin: int
    end: int


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one clip start and which samples each contributes.

    Attributes:
        clip_length: ``T`` samples of the clip.
        window_length: ``W`` samples per window (a fixed-length model's input length, or the memory budget).
        effective_length: ``E <= W`` samples that feed the window's steps (the rest change nothing).
        margin: ``M = R - S`` samples dropped at each inner side of a window.
        starts: window start samples (multiples of ``stride``), increasing.
        keep: ``(begin, end)`` clip samples taken from each window; they tile ``[0, T)``.
        receptive_field: ``R`` input samples.
        stride: ``S`` input samples.
    """

    clip_length: int
    window_length: int
    effective_length: int
    margin: int
    starts: tuple[int, ...]
    keep: tuple[tuple[int, int], ...]
    receptive_field: int
    stride: int

    @property
    def windows(self) -> list[Window]:
        """The windows with their input ranges ``[start, start + E)`` and kept output spans."""
        return [Window(start, start + self.effective_length, begin, end)
                for start, (begin, end) in zip(self.starts, self.keep)]

    @property
    def steps_per_window(self) -> int:
        """Time steps of the layer in one window (``(E - R) / S + 1``)."""
        return (self.effective_length - self.receptive_field) // self.stride + 1

    @property
    def num_steps(self) -> int:
        """Time steps of the layer over the whole clip."""
        return (self.clip_length - self.receptive_field) // self.stride + 1

    def step_keep(self) -> list[tuple[int, int]]:
        """``(first, stop)`` step indices of the clip taken from each window's own steps; they tile all steps.

        Window ``k`` holds the clip's steps ``starts[k] / S ...``; it contributes its steps up to the next
        window's first step, the last window up to the clip's last step.
        """
        firsts = [start // self.stride for start in self.starts]
        return list(zip(firsts, firsts[1:] + [self.num_steps]))


def plan_windows(clip_length: int, window_length: int, receptive_field: int, stride: int,
                 balanced: bool = False) -> WindowPlan:
    """Plan exact overlapping windows of at most ``window_length`` samples over a ``clip_length``-sample clip.

    Args:
        clip_length: ``T`` samples of the clip, at least the window's effective length.
        window_length: ``W`` samples per window.
        receptive_field: ``R`` of the layer, in input samples.
        stride: ``S`` of the layer, in input samples.
        balanced: ``W`` is a budget, not a fixed input length: use the shortest windows that need no more
            windows than ``W`` does (the same count, less overlap). Without it the last window starts at
            ``T - W`` and can repeat almost a whole window: a 10 s clip in 5 s windows ran three full
            windows (1.5x the work); balanced, three windows of about 3.4 s. A fixed-length model
            (``tfsonify/edge/windows.py``) needs ``balanced=False``.

    Returns:
        A :class:`WindowPlan` (one window when ``T`` fits in it).

    Raises:
        ValueError: the window is shorter than the layer needs with its margins (``min_window_length``), or the
            clip is shorter than the window's effective length (run it whole).
    """
    field, step = _geometry(receptive_field, stride)
    clip_length = _positive_int("clip_length", clip_length)
    window_length = _positive_int("window_length", window_length)
    shortest = min_window_length(field, step)
    if window_length < shortest:
        raise ValueError(f"a {window_length}-sample window is too short for exact windows of a layer with a "
                         f"{field}-sample receptive field and stride {step}: its margins ({field - step} samples each "
                         f"side) need windows of at least {shortest} samples")
    margin = field - step
    effective, starts = _starts(clip_length, window_length, field, step)
    if clip_length < effective:
        raise ValueError(f"clip has {clip_length} samples but windows of {window_length} samples need at least "
                         f"{effective} (the window's effective length); run a clip this short in one pass")
    if balanced and len(starts) > 1:
        low, high = shortest, window_length  # the count is non-increasing in the window length
        while high - low > step:
            middle = (low + high) // 2
            if len(_starts(clip_length, middle, field, step)[1]) <= len(starts):
                high = middle
            else:
                low = middle
        candidate = _starts(clip_length, high, field, step)
        if len(candidate[1]) <= len(starts):
            window_length, (effective, starts) = high, candidate
    bounds = [0] + [(previous + current + effective) // 2 for previous, current in zip(starts, starts[1:])] + [clip_length]
    return WindowPlan(clip_length, window_length, effective, margin, tuple(starts),
                      tuple(zip(bounds[:-1], bounds[1:])), field, step)


def _starts(clip_length: int, window_length: int, field: int, step: int) -> tuple[int, list[int]]:
    """``(effective length, window starts)`` of ``window_length``-sample windows over the clip."""
    effective = field + (output_length(window_length, field, step) - 1) * step
    if clip_length < effective:
        return effective, []
    hop = (effective - 2 * (field - step)) // step * step
    last = (clip_length - effective) // step * step
    return effective, list(range(0, last, hop)) + [last]


def single_window_plan(clip_length: int, receptive_field: int, stride: int) -> WindowPlan:
    """The plan of a clip run in one window (a clip that fits): one window over all of its steps."""
    field, step = _geometry(receptive_field, stride)
    clip_length = _positive_int("clip_length", clip_length)
    if clip_length < field:
        raise ValueError(f"clip has {clip_length} samples but the layer's receptive field is {field} samples")
    # the window is the whole clip, not only the samples a valid-padded layer's steps see: with 'same' padding
    # (or a pool that keeps a partial window) the trailing samples feed steps too, as in the one-pass graph
    return WindowPlan(clip_length, clip_length, clip_length, field - step, (0,), ((0, clip_length),), field, step)


def span_input(begin: int, end: int, receptive_field: int, stride: int, available: int) -> tuple[int, int] | None:
    """Input samples ``[start, stop)`` whose raw reconstruction is exact on output ``[begin, end)``.

    ``start`` is a multiple of ``S``; the range holds every step (of a signal of ``available`` samples) whose
    receptive field meets ``[begin, end)``. Returns None when no step does (the reconstruction there is zero).
    """
    field, step = _geometry(receptive_field, stride)
    first = max(0, -(-(begin - field + 1) // step))
    last = min((end - 1) // step, (available - field) // step)
    if available < field or last < first:
        return None
    return first * step, last * step + field


def max_stream_hop(window_length: int, receptive_field: int, stride: int) -> int:
    """Largest stream hop (multiple of ``S``) whose inner windows fit in ``window_length`` samples."""
    field, step = _geometry(receptive_field, stride)
    hop = (int(window_length) - field - step * ((field - 1) // step) + step) // step * step
    if hop < step:
        raise ValueError(f"a {window_length}-sample window cannot stream a layer with a {field}-sample receptive field "
                         f"and stride {step}; it needs at least {field + step * ((field - 1) // step)} samples")
    return hop


def _as_rows(piece, rows: int | None, length: int) -> np.ndarray:
    array = np.asarray(piece, np.float32)
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != length or (rows is not None and array.shape[0] != rows):
        raise ValueError(f"the raw reconstruction returned shape {np.shape(piece)}; expected "
                         f"({rows if rows is not None else 'F'}, {length})")
    return array


def stitch_reconstruction(plan: WindowPlan, read: Callable[[int, int], np.ndarray],
                          raw: Callable[[np.ndarray], np.ndarray],
                          write: Callable[[int, np.ndarray], None]) -> None:
    """Run the planned windows and hand each kept span to ``write`` in order.

    Args:
        plan: from :func:`plan_windows`.
        read: ``(start, stop) -> float32 [stop - start]``, the clip already divided by its peak.
        raw: one window float32 ``[n]`` -> raw reconstruction ``[F, n]`` (or ``[n]`` for one map).
        write: ``(begin, span [F, end - begin])``, called for consecutive spans tiling ``[0, T)``.
    """
    rows = None
    for window in plan.windows:
        piece = _as_rows(raw(np.asarray(read(window.start, window.stop), np.float32)), rows, window.stop - window.start)
        rows = piece.shape[0]
        span = np.zeros((rows, window.end - window.begin), np.float32)
        stop = min(window.end, window.stop)  # past the window's steps the whole-clip output is exactly 0
        span[:, :stop - window.begin] = piece[:, window.begin - window.start:stop - window.start]
        write(window.begin, span)


def windowed_reconstruction(normalised: np.ndarray, plan: WindowPlan,
                            raw: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Stitched raw reconstruction ``[F, T]`` of an in-memory clip already divided by its peak (``[T]`` if ``raw``
    returns one row per window as ``[n]``)."""
    normalised = np.asarray(normalised, np.float32)
    pieces: list[np.ndarray] = []
    single = []

    def run(window):
        out = raw(window)
        single.append(np.ndim(out) == 1)
        return out

    stitch_reconstruction(plan, lambda start, stop: normalised[start:stop], run, lambda begin, span: pieces.append(span))
    out = np.concatenate(pieces, axis=1)
    return out[0] if single and single[0] else out


def max_over_windows(plan: WindowPlan, read: Callable[[int, int], np.ndarray],
                     peaks: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per-map maximum over the whole clip ``[C]``: the maximum over windows of ``peaks(window) -> [C]``."""
    best = None
    for window in plan.windows:
        scores = np.asarray(peaks(np.asarray(read(window.start, window.stop), np.float32)), np.float32).reshape(-1)
        best = scores if best is None else np.maximum(best, scores)
    return best


def check_block(block) -> np.ndarray:
    """A stream block as float32 ``[n]``; ``ValueError`` naming the problem (dtype, rank, NaN/Inf) otherwise."""
    array = np.asarray(block)
    if not np.issubdtype(array.dtype, np.floating):
        hint = integer_pcm_hint(array.dtype) if np.issubdtype(array.dtype, np.integer) else ""
        raise ValueError(f"stream block must be a floating-point array of samples; received dtype {array.dtype}{hint}")
    if array.ndim != 1:
        raise ValueError(f"stream block must be mono samples of shape [n]; received shape {array.shape} "
                         f"(downmix multi-channel audio first)")
    if not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"stream block contains {bad} NaN or Inf samples; the block was dropped, the stream is "
                         f"unchanged")
    return array.astype(np.float32, copy=False)


class WindowedStream:
    """Live deconvnet sonification: fed blocks of any size, returns sonified blocks of the same size, delayed.

    Output sample ``k`` is the sonification's sample ``k - latency`` (the first ``latency`` samples are
    silence), where ``latency = M + hop - 1`` samples with the margin ``M = R - S``: output is computed in
    spans of ``hop`` samples (a multiple of ``S``), and a span is exact once the input has reached ``M``
    samples past it. :meth:`flush` returns the last ``latency`` samples, after which the whole output is the
    offline result with the same normalisation delayed by ``latency``.

    Normalisation (a stream has no global peak): every input sample is divided by ``reference_peak``
    (the level that counts as full scale for the model, e.g. 1.0 for full-scale audio or the peak of a
    calibration recording). The raw reconstruction of map ``f`` is scaled by
    ``reference_peak / reconstruction_peak[f]``; with ``reconstruction_peak`` and ``reference_peak`` taken
    from a recording (its ``max|x|`` and its raw reconstruction's peaks), the stream reproduces
    ``Sonifier.sonify`` of that recording. With ``reconstruction_peak=None`` each output span is scaled by
    the largest ``|raw|`` seen so far (never louder than ``reference_peak``; equal to the offline scaling
    once the loudest passage has passed).

    Args:
        raw: ``normalised window float32 [n] -> float32 [F, n]`` raw reconstructions (no scaling in or out),
            called with windows starting at multiples of ``stride``.
        receptive_field: ``R`` of the layer in input samples.
        stride: ``S``, the layer's total stride in input samples.
        num_maps: ``F``, the rows ``raw`` returns.
        reference_peak: positive float, the input level divided out.
        reconstruction_peak: None, a float, or ``[F]`` floats ``>= 0`` (0: the map is silent, output zeros).
        hop: samples per computed span, rounded up to a multiple of ``S`` (default: at least the margin and
            1/16 s at 8 kHz, 512 samples; larger hops cost less per sample, add latency).
        max_window: longest window ``raw`` accepts (a fixed-length model that zero-pads shorter windows at the end);
            caps ``hop``, and the last window is then as long as the model's steps allow, so padding adds no step
            the signal lacks. A stream shorter than that window on such a model ends with an inexact tail.

    Blocks are float ``[n]`` (any n >= 0); a bad block (dtype, rank, NaN/Inf) raises ``ValueError`` and leaves
    the stream as it was; a failure inside ``raw`` does too. After :meth:`flush` the stream is closed.
    """

    def __init__(self, raw: Callable[[np.ndarray], np.ndarray], receptive_field: int, stride: int, num_maps: int,
                 reference_peak: float, reconstruction_peak=None, hop: int | None = None,
                 max_window: int | None = None):
        self.receptive_field, self.stride = _geometry(receptive_field, stride)
        self.margin = self.receptive_field - self.stride
        self.num_maps = _positive_int("num_maps", num_maps)
        try:
            peak = float(reference_peak)
        except (TypeError, ValueError):
            raise ValueError(f"reference_peak must be a positive number (the input level of full scale); "
                             f"received {reference_peak!r}") from None
        if not np.isfinite(peak) or peak <= 0:
            raise ValueError(f"reference_peak must be a positive finite number; received {reference_peak!r}")
        self.reference_peak = np.float32(peak)
        if reconstruction_peak is None:
            self.reconstruction_peak = None
        else:
            scales = np.broadcast_to(np.asarray(reconstruction_peak, np.float64), (self.num_maps,)).astype(np.float32)
            if not np.all(np.isfinite(scales)) or np.any(scales < 0):
                raise ValueError(f"reconstruction_peak must be finite numbers >= 0 (one or {self.num_maps}; 0 = a map "
                                 f"silent on the calibration clip, output as zeros like offline); "
                                 f"received {reconstruction_peak!r}")
            self.reconstruction_peak = scales
        if hop is None:
            hop = max(self.margin, 512)
        hop = _positive_int("hop", hop)
        hop = -(-hop // self.stride) * self.stride
        if max_window is not None:
            hop = min(hop, max_stream_hop(max_window, self.receptive_field, self.stride))
        self.hop = hop
        self.max_window = max_window
        self.latency = self.margin + self.hop - 1
        self._raw = raw
        self._received = 0          # input samples so far
        self._buffer = np.zeros(0, np.float32)  # normalised input from _buffer_start
        self._buffer_start = 0
        self._computed = 0          # sonification samples computed (multiple of hop until flush)
        self._ready = np.zeros((self.num_maps, 0), np.float32)  # computed, not yet returned
        self._emitted = 0           # output samples returned (including the silent prelude)
        self._running = np.zeros(self.num_maps, np.float32)
        self.closed = False

    # -------------------------------------------------------------- internals
    def _span(self, buffer, buffer_start, begin, end, available, running, final=False):
        """Exact sonification ``[F, end - begin]`` from the buffered input, and the new running peak."""
        span = np.zeros((self.num_maps, end - begin), np.float32)
        needed = span_input(begin, end, self.receptive_field, self.stride, available)
        if needed is not None:
            start, stop = needed
            if final and self.max_window is not None:
                # A fixed-length model zero-pads short windows; at the signal's end the padding would add steps the
                # signal does not have. The last window instead holds exactly the model's steps, ending with the
                # last real step (earlier real samples, from the buffer, only add real steps).
                longest = self.receptive_field + (output_length(self.max_window, self.receptive_field,
                                                                self.stride) - 1) * self.stride
                start = max(buffer_start, min(start, stop - longest))
            window = buffer[start - buffer_start:stop - buffer_start]
            piece = _as_rows(self._raw(window), self.num_maps, stop - start)
            lo, hi = max(begin, start), min(end, stop)
            span[:, lo - begin:hi - begin] = piece[:, lo - start:hi - start]
        if self.reconstruction_peak is not None:
            fixed = self.reconstruction_peak[:, None]
            return np.where(fixed > 0, span / np.where(fixed > 0, fixed, 1) * self.reference_peak, 0).astype(np.float32), running
        running = np.maximum(running, np.abs(span).max(axis=1) if span.size else running)
        safe = np.where(running > 0, running, 1.0).astype(np.float32)
        return span / safe[:, None] * self.reference_peak, running

    def _advance(self, block: np.ndarray, final: bool) -> np.ndarray:
        if self.closed:
            raise ValueError("this stream is closed (flush() was called); start a new one with Sonifier.stream(...)")
        buffer = np.concatenate([self._buffer, block / self.reference_peak]) if block.size else self._buffer
        received = self._received + block.size
        computed, running, pieces = self._computed, self._running, [self._ready]
        while computed + self.hop + self.margin <= received:
            span, running = self._span(buffer, self._buffer_start, computed, computed + self.hop, received, running)
            pieces.append(span)
            computed += self.hop
        if final and computed < received:
            span, running = self._span(buffer, self._buffer_start, computed, received, received, running, final=True)
            pieces.append(span)
            computed = received
        ready = np.concatenate(pieces, axis=1)
        # emit: silence for the prelude, then sonification samples, to a total of received (+ latency at the end)
        total = received + (self.latency if final else 0)
        count = total - self._emitted
        silent = max(0, min(count, self.latency - self._emitted))
        out = np.concatenate([np.zeros((self.num_maps, silent), np.float32), ready[:, :count - silent]], axis=1)
        # commit (nothing above changed the stream)
        keep_from = span_input(computed, computed + self.hop, self.receptive_field, self.stride, 1 << 62)
        trim = (keep_from[0] if keep_from else computed) - self._buffer_start
        if self.max_window is not None:  # keep a whole model window for the last one (see _span)
            trim = min(trim, (received - self.max_window - self._buffer_start) // self.stride * self.stride)
        trim = max(0, min(trim, buffer.size))
        self._buffer, self._buffer_start = buffer[trim:].copy(), self._buffer_start + trim
        self._received, self._computed, self._running = received, computed, running
        self._ready = ready[:, count - silent:]
        self._emitted = total
        self.closed = final
        return out

    # ------------------------------------------------------------------ API
    def process(self, block) -> np.ndarray:
        """Feed float ``[n]`` samples (raw amplitude); returns float32 ``[F, n]`` sonified, delayed by ``latency``."""
        return self._advance(check_block(block), final=False)

    def flush(self) -> np.ndarray:
        """End of input: returns the last ``latency`` samples ``[F, latency]`` and closes the stream."""
        return self._advance(np.zeros(0, np.float32), final=True)

    @property
    def samples_in(self) -> int:
        """Input samples accepted so far."""
        return self._received
