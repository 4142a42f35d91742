"""Audio I/O: read any soundfile-supported file (WAV, FLAC, OGG, MP3), downmix, resample, write.

One decoder and one resampler for the whole package: soundfile (libsndfile) decodes, channels are averaged
(:func:`downmix`), and soxr (libsoxr, ``VHQ``) resamples: one shot here (:func:`resample`), block by block in
:func:`tfsonify.io.blocks.read_blocks` (a :func:`resample_stream`), whose output equals the one-shot result to the
last bit. ``load_audio``, the CLI, explorer uploads, the data pipeline, Beam's reader and the edge runtime all read
through these functions, so every surface sonifies the same samples. numpy, soundfile and soxr only (no TensorFlow,
no scipy): the edge runtime imports this module.

Waveforms are float32 numpy arrays in [-1, 1] (full scale), ``[time]`` mono.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

from tfsonify.io.manifest import NoSpaceError, disk_full
from tfsonify.io.memory_file import MemoryFile

__all__ = ["AUDIO_EXTENSIONS", "MAX_RATIO", "QUALITY", "load_audio", "decode_audio", "downmix",
           "resample", "resample_stream", "check_rates", "check_audio_file", "write_wav", "open_float_wav", "atomic_path"]

#: File name suffixes (lower case) read as audio wherever folders are scanned; soundfile decodes every one.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
#: Largest resampling factor either way (e.g. 8 kHz from 31.25 Hz ... 2.048 MHz sources).
MAX_RATIO = 256
#: soxr's quality recipe: very high quality (28-bit precision, linear phase)
QUALITY = "VHQ"


def check_rates(source_rate: int, target_rate: int) -> None:
    """``ValueError`` unless both rates are positive and within a factor :data:`MAX_RATIO` of each other."""
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive; received {source_rate} Hz -> {target_rate} Hz")
    ratio = max(source_rate / target_rate, target_rate / source_rate)
    if ratio > MAX_RATIO:
        raise ValueError(f"cannot resample {source_rate} Hz to {target_rate} Hz: a factor of {ratio:.0f}; tfsonify "
                         f"resamples by at most {MAX_RATIO}x either way ({target_rate / MAX_RATIO:g}.."
                         f"{target_rate * MAX_RATIO:g} Hz sources for {target_rate} Hz)")


def downmix(data: np.ndarray) -> np.ndarray:
    """``[frames, channels]`` -> mono float32 ``[frames]``: the channels' average (a mono file passes unchanged)."""
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """soxr resampling (``VHQ``) along the last axis (``[time]`` or ``[..., time]``); float32 out.

    Equal to the last bit to what :func:`resample_stream` gives block by block (whatever the blocks).
    """
    source_rate, target_rate = int(source_rate), int(target_rate)
    check_rates(source_rate, target_rate)
    waveform = np.asarray(waveform, dtype=np.float32)
    if source_rate == target_rate:
        return waveform
    if waveform.ndim == 1:
        return soxr.resample(np.ascontiguousarray(waveform), source_rate, target_rate, quality=QUALITY)
    rows = waveform.reshape(-1, waveform.shape[-1])  # soxr takes [frames, channels]: one channel per row
    out = soxr.resample(np.ascontiguousarray(rows.T), source_rate, target_rate, quality=QUALITY).T
    return np.ascontiguousarray(out).reshape(*waveform.shape[:-1], out.shape[-1])


