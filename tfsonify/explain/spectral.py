"""Time-frequency views of explanations: an exactly invertible STFT, explanation spectrograms and masks, NMF.

The STFT is a Hann-windowed ``tf.signal.stft`` of the clip zero-padded by ``n_fft`` samples on both sides, so
``istft(stft(z))`` returns ``z`` to float32 rounding (tested). Defaults follow the sample rate: a 32 ms window
(256 samples at 8 kHz, 512 at 16 kHz) and a quarter-window hop (8 ms). Spectrograms are float32
``[n, frames, bins]`` with ``bins = n_fft // 2 + 1`` from 0 Hz to the Nyquist frequency.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["Spectral", "spectral_for", "relevance_map", "soft_mask", "nmf"]


@dataclass(frozen=True)
class Spectral:
    """STFT settings: ``n_fft`` (samples, window = FFT size) and ``hop`` (samples) at ``sample_rate`` (Hz)."""

    n_fft: int
    hop: int
    sample_rate: int

    def frames(self, length: int) -> int:
        return -(-(length + 2 * self.n_fft) // self.hop)  # tf.signal.stft with pad_end

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def band_edges_hz(self, bands: int) -> np.ndarray:
        return np.linspace(0.0, self.sample_rate / 2.0, bands + 1)

    def stft(self, z) -> tf.Tensor:
        """float32 ``[n, T]`` -> complex64 ``[n, frames, bins]``."""
        z = tf.convert_to_tensor(z, tf.float32)
        padded = tf.pad(z, [[0, 0], [self.n_fft, self.n_fft]])
        return tf.signal.stft(padded, self.n_fft, self.hop, self.n_fft, window_fn=tf.signal.hann_window, pad_end=True)

    def istft(self, spectrum, length: int) -> tf.Tensor:
        """complex64 ``[n, frames, bins]`` -> float32 ``[n, length]`` (inverse of :meth:`stft`)."""
        window = tf.signal.inverse_stft_window_fn(self.hop, forward_window_fn=tf.signal.hann_window)
        wave = tf.signal.inverse_stft(spectrum, self.n_fft, self.hop, self.n_fft, window_fn=window)
        return wave[:, self.n_fft : self.n_fft + length]

    def magnitude(self, z) -> np.ndarray:
        return np.abs(self.stft(z).numpy()).astype(np.float32)

    def apply_mask(self, z: np.ndarray, mask: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``z`` ``[n, T]`` filtered by real ``mask`` ``[n, frames, bins]`` (or ``[m, frames, bins]`` with
        ``z`` ``[1, T]`` or ``[m, T]``) -> float32 ``[m, T]``."""
        z = np.asarray(z, np.float32)
        spectrum = self.stft(z)
        out = []
        for s in range(0, mask.shape[0], batch_size):
            part = tf.constant(mask[s : s + batch_size], tf.float32)
            spec = spectrum if spectrum.shape[0] == 1 else spectrum[s : s + batch_size]
            out.append(self.istft(spec * tf.cast(part, tf.complex64), z.shape[1]).numpy())
        return np.concatenate(out, axis=0)


def spectral_for(sample_rate: int, n_fft: int | None = None, hop: int | None = None) -> Spectral:
    """The default :class:`Spectral` for a rate: a 32 ms window rounded to a power of two, hop a quarter of it."""
    if n_fft is None:
        n_fft = int(2 ** round(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4 if hop is None else int(hop)
    if n_fft < 8 or not 1 <= hop <= n_fft:
        raise ValueError(f"need n_fft >= 8 and 1 <= hop <= n_fft; received n_fft={n_fft}, hop={hop}")
    return Spectral(int(n_fft), hop, int(sample_rate))


def relevance_map(explanation, spectral: Spectral) -> np.ndarray:
    """Non-negative float32 ``[n, frames, bins]``: where in time and frequency an explanation puts its weight.

    A waveform-domain explanation (``[n, T]``, e.g. a sonification or a gradient) gives its magnitude STFT
    ``|STFT(e)|`` (the explanation heard as a sound); a mask-domain one (``[n, frames, bins]`` in [0, 1]) gives
    ``mask * |STFT(z)|`` (the part of the input it keeps).
    """
    values = explanation.values
    if explanation.domain == "waveform":
        return spectral.magnitude(values)
    return (np.clip(values, 0.0, None) * spectral.magnitude(explanation.inputs)).astype(np.float32)


def soft_mask(explanation, spectral: Spectral) -> np.ndarray:
    """A time-frequency mask ``[n, frames, bins]`` in [0, 1] of any explanation.

    A mask-domain explanation's own mask; a waveform-domain one's relevance map divided by its maximum per clip
    (a clip whose explanation is all zeros gets an all-zero mask).
    """
    if explanation.domain == "mask":
        return np.clip(explanation.values, 0.0, 1.0).astype(np.float32)
    relevance = relevance_map(explanation, spectral)
    peak = relevance.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, relevance / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def nmf(magnitude: np.ndarray, components: int, iterations: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Batched NMF ``V ~= W H`` of magnitude spectrograms (Lee & Seung's multiplicative updates, Euclidean).

    Args:
        magnitude: float32 ``[n, frames, bins]`` (non-negative).
        components: ``K``; iterations: update rounds; seed: of the uniform initialisation (with each clip's bytes).

    Returns:
        ``(W [n, bins, K], H [n, K, frames])`` float32, non-negative.
    """
    v = tf.constant(np.transpose(magnitude, (0, 2, 1)), tf.float32)  # [n, bins, frames]
    n, bins, frames = v.shape
    w0, h0 = [], []
    for clip in magnitude:  # per clip, seeded by (seed, its bytes): the same clip gets the same NMF in any batch
        rng = np.random.default_rng([int(seed), zlib.crc32(np.ascontiguousarray(clip).tobytes())])
        scale = float(np.sqrt(max(float(np.mean(clip)), 1e-12) / components))
        w0.append(rng.uniform(0.1, 1.0, (bins, components)) * scale)
        h0.append(rng.uniform(0.1, 1.0, (components, frames)) * scale)
    w0, h0 = tf.constant(np.stack(w0), tf.float32), tf.constant(np.stack(h0), tf.float32)
    w, h = _nmf_loop(v, w0, h0, tf.constant(int(iterations)))
    return w.numpy(), h.numpy()


@tf.function(reduce_retracing=True)
def _nmf_loop(v, w, h, iterations):
    eps = tf.constant(1e-9, tf.float32)

    def body(i, w, h):
        h = h * tf.matmul(w, v, transpose_a=True) / (tf.matmul(tf.matmul(w, w, transpose_a=True), h) + eps)
        w = w * tf.matmul(v, h, transpose_b=True) / (tf.matmul(w, tf.matmul(h, h, transpose_b=True)) + eps)
        return i + 1, w, h

    _, w, h = tf.while_loop(lambda i, w, h: i < iterations, body, [tf.constant(0), w, h])
    return w, h
