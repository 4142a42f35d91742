"""Audio I/O: read any soundfile-supported file (WAV, FLAC, OGG, MP3), downmix, resample, write.

Waveforms are float32 numpy arrays in [-1, 1] (full scale), ``[time]`` mono.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

__all__ = ["SAMPLE_RATE", "AUDIO_EXTENSIONS", "load_audio", "decode_audio", "resample", "write_wav", "atomic_path"]

#: The project's default rate in Hz: CNN12's (the paper's 8 kHz); other models carry their own ``sample_rate``.
SAMPLE_RATE = 8000
#: File name suffixes (lower case) read as audio wherever folders are scanned; soundfile decodes every one.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) along the last axis; float32 out."""
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive; received {source_rate} Hz -> {target_rate} Hz")
    if source_rate == target_rate:
        return np.asarray(waveform, dtype=np.float32)
    divisor = math.gcd(int(source_rate), int(target_rate))
    return resample_poly(waveform, target_rate // divisor, source_rate // divisor, axis=-1).astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 ``[time]`` at ``sample_rate`` Hz.

    Multi-channel files are downmixed by averaging the channels; other rates are
    resampled with ``scipy.signal.resample_poly``.

    Raises:
        ValueError: the file is missing, not audio or corrupt, or holds no samples
            (the message names the file and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist or is not a file")
    return decode_audio(str(path), str(path), sample_rate)


def decode_audio(source, name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file (a path or a binary file object, e.g. ``io.BytesIO`` of its bytes) as mono float32 ``[time]``
    at ``sample_rate`` Hz: channels averaged, other rates resampled (``resample``).

    Raises:
        ValueError: not audio or corrupt, no samples, or NaN/Inf samples (the message names ``name``).
    """
    try:
        data, source_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(error))  # soundfile names an in-memory buffer by its repr
        raise ValueError(f"cannot read {name!r} as audio (expected WAV, FLAC, OGG or MP3): {reason}") from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {name!r} is empty (0 samples)")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"audio file {name!r} contains NaN or Inf samples")
    return resample(mono, int(source_rate), int(sample_rate))


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

    A failure (or interruption) leaves no half-written ``path``. The temporary name ends in ``{suffix}.part``, or in
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
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=ending, dir=self.path.parent)
        os.close(handle)
        os.chmod(name, 0o666 & ~_umask())
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
        return False


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float32 ``[time]`` as a 32-bit float WAV, atomically. Returns the path."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"write_wav expects a mono waveform [time]; received shape {waveform.shape}")
    if not np.all(np.isfinite(waveform)):
        raise ValueError(f"refusing to write {str(path)!r}: waveform contains NaN or Inf")
    with atomic_path(path, suffix=".wav") as temporary:
        soundfile.write(str(temporary), waveform, int(sample_rate), subtype="FLOAT", format="WAV")
    return Path(path)
