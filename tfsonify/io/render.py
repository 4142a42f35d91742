"""Render sonifications for people: WAV files, log-spectrogram PNGs and a manifest.

Output folder layout written by :func:`write_sonifications`::

    DIR/input.wav                 the input at the model's rate (float WAV)
    DIR/L05_f0012.wav             one per sonified map (block 5, map 12)
    DIR/L05_f0012.png             log-magnitude spectrograms: input above, sonification below
    DIR/manifest.json             layer, feature, activation, file names, sample rate

Every file is written atomically (temporary file, then rename); the manifest last. :func:`write_manifest` is the
one writer of ``manifest.json`` (the in-memory :func:`write_sonifications` and the file-by-file
:func:`tfsonify.engine.long_files.sonify_file` both call it), and :class:`output_folder` the one guard that leaves
nothing behind when a request fails part-way (no ``input.wav``, no empty folder it created).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import spectrogram

from tfsonify.io.audio import atomic_path, write_wav
from tfsonify.io.manifest import layer_key, manifest_entry, output_folder, write_manifest  # noqa: F401 (re-exported)

__all__ = ["log_spectrogram", "plot_pair", "check_writable_dir", "check_output_dir", "output_folder", "manifest_entry",
           "write_manifest", "write_sonifications"]


def log_spectrogram(waveform: np.ndarray, sample_rate: int, nperseg: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-magnitude spectrogram (dB) of mono ``[time]``: returns ``(freqs_hz, times_s, db [freq, frame])``."""
    nperseg = int(min(nperseg, max(16, waveform.size)))
    freqs, times, power = spectrogram(waveform, fs=sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4, mode="magnitude")
    return freqs, times, 20.0 * np.log10(power + 1e-8)


def plot_pair(path: str | os.PathLike, waveform: np.ndarray, sonification: np.ndarray, sample_rate: int, title: str) -> Path:
    """Save a PNG with the input's and the sonification's log spectrograms, one above the other (like Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True, constrained_layout=True)
    panels = [(axis, label, *log_spectrogram(signal, sample_rate))
              for axis, signal, label in ((axes[0], waveform, "input"), (axes[1], sonification, "sonification"))]
    # one colour scale for both panels, so a near-silent sonification looks dark, not like a full spectrum
    top = max(float(panel[-1].max()) for panel in panels)
    for axis, label, freqs, times, db in panels:
        mesh = axis.pcolormesh(times, freqs / 1000.0, db, shading="auto", vmin=top - 80.0, vmax=top, cmap="magma")
        axis.set_ylabel("kHz")
        axis.set_title(label, fontsize=9, loc="left")
        figure.colorbar(mesh, ax=axis, label="dB")
    axes[1].set_xlabel("time (s)")
    figure.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    plt.close(figure)
    return Path(path)


def check_writable_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and check it can be written; ``ValueError`` naming it otherwise."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"output folder {str(out_dir)!r} cannot be created: {error.strerror}") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(out_dir)!r} is not a writable directory")
    return out_dir


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """``ValueError`` if ``out_dir`` could not be created or written, *without creating it* (requests are checked
    before anything is written): an existing writable directory, or a missing one whose nearest existing parent
    is a writable directory."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {str(out_dir)!r} is not a writable directory")
        return out_dir
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(out_dir)!r} cannot be created: {str(parent)!r} is not a writable directory")
    return out_dir


def describe_layer(layer: int | str) -> str:
    """``"block 5"`` for a block index, ``"layer conv4"`` for a layer name (messages, plot titles)."""
    return f"layer {layer}" if isinstance(layer, str) else f"block {int(layer)}"


def sonification_stem(layer: int | str, feature: int) -> str:
    """The file stem of one map's sonification: ``L05_f0012`` (block 5) or ``conv4_f0003`` (layer ``conv4``)."""
    prefix = "".join(c if c.isalnum() or c in "-_." else "_" for c in layer) if isinstance(layer, str) else f"L{int(layer):02d}"
    return f"{prefix}_f{int(feature):04d}"


def write_sonifications(
    out_dir: str | os.PathLike,
    waveform: np.ndarray,
    sonifications: np.ndarray,
    layer: int | str,
    features: Sequence[int],
    activations: Sequence[float],
    sample_rate: int,
    source: str = "",
    extra: dict | None = None,
    plots: bool = True,
) -> dict:
    """Write the input, one WAV (and PNG) per map, and ``manifest.json``; return the manifest.

    Args:
        waveform: mono float32 ``[time]`` input at ``sample_rate``.
        sonifications: ``[k, time]``, row ``i`` for ``features[i]``.
        layer: a block index (``L05_f0012.wav``) or a layer name (``conv4_f0012.wav``).
        features: ``k`` map indices; ``activations``: their maximum activations.
        extra: more manifest fields (e.g. model path).
    If ``manifest.json`` already exists (an earlier layer in the same folder), the new
    entries are appended to it.
    """
    sonifications = np.asarray(sonifications, np.float32).reshape(len(features), -1)
    with output_folder(out_dir) as folder:
        out_dir = folder.path
        write_wav(folder.created(out_dir / "input.wav"), waveform, sample_rate)
        entries = []
        for feature, activation, sound in zip(features, activations, sonifications):
            stem = sonification_stem(layer, feature)
            write_wav(folder.created(out_dir / f"{stem}.wav"), sound, sample_rate)
            picture = None
            if plots:
                picture = f"{stem}.png"
                plot_pair(folder.created(out_dir / picture), waveform, sound, sample_rate,
                          f"{describe_layer(layer)}, map {feature} (max activation {activation:.3g})")
            entries.append(manifest_entry(layer, feature, activation, f"{stem}.wav", picture))
        folder.commit()
        return write_manifest(out_dir, entries, sample_rate, source, extra)
