"""Version lifecycle as TF Serving runs it: poll base paths, load + warm new versions, then swap, then unload.

:class:`ModelManager` serves the versions that each model's :class:`~tfsonify.serving.config.VersionPolicy`
selects among the version folders of its base path (``base_path/VERSION/saved_model.pb``), re-reading
the folders every ``poll_seconds`` (``tensorflow_model_server --file_system_poll_wait_seconds``) on a
background thread:

1. a new version is loaded and warmed up (every signature called once, see
   :func:`tfsonify.serving.repository.load_version`) *while the old versions keep serving*;
2. only when it is ready does it become visible to requests (one dictionary swap under a lock);
3. versions the policy no longer selects are then dropped from the table: requests already running
   on them hold a reference and finish on them, later requests go to the new version
   (TF Serving's availability-preserving policy: never fewer servable versions during a transition).

A version that fails to load (corrupt ``saved_model.pb``, missing variables, a signature that fails
its warm-up call) is recorded with state ``END`` and the error, as ``GetModelStatus`` reports it, and is
left out of the policy's choice, so it never replaces a working version; it is retried only when its
files change. A served version whose folder is deleted is replaced by the policy's choice among the folders
left; when none is left it stays served from memory (its status says so, and a warning is logged) until a new
version is published: TF Serving would unload it and answer 404. Model states follow ``tensorflow.serving.ModelVersionStatus.State``
(START, LOADING, AVAILABLE, UNLOADING, END).

Example::

    manager = ModelManager(read_model_config("models/models.config"), poll_seconds=1)
    version = manager.get("cnn12", label="stable")
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tfsonify.serving.config import ModelSpec, specs_from_folder
from tfsonify.serving.repository import LoadedVersion, ServingError, load_version

__all__ = ["ModelManager", "ModelRepository", "VersionStatus"]

log = logging.getLogger("tfsonify.serving")


@dataclass
class VersionStatus:
    """One version's state, as in ``tensorflow.serving.ModelVersionStatus``.

    ``error_code`` is a ``tensorflow.error.Code`` name ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNKNOWN", ...);
    ``load_seconds`` is the load + warm-up time (s) and ``available_since`` a ``time.monotonic()`` stamp.
    """

    version: int
    state: str = "START"
    error_code: str = "OK"
    error_message: str = ""
    load_seconds: float | None = None
    available_since: float | None = None

    def as_json(self) -> dict:
        """TF Serving's REST ``model_version_status`` entry."""
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


def _fingerprint(folder: Path) -> tuple:
    """(newest mtime, total size, file count) of every file under ``folder``: changes when any file does."""
    newest, size, count = 0, 0, 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                stat = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            newest, size, count = max(newest, stat.st_mtime_ns), size + stat.st_size, count + 1
    return newest, size, count


def _error_code(error: BaseException) -> str:
    import tensorflow as tf

    if isinstance(error, tf.errors.OpError):
        return _OP_ERROR_NAMES.get(type(error).__name__, "UNKNOWN")
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND"
    if isinstance(error, (ValueError, ServingError)):
        return "INVALID_ARGUMENT"
    return "UNKNOWN"


_OP_ERROR_NAMES = {"InvalidArgumentError": "INVALID_ARGUMENT", "NotFoundError": "NOT_FOUND",
                   "DataLossError": "DATA_LOSS", "FailedPreconditionError": "FAILED_PRECONDITION",
                   "ResourceExhaustedError": "RESOURCE_EXHAUSTED", "UnimplementedError": "UNIMPLEMENTED",
                   "InternalError": "INTERNAL", "OutOfRangeError": "OUT_OF_RANGE"}


