"""The clips the explorer may read: files under the given roots, and uploads kept in memory.

Clips are addressed by opaque ids, never by paths: the page cannot name a file, so ``../``, absolute paths, encoded
variants and the like have nothing to resolve. A file is listed only if its resolved path lies inside its resolved
root (a symlink leading out of the root is dropped), and this is checked again every time the file is read.
"""
from __future__ import annotations

import hashlib
import os
import threading
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["AUDIO_EXTENSIONS", "Clip", "ClipError", "ClipLibrary", "decode_bytes"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")


class ClipError(ValueError):
    """A clip that cannot be used; ``status`` is the HTTP status the app answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class Clip:
    """One clip of the library.

    Attributes:
        id: opaque key (12 hex digits for files, ``u`` + 11 hex digits for uploads).
        name: shown in the page: the path relative to its root (never an absolute path), or the upload's file name.
        source: ``"file"`` or ``"upload"``.
        duration: seconds, or None when the header cannot be read (``error`` says why).
        error: why the clip cannot be used, or None.
    """

    id: str
    name: str
    source: str
    duration: float | None = None
    error: str | None = None
    path: Path | None = field(default=None, repr=False)
    root: Path | None = field(default=None, repr=False)
    waveform: np.ndarray | None = field(default=None, repr=False)  # uploads: mono float32 at ``rate``
    rate: int | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "source": self.source, "duration": self.duration, "error": self.error}


def decode_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode an uploaded file's bytes: ``(mono float32 [time], sample rate in Hz)``, as :func:`tfsonify.load_audio`
    decodes and downmixes (soundfile, :func:`tfsonify.io.audio.downmix`); :meth:`ClipLibrary.load` resamples it with
    the same resampler (:func:`tfsonify.io.audio.resample`), so an upload gives the samples of the same file on disk.

    Raises:
        ClipError: the bytes are not audio that libsndfile decodes (WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF), are
            empty, or hold NaN/Inf samples.
    """
    import soundfile

    from tfsonify.io.audio import downmix
    from tfsonify.io.memory_file import MemoryFile

    if not data:
        raise ClipError(f"upload {name!r} is empty")
    try:
        samples, rate = soundfile.read(MemoryFile(data), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile raises several types for undecodable input
        hint = (" (WebM from a browser recorder is not supported: record WAV, the page's recorder does)"
                if data[:4] == b"\x1aE\xdf\xa3" else "")
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(error))  # soundfile names the buffer by its repr
        raise ClipError(f"upload {name!r} is not audio tfsonify can decode: expected WAV, FLAC, OGG, MP3 or AIFF{hint}; "
                        f"decoder said: {reason[:200]}", 415) from None
    if samples.shape[0] == 0:
        raise ClipError(f"upload {name!r} holds no samples")
    mono = downmix(samples)
    if not np.all(np.isfinite(mono)):
        raise ClipError(f"upload {name!r} contains NaN or Inf samples")
    return mono, int(rate)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


MAX_UPLOAD_SECONDS = 300.0
"""Longest upload (5 min; a 20 MiB FLAC or MP3 can hold more): uploads stay decoded in memory."""


class ClipLibrary:
    """The files under ``roots`` (searched recursively; a root may also be a single file) plus uploads.

    Args:
        roots: folders or files given on the command line.
        sample_rate: the rate (Hz) clips are decoded at.
        max_seconds: longest clip accepted for computation (longer ones are listed with an error).
        max_uploads: uploads kept in memory (at their own rate, each at most MAX_UPLOAD_SECONDS: 16 x 300 s x 48 kHz x 4 B = 0.9 GB at worst by
            default); the oldest is forgotten beyond this.
    """

    def __init__(self, roots: Iterable[str | os.PathLike], sample_rate: int, max_seconds: float = 3600.0,
                 max_uploads: int = 16):
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        self.max_uploads = int(max_uploads)
        self._lock = threading.Lock()
        self._clips: OrderedDict[str, Clip] = OrderedDict()
        self._uploads: OrderedDict[str, Clip] = OrderedDict()
        roots = [Path(r) for r in roots]  # none: uploads and recordings only
        for root in roots:
            if not root.exists():
                raise ValueError(f"clip root {str(root)!r} does not exist")
        self._many_roots = sum(1 for root in roots if root.is_dir()) > 1
        for index, root in enumerate(roots):
            self._scan(index, root)

    # ------------------------------------------------------------------ files
    def _scan(self, index: int, given: Path) -> None:
        resolved = given.resolve()
        if resolved.is_file():
            root, files = resolved.parent, [given]
        else:
            root, files = resolved, sorted(p for p in given.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        for file in files:
            real = file.resolve()
            if not real.is_file() or not _inside(real, root):
                continue  # a symlink out of its root, or a dangling one: never listed
            shown = file.name if given.is_file() else file.relative_to(given).as_posix()
            if not given.is_file() and self._many_roots:  # several folders: say which one
                shown = f"{resolved.name}/{shown}"
            key = hashlib.sha1(f"{index}\0{shown}".encode()).hexdigest()[:12]
            clip = Clip(key, shown, "file", path=file, root=root)
            self._probe(clip)
            self._clips[key] = clip

    def _probe(self, clip: Clip) -> None:
        import soundfile

        try:
            info = soundfile.info(str(clip.path))
            clip.duration = float(info.frames) / float(info.samplerate) if info.samplerate else None
            if not info.frames:
                clip.error = f"{clip.name} holds no samples"
        except Exception:  # noqa: BLE001 - any header failure means: not readable audio
            clip.error = f"{clip.name} cannot be read as audio (expected WAV, FLAC, OGG, MP3 or AIFF)"
        if clip.error is None and clip.duration is not None and clip.duration > self.max_seconds:
            clip.error = (f"{clip.name} is {clip.duration:.1f} s long; the explorer takes clips up to "
                          f"{self.max_seconds:g} s (--max-seconds)")

    # ------------------------------------------------------------------ access
    def clips(self) -> list[Clip]:
        """Files (in path order) then uploads (newest last)."""
        with self._lock:
            return list(self._clips.values()) + list(self._uploads.values())

    def get(self, clip_id: str) -> Clip:
        """The clip with this id; ``ClipError`` 404 (no detail) otherwise."""
        with self._lock:
            clip = self._clips.get(clip_id) or self._uploads.get(clip_id)
        if clip is None:
            raise ClipError("no such clip", 404)
        return clip

    def load(self, clip_id: str, sample_rate: int | None = None) -> np.ndarray:
        """Decode a clip: mono float32 ``[time]`` at ``sample_rate`` Hz (default :attr:`sample_rate`).

        Raises:
            ClipError: unknown id (404), the file moved out of its root or vanished (404), or it is not decodable
                audio, empty or too long (422); messages name the clip as the page shows it, never its full path.
        """
        from tfsonify.io.audio import load_audio, resample

        rate = int(sample_rate or self.sample_rate)
        clip = self.get(clip_id)
        if clip.waveform is not None:
            try:
                return resample(clip.waveform, clip.rate, rate)
            except ValueError as error:  # a rate beyond the resampler's range
                raise ClipError(f"upload {clip.name!r}: {error}") from None
        if clip.error:
            raise ClipError(clip.error)
        real = clip.path.resolve()
        if not _inside(real, clip.root) or not real.is_file():
            raise ClipError("no such clip", 404)
        try:
            waveform = load_audio(real, rate)
        except ValueError as error:
            message = str(error).replace(repr(str(real)), repr(clip.name)).replace(str(real), clip.name)
            raise ClipError(message) from None
        self._check_duration(clip.name, waveform.shape[-1] / rate)
        return waveform

    def _check_duration(self, name: str, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise ClipError(f"{name} is {seconds:.1f} s long; the explorer takes clips up to {self.max_seconds:g} s "
                            f"(--max-seconds)", 413)

    def add_upload(self, data: bytes, name: str) -> Clip:
        """Decode and keep an uploaded file; returns its clip. ``ClipError`` if it is not usable audio.

        The same bytes uploaded again give the clip already kept (its id is derived from a hash of the content),
        moved to the end of the list, not a second entry."""
        name = Path(name or "upload").name[:80] or "upload"
        key = "u" + hashlib.sha256(data).hexdigest()[:11]
        with self._lock:
            known = self._uploads.get(key)
            if known is not None:
                self._uploads.move_to_end(key)
                return known
        waveform, rate = decode_bytes(data, name)
        self._check_duration(name, waveform.shape[0] / rate)
        if waveform.shape[0] / rate > MAX_UPLOAD_SECONDS:  # kept in memory at its own rate, up to max_uploads of them
            raise ClipError(f"{name} is {waveform.shape[0] / rate:.1f} s long; uploads are kept in memory and may be up "
                            f"to {MAX_UPLOAD_SECONDS:g} s (put longer recordings in a CLIPS folder)", 413)
        clip = Clip(key, name, "upload", duration=waveform.shape[0] / rate, waveform=waveform,
                    rate=rate)
        with self._lock:
            self._uploads[clip.id] = clip
            while len(self._uploads) > self.max_uploads:
                self._uploads.popitem(last=False)
        return clip
