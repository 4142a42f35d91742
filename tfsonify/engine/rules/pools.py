"""Pools: max-unpooling with recorded switches, and the average's gradient."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfsonify.engine import ops
from tfsonify.engine.relu_rules import DECONVNET
from tfsonify.layers import MaxPool1DWithSwitches, max_pool_with_switches, max_unpool
from tfsonify.engine.rules.base import WindowRule, register_rule, spatial_axis, unsupported


@register_rule(MaxPool1DWithSwitches)
class SwitchPoolRule(WindowRule):
    """CNN12's pool (window 2, stride 2): unpooled with the switches the layer itself returns."""

    per_channel = True
    extends_block = True
    window, stride, padding = 2, 2, "valid"

    def __init__(self, context):
        super().__init__(context)
        if self.in_layout != ("T", "C"):
            raise unsupported(self.layer, f"it needs a [time, channels] input; its input layout is {list(self.in_layout)}")

    def forward(self, inputs, channels=None):
        pooled, switches = self.layer(inputs[0])
        return pooled, (switches, tf.shape(inputs[0])[1])

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        switches, length = state
        return [max_unpool(upstream, take(switches), length)]


class _PoolRule(WindowRule):
    """``MaxPooling1D/2D`` and ``AveragePooling1D/2D`` along time."""

    per_channel = True
    extends_block = True

    def __init__(self, context):
        super().__init__(context)
        layer = self.layer
        two_d = isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
        time_axis = spatial_axis(layer, self.in_layout, two_d)
        pool, strides = tuple(layer.pool_size), tuple(layer.strides)
        if len(pool) == 2 and (pool[1 - time_axis] != 1 or strides[1 - time_axis] != 1):
            raise unsupported(layer, f"pool_size={pool}, strides={strides} are not 1 along the singleton axis")
        self.window, self.stride = int(pool[time_axis]), int(strides[time_axis])  # 1-D: time_axis 0
        self.padding = layer.padding


@register_rule(keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
class MaxPoolRule(_PoolRule):
    """Max pooling: unpooled with switches from an in-window comparison (ties to the first sample)."""

    def forward(self, inputs, channels=None):
        x = inputs[0]
        length = tf.shape(x)[1]
        window, stride = self.window, self.stride
        if window == 2 and stride == 2 and self.padding == "valid":  # CNN12's pool: float switches
            pooled, switches = max_pool_with_switches(x)
            return pooled, ("pair", switches, length)
        left, right = self.pads(length)
        padded = ops.pad_time(x, left, right, value=float("-inf")) if self.padding == "same" else x
        out = (tf.shape(padded)[1] - window) // stride + 1
        views = ops.strided_views(padded, window, stride, out)
        best, index = views[0], tf.zeros_like(views[0], dtype=tf.int32)
        for i, view in enumerate(views[1:], start=1):
            index = tf.where(view > best, tf.fill(tf.shape(index), i), index)  # ties stay with the first
            best = tf.maximum(best, view)
        return best, ("index", index, length, left, right)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        if state[0] == "pair":
            return [max_unpool(upstream, take(state[1]), state[2])]
        _, index, length, left, right = state
        index = take(index)
        parts = [upstream * tf.cast(tf.equal(index, i), upstream.dtype) for i in range(self.window)]
        return [self.unpad(ops.spread(parts, self.stride), length, left, right)]


@register_rule(keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)
class AveragePoolRule(_PoolRule):
    """Average pooling: the upstream divided by each window's count, spread over the window."""

    def forward(self, inputs, channels=None):
        x = inputs[0]
        length = tf.shape(x)[1]
        window, stride = self.window, self.stride
        left, right = self.pads(length)
        padded = ops.pad_time(x, left, right)
        out = (tf.shape(padded)[1] - window) // stride + 1
        total = tf.add_n(ops.strided_views(padded, window, stride, out))
        if self.padding == "same":
            ones = ops.pad_time(tf.ones(tf.stack([1, length, 1]), x.dtype), left, right)
            count = tf.add_n(ops.strided_views(ones, window, stride, out))
        else:
            count = tf.constant(float(window), x.dtype)
        return total / count, (length, left, right, count)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        length, left, right, count = state
        share = upstream / count
        return [self.unpad(ops.spread([share] * self.window, self.stride), length, left, right)]
