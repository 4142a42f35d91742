"""Real audio from Debian packages: speech from ``espeak-ng``, drum one-shots from ``hydrogen-drumkits``.

Nothing is installed silently: a missing tool or package raises ``RuntimeError`` with the
exact ``apt-get install`` line. All waveforms are mono float32 ``[time]`` at ``sample_rate`` Hz.
"""
from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tfsonify.audio import load_audio

__all__ = ["require_debian", "speak", "drum_samples", "mix_at_snr"]

HYDROGEN_DRUMKITS = "/usr/share/hydrogen/data/drumkits"


def require_debian(executable: str | None, package: str, path: str | None = None) -> None:
    """Raise ``RuntimeError`` with the ``apt-get install`` line if ``executable``/``path`` is missing."""
    missing = (executable is not None and shutil.which(executable) is None) or (path is not None and not Path(path).exists())
    if missing:
        raise RuntimeError(f"{package} is not installed; install it with: sudo apt-get install -y {package}")


def speak(text: str, voice: str = "en", speed: int = 150, pitch: int = 50, sample_rate: int = 8000) -> np.ndarray:
    """Speak ``text`` with espeak-ng (``voice`` like ``en``, ``en-us+m3``, ``en+f2``); speed in words/min, pitch 0-99."""
    require_debian("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True, timeout=60)
        return load_audio(wav, sample_rate)


def drum_samples(pattern: str = "*", kit: str = "ElectricEmpireKit") -> list[Path]:
    """Sorted paths of hydrogen-drumkits one-shots in ``kit`` whose file name matches ``pattern`` (glob)."""
    require_debian(None, "hydrogen-drumkits", HYDROGEN_DRUMKITS)
    return sorted(Path(p) for p in glob.glob(f"{HYDROGEN_DRUMKITS}/{kit}/{pattern}.flac"))


def mix_at_snr(foreground: np.ndarray, background: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Mix so that ``10 log10(P_fg / P_bg) == snr_db`` (power over the whole clip).

    ``background`` is tiled or cut to the foreground's length. Returns
    ``(mixture, scaled_background)``, both float32 ``[time]``; the mixture is
    ``foreground + scaled_background`` exactly.
    """
    foreground = np.asarray(foreground, np.float32)
    background = np.resize(np.asarray(background, np.float32), foreground.shape)
    power_fg = float(np.mean(foreground**2))
    power_bg = float(np.mean(background**2))
    if power_fg == 0 or power_bg == 0:
        raise ValueError("cannot mix at an SNR when the foreground or the background is silent")
    scaled = background * np.float32(np.sqrt(power_fg / (power_bg * 10 ** (snr_db / 10.0))))
    return foreground + scaled, scaled
