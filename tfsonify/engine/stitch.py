"""The one long-clip engine: sources, sinks, one rescale (numpy only, no TensorFlow).

Every surface that sonifies a clip longer than one network pass runs the same three steps here:

1. **maxima** (:func:`maxima`): per-map maxima over the whole clip from the planned windows
   (:func:`tfsonify.engine.windows.plan_windows`) or frames (:func:`tfsonify.engine.frames.plan_frames`), then
   :func:`top_k`;
2. **reconstruct** (:func:`reconstruct`): the chosen maps' raw (unscaled) reconstructions, stitched from the
   windows' exact spans or overlap-added from frames, handed span by span, in order, to a *sink*;
3. **scale** (:func:`scale_rows`, the only numpy rescale): each map once to unit peak times the clip's peak
   ``max|x|``, when the sink is finished (:meth:`ArraySink.finish`, :meth:`WavSink.finish`).

A *source* gives input samples: ``source.read(start, stop) -> float32 [stop - start]`` (raw amplitude),
``source.length`` (``T`` samples) and ``source.peak`` (``max|x|``). :class:`ArraySource` is an in-memory clip,
:class:`WavSource` a mono float WAV read by seeking (a file of any length, never held whole). The network is
behind callables given by the adapters: :mod:`tfsonify.engine.long_clips` (the TensorFlow
:class:`tfsonify.Sonifier`), :mod:`tfsonify.engine.long_files` (files) and :mod:`tfsonify.edge.windows` (a LiteRT
interpreter). A *sink* takes the stitched raw spans: :class:`ArraySink` (a float32 ``[F, T]`` array, e.g. a row
block of the caller's result) or :class:`WavSink` (one WAV per map, written through temporary raw files; memory
stays one window whatever ``T`` is).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tfsonify.engine import windows

__all__ = ["ArraySource", "WavSource", "ArraySink", "WavSink", "divided", "scale_rows", "top_k", "maxima",
           "reconstruct", "SCALE_BLOCK"]

SCALE_BLOCK = 1 << 20
"""Samples per block when a :class:`WavSink` scales its raw files into WAVs (4 MiB of float32)."""


class ArraySource:
    """An in-memory mono clip: float32 ``[T]`` raw amplitude (not copied when already float32)."""

    def __init__(self, clip):
        self.clip = np.asarray(clip, np.float32).reshape(-1)
        self.length = int(self.clip.size)
        self.peak = np.float32(np.max(np.abs(self.clip))) if self.clip.size else np.float32(0)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)``, float32 (a view)."""
        return self.clip[start:stop]


class WavSource:
    """A mono float WAV read by seeking: ``read(start, stop) -> float32 [stop - start]``.

    Args:
        path: the WAV (e.g. the ``input.wav`` a decoder wrote at the model's rate).
        peak: its ``max|x|`` if already known (the decoder measured it); else one pass over the file measures it.

    Use as a context manager (the file stays open between reads).
    """

    def __init__(self, path: str | os.PathLike, peak=None):
        import soundfile

        self.path = Path(path)
        self.length = int(soundfile.info(str(self.path)).frames)
        self._file = None
        if peak is None:
            peak = np.float32(0)
            for block in soundfile.blocks(str(self.path), blocksize=SCALE_BLOCK, dtype="float32"):
                if block.size:
                    peak = max(peak, np.float32(np.max(np.abs(block))))
        self.peak = np.float32(peak)

    def __enter__(self) -> "WavSource":
        import soundfile

        self._file = soundfile.SoundFile(str(self.path))
        return self

    def read(self, start: int, stop: int) -> np.ndarray:
        self._file.seek(start)
        return self._file.read(stop - start, dtype="float32")

    def __exit__(self, *exc):
        self._file.close()
        return False


def divided(read: Callable[[int, int], np.ndarray], divisor) -> Callable[[int, int], np.ndarray]:
    """``read`` with every window divided by ``divisor`` on the fly (float32, the one-pass path's division; no
    scaled copy of the clip). A divisor of 1 returns ``read`` itself."""
    scale = np.float32(divisor)
    if scale == 1:
        return read
    return lambda start, stop: read(start, stop) / scale


def scale_rows(rows: np.ndarray, tops, peak, out: np.ndarray | None = None) -> np.ndarray:
    """The one rescale: row ``f`` of raw ``rows`` ``[F, n]`` times ``peak / tops[f]`` (``rows / top * peak``, float32),
    zeros where ``tops[f] == 0`` (a silent map). ``tops`` are the rows' peaks over the *whole* clip, so a block of
    a longer row scales exactly as the whole row would. Writes into ``out`` (may be ``rows``; default a new array).

    Equals :meth:`tfsonify.Sonifier.sonify`'s in-graph rescale (unit peak, times ``max|x|``).
    """
    rows = np.asarray(rows, np.float32)
    out = np.empty_like(rows) if out is None else out
    peak = np.float32(peak)
    for row, top, target in zip(rows, np.asarray(tops, np.float32).reshape(-1), out):
        if top > 0:
            np.multiply(np.divide(row, top, out=target), peak, out=target)
        else:
            target[...] = 0
    return out


def top_k(scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [k] int32, scores [k] float32)`` of the ``k`` largest of ``scores [C]`` by decreasing score; ties:
    lower index first, as ``tf.math.top_k``."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:int(k)]
    return order.astype(np.int32), scores[order].astype(np.float32)


