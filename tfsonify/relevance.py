"""Gradient relevance signals for raw-waveform CNN12 models (Muckenhirn et al., 2019, §2-3).

* :func:`guided_backprop` - relevance ``f[n] = d y_c / d x_n`` of one output unit with respect to
  the (peak-normalised) input waveform, where every ReLU passes back only positive gradients at
  positive inputs (Springenberg et al.'s guided backpropagation). Implemented as an explicit
  backward pass (switch-based unpooling, masked transposed convolutions) in TensorFlow.
* :func:`spectral_relevance` - ``|g[k]|`` with ``g = DFT^-1{f}`` (their Eq. 3-4) for
  ``k = 0 .. ceil(N/2) - 1``, and :func:`short_time_spectral_relevance`, its framed version.
* :func:`cumulative_frequency_response` - ``F_cum = sum_k F_k / ||F_k||_2`` over the first layer's
  filters (their Eq. 1).
* :func:`input_frequency_response` - ``s = |sum_k <x, f_k> DFT[f_k]|`` for input segments of the
  first layer's kernel width (their Eq. 2).

Input conventions follow :class:`tfsonify.Sonifier`: waveforms are float32 ``[time]`` or
``[batch, time]`` at the model's rate (8 kHz), any amplitude; the model scales them to unit peak
first, and relevance is taken with respect to that normalised waveform (so it does not depend on
the recording level).
"""
from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from tfsonify.models.cnn12 import BLOCKS, NUM_BLOCKS
from tfsonify.layers import max_pool_with_switches, max_unpool, peak_normalize
from tfsonify.sonifier import validate_waveform

__all__ = [
    "output_logits",
    "guided_backprop",
    "spectral_relevance",
    "short_time_spectral_relevance",
    "cumulative_frequency_response",
    "input_frequency_response",
]


def _head(model: keras.Model) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """Dense layers after the temporal pool as ``(kernel, bias)``: embedding, then classifier if present."""
    layers = [model.get_layer("embedding")]
    try:
        layers.append(model.get_layer("classifier"))
    except ValueError:
        pass
    return [(tf.convert_to_tensor(layer.kernel), tf.convert_to_tensor(layer.bias)) for layer in layers]


def output_logits(model: keras.Model, waveform) -> np.ndarray:
    """Pre-activation outputs ``[batch, units]`` (logits of the classifier, or the embedding) - the ``y_c`` relevance uses."""
    batch = validate_waveform(waveform, NUM_BLOCKS)
    hidden = tf.expand_dims(peak_normalize(tf.constant(batch)), -1)
    for conv, spec in zip(model.conv_layers, BLOCKS):
        hidden = tf.nn.relu(tf.nn.conv1d(hidden, conv.kernel, 1, "VALID") + conv.bias)
        if spec.pooled:
            hidden = max_pool_with_switches(hidden)[0]
    hidden = tf.reduce_mean(hidden, axis=1)
    for kernel, bias in _head(model):
        hidden = tf.matmul(hidden, kernel) + bias
    return hidden.numpy()


def _guided_backprop_graph(model: keras.Model, waveform: tf.Tensor, units: tf.Tensor) -> tf.Tensor:
    """``[batch, time]`` guided-backprop relevance of unit ``units[b]`` for each clip ``b``."""
    normalized = peak_normalize(waveform)
    hidden = tf.expand_dims(normalized, -1)
    saved = []
    for conv, spec in zip(model.conv_layers, BLOCKS):
        kernel = tf.convert_to_tensor(conv.kernel)
        pre = tf.nn.conv1d(hidden, kernel, 1, "VALID") + conv.bias
        active = tf.nn.relu(pre)
        switches = None
        if spec.pooled:
            active, switches = max_pool_with_switches(active)
        saved.append((kernel, pre, switches, tf.shape(hidden)[1]))
        hidden = active
    head = _head(model)
    grad = tf.one_hot(units, head[-1][0].shape[1], dtype=hidden.dtype)  # d y / d y
    for kernel, _ in reversed(head):
        grad = tf.matmul(grad, kernel, transpose_b=True)
    steps = tf.cast(tf.shape(hidden)[1], hidden.dtype)
    grad = tf.tile(tf.expand_dims(grad / steps, 1), tf.stack([1, tf.shape(hidden)[1], 1]))  # through the temporal mean
    for kernel, pre, switches, input_length in reversed(saved):
        if switches is not None:
            grad = max_unpool(grad, switches, tf.shape(pre)[1])
        grad = tf.where((pre > 0.0) & (grad > 0.0), grad, tf.zeros_like(grad))  # the guided ReLU rule
        shape = tf.stack([tf.shape(grad)[0], input_length, kernel.shape[1]])
        grad = tf.nn.conv1d_transpose(grad, kernel, shape, strides=1, padding="VALID")
    return tf.squeeze(grad, -1)


