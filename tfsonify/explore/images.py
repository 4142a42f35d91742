"""What the page draws, computed on the server: log spectrograms and activation overviews as PNG, waveform
envelopes, WAV bytes. Plain numpy + PIL (no matplotlib figure per request: a click must stay well under 300 ms).
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

__all__ = ["DB_RANGE", "LONG_SAMPLES", "spectrogram_db", "spectrogram_png", "overview_png", "envelope", "wav_bytes", "MAX_COLUMNS"]

DB_RANGE = 80.0
"""Dynamic range (dB) of every spectrogram image below the input's peak."""
MAX_COLUMNS = 2400
"""Widest image the server renders (columns are max-pooled down to this)."""


@lru_cache(maxsize=2)
def _lut(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


LONG_SAMPLES = 1 << 20
"""Clips longer than this (131 s at 8 kHz) get their spectrogram computed in chunks and max-pooled to the image
width on the way, never as a whole ``[freq, frame]`` array."""


def spectrogram_db(waveform: np.ndarray, sample_rate: int, nperseg: int = 256, columns: int | None = MAX_COLUMNS,
                   chunk_frames: int = 8192) -> np.ndarray:
    """Log-magnitude spectrogram of mono ``[time]``: float32 ``[freq, frame]`` in dB (low frequencies first),
    Hann window of ``nperseg`` samples, 75 % overlap (as :func:`tfsonify.io.render.log_spectrogram`).

    A clip longer than :data:`LONG_SAMPLES` with more frames than ``columns`` is computed ``chunk_frames`` frames
    at a time and returned max-pooled to ``columns`` columns with the bins :func:`spectrogram_png` would use, so
    the image is the same as from the whole spectrogram and memory stays at one chunk (each frame depends only on
    its own ``nperseg`` samples).
    """
    from tfsonify.io.render import log_spectrogram

    waveform = np.asarray(waveform, np.float32)
    hop = nperseg - nperseg * 3 // 4
    frames = (waveform.size - nperseg) // hop + 1 if waveform.size >= nperseg else 0
    if columns is None or waveform.size <= LONG_SAMPLES or frames <= columns:
        _, _, db = log_spectrogram(waveform, sample_rate, nperseg)
        return db.astype(np.float32)
    edges = np.linspace(0, frames, columns + 1).astype(int)[:-1]  # as _pool_columns
    out = np.full((nperseg // 2 + 1, columns), -np.inf, np.float32)
    for first in range(0, frames, chunk_frames):
        last = min(frames, first + chunk_frames)
        _, _, db = log_spectrogram(waveform[first * hop:(last - 1) * hop + nperseg], sample_rate, nperseg)
        bins = np.searchsorted(edges, np.arange(first, last), side="right") - 1
        starts = np.flatnonzero(np.r_[True, np.diff(bins) > 0])
        pooled = np.maximum.reduceat(db.astype(np.float32), starts, axis=1)
        out[:, bins[starts]] = np.maximum(out[:, bins[starts]], pooled)
    return out


def _pool_columns(image: np.ndarray, columns: int) -> np.ndarray:
    """Max-pool ``[rows, width]`` along width down to at most ``columns``."""
    width = image.shape[1]
    if width <= columns:
        return image
    edges = np.linspace(0, width, columns + 1).astype(int)
    return np.maximum.reduceat(image, edges[:-1], axis=1)


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def spectrogram_png(db: np.ndarray, top_db: float) -> bytes:
    """PNG of a ``[freq, frame]`` dB spectrogram on the scale ``[top_db - DB_RANGE, top_db]`` (magma), high
    frequencies at the top. Pass the input's peak dB as ``top_db`` for the input and its sonifications alike, so
    they share one scale."""
    image = _pool_columns(db, MAX_COLUMNS)[::-1]
    level = np.clip((image - (top_db - DB_RANGE)) / DB_RANGE, 0.0, 1.0)
    return _png(_lut("magma")[(level * 255).astype(np.uint8)])


def overview_png(activations: np.ndarray, order: np.ndarray, row_height: int = 1) -> bytes:
    """PNG of activations ``[steps, maps]``: one row per map in ``order`` (top row = ``order[0]``), time across,
    each row scaled by the layer's largest activation (viridis; 0 = dark)."""
    image = _pool_columns(np.asarray(activations, np.float32).T[order], MAX_COLUMNS)
    peak = float(image.max()) if image.size else 0.0
    level = image / peak if peak > 0 else np.zeros_like(image)
    rgb = _lut("viridis")[(np.clip(level, 0.0, 1.0) * 255).astype(np.uint8)]
    if row_height > 1:
        rgb = np.repeat(rgb, row_height, axis=0)
    return _png(rgb)


def envelope(waveform: np.ndarray, bins: int = 1200) -> dict:
    """Min/max per bin of mono ``[time]`` for drawing: ``{"min": [...], "max": [...], "peak": float}``."""
    waveform = np.asarray(waveform, np.float32)
    bins = int(max(1, min(bins, waveform.size)))
    edges = np.linspace(0, waveform.size, bins + 1).astype(int)
    low = np.minimum.reduceat(waveform, edges[:-1])
    high = np.maximum.reduceat(waveform, edges[:-1])
    return {"min": np.round(low, 4).tolist(), "max": np.round(high, 4).tolist(),
            "peak": float(np.max(np.abs(waveform))) if waveform.size else 0.0}


def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV of float ``[time]`` in [-1, 1] (clipped): plays in every browser; exact float WAVs
    are what ``tfsonify sonify`` writes."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.asarray(waveform, np.float32), -1.0, 1.0), int(sample_rate), subtype="PCM_16",
                    format="WAV")
    return buffer.getvalue()
