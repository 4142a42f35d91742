"""The sonification folder's ``manifest.json`` and the guard that leaves nothing behind (stdlib only).

Used by :mod:`tfsonify.io.render` (the in-memory writer), :mod:`tfsonify.engine.long_files` (files of any length)
and the TensorFlow-free edge runtime (:mod:`tfsonify.edge.demo`), so every surface writes the same manifest::

    {"sample_rate": Hz, "input": "input.wav", "source": str, ...extra,
     "sonifications": [{"layer": 5 or "conv4", "feature": int, "activation": float, "wav": str[, "spectrogram": str]}]}

Every path in a manifest is relative to the manifest's folder (the WAVs and PNGs, and the :data:`PATH_FIELDS`
``source``, ``model``, ``mixture`` when they name a file that exists), so the folder can be moved together with what
it names, and read from any working directory: :func:`read_manifest` resolves them against the folder.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

__all__ = ["layer_key", "manifest_entry", "write_manifest", "output_folder", "remove_stale_temporaries", "NoSpaceError",
           "disk_full"]


class NoSpaceError(OSError):
    """A write failed because the file system holding ``path`` is full (``errno.ENOSPC``); its message is one line
    naming the file. The writer removed its temporary: no half-written file under the final name."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(errno.ENOSPC, "no space left on device", str(path))

    def __str__(self) -> str:
        return f"no space left on device: {self.filename} (free some space or write elsewhere)"


