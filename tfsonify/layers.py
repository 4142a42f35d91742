"""Layers and ops shared by CNN12 and the deconvnet.

Everything here is built from TFLite builtin ops and compiles under XLA
(``jit_compile=True``, hence TPU). In particular ``tf.nn.max_pool_with_argmax``
is *not* used: it has no XLA kernel and converts to TFLite only as a Flex op.
Switches are recorded as the in-window winner of a ``[B, T//2, 2, C]`` reshape.

Conventions: tensors are channels-last, ``[batch, time, channels]``, float32.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = [
    "peak_normalize",
    "max_pool_with_switches",
    "max_unpool",
    "PeakNormalization",
    "MaxPool1DWithSwitches",
]


def peak_normalize(waveform: tf.Tensor) -> tf.Tensor:
    """Scale each clip to unit peak amplitude (the paper's only preprocessing, §3.1).

    Args:
        waveform: float32 ``[batch, time]``, any amplitude.

    Returns:
        float32 ``[batch, time]`` with ``max|x| == 1`` per clip. A silent clip
        (all zeros) stays all zeros; there is no division by zero.
    """
    peak = tf.reduce_max(tf.abs(waveform), axis=-1, keepdims=True)
    safe_peak = tf.where(peak > 0.0, peak, tf.ones_like(peak))
    return waveform / safe_peak


def max_pool_with_switches(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Max pool (size 2, stride 2, valid) that also returns the switches.

    Args:
        x: ``[batch, time, channels]``. An odd trailing sample is dropped, as
            ``MaxPool1D(2)`` and PyTorch's ``MaxPool1d(2)`` do.

    Returns:
        ``(pooled, switches)``, both ``[batch, time // 2, channels]`` and of
        ``x``'s dtype. ``switches`` is 1.0 where the first sample of the window
        holds the maximum and 0.0 where the second does. Ties go to the first
        sample, like ``tf.argmax``, TF's max-pool gradient and PyTorch.
    """
    batch = tf.shape(x)[0]
    half = tf.shape(x)[1] // 2
    channels = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[2]
    pairs = tf.reshape(x[:, : 2 * half, :], tf.stack([batch, half, 2, channels]))
    first, second = tf.unstack(pairs, num=2, axis=2)
    switches = tf.cast(first >= second, x.dtype)
    return tf.maximum(first, second), switches


def max_unpool(pooled: tf.Tensor, switches: tf.Tensor, length: tf.Tensor | int) -> tf.Tensor:
    """Inverse of :func:`max_pool_with_switches` (Dosovitskiy et al., 2015).

    Places each pooled value at the position its switch recorded and zero at the
    other position of the window.

    Args:
        pooled: ``[batch, time // 2, channels]`` values to place (any sign).
        switches: ``[batch, time // 2, channels]`` from the forward pool.
        length: the pre-pool length ``time``; for odd lengths the trailing
            sample the pool dropped comes back as zero.

    Returns:
        ``[batch, length, channels]``.
    """
    batch = tf.shape(pooled)[0]
    half = tf.shape(pooled)[1]
    channels = pooled.shape[-1] if pooled.shape[-1] is not None else tf.shape(pooled)[2]
    first = pooled * switches
    second = pooled - first
    interleaved = tf.reshape(tf.stack([first, second], axis=2), tf.stack([batch, 2 * half, channels]))
    return tf.pad(interleaved, [[0, 0], [0, length - 2 * half], [0, 0]])


@keras.saving.register_keras_serializable(package="tfsonify")
class PeakNormalization(keras.layers.Layer):
    """Keras layer form of :func:`peak_normalize`: ``[batch, time] -> [batch, time]``."""

    def call(self, inputs):
        return peak_normalize(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfsonify")
class MaxPool1DWithSwitches(keras.layers.Layer):
    """``MaxPool1D(pool_size=2, strides=2)`` returning ``(pooled, switches)``.

    Input ``[batch, time, channels]``; both outputs ``[batch, time // 2, channels]``.
    See :func:`max_pool_with_switches` for the switch convention. Runs under XLA
    and converts to TFLite with builtin ops only.
    """

    def call(self, inputs):
        return max_pool_with_switches(inputs)

    def compute_output_shape(self, input_shape):
        time = None if input_shape[1] is None else input_shape[1] // 2
        shape = (input_shape[0], time, input_shape[2])
        return shape, shape
