"""An audio file's bytes as a read-only file object that libsndfile's virtual I/O can use without Python errors.

soundfile reads a file object through cffi callbacks (``vio_seek``, ``vio_read``, ``vio_tell``). An exception inside a
callback cannot reach the caller: cffi prints ``Exception ignored from cffi callback ...`` and a traceback on stderr
and hands libsndfile 0. ``io.BytesIO.seek`` raises ``ValueError: negative seek value`` when a corrupt header makes
libsndfile seek before the start (issue 26: AIFF files with overwritten header bytes did), so uploads, ``*_wav``
outputs and Beam clips printed a traceback although they were refused cleanly. :class:`MemoryFile` answers such a
seek as ``lseek(2)`` does (the position stays where it was), so libsndfile sees a failed seek and refuses the file
with its own error, and nothing reaches stderr.
"""
from __future__ import annotations

import os

__all__ = ["MemoryFile"]


class MemoryFile:
    """Read-only, seekable bytes for ``soundfile.read`` / ``soundfile.SoundFile``; no method raises on any
    argument libsndfile passes.

    Args:
        data: the whole file (``bytes``, ``bytearray`` or ``memoryview``; not copied for ``bytes``).
    """

    def __init__(self, data: bytes | bytearray | memoryview):
        self._data = data if isinstance(data, bytes) else bytes(data)
        self._position = 0
        self.name = "<memory>"  # soundfile names the file in its errors by this (stripped by the decoders)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` bytes from the start / current position / end (``whence`` 0, 1, 2) and return the new
        position; a target before the start or an unknown ``whence`` leaves the position where it was (as
        ``lseek(2)`` fails with ``EINVAL``). Positions past the end are allowed; reads there give no bytes."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._data)}.get(whence)
        if base is not None and base + int(offset) >= 0:
            self._position = base + int(offset)
        return self._position

    def tell(self) -> int:
        """The current position in bytes."""
        return self._position

    def read(self, count: int = -1) -> bytes:
        """Up to ``count`` bytes from the current position (all the rest for a negative ``count``); ``b""`` at or
        past the end."""
        start = min(self._position, len(self._data))
        stop = len(self._data) if count is None or count < 0 else min(len(self._data), start + int(count))
        self._position = max(self._position, stop)
        return self._data[start:stop]

    def readinto(self, buffer) -> int:
        """Read into a writable buffer (libsndfile's read callback); the number of bytes copied."""
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[:len(chunk)] = chunk
        return len(chunk)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True