_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def _compiled(model: keras.Model, jit_compile: bool):
    """A ``tf.function`` of :func:`_guided_backprop_graph` for ``model`` (cached per model and XLA flag)."""
    per_model = _COMPILED.setdefault(model, {})
    if jit_compile not in per_model:
        per_model[jit_compile] = tf.function(
            lambda waveform, units: _guided_backprop_graph(model, waveform, units),
            input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
            jit_compile=jit_compile, reduce_retracing=True)
    return per_model[jit_compile]


def guided_backprop(model: keras.Model, waveform, unit: int | None = None, jit_compile: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Guided-backprop relevance of one output unit with respect to the input waveform.

    Args:
        model: a :class:`tfsonify.CNN12`. With a head, ``y_c`` is the classifier's pre-softmax
            (pre-sigmoid) logit ``c``; without, embedding unit ``c``.
        waveform: float32 ``[time]`` or ``[batch, time]`` at the model's rate (>= 2370 samples).
        unit: output index ``c``; default the largest logit of each clip.
        jit_compile: compile the backward pass with XLA (as on TPU).

    Returns:
        ``(relevance, units)``: float32 relevance shaped like ``waveform`` (``d y_c / d x_n`` of the
        peak-normalised input, guided), and the int32 unit used per clip (``[]`` or ``[batch]``).
    """
    batch = validate_waveform(waveform, NUM_BLOCKS)
    width = _head(model)[-1][0].shape[1]
    if unit is None:
        units = np.argmax(output_logits(model, batch), axis=1).astype(np.int32)
    else:
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < width:
            raise ValueError(f"unit must be an output index in 0..{width - 1}; received {unit!r}")
        units = np.full(batch.shape[0], unit, np.int32)
    relevance = _compiled(model, bool(jit_compile))(tf.constant(batch), tf.constant(units)).numpy()
    if np.ndim(waveform) == 1:
        return relevance[0], units[0]
    return relevance, units


def spectral_relevance(relevance: np.ndarray, sample_rate: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """Spectral relevance ``|DFT^-1{f}[k]|`` for ``k = 0 .. ceil(N/2) - 1`` (Muckenhirn et al., Eq. 4).

    Args:
        relevance: float ``[time]`` (or ``[batch, time]``) time-domain relevance ``f[n]``.
        sample_rate: Hz, for the frequency axis.

    Returns:
        ``(freqs_hz [ceil(N/2)], magnitude [..., ceil(N/2)])`` float64.
    """
    relevance = np.asarray(relevance, np.float64)
    if relevance.ndim not in (1, 2) or relevance.shape[-1] < 2:
        raise ValueError(f"relevance must be [time] or [batch, time] with time >= 2; received shape {relevance.shape}")
    size = relevance.shape[-1]
    bins = int(np.ceil(size / 2))
    magnitude = np.abs(np.fft.ifft(relevance, axis=-1))[..., :bins]
    return np.arange(bins) * sample_rate / size, magnitude


def short_time_spectral_relevance(relevance: np.ndarray, sample_rate: int = 8000, window_ms: float = 25.0,
                                  hop_ms: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time spectral relevance: :func:`spectral_relevance` of Hann-windowed frames of ``f[n]``.

    Args:
        relevance: float ``[time]``.
        window_ms, hop_ms: frame length and hop in milliseconds (25 ms as in the paper's analysis).

    Returns:
        ``(freqs_hz [bins], frame_centres_s [frames], magnitude [frames, bins])``.
    """
    relevance = np.asarray(relevance, np.float64)
    window = int(round(window_ms * sample_rate / 1000.0))
    hop = int(round(hop_ms * sample_rate / 1000.0))
    if relevance.ndim != 1 or window < 2 or hop < 1 or relevance.size < window:
        raise ValueError(f"need a [time] relevance of at least one {window}-sample window and a positive hop; "
                         f"received shape {relevance.shape}, window {window}, hop {hop}")
    starts = np.arange(0, relevance.size - window + 1, hop)
    frames = np.stack([relevance[s : s + window] for s in starts]) * np.hanning(window)
    freqs, magnitude = spectral_relevance(frames, sample_rate)
    return freqs, (starts + window / 2.0) / sample_rate, magnitude


def _first_layer_filters(model: keras.Model) -> np.ndarray:
    kernel = np.asarray(model.get_layer("conv1").kernel)  # [kW, 1, n_f]
    return kernel[:, 0, :].T.astype(np.float64)  # [n_f, kW]


def cumulative_frequency_response(model: keras.Model, n_fft: int = 512, sample_rate: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """First-layer cumulative frequency response ``F_cum = sum_k F_k / ||F_k||_2`` (Muckenhirn et al., Eq. 1).

    ``F_k`` is the magnitude of the ``n_fft``-point DFT of filter ``k`` (zero-padded), bins
    ``0 .. n_fft // 2``. All-zero filters are left out.

    Returns:
        ``(freqs_hz [n_fft // 2 + 1], response [n_fft // 2 + 1])`` float64.
    """
    filters = _first_layer_filters(model)
    if n_fft < filters.shape[1]:
        raise ValueError(f"n_fft must be at least the kernel width {filters.shape[1]}; received {n_fft}")
    spectra = np.abs(np.fft.rfft(filters, n=n_fft, axis=1))
    norms = np.linalg.norm(spectra, axis=1, keepdims=True)
    keep = norms[:, 0] > 0
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), (spectra[keep] / norms[keep]).sum(axis=0)


def input_frequency_response(model: keras.Model, waveform, n_fft: int = 512, hop: int | None = None,
                             sample_rate: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """Input-dependent first-layer response ``s = |sum_k <x, f_k> DFT[f_k]|`` (Muckenhirn et al., Eq. 2).

    Args:
        waveform: float ``[time]``; peak-normalised as the model does, then cut into segments of the
            first layer's kernel width ``kW`` (7 for CNN12) with hop ``hop`` (default ``kW``).
        n_fft: DFT size for ``DFT[f_k]``.

    Returns:
        ``(freqs_hz [n_fft // 2 + 1], response [segments, n_fft // 2 + 1])`` float64.
    """
    filters = _first_layer_filters(model)
    width = filters.shape[1]
    waveform = np.asarray(waveform, np.float64)
    if waveform.ndim != 1 or waveform.size < width or not np.all(np.isfinite(waveform)):
        raise ValueError(f"waveform must be a finite [time] array of at least {width} samples; received shape {waveform.shape}")
    hop = width if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"hop must be a positive number of samples; received {hop}")
    peak = np.max(np.abs(waveform))
    normalized = waveform / peak if peak > 0 else waveform
    starts = np.arange(0, normalized.size - width + 1, hop)
    segments = np.stack([normalized[s : s + width] for s in starts])  # [segments, kW]
    weights = segments @ filters.T  # <x, f_k> (the conv's cross-correlation)  [segments, n_f]
    spectra = np.fft.rfft(filters, n=n_fft, axis=1)  # complex [n_f, bins]
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), np.abs(weights @ spectra)
