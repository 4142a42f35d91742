"""Test oracle: sonification as a gradient (paper §3.2 restated; Springenberg et al., 2015).

The deconvnet output for map f of block L equals the gradient, with respect to the
peak-normalised input, of ``sum_t A_L[f, t] * stop_gradient(A_L[f, t])`` when every
ReLU's backward pass is replaced by ``relu(upstream)``. This module computes that
with ``tf.GradientTape``, ``tf.custom_gradient`` and TF's own ``max_pool1d``, sharing
no code with ``tfsonify.engine.sonifier``.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfsonify.models.cnn12 import BLOCKS


@tf.custom_gradient
def deconvnet_relu(x):
    def backward(upstream):
        return tf.nn.relu(upstream)

    return tf.nn.relu(x), backward


def gradient_sonification(model, waveform: np.ndarray, layer: int, feature: int) -> np.ndarray:
    """``[batch, time]`` -> ``[batch, time]`` sonification of map ``feature`` of block ``layer``."""
    raw = tf.constant(np.asarray(waveform, np.float32))
    peak = tf.reduce_max(tf.abs(raw), axis=-1, keepdims=True)
    x = raw / tf.where(peak > 0, peak, tf.ones_like(peak))
    with tf.GradientTape() as tape:
        tape.watch(x)
        hidden = tf.expand_dims(x, -1)
        for index in range(1, layer + 1):
            conv = model.get_layer(f"conv{index}")
            hidden = deconvnet_relu(tf.nn.conv1d(hidden, conv.kernel, 1, "VALID") + conv.bias)
            if BLOCKS[index - 1].pooled:
                hidden = tf.nn.max_pool1d(hidden, 2, 2, "VALID")
        activation = hidden[..., feature]
        objective = tf.reduce_sum(activation * tf.stop_gradient(activation))
    gradient = tape.gradient(objective, x).numpy()
    scale = np.abs(gradient).max(axis=-1, keepdims=True)
    scale[scale == 0] = 1.0
    return gradient / scale * peak.numpy()


def keras_gradient_sonification(model, waveform: np.ndarray, layer: str, feature: int, start: str | None = None) -> np.ndarray:
    """The same gradient formulation for any Keras model, run through the model's own Keras layers.

    The objective is ``sum A * stop_gradient(A)`` over every position of channel ``feature`` of layer
    ``layer``'s output, differentiated with respect to the output of layer ``start`` (the input-scaling
    layer) or the model input; every ReLU (fused activations, ``ReLU`` and ``Activation('relu')`` layers)
    has its backward replaced by ``relu(upstream)`` for the duration of the call. Pools, BatchNormalization,
    padding and strided/dilated convolutions are Keras' own ops and TF's own gradients.

    Returns ``[batch, time]`` scaled to unit peak times ``max|x|`` per clip, like ``Sonifier.sonify``.
    """
    import keras

    raw = np.asarray(waveform, np.float32)
    source = model.inputs[0] if start is None else model.get_layer(start).output
    feed = raw if len(model.inputs[0].shape) == 2 else raw[..., None]
    x = tf.constant(feed) if start is None else tf.convert_to_tensor(keras.Model(model.inputs[0], source)(feed))
    sub = keras.Model(source, model.get_layer(layer).output)
    restore = []
    for op in sub.layers:
        activation = getattr(op, "activation", None)
        if isinstance(op, keras.layers.ReLU):
            restore.append((op, "call", op.__dict__.get("call")))
            op.call = lambda inputs, *args, **kwargs: deconvnet_relu(inputs)
        elif activation is not None and getattr(activation, "__name__", "") == "relu":
            restore.append((op, "activation", activation))
            op.activation = deconvnet_relu
    try:
        with tf.GradientTape() as tape:
            tape.watch(x)
            activation = sub(x, training=False)[..., feature]
            objective = tf.reduce_sum(activation * tf.stop_gradient(activation))
        gradient = tape.gradient(objective, x).numpy().reshape(raw.shape)
    finally:
        for op, attribute, value in restore:
            if attribute == "call" and value is None:
                del op.call
            else:
                setattr(op, attribute, value)
    peak = np.abs(raw).max(axis=-1, keepdims=True)
    scale = np.abs(gradient).max(axis=-1, keepdims=True)
    scale[scale == 0] = 1.0
    return gradient / scale * peak
