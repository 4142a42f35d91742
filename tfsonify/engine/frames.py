"""Fixed-frame models (CREPE): frame a clip as the model's own tracker does, overlap-add the frames' sonifications.

A model whose input has a fixed length ``L`` (CREPE: ``[batch, 1024]`` at 16 kHz, each frame standardised on its
own) sees a clip only as frames. Its tracker (:func:`tfsonify.models.crepe.crepe_frames`, torchcrepe's
``preprocess``) cuts frames ``hop`` samples apart (CREPE: 160 = 10 ms), centred: the clip is zero-padded by
``L // 2`` samples on each side and frame ``i`` covers clip samples ``[i * hop - L // 2, i * hop + L - L // 2)``, so
it is centred on sample ``i * hop``; ``1 + T // hop`` frames (``1 + (T - L) // hop`` without centring).

Weights (numpy only; the network runs behind callables):

- each frame goes through the model's own input scaling (per-frame standardisation for CREPE), then the
  deconvnet; its raw reconstruction lives in the *scaled* frame's units, so it is multiplied by the frame's
  **gain** ``g_i = max|x_i| / max|s(x_i)|`` (the frame's peak over its scaled peak; 0 for a silent frame): for a
  scaling ``s(x) = (x - m) / d`` with ``m = 0`` this is ``d``, the frame's level, so a quiet frame stays quiet
  instead of being amplified to the level of a loud one;
- frames are overlap-added with a periodic Hann window ``w`` of ``L`` samples and **normalised** by the sum of the
  windows at each sample: ``y[t] = sum_i w[t - a_i] g_i r_i[t - a_i] / sum_i w[t - a_i]`` (``a_i`` the frame's
  first sample), a weighted mean of the frames covering ``t``; with centring every sample has a frame centre within
  ``hop`` samples, so the denominator is at least ``w[L/2 - hop]`` (0.90 for CREPE); samples no frame covers with
  weight (only possible without centring, at the clip's two ends) are 0;
- the result is scaled once per map to unit peak times ``max|x|`` (:func:`tfsonify.engine.stitch.scale_rows`),
  as every sonification;
- "most active" maps: the maximum over all frames of each map's per-frame maximum.

Frames are run ``batch`` at a time and finished output spans are handed on in order, so memory is one batch of
frames plus ``L`` samples of overlap, whatever the clip's length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["FramePlan", "plan_frames", "frame_weights", "DEFAULT_HOP_SECONDS", "FRAME_BATCH"]

DEFAULT_HOP_SECONDS = 0.01
"""Default hop of a fixed-frame model without its own (``model.frame_hop``): 10 ms, CREPE's tracker's (160 samples
at 16 kHz)."""
FRAME_BATCH = 64
"""Frames per network call."""


def frame_weights(length: int) -> np.ndarray:
    """The periodic Hann window ``0.5 - 0.5 cos(2 pi n / L)``, float64 ``[L]`` (peak 1 at ``n = L / 2``)."""
    n = np.arange(int(length), dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / int(length))


@dataclass(frozen=True)
class FramePlan:
    """The frames of one clip.

    Attributes:
        clip_length: ``T`` samples.
        frame_length: ``L`` samples per frame (the model's fixed input length).
        hop: samples between frame starts.
        center: frames centred on ``i * hop`` (zero padding of ``L // 2`` each side) as the model's tracker.
        batch: frames per network call.
    """

    clip_length: int
    frame_length: int
    hop: int
    center: bool = True
    batch: int = FRAME_BATCH

    @property
    def num_frames(self) -> int:
        if self.center:
            return 1 + self.clip_length // self.hop
        return 0 if self.clip_length < self.frame_length else 1 + (self.clip_length - self.frame_length) // self.hop

    @property
    def starts(self) -> np.ndarray:
        """First clip sample of each frame, int64 ``[num_frames]`` (negative: zero padding before the clip)."""
        offset = self.frame_length // 2 if self.center else 0
        return np.arange(self.num_frames, dtype=np.int64) * self.hop - offset

    def frames(self, read: Callable[[int, int], np.ndarray], first: int, count: int) -> np.ndarray:
        """Frames ``first .. first + count - 1`` as float32 ``[count, L]`` (zeros outside the clip)."""
        starts = self.starts[first:first + count]
        lo, hi = int(max(starts[0], 0)), int(min(starts[-1] + self.frame_length, self.clip_length))
        padded = np.zeros(int(starts[-1] - starts[0]) + self.frame_length, np.float32)
        if hi > lo:
            padded[lo - starts[0]:hi - starts[0]] = read(lo, hi)
        index = (starts - starts[0])[:, None] + np.arange(self.frame_length)[None, :]
        return padded[index]

    def _batches(self):
        for first in range(0, self.num_frames, self.batch):
            yield first, min(self.batch, self.num_frames - first)

    def maxima(self, read, peaks: Callable[[np.ndarray], np.ndarray], progress=None) -> np.ndarray:
        """``[C]``: the maximum over frames of ``peaks(frames [m, L]) -> [m, C]``."""
        best = None
        for first, count in self._batches():
            scores = np.asarray(peaks(self.frames(read, first, count)), np.float32).max(axis=0)
            best = scores if best is None else np.maximum(best, scores)
            if progress is not None:
                progress(self._done(first + count) - self._done(first))
        return best

    def _done(self, frames: int) -> int:
        """Clip samples final once frames ``0 .. frames - 1`` are added (every later frame starts after them)."""
        if frames >= self.num_frames:
            return self.clip_length
        return int(min(max(self.starts[frames], 0), self.clip_length))

    def overlap_add(self, read, raw: Callable[[np.ndarray], np.ndarray], write: Callable[[int, np.ndarray], None]) -> None:
        """Overlap-add ``raw(frames [m, L]) -> [m, F, L]`` (gain-weighted raw reconstructions) with Hann weights,
        normalised by the window sum; ``write(begin, span [F, n])`` for consecutive spans tiling ``[0, T)``."""
        window = frame_weights(self.frame_length)
        starts = self.starts
        base = int(starts[0]) if self.num_frames else 0  # clip sample of buffer index 0
        acc = weight = None
        emitted = 0
        for first, count in self._batches():
            pieces = np.asarray(raw(self.frames(read, first, count)), np.float32)
            if acc is None:
                acc = np.zeros((pieces.shape[1], 0), np.float64)
                weight = np.zeros(0, np.float64)
            done = self._done(first + count)
            end = max(int(starts[first + count - 1]) + self.frame_length, done) - base
            if end > weight.size:
                acc = np.pad(acc, ((0, 0), (0, end - weight.size)))
                weight = np.pad(weight, (0, end - weight.size))
            for piece, start in zip(pieces, starts[first:first + count]):
                at = int(start) - base
                acc[:, at:at + self.frame_length] += piece * window
                weight[at:at + self.frame_length] += window
            if done > emitted:
                lo, hi = emitted - base, done - base
                span = np.divide(acc[:, lo:hi], weight[lo:hi], out=np.zeros((acc.shape[0], hi - lo)),
                                 where=weight[lo:hi] > 1e-12)
                write(emitted, span.astype(np.float32))
                emitted = done
                # drop what is written, keeping the buffer from the next frame's start if that lies before it
                keep = emitted if first + count >= self.num_frames else min(emitted, int(starts[first + count]))
                acc, weight, base = acc[:, keep - base:], weight[keep - base:], keep
        if emitted < self.clip_length:  # no frame at all (a clip shorter than a frame without centring)
            write(emitted, np.zeros((0 if acc is None else acc.shape[0], self.clip_length - emitted), np.float32))


def plan_frames(clip_length: int, frame_length: int, hop: int, center: bool = True, batch: int = FRAME_BATCH) -> FramePlan:
    """A :class:`FramePlan`; ``ValueError`` for a non-positive length or hop, or (without centring) a clip shorter
    than one frame."""
    for name, value in (("clip_length", clip_length), ("frame_length", frame_length), ("hop", hop), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer number of samples; received {value!r}")
    if hop > frame_length:
        raise ValueError(f"hop ({hop}) longer than the frame ({frame_length}) leaves samples in no frame")
    if not center and clip_length < frame_length:
        raise ValueError(f"clip has {clip_length} samples, fewer than one {frame_length}-sample frame (frames are "
                         f"not centred, so nothing pads it)")
    return FramePlan(int(clip_length), int(frame_length), int(hop), bool(center), int(batch))