def maxima(plan, read: Callable[[int, int], np.ndarray], peaks: Callable[[np.ndarray], np.ndarray],
           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Per-map maxima ``[C]`` over the whole clip: windows of a :class:`tfsonify.engine.windows.WindowPlan` (``peaks(window
    [n]) -> [C]``, exact: every step of the clip is a step of some window) or frames of a
    :class:`tfsonify.engine.frames.FramePlan` (``peaks(frames [m, L]) -> [m, C]``). ``progress(samples)`` is told the
    clip samples each window covers."""
    if not isinstance(plan, windows.WindowPlan):
        return plan.maxima(read, peaks, progress)
    spans = iter(plan.keep)

    def counted(window):
        scores = peaks(window)
        if progress is not None:
            begin, end = next(spans)
            progress(end - begin)
        return scores

    return windows.max_over_windows(plan, read, counted)


def reconstruct(plan, read: Callable[[int, int], np.ndarray], raw: Callable[[np.ndarray], np.ndarray], sink) -> None:
    """Raw reconstructions of the whole clip, span by span in order into ``sink.write(begin, span [F, n])``.

    ``plan`` is a :class:`tfsonify.engine.windows.WindowPlan` (``raw(window [n]) -> [F, n]``, stitched from exact
    spans) or a :class:`tfsonify.engine.frames.FramePlan` (``raw(frames [m, L]) -> [m, F, L]``, overlap-added).
    Call ``sink.finish(peak)`` afterwards to scale.
    """
    if isinstance(plan, windows.WindowPlan):
        windows.stitch_reconstruction(plan, read, raw, sink.write)
    else:
        plan.overlap_add(read, raw, sink.write)


class ArraySink:
    """Spans into a float32 ``[F, T]`` array (``out``, e.g. rows of a preallocated batch or a memmap: the only
    full-length buffer), each map's peak tracked; :meth:`finish` scales in place and returns it."""

    def __init__(self, num_maps: int, length: int, out: np.ndarray | None = None,
                 progress: Callable[[int], None] | None = None):
        self.out = np.empty((int(num_maps), int(length)), np.float32) if out is None else out
        self.tops = np.zeros(self.out.shape[0], np.float32)
        self.progress = progress

    def write(self, begin: int, span: np.ndarray) -> None:
        self.out[:, begin:begin + span.shape[1]] = span
        if span.size:
            self.tops = np.maximum(self.tops, np.abs(span).max(axis=1))
        if self.progress is not None:
            self.progress(span.shape[1])

    def finish(self, peak) -> np.ndarray:
        """The sonifications ``[F, T]``: unit peak times ``peak`` (:func:`scale_rows`)."""
        return scale_rows(self.out, self.tops, peak, out=self.out)


class WavSink:
    """Spans into one float32 mono WAV per map, through raw temporary files in ``folder`` (memory: one span).

    Args:
        paths: the final WAV of each map (row), written atomically by :meth:`finish` (temporary file, rename).
        sample_rate: Hz of the WAVs.
        folder: where the raw ``.f32`` scratch files live (the output folder: same file system); removed by
            :meth:`close` (also on error: use as a context manager).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], sample_rate: int, folder: str | os.PathLike,
                 progress: Callable[[int], None] | None = None):
        self.paths = [Path(p) for p in paths]
        self.sample_rate = int(sample_rate)
        self._scratch = tempfile.TemporaryDirectory(prefix=f".tfsonify-raw-p{os.getpid()}-", dir=folder)
        self._raw = [Path(self._scratch.name) / f"{row}.f32" for row in range(len(self.paths))]
        self._handles = [open(p, "wb") for p in self._raw]
        self.tops = np.zeros(len(self.paths), np.float32)
        self.progress = progress

    def __enter__(self) -> "WavSink":
        return self

    def _no_space(self, error: OSError, row: int) -> None:
        """A full disk while writing row ``row``'s scratch file: :class:`NoSpaceError` naming its WAV."""
        from tfsonify.io.manifest import NoSpaceError, disk_full

        if disk_full(error, self._scratch.name):
            raise NoSpaceError(self.paths[row]) from None

    def write(self, begin: int, span: np.ndarray) -> None:
        for row, (handle, samples) in enumerate(zip(self._handles, span)):
            try:
                handle.write(np.ascontiguousarray(samples, np.float32).tobytes())
            except OSError as error:
                self._no_space(error, row)
                raise
        if span.size:
            self.tops = np.maximum(self.tops, np.abs(span).max(axis=1))
        if self.progress is not None:
            self.progress(span.shape[1])

    def finish(self, peak) -> list[Path]:
        """Scale each raw file once (:func:`scale_rows`, block by block) into its WAV; returns the WAV paths."""
        from tfsonify.io.blocks import WavWriter

        for row, handle in enumerate(self._handles):
            try:
                handle.close()  # the buffered tail: a full disk may show here
            except OSError as error:
                self._no_space(error, row)
                raise
        for path, raw_path, top in zip(self.paths, self._raw, self.tops):
            with WavWriter(path, self.sample_rate) as writer, open(raw_path, "rb") as raw_file:
                while True:
                    block = np.fromfile(raw_file, np.float32, SCALE_BLOCK)
                    if block.size == 0:
                        break
                    writer.write(scale_rows(block[None], [top], peak, out=block[None])[0])
        return self.paths

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._scratch.cleanup()

    def __exit__(self, *exc):
        self.close()
        return False
