"""Convolutions: ``Conv1D`` and ``Conv2D`` acting along time (paper §3.2: transposed convolution)."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfsonify.engine import ops
from tfsonify.engine.relu_rules import DECONVNET
from tfsonify.layers import conv1d, drop_channel_axis
from tfsonify.engine.rules.base import WindowRule, activation_name, along_time, register_rule, spatial_axis, unsupported


@register_rule(keras.layers.Conv1D, keras.layers.Conv2D)
class ConvRule(WindowRule):
    """``Conv1D``, or ``Conv2D`` acting along time: backward = transposed convolution with the layer's own kernel."""

    opens_block = True

    def __init__(self, context):
        super().__init__(context)
        layer = self.layer
        self.time_axis = spatial_axis(layer, self.in_layout, isinstance(layer, keras.layers.Conv2D))
        if getattr(layer, "groups", 1) != 1:
            raise unsupported(layer, f"groups={layer.groups} (only 1)")
        activation = activation_name(layer)
        if activation not in ("relu", "linear"):
            raise unsupported(layer, f"activation {activation!r} (only relu or linear)")
        kernel = along_time(layer, "kernel", layer.kernel_size, self.time_axis)
        self.stride = along_time(layer, "strides", layer.strides, self.time_axis)
        self.dilation = along_time(layer, "dilation_rate", layer.dilation_rate, self.time_axis)
        self.window = self.dilation * (kernel - 1) + 1
        self.padding = layer.padding
        self.relu = activation == "relu"
        self.out_channels = int(layer.filters)

    def kernel(self) -> tf.Tensor:
        """``[k, C_in, C_out]``, read from the layer's variable at call time."""
        kernel = tf.convert_to_tensor(self.layer.kernel)
        if kernel.shape.rank == 4:  # Conv2D as 1-D: drop the singleton spatial axis
            kernel = kernel[:, 0] if self.time_axis == 0 else kernel[0]
        return kernel

    def _conv(self, padded: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return conv1d(padded, kernel, self.stride, self.dilation)

    def forward(self, inputs, channels=None):
        x = inputs[0]
        length = tf.shape(x)[1]
        kernel = self.kernel()
        bias = None if self.layer.bias is None else tf.convert_to_tensor(self.layer.bias)
        left, right = self.pads(length)
        if channels is not None and self.lowering.constant_kernels:  # full conv, then the chosen channels (int8)
            y = self._conv(ops.pad_time(x, left, right), kernel)
            y = y if bias is None else y + bias
            y = tf.gather(tf.nn.relu(y) if self.relu else y, channels, axis=2)
            return y, (length, left, y)
        if channels is not None and self.lowering.matmul_transposes:  # from the [C_out, k, C_in] layout (one copy)
            kernel = tf.transpose(tf.gather(tf.transpose(kernel, [2, 0, 1]), channels), [1, 2, 0])
            bias = None if bias is None else tf.gather(bias, channels)
        elif channels is not None:
            kernel = tf.gather(kernel, channels, axis=2)
            bias = None if bias is None else tf.gather(bias, channels)
        y = self._conv(ops.pad_time(x, left, right), kernel)
        if bias is not None:
            y = y + bias
        if self.relu:
            y = tf.nn.relu(y)
        return y, (length, left, y)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        length, left, output = state
        if self.relu:
            upstream = relu(upstream, output, take)
        return [self.transpose(upstream, length, left, kernels)]

    def transpose(self, g: tf.Tensor, length, left, selected: tf.Tensor | None) -> tf.Tensor:
        """Transposed convolution of ``g`` ``[n, out, C_out]`` with the layer's kernel -> ``[n, length, C_in]``.

        ``selected`` (int32 ``[n]``): ``g`` has one channel per row, the output channel ``selected[i]``
        of the conv; row ``i`` is then transposed with that channel's kernel column only.
        """
        lowering = self.lowering
        kernel = self.kernel()
        k, dilation, stride = kernel.shape[0], self.dilation, self.stride
        right = self.pads(length)[1]
        padded_length = length + left + right
        exact = self.padding == "valid" and stride == 1  # the transpose already has the input's length
        if selected is not None and k <= 64 and not lowering.constant_kernels:
            if lowering.matmul_transposes:  # gather rows of the [C_out, k, C_in] layout TFLite's CONV_2D stores too
                rows = tf.gather(tf.transpose(kernel, [2, 0, 1]), selected)
            else:
                rows = tf.transpose(tf.gather(kernel, selected, axis=2), [2, 0, 1])
            full = ops.transpose_rows(drop_channel_axis(g), rows, stride, dilation)
            return full if exact else self.unpad(full, length, left, right)
        if selected is not None:  # one-hot rows through the full kernel (bounded memory; constant filters)
            g = g * tf.expand_dims(tf.one_hot(selected, kernel.shape[2], dtype=g.dtype), 1)
        if lowering.matmul_transposes:
            full = ops.transpose_matmul(g, kernel, stride, dilation)
            return full if exact else self.unpad(full, length, left, right)
        shape = tf.stack([tf.shape(g)[0], padded_length, kernel.shape[1]])
        full = tf.nn.conv1d_transpose(g, ops.dilate_kernel(kernel, dilation), shape, strides=stride, padding="VALID")
        return full if self.padding == "valid" else full[:, left : left + length]