def disk_full(error: BaseException, folder: str | os.PathLike) -> bool:
    """Whether ``error`` (raised while writing into ``folder``) means the file system is full: an ``OSError`` with
    ``ENOSPC``/``EDQUOT``, any error whose message carries ``strerror(ENOSPC)`` (TensorFlow's writers), or another write error (libsndfile says only "System error.") while less than 64 KiB is
    free there. Call it before removing the partial file (whose blocks are what filled the disk)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(error):  # TensorFlow's file writers: ResourceExhaustedError with strerror
        return True
    if not isinstance(error, (OSError, RuntimeError)):
        return False
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024

_TEMPORARY = re.compile(r"^\.(?:.+\.p(\d+)-.*\.part(?:\.[^.]+)?|tfsonify-raw-p(\d+)-.*)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = False) -> int:
    """Remove the temporaries a killed run left in ``folder`` (``.NAME.pPID-*.part`` files of
    :class:`tfsonify.io.audio.atomic_path`, ``.tfsonify-raw-pPID-*`` scratch folders) whose process no longer
    exists; a live writer's are kept. Returns how many were removed."""
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in (folder.rglob(".*") if recursive else folder.glob(".*")):
        match = _TEMPORARY.match(path.name)
        if match is None or _alive(int(match.group(1) or match.group(2))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def layer_key(layer: int | str) -> int | str:
    """A layer as the manifests store it: a block index as int, a layer name as str."""
    return layer if isinstance(layer, str) else int(layer)


class output_folder:
    """``with output_folder(DIR) as folder:`` creates ``DIR`` if needed and stages the run's files: :meth:`created`
    gives the name to write instead of ``DIR/NAME`` (a hidden ``.NAME.pPID-staged.part`` beside it, the same one each
    time it is asked), :meth:`commit` renames every staged file onto its final name (call it just before writing the
    manifest; leaving the block without an exception commits too). If the block raises (a bad request, a full disk,
    Ctrl-C), the staged files are removed and so are the folders this created (when empty): a failed run leaves the
    folder exactly as it found it, earlier results included."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir)
        self._made: list[Path] = []
        self._staged: dict[Path, Path] = {}

    def __enter__(self) -> "output_folder":
        missing, parent = [], self.path
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"output folder {str(self.path)!r} cannot be created: {error.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {str(self.path)!r} is not a writable directory")
        self._made = missing  # deepest first
        remove_stale_temporaries(self.path)
        return self

    def created(self, path: str | os.PathLike) -> Path:
        """The staged name to write (and read back) instead of ``path``; renamed onto ``path`` by :meth:`commit`."""
        path = Path(path)
        if path not in self._staged:
            self._staged[path] = path.with_name(f".{path.name}.p{os.getpid()}-staged.part")
        return self._staged[path]

    def commit(self) -> None:
        """Rename every staged file that was written onto its final name (in the order they were staged)."""
        for final, staged in list(self._staged.items()):
            if staged.exists():
                os.replace(staged, final)
            del self._staged[final]

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.commit()
        else:
            for staged in self._staged.values():
                staged.unlink(missing_ok=True)
            for folder in self._made:
                try:
                    folder.rmdir()
                except OSError:
                    break
        return False


def manifest_entry(layer: int | str, feature: int, activation: float, wav: str, spectrogram: str | None = None) -> dict:
    """One sonification as the manifest lists it: ``{"layer", "feature", "activation", "wav"[, "spectrogram"]}``."""
    entry = {"layer": layer_key(layer), "feature": int(feature), "activation": float(activation), "wav": wav}
    if spectrogram is not None:
        entry["spectrogram"] = spectrogram
    return entry


def write_manifest(out_dir: str | os.PathLike, entries: Sequence[dict], sample_rate: int, source: str = "",
                   extra: dict | None = None, input_name: str = "input.wav") -> dict:
    """Write ``out_dir/manifest.json`` atomically and return it: the existing manifest (an earlier run in the same
    folder) updated with ``sample_rate`` (Hz), ``input``, ``source`` and ``extra``, its entries for the same
    ``(layer, feature)`` replaced by ``entries`` (:func:`manifest_entry`), others kept in order. ``source`` and the
    :data:`PATH_FIELDS` of ``extra`` naming existing files (paths as the caller sees them) are stored relative to
    ``out_dir`` (:func:`stored_paths`)."""
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update(stored_paths(out_dir, {"sample_rate": int(sample_rate), "input": input_name, "source": str(source),
                                           **(extra or {})}))
    replaced = {(e["layer"], e["feature"]) for e in entries}
    kept = [e for e in manifest.get("sonifications", []) if (e["layer"], e["feature"]) not in replaced]
    manifest["sonifications"] = kept + list(entries)
    handle, temporary = tempfile.mkstemp(prefix=f".manifest.json.p{os.getpid()}-", suffix=".part", dir=out_dir)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(manifest, indent=2))
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, manifest_path)
    except BaseException as error:
        full = disk_full(error, out_dir)
        Path(temporary).unlink(missing_ok=True)
        if full:
            raise NoSpaceError(manifest_path) from None
        raise
    return manifest


__all__ += ["PATH_FIELDS", "relative_path", "stored_paths", "read_manifest"]  # the paths in manifests

PATH_FIELDS = ("source", "model", "mixture")
"""Manifest fields that name a file: stored relative to the manifest's folder when they name one that exists (a
description such as ``"microphone"`` or a URL stays as given)."""


def relative_path(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``path`` (as the caller sees it: absolute, or relative to the working directory) relative to ``folder``,
    with ``/`` separators: how a manifest in ``folder`` stores it."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()


def stored_paths(folder: str | os.PathLike, fields: dict) -> dict:
    """``fields`` with each :data:`PATH_FIELDS` value that names an existing file or folder made relative to
    ``folder`` (:func:`relative_path`); other values unchanged."""
    stored = dict(fields)
    for key in PATH_FIELDS:
        value = stored.get(key)
        if isinstance(value, (str, os.PathLike)) and str(value) and "://" not in str(value) and os.path.exists(value):
            stored[key] = relative_path(value, folder)
    return stored


def read_manifest(folder: str | os.PathLike) -> dict:
    """``folder/manifest.json`` with its paths resolved against ``folder`` (usable from any working directory):
    ``input``, each sonification's ``wav`` and ``spectrogram``, and the :data:`PATH_FIELDS` that name a file there.
    Values that name nothing (a description) are returned as stored.

    Raises:
        ValueError: there is no ``manifest.json`` in ``folder``, or it is not JSON.
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} does not exist; expected a folder written by tfsonify sonify") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not JSON: {error}") from None

    def resolved(value):
        if isinstance(value, str) and value and "://" not in value and (folder / value).exists():
            return str((folder / value).resolve())
        return value

    for key in ("input", *PATH_FIELDS):
        if key in manifest:
            manifest[key] = resolved(manifest[key])
    for entry in manifest.get("sonifications", []):
        for key in ("wav", "spectrogram"):
            if key in entry:
                entry[key] = resolved(entry[key])
    return manifest