class ModelManager:
    """Serves the policy-selected versions of several models and keeps them current.

    Args:
        specs: the models (:func:`tfsonify.serving.config.read_model_config` or
            :func:`~tfsonify.serving.config.specs_from_folder`).
        warmup: call every signature once before a version is served.
        poll_seconds: seconds between polls of the base paths (> 0); 0 polls once, at construction
            (as ``--file_system_poll_wait_seconds=0``).
        loader: ``loader(name, version_dir, warmup) -> LoadedVersion`` (tests inject failures here).

    The constructor loads the initial versions synchronously. ``get`` never blocks on loading.
    """

    def __init__(self, specs: list[ModelSpec], warmup: bool = True, poll_seconds: float = 1.0, loader=load_version):
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be >= 0 (0 = load once); received {poll_seconds}")
        self.warmup, self.poll_seconds, self._loader = warmup, float(poll_seconds), loader
        self._lock = threading.Lock()          # guards the tables below (held only for swaps and reads)
        self._reconcile_lock = threading.Lock()  # one poll/reload at a time
        self._specs: dict[str, ModelSpec] = {}
        self._served: dict[str, dict[int, LoadedVersion]] = {}
        self._status: dict[str, dict[int, VersionStatus]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # (name, version) -> fingerprint of the failed files
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reload(specs)
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="tfsonify-model-poll", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ queries
    @property
    def models(self) -> dict[str, dict[int, LoadedVersion]]:
        """A snapshot ``{name: {version: LoadedVersion}}`` of what is being served now."""
        with self._lock:
            return {name: dict(versions) for name, versions in self._served.items()}

    def specs(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._specs.values())

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The served version: ``version``, the one ``label`` names, or the newest; :class:`ServingError` 404 otherwise."""
        with self._lock:
            spec = self._specs.get(name)
            versions = self._served.get(name)
            if spec is None or versions is None:
                raise ServingError(f"Servable not found for request: model {name!r} (serving {sorted(self._served)})", 404)
            if label is not None:
                if label not in spec.labels:
                    raise ServingError(f"Unrecognized servable version label: {label!r} for model {name!r} "
                                       f"(labels {sorted(spec.labels)})", 404)
                version = spec.labels[label]
            if not versions:
                raise ServingError(f"Servable not found for request: model {name!r} has no available version "
                                   f"({self._describe(name)})", 404)
            if version is None:
                return versions[max(versions)]
            if version not in versions:
                raise ServingError(f"Servable not found for request: model {name!r} version {version} "
                                   f"(available versions {sorted(versions)})", 404)
            return versions[version]

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """States of the versions of ``name`` (all known, or just ``version``); :class:`ServingError` 404 if unknown."""
        with self._lock:
            if name not in self._specs:
                raise ServingError(f"Could not find any versions of model {name!r}", 404)
            states = self._status.get(name, {})
            if version is not None:
                if version not in states:
                    raise ServingError(f"Could not find version {version} of model {name!r}", 404)
                return [VersionStatus(**vars(states[version]))]
            return [VersionStatus(**vars(states[v])) for v in sorted(states)]

    def _describe(self, name: str) -> str:
        states = self._status.get(name, {})
        if not states:
            return f"no version folders under {self._specs[name].base_path}"
        return "; ".join(f"version {v}: {s.state}" + (f" ({s.error_message})" if s.error_message else "")
                         for v, s in sorted(states.items()))

    # --------------------------------------------------------------- lifecycle
    def reload(self, specs: list[ModelSpec]) -> list[str]:
        """Serve ``specs`` from now on (``HandleReloadConfigRequest``): load what is new, unload removed models.

        Blocks until the new versions are loaded. Returns error messages for models that end up
        with no available version (empty when everything is served).
        """
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique; received {names}")
        with self._reconcile_lock:
            with self._lock:
                removed = set(self._specs) - set(names)
                self._specs = {spec.name: spec for spec in specs}
                for name in names:
                    self._served.setdefault(name, {})
                    self._status.setdefault(name, {})
                for name in removed:  # requests holding one of these versions finish on it
                    self._served.pop(name, None)
                    self._status.pop(name, None)
            for name in removed:
                log.info("unloaded model %s (removed from the config)", name)
            for spec in specs:
                self._reconcile(spec)
        with self._lock:
            return [f"model {name!r}: {self._describe(name)}" for name in names if not self._served.get(name)]

    def poll(self) -> None:
        """One pass over every base path (what the background thread does every ``poll_seconds``)."""
        with self._reconcile_lock:
            for spec in self.specs():
                self._reconcile(spec)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # never let the poller die: log and try again next interval
                log.exception("polling the model base paths failed")

    def close(self) -> None:
        """Stop polling (the loaded versions stay served until the object is dropped)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def _on_disk(self, spec: ModelSpec) -> dict[int, Path]:
        try:
            entries = list(spec.base_path.iterdir())
        except OSError:
            return {}
        return {int(p.name): p for p in entries
                if p.name.isdecimal() and p.is_dir() and (p / "saved_model.pb").is_file()}

    def _reconcile(self, spec: ModelSpec) -> None:
        name = spec.name
        on_disk = self._on_disk(spec)
        fingerprints = {}
        for version, folder in on_disk.items():
            failed = self._failed.get((name, version))
            if failed is not None:
                fingerprints[version] = _fingerprint(folder)
                if fingerprints[version] != failed:  # the files changed: try again
                    del self._failed[(name, version)]
        loadable = [v for v in on_disk if (name, v) not in self._failed]
        with self._lock:
            served = set(self._served.get(name, {}))
        for version in sorted(set(spec.policy.select(loadable)) - served, reverse=True):
            self._load(spec, version, on_disk[version])
        # The choice among the versions that loaded (a failed one is not in it: the old one stays).
        loadable = [v for v in on_disk if (name, v) not in self._failed]
        wanted = set(spec.policy.select(loadable))
        vanished, retired = [], []
        with self._lock:
            versions = self._served.get(name)
            if versions is None:  # removed by a concurrent reload
                return
            if not wanted & set(versions):  # availability: keep what serves until a wanted version does
                for version in versions:
                    status = self._status[name][version]
                    if version not in on_disk and not status.error_message:
                        status.error_message = (f"version folder {spec.base_path / str(version)} was removed from "
                                                "disk; still served from memory until a new version is published")
                        vanished.append(status.error_message)
            else:
                retired = [v for v in versions if v not in wanted]
                for version in retired:
                    del versions[version]
                    state = self._status[name].get(version)
                    if state is not None:
                        state.state = "END"
                for version in list(self._status[name]):  # forget folders that disappeared and are not served
                    if version not in on_disk and version not in versions and self._status[name][version].error_code == "OK":
                        del self._status[name][version]
        for message in vanished:
            log.warning("%s", message)
        for version in retired:
            log.info("unloaded %s version %d (in-flight requests finish on it)", name, version)

    def _load(self, spec: ModelSpec, version: int, folder: Path) -> None:
        name = spec.name
        status = VersionStatus(version, "LOADING")
        with self._lock:
            if name not in self._status:
                return
            self._status[name][version] = status
        started = time.monotonic()
        try:
            loaded = self._loader(name, folder, self.warmup)
        except Exception as error:  # any load or warm-up failure: report, keep serving the old versions
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            with self._lock:
                status.state, status.error_code = "END", _error_code(error)
                status.error_message = f"Failed to load servable {name!r} version {version} from {folder}: {message}"
            self._failed[(name, version)] = _fingerprint(folder)
            log.error("%s", status.error_message)
            return
        with self._lock:
            if name not in self._served:
                return
            self._served[name][version] = loaded
            status.state, status.load_seconds, status.available_since = "AVAILABLE", time.monotonic() - started, time.monotonic()
        log.info("serving %s version %d (loaded and warmed up in %.1f s)", name, version, status.load_seconds)


class ModelRepository(ModelManager):
    """The newest version of every model under ``root`` (``root/NAME/VERSION/saved_model.pb``), loaded once.

    ``root`` may also be a single model base path (``models/NAME``), then served as ``NAME``.
    ``warmup``: call every signature once before serving. ``poll_seconds`` > 0 keeps watching for new versions.
    """

    def __init__(self, root: str | Path, warmup: bool = True, poll_seconds: float = 0.0):
        super().__init__(specs_from_folder(root), warmup=warmup, poll_seconds=poll_seconds)
