"""Tensor helpers of the deconvnet's rules, all ``[batch, time, channels]`` and TFLite-builtin, XLA-safe ops.

Shapes are written for one ``[n, T, C]`` float32 tensor; ``length`` arguments may be Python ints (static,
constant slice bounds: LiteRT keeps them on XNNPACK) or int32 scalars (dynamic length).
"""
from __future__ import annotations

import tensorflow as tf

from tfsonify.layers import add_channel_axis, drop_channel_axis, time_shape

__all__ = ["ceil_div", "same_pads", "pad_time", "upsample", "spread", "strided_views", "dilate_kernel", "pick_rows",
           "transpose_matmul", "pairwise_sum", "transpose_rows"]


def ceil_div(a, b):
    return (a + b - 1) // b


def same_pads(length, stride: int, window: int):
    """TF/Keras ``"same"`` padding ``(left, right)`` of a window of ``window`` samples (effective size)."""
    if stride == 1:  # the same for every length: constants
        return (window - 1) // 2, window - 1 - (window - 1) // 2
    out = ceil_div(length, stride)
    total = tf.maximum((out - 1) * stride + window - length, 0)
    return total // 2, total - total // 2


def pad_time(x, left, right, value=0.0):
    if isinstance(left, int) and isinstance(right, int) and left == 0 and right == 0:
        return x
    return tf.pad(x, [[0, 0], [left, right], [0, 0]], constant_values=value)


def upsample(x: tf.Tensor, factor: int) -> tf.Tensor:
    """``[n, T, C]`` -> ``[n, (T - 1) * factor + 1, C]`` with ``factor - 1`` zeros between samples."""
    if factor == 1:
        return x
    stacked = tf.stack([x] + [tf.zeros_like(x)] * (factor - 1), axis=2)
    static = None if x.shape[1] is None else x.shape[1] * factor
    return tf.reshape(stacked, time_shape(x, tf.shape(x)[1] * factor, static))[:, : 1 - factor]


def spread(parts: list[tf.Tensor], stride: int) -> tf.Tensor:
    """Place window-position ``i`` values ``parts[i]`` (``[n, out, C]``) at ``j * stride + i``; sum overlaps.

    Returns ``[n, (out - 1) * stride + len(parts), C]``.
    """
    size = len(parts)
    if size == stride:
        static = None if parts[0].shape[1] is None else parts[0].shape[1] * size
        return tf.reshape(tf.stack(parts, axis=2), time_shape(parts[0], tf.shape(parts[0])[1] * size, static))
    total = None
    for i, part in enumerate(parts):
        placed = pad_time(upsample(part, stride), i, size - 1 - i)
        total = placed if total is None else total + placed
    return total


def strided_views(x: tf.Tensor, size: int, stride: int, out) -> list[tf.Tensor]:
    """The ``size`` strided views ``x[:, i + j * stride]`` for ``j < out``, each ``[n, out, C]``."""
    if size == stride:
        shape = tf.shape(x)
        channels = x.shape[-1] if x.shape[-1] is not None else shape[2]
        framed = tf.reshape(x[:, : out * size], tf.stack([shape[0], out, size, channels]))
        return tf.unstack(framed, num=size, axis=2)
    return [x[:, i : i + (out - 1) * stride + 1 : stride] for i in range(size)]


def dilate_kernel(kernel: tf.Tensor, dilation: int) -> tf.Tensor:
    """``[k, c_in, c_out]`` -> ``[d (k - 1) + 1, c_in, c_out]`` with zeros between taps."""
    if dilation == 1:
        return kernel
    k = kernel.shape[0]
    stacked = tf.stack([kernel] + [tf.zeros_like(kernel)] * (dilation - 1), axis=1)
    return tf.reshape(stacked, [k * dilation, kernel.shape[1], kernel.shape[2]])[: dilation * (k - 1) + 1]


def pick_rows(tensor: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``tensor[rows[i, 0], :, rows[i, 1]]``: ``[batch, time, channels]`` -> ``[n, time, 1]``."""
    return add_channel_axis(tf.gather_nd(tf.transpose(tensor, [0, 2, 1]), rows))


def transpose_matmul(g: tf.Tensor, kernel: tf.Tensor, stride: int, dilation: int) -> tf.Tensor:
    """``conv1d_transpose(g, kernel)`` (VALID) as ``g @ W`` (``W = [C_out, k * C_in]``) then an overlap-add.

    Args:
        g: ``[n, out, C_out]``.
        kernel: ``[k, C_in, C_out]`` (Keras layout).

    Returns:
        ``[n, (out - 1) * stride + dilation * (k - 1) + 1, C_in]``.
    """
    k, c_in, c_out = kernel.shape
    weights = tf.reshape(tf.transpose(kernel, [2, 0, 1]), [c_out, k * c_in])
    taps = tf.reshape(tf.matmul(tf.reshape(g, [-1, c_out]), weights),
                      time_shape(g, tf.shape(g)[1], g.shape[1], channels=k * c_in))
    taps = upsample(taps, stride)
    span = dilation * (k - 1)
    parts = [tf.pad(taps[:, :, j * c_in : (j + 1) * c_in], [[0, 0], [j * dilation, span - j * dilation], [0, 0]])
             for j in range(k)]
    return pairwise_sum(parts)


def pairwise_sum(parts: list[tf.Tensor]) -> tf.Tensor:
    """``tf.add_n(parts)`` as a tree of pairwise adds: LiteRT's XNNPACK delegate runs ``ADD`` on all cores but
    not ``ADD_N`` (single-threaded outside the delegate)."""
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def transpose_rows(signal: tf.Tensor, kernels: tf.Tensor, stride: int, dilation: int) -> tf.Tensor:
    """Transposed conv of one channel per row with a per-row kernel.

    Args:
        signal: ``[n, out]``, row ``i`` the only non-zero channel of map ``i``.
        kernels: ``[n, k, c_in]``, the conv kernel column of map ``i``.

    Returns:
        ``[n, (out - 1) * stride + dilation * (k - 1) + 1, c_in]``: ``conv1d_transpose`` of the one-hot
        maps with the full kernel, as framed taps times a per-row matrix (no one-hot, no wasted channels).
    """
    k = kernels.shape[1]
    span = dilation * (k - 1)
    if stride > 1:
        signal = drop_channel_axis(upsample(add_channel_axis(signal), stride))
    padded = tf.pad(signal, [[0, 0], [span, span]])
    # tap j: padded[span - j d : span - j d + out + span], i.e. up to j d samples before the end
    taps = [padded[:, span - j * dilation : (-j * dilation) or None] for j in range(k)]
    return tf.matmul(tf.stack(taps, axis=-1), kernels)
