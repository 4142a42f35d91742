"""Audio files in blocks: read, downmix and resample with bounded memory; write WAVs incrementally.

Reading uses soundfile (libsndfile: WAV, FLAC, OGG, MP3) block by block; downmixing and resampling are
:mod:`tfsonify.io.audio`'s (:func:`~tfsonify.io.audio.downmix`, soxr's stateful :class:`soxr.ResampleStream` from
:func:`~tfsonify.io.audio.resample_stream`), whose blockwise output equals the one-shot
:func:`tfsonify.io.audio.resample` of the whole signal to the last bit (tested), so a file of any length resamples
in a few MB and gives exactly the samples :func:`tfsonify.load_audio` gives.

Waveforms are float32 mono ``[time]`` in [-1, 1] (full scale).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from tfsonify.io.audio import MAX_RATIO, QUALITY, atomic_path, check_audio_file, check_rates, downmix, load_audio, \
    open_float_wav, resample, resample_stream

__all__ = ["AudioInfo", "MAX_RATIO", "QUALITY", "audio_info", "check_rates", "read_blocks", "resample_whole", "read_whole",
           "WavWriter"]


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says: ``frames`` per channel, ``sample_rate`` Hz, ``channels``."""

    path: Path
    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _cannot_read(path: Path, error) -> ValueError:
    return ValueError(f"cannot read {str(path)!r} as audio (expected WAV, FLAC, OGG or MP3): {error}")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header of an audio file; ``ValueError`` if it is missing, not audio, or holds no samples."""
    path = check_audio_file(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise _cannot_read(path, error) from None
    if info.frames <= 0:
        raise ValueError(f"audio file {str(path)!r} is empty (0 samples)")
    return AudioInfo(path, int(info.frames), int(info.samplerate), int(info.channels))


def resample_whole(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """One-shot resampling of mono ``[time]`` (:func:`tfsonify.io.audio.resample`); what :func:`read_blocks`
    produces block by block."""
    return resample(np.ascontiguousarray(waveform, np.float32), source_rate, target_rate)


def read_blocks(path: str | os.PathLike, sample_rate: int, block_seconds: float = 10.0,
                info: AudioInfo | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(mono block float32 [n] at sample_rate, source frames consumed)`` over the whole file.

    Channels are averaged; blocks of ``block_seconds`` of the source are read, downmixed and pushed through a
    :class:`soxr.ResampleStream`, so memory stays at a few blocks whatever the file's length.

    Raises:
        ValueError: missing/unreadable/empty file, a rate outside the resampler's range, a file that ends before
            its header says (truncated) or fails to decode part-way, or NaN/Inf samples (with the time).
    """
    info = info or audio_info(path)
    check_rates(info.sample_rate, int(sample_rate))
    block = max(1, int(block_seconds * info.sample_rate))
    stream = resample_stream(info.sample_rate, int(sample_rate))
    done = 0
    try:
        with soundfile.SoundFile(str(info.path)) as handle:
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                mono = downmix(data)
                if not np.all(np.isfinite(mono)):
                    first = done + int(np.argmin(np.isfinite(mono)))
                    raise ValueError(f"audio file {str(info.path)!r} contains NaN or Inf samples (first at "
                                     f"{first / info.sample_rate:.3f} s)")
                done += data.shape[0]
                out = mono if stream is None else stream.resample_chunk(np.ascontiguousarray(mono), last=False)
                yield np.asarray(out, np.float32), data.shape[0]
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise ValueError(f"audio file {str(info.path)!r} failed to decode after {done / info.sample_rate:.2f} s of "
                         f"{info.seconds:.2f} s (truncated or corrupt): {error}") from None
    if done < info.frames:
        raise ValueError(f"audio file {str(info.path)!r} is truncated: its header promises {info.frames} frames "
                         f"({info.seconds:.2f} s) but only {done} could be read")
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            yield np.asarray(tail, np.float32), 0


def read_whole(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole file as mono float32 ``[time]`` at ``sample_rate``: :func:`tfsonify.load_audio` after the header
    checks of :func:`audio_info` (the in-memory counterpart of :func:`read_blocks`, equal to its blocks joined)."""
    info = audio_info(path)
    check_rates(info.sample_rate, int(sample_rate))
    return load_audio(info.path, sample_rate)


class WavWriter:
    """A float32 mono WAV written block by block to a temporary file, renamed onto ``path`` on :meth:`close`.

    Use as a context manager: an exception inside leaves no file at ``path`` (and removes the temporary).
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int):
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.frames = 0

    def __enter__(self) -> "WavWriter":
        self._atomic = atomic_path(self.path, suffix=".wav")
        temporary = self._atomic.__enter__()
        self._file = open_float_wav(temporary, self.sample_rate)
        return self

    def write(self, block: np.ndarray) -> None:
        """Append float32 ``[n]`` samples (finite; ``ValueError`` otherwise, and nothing is written)."""
        block = np.asarray(block, np.float32).reshape(-1)
        if not np.all(np.isfinite(block)):
            raise ValueError(f"refusing to write {str(self.path)!r}: block contains NaN or Inf")
        self._file.write(block)
        self.frames += block.size

    def __exit__(self, exc_type, exc, traceback):
        self._file.close()
        return self._atomic.__exit__(exc_type, exc, traceback)