def resample_stream(source_rate: int, target_rate: int) -> "soxr.ResampleStream | None":
    """A mono float32 :class:`soxr.ResampleStream` with :func:`resample`'s settings (None when the rates are equal):
    ``resample_chunk(block, last=False)`` per block, then ``resample_chunk(empty, last=True)`` for the tail."""
    check_rates(int(source_rate), int(target_rate))
    if int(source_rate) == int(target_rate):
        return None
    return soxr.ResampleStream(int(source_rate), int(target_rate), 1, dtype="float32", quality=QUALITY)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 ``[time]`` at ``sample_rate`` Hz.

    Multi-channel files are downmixed by averaging the channels; other rates are resampled with soxr
    (:func:`resample`): the very samples the CLI writes as ``input.wav`` for the same file.

    Raises:
        ValueError: the file is missing, not audio or corrupt, or holds no samples
            (the message names the file and the problem).
    """
    path = check_audio_file(path)
    return decode_audio(str(path), str(path), sample_rate)


def check_audio_file(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it names an existing file; else ``ValueError`` saying whether it is a
    directory or missing (the readers' one check before decoding)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"audio file {str(path)!r} is a directory, not an audio file")
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist or is not a file")
    return path


def decode_audio(source, name: str, sample_rate: int) -> np.ndarray:
    """An audio file (a path, its ``bytes``, or a binary file object, e.g. ``io.BytesIO``, read from its current
    position) as mono float32 ``[time]`` at ``sample_rate`` Hz: channels averaged (:func:`downmix`), other rates
    resampled (:func:`resample`). Bytes are decoded through a :class:`~tfsonify.io.memory_file.MemoryFile`, so a
    corrupt file never makes libsndfile's callbacks print a traceback.

    Raises:
        ValueError: not audio or corrupt, no samples, NaN/Inf samples, or a rate too far from ``sample_rate``
            (the message names ``name``).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = MemoryFile(source)
    elif not isinstance(source, (str, os.PathLike)) and not isinstance(source, MemoryFile):
        source = MemoryFile(source.read())
    try:
        data, source_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(error))  # soundfile names an in-memory buffer by its repr
        raise ValueError(f"cannot read {name!r} as audio (expected WAV, FLAC, OGG or MP3): {reason}") from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {name!r} is empty (0 samples)")
    mono = downmix(data)
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"audio file {name!r} contains NaN or Inf samples")
    try:
        return resample(mono, int(source_rate), int(sample_rate))
    except ValueError as error:
        raise ValueError(f"audio file {name!r}: {error}") from None


def _umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; else set-and-restore)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class atomic_path:
    """Context manager yielding a temporary path beside ``path``, renamed onto it on success.

    A failure (or interruption) leaves no half-written ``path``; a full file system raises
    :class:`tfsonify.io.manifest.NoSpaceError` naming ``path`` (whatever the writer raised); a process killed outright (SIGKILL, power loss)
    leaves the temporary, named after its pid, which the next run's :func:`tfsonify.io.manifest.remove_stale_temporaries`
    removes. The temporary name ends in ``{suffix}.part``, or in
    ``.part{suffix}`` with ``suffix_last`` (for writers that insist on their extension, such as Keras' ``.keras``).
    The file gets the mode a plain
    ``open(path, "w")`` would give it (``0o666`` minus the umask; ``mkstemp`` alone makes it ``0o600``,
    unreadable to web servers and other users).
    """

    def __init__(self, path: str | os.PathLike, suffix: str = "", suffix_last: bool = False):
        self.path = Path(path)
        self.suffix = suffix or self.path.suffix
        self.suffix_last = suffix_last

    def __enter__(self) -> Path:
        ending = ".part" + self.suffix if self.suffix_last else self.suffix + ".part"
        # the writer's pid in the name: a later run removes what a killed one left (io.manifest.remove_stale_temporaries)
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.p{os.getpid()}-", suffix=ending, dir=self.path.parent)
        os.close(handle)
        os.chmod(name, 0o666 & ~_umask())
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            os.replace(self.temporary, self.path)
            return False
        full = disk_full(exc, self.temporary.parent)  # before the unlink frees the partial file's blocks
        self.temporary.unlink(missing_ok=True)
        if full:
            raise NoSpaceError(self.path) from None  # one line naming the file, for the CLI and servers
        return False


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command code (sndfile.h)


def open_float_wav(path, sample_rate: int) -> soundfile.SoundFile:
    """A mono 32-bit float WAV opened for writing (a path, or a binary file object such as ``io.BytesIO``), without
    libsndfile's ``PEAK`` chunk: that chunk holds the time of writing, so two runs on the same input would differ by
    those bytes; without it the file depends only on the samples (reruns are byte-identical)."""
    target = str(path) if isinstance(path, (str, os.PathLike)) else path
    file = soundfile.SoundFile(target, "w", int(sample_rate), 1, subtype="FLOAT", format="WAV")
    soundfile._snd.sf_command(file._file, _SFC_SET_ADD_PEAK_CHUNK, soundfile._ffi.NULL, 0)  # SF_FALSE, before any write
    return file


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int) -> Path:
    """Write mono float32 ``[time]`` as a 32-bit float WAV, atomically. Returns the path."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"write_wav expects a mono waveform [time]; received shape {waveform.shape}")
    if not np.all(np.isfinite(waveform)):
        raise ValueError(f"refusing to write {str(path)!r}: waveform contains NaN or Inf")
    with atomic_path(path, suffix=".wav") as temporary:
        with open_float_wav(temporary, sample_rate) as file:
            file.write(waveform)
    return Path(path)
