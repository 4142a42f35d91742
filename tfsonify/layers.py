"""Layers and ops shared by CNN12 and the deconvnet.

Everything here is built from TFLite builtin ops and compiles under XLA
(``jit_compile=True``, hence TPU). In particular ``tf.nn.max_pool_with_argmax``
is *not* used: it has no XLA kernel and converts to TFLite only as a Flex op.
Switches are recorded as the in-window winner of the two samples of each window:
halves of a ``[B, T//2, 2C]`` reshape, or (dynamic length, static batch: LiteRT)
two one-hot stride-2 depthwise convolutions, which take odd lengths without a
computed shape. The LiteRT-facing choices (constant-shape reshapes, ``SPLIT`` and
``CONCATENATION`` rather than ``UNPACK``/``PACK``) keep the ops on XNNPACK.

Conventions: tensors are channels-last, ``[batch, time, channels]``, float32.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "peak_normalize",
    "max_pool_with_switches",
    "max_unpool",
    "time_shape",
    "add_channel_axis",
    "drop_channel_axis",
    "conv1d",
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


def add_channel_axis(x: tf.Tensor) -> tf.Tensor:
    """``[batch, time]`` -> ``[batch, time, 1]`` (a constant-shape reshape when ``batch`` is static)."""
    if x.shape[0] is not None and x.shape.rank == 2:
        return tf.reshape(x, [x.shape[0], -1 if x.shape[1] is None else x.shape[1], 1])
    return tf.expand_dims(x, -1)


def drop_channel_axis(x: tf.Tensor) -> tf.Tensor:
    """``[batch, time, 1]`` -> ``[batch, time]`` (a constant-shape reshape when ``batch`` is static)."""
    if x.shape[0] is not None and x.shape.rank == 3:
        return tf.reshape(x, [x.shape[0], -1 if x.shape[1] is None else x.shape[1]])
    return x[:, :, 0]


def conv1d(x: tf.Tensor, kernel: tf.Tensor, stride: int = 1, dilation: int = 1) -> tf.Tensor:
    """VALID 1-D convolution: ``x`` ``[batch, time, C_in]``, ``kernel`` ``[k, C_in, C_out]`` -> ``[batch, out, C_out]``.

    ``tf.nn.conv1d``'s own ``conv2d`` (same numbers); with a static batch and channels its 2-D views
    are constant-shape reshapes, which a dynamic-length LiteRT model keeps on XNNPACK (a traced
    ``conv1d`` adds ``EXPAND_DIMS`` ops the delegate does not take).
    """
    n, c_in, c_out = x.shape[0], x.shape[-1], kernel.shape[-1]
    if n is None or c_in is None or c_out is None:
        if dilation == 1:
            return tf.nn.conv1d(x, kernel, stride=stride, padding="VALID")
        return tf.nn.convolution(x, kernel, strides=stride, padding="VALID", dilations=dilation)
    time = -1 if x.shape[1] is None else x.shape[1]
    y = tf.nn.conv2d(tf.reshape(x, [n, 1, time, c_in]), tf.reshape(kernel, [1, *kernel.shape]),
                     strides=[1, 1, stride, 1], padding="VALID", dilations=[1, 1, dilation, 1])
    return tf.reshape(y, [n, -1 if y.shape[2] is None else y.shape[2], c_out])


def time_shape(x: tf.Tensor, time, static_time: int | None = None, channels=None):
    """The shape ``[batch, time, channels]`` of ``x`` with a new ``time``, as constants where possible.

    Args:
        x: ``[batch, time, channels]``; its static batch and channels are used when known.
        time: the new length, a scalar tensor (used when the shape must be computed).
        static_time: the new length as a Python int when known, else None.
        channels: the new channel count (default: ``x``'s last axis).

    Returns:
        A Python list of ints (an unknown ``time`` as ``-1``) when batch and channels are static,
        else an int32 ``[3]`` tensor. A constant shape keeps a dynamic-length LiteRT model on the
        XNNPACK delegate, which refuses computed shapes.
    """
    batch = x.shape[0]
    channels = x.shape[-1] if channels is None else channels
    if batch is not None and isinstance(channels, int):
        return [batch, -1 if static_time is None else static_time, channels]
    shape = tf.shape(x)
    return tf.stack([shape[0], time, shape[-1] if channels is None else channels])


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
    n, time, channels = x.shape
    if time is None and n is not None and channels is not None:
        first, second = _window_samples(x)
    else:  # the halves of [n, h, 2C]: SPLIT, which XNNPACK runs (UNPACK it does not)
        half = tf.shape(x)[1] // 2 if time is None else time // 2
        doubled = 2 * (tf.shape(x)[2] if channels is None else channels)
        pairs = tf.reshape(x[:, : 2 * half], time_shape(x, half, None if time is None else half, channels=doubled))
        first, second = tf.split(pairs, 2, axis=-1)
    switches = tf.cast(first >= second, x.dtype)
    return tf.maximum(first, second), switches


def _window_samples(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``x[:, 0:2h:2]`` and ``x[:, 1:2h:2]`` (``h = time // 2``) of a dynamic-length ``[batch, time, C]``, static batch and C.

    As two stride-2 depthwise convolutions with one-hot taps (``1·a + 0·b``: the samples exactly, for finite
    ``x``): they take any length, odd ones included, without a computed shape, so a dynamic-length LiteRT
    model runs them on XNNPACK. Stride-2 slices or a computed crop run single-threaded outside the
    delegate: measured 2.0-2.3x slower than fixed-length there; these run at the fixed-length speed.
    """
    n, channels = x.shape[0], x.shape[-1]
    # time as rows of a width-1 image: equal strides (2, 2) on both axes, which TensorFlow's CPU kernel requires
    # (the width-1 axis with a width-1 filter gives one column whatever its stride)
    frames = tf.reshape(x, [n, -1, 1, channels])
    picked = []
    for tap in (0, 1):
        taps = np.zeros((2, 1, channels, 1), x.dtype.as_numpy_dtype)
        taps[tap, 0] = 1.0
        out = tf.nn.depthwise_conv2d(frames, tf.constant(taps), strides=[1, 2, 2, 1], padding="VALID")
        picked.append(tf.reshape(out, [n, -1, channels]))
    return picked[0], picked[1]


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
    half = tf.shape(pooled)[1]
    first = pooled * switches
    second = pooled - first
    static = None if pooled.shape[1] is None else 2 * pooled.shape[1]
    # [n, h, 2C] -> [n, 2h, C] interleaves first/second in time (a CONCATENATION, which XNNPACK runs; PACK it does not)
    interleaved = tf.reshape(tf.concat([first, second], axis=-1), time_shape(pooled, 2 * half, static))
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
