"""A deconvnet for any raw-waveform Keras CNN, built by walking the model's Keras graph (paper §3.2).

:class:`DeconvNet` reads a Keras 3 model (Functional or Sequential) from its waveform input
(``[batch, time]`` or ``[batch, time, 1]``) and turns every layer on the way into a *step*
with a forward rule (which records what the way back needs, e.g. max-pool switches) and a
backward rule (Zeiler & Fergus' deconvnet):

=============================================  ===========================================================
layer                                          backward rule
=============================================  ===========================================================
``Conv1D``; ``Conv2D`` as 1-D on                transposed convolution with the layer's own kernel: stride,
``[time, 1, channels]`` / ``[1, time, ch]``     dilation and valid/same/causal padding inverted exactly; no
                                                bias. A fused ``activation="relu"`` is a ReLU step.
``ReLU``, ``Activation("relu")``                ``relu(upstream)`` (the deconvnet rule, not the gradient's mask)
``MaxPooling1D``/``MaxPooling2D`` (as 1-D)      max-unpooling with the switches recorded in the forward pass
                                                (any pool size and stride, overlapping windows, valid/same)
``tfsonify.MaxPool1DWithSwitches`` (CNN12's     max-unpooling with the switches the layer itself returns
pools; outputs ``(pooled, switches)``)          (its second output; only ``pooled`` is a feature map)
``AveragePooling1D``/``2D`` (as 1-D)            the average's gradient (spread over the window)
``BatchNormalization`` (inference),             multiply by the per-channel scale (their gradient)
``Rescaling``
``Dropout``, ``SpatialDropout1D/2D``,           identity
``GaussianNoise``, ``GaussianDropout``,
``Identity``, ``Reshape``/``Permute`` that
only insert, drop or move singleton axes
``ZeroPadding1D/2D``, ``Cropping1D/2D`` on      crop / zero-pad the time axis back
the time axis
``Add`` (residual)                              the upstream to every input
=============================================  ===========================================================

Leading *input-scaling* layers (``tfsonify.PeakNormalization`` or any layer whose class sets
``sonify_input_scaling = True``, e.g. a per-frame standardisation) are applied in the forward
pass and the deconvnet ends at their output, as the paper's sonification of CNN12 ends at the
peak-normalised waveform.

The result of the steps equals the gradient of ``sum_t A[f, t] * stop_gradient(A[f, t])`` with
respect to the deconvnet's input when every ReLU's backward is replaced by ``relu(upstream)``
(tests/oracle.py). Switches come from an in-window comparison (ties to the first sample, as
TF's max-pool gradient), never ``tf.nn.max_pool_with_argmax``: every op here has an XLA kernel
and a TFLite builtin.

Internally every tensor is ``[batch, time, channels]`` (a Conv2D's singleton axis is dropped);
the layout of the Keras tensor is only used to check that a layer works along time.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify.layers import (MaxPool1DWithSwitches, PeakNormalization, add_channel_axis, conv1d, drop_channel_axis,
                             max_pool_with_switches, max_unpool, time_shape)

__all__ = ["SUPPORTED_LAYERS", "DeconvNet", "LayerInfo", "is_input_scaling"]

SUPPORTED_LAYERS = (
    "Conv1D and Conv2D-as-1-D (any kernel, strides, dilation_rate, padding valid/same/causal, groups=1, "
    "channels_last, activation relu or linear), ReLU/Activation('relu'|'linear'), MaxPooling1D/2D, "
    "MaxPool1DWithSwitches (its switches output used for unpooling) and "
    "AveragePooling1D/2D along time, BatchNormalization on the channel axis, Rescaling, Dropout, "
    "SpatialDropout1D/2D, GaussianNoise, GaussianDropout, Identity, Reshape/Permute moving singleton axes, "
    "ZeroPadding1D/2D and Cropping1D/2D on the time axis, Add, InputLayer, and input-scaling layers "
    "(PeakNormalization or sonify_input_scaling = True) directly after the input"
)

_IDENTITY = (keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
             keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.Identity,
             keras.layers.ActivityRegularization)
_LAYOUTS = {("T",), ("T", "C"), ("T", "1", "C"), ("1", "T", "C")}


def is_input_scaling(layer) -> bool:
    """True for layers the deconvnet treats as input scaling (``PeakNormalization``, ``sonify_input_scaling``)."""
    return isinstance(layer, PeakNormalization) or bool(getattr(type(layer), "sonify_input_scaling", False))


class Unsupported(ValueError):
    """A layer the deconvnet cannot invert; the message names the layer, its class and what is supported."""


def _unsupported(layer, why: str) -> Unsupported:
    return Unsupported(f"layer {layer.name!r} ({type(layer).__name__}) is not supported by the deconvnet: {why}. "
                       f"Supported: {SUPPORTED_LAYERS}")


@dataclass(frozen=True)
class LayerInfo:
    """A sonifiable layer.

    Attributes:
        name: the Keras layer name (pass it as ``layer=``).
        class_name: its Keras class.
        block: CNN-style block index (1-based) when this layer ends a conv block, else None.
        channels: number of feature maps.
        receptive_field: input samples one output step sees.
        stride: input samples between output steps (product of the strides below).
        min_length: fewest input samples giving at least one output step.
    """

    name: str
    class_name: str
    block: int | None
    channels: int
    receptive_field: int
    stride: int
    min_length: int


# --------------------------------------------------------------------------- tensor helpers
def _ceil_div(a, b):
    return (a + b - 1) // b


def _same_pads(length, stride: int, window: int):
    """TF/Keras ``"same"`` padding ``(left, right)`` of a window of ``window`` samples (effective size)."""
    if stride == 1:  # the same for every length: constants
        return (window - 1) // 2, window - 1 - (window - 1) // 2
    out = _ceil_div(length, stride)
    total = tf.maximum((out - 1) * stride + window - length, 0)
    return total // 2, total - total // 2


def _pad_time(x, left, right, value=0.0):
    if isinstance(left, int) and isinstance(right, int) and left == 0 and right == 0:
        return x
    return tf.pad(x, [[0, 0], [left, right], [0, 0]], constant_values=value)


def _upsample(x: tf.Tensor, factor: int) -> tf.Tensor:
    """``[n, T, C]`` -> ``[n, (T - 1) * factor + 1, C]`` with ``factor - 1`` zeros between samples."""
    if factor == 1:
        return x
    stacked = tf.stack([x] + [tf.zeros_like(x)] * (factor - 1), axis=2)
    static = None if x.shape[1] is None else x.shape[1] * factor
    return tf.reshape(stacked, time_shape(x, tf.shape(x)[1] * factor, static))[:, : 1 - factor]


def _spread(parts: list[tf.Tensor], stride: int) -> tf.Tensor:
    """Place window-position ``i`` values ``parts[i]`` (``[n, out, C]``) at ``j * stride + i``; sum overlaps.

    Returns ``[n, (out - 1) * stride + len(parts), C]``.
    """
    size = len(parts)
    if size == stride:
        static = None if parts[0].shape[1] is None else parts[0].shape[1] * size
        return tf.reshape(tf.stack(parts, axis=2), time_shape(parts[0], tf.shape(parts[0])[1] * size, static))
    total = None
    for i, part in enumerate(parts):
        placed = _pad_time(_upsample(part, stride), i, size - 1 - i)
        total = placed if total is None else total + placed
    return total


def _windows(x: tf.Tensor, size: int, stride: int, out) -> list[tf.Tensor]:
    """The ``size`` strided views ``x[:, i + j * stride]`` for ``j < out``, each ``[n, out, C]``."""
    if size == stride:
        shape = tf.shape(x)
        channels = x.shape[-1] if x.shape[-1] is not None else shape[2]
        framed = tf.reshape(x[:, : out * size], tf.stack([shape[0], out, size, channels]))
        return tf.unstack(framed, num=size, axis=2)
    return [x[:, i : i + (out - 1) * stride + 1 : stride] for i in range(size)]


def _dilate_kernel(kernel: tf.Tensor, dilation: int) -> tf.Tensor:
    """``[k, c_in, c_out]`` -> ``[d (k - 1) + 1, c_in, c_out]`` with zeros between taps."""
    if dilation == 1:
        return kernel
    k = kernel.shape[0]
    stacked = tf.stack([kernel] + [tf.zeros_like(kernel)] * (dilation - 1), axis=1)
    return tf.reshape(stacked, [k * dilation, kernel.shape[1], kernel.shape[2]])[: dilation * (k - 1) + 1]


def _pick_rows(tensor: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``tensor[rows[i, 0], :, rows[i, 1]]``: ``[batch, time, channels]`` -> ``[n, time, 1]``."""
    return add_channel_axis(tf.gather_nd(tf.transpose(tensor, [0, 2, 1]), rows))


# --------------------------------------------------------------------------------- steps
@dataclass
class _Step:
    """One Keras layer call, in ``[batch, time, channels]`` form.

    ``forward(inputs, channels) -> (output, state)``; ``backward(upstream, state, take) -> [grads]``
    where ``take(t)`` maps a ``[batch, ...]`` state tensor to the rows being deconvolved.
    ``channels`` (int32 ``[u]`` or None) restricts a per-channel step to those output channels.
    """

    layer: keras.layers.Layer
    kind: str
    inputs: list[int]
    output: int
    params: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.layer.name

    # ---- geometry (Python ints) ----
    def length(self, lengths: list[int]) -> int:
        t = lengths[0]
        p = self.params
        if t < 1:
            return 0
        if self.kind in ("conv", "maxpool", "avgpool"):
            window, stride, padding = p["window"], p["stride"], p["padding"]
            if padding in ("same", "causal"):
                return _ceil_div(t, stride)
            return (t - window) // stride + 1 if t >= window else 0
        if self.kind == "pad":
            return t + p["left"] + p["right"]
        if self.kind == "crop":
            return max(t - p["left"] - p["right"], 0)
        if self.kind == "add":
            return min(lengths)
        return t

    def geometry(self, fields: list[tuple[int, int]]) -> tuple[int, int]:
        if self.kind == "add":
            return max(f[0] for f in fields), max(f[1] for f in fields)
        rf, stride = fields[0]
        if self.kind in ("conv", "maxpool", "avgpool"):
            return rf + (self.params["window"] - 1) * stride, stride * self.params["stride"]
        return rf, stride

    # ---- variables read at call time ----
    def kernel(self) -> tf.Tensor:
        kernel = tf.convert_to_tensor(self.layer.kernel)
        if kernel.shape.rank == 4:  # Conv2D as 1-D: drop the singleton spatial axis
            kernel = kernel[:, 0] if self.params["time_axis"] == 0 else kernel[0]
        return kernel

    def affine(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-channel ``(scale, offset)`` ``[C]`` (or scalars) of an affine step."""
        layer = self.layer
        if isinstance(layer, keras.layers.BatchNormalization):
            scale = tf.math.rsqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
            if layer.scale:
                scale = scale * tf.convert_to_tensor(layer.gamma)
            offset = -tf.convert_to_tensor(layer.moving_mean) * scale
            if layer.center:
                offset = offset + tf.convert_to_tensor(layer.beta)
            return scale, offset
        return (tf.reshape(tf.constant(self.params["scale"], tf.float32), [-1]),
                tf.reshape(tf.constant(self.params["offset"], tf.float32), [-1]))

    # ---- forward ----
    def forward(self, inputs: list[tf.Tensor], channels: tf.Tensor | None = None):
        x = inputs[0]
        kind, p = self.kind, self.params
        if kind == "add":
            total = inputs[0]
            for other in inputs[1:]:
                total = total + other
            return total, None
        if kind == "identity":
            return x, None
        if kind == "relu":
            y = tf.nn.relu(x)
            return y, y  # the output is kept for the guided rule's mask (pre > 0 <=> relu(pre) > 0)
        if kind == "affine":
            scale, offset = self.affine()
            if channels is not None:  # per-channel values of the chosen channels; scalars broadcast
                scale = scale if scale.shape[0] == 1 else tf.gather(scale, channels)
                offset = offset if offset.shape[0] == 1 else tf.gather(offset, channels)
            return x * scale + offset, None
        length = tf.shape(x)[1]
        if kind == "pad":
            return _pad_time(x, p["left"], p["right"]), length
        if kind == "crop":
            return x[:, p["left"] : (-p["right"]) or None], length
        if kind == "conv":
            kernel = self.kernel()
            bias = None if self.layer.bias is None else tf.convert_to_tensor(self.layer.bias)
            if channels is not None and _CONSTANT_KERNELS[-1]:  # full conv, then the chosen channels (int8 TFLite)
                left, right = self._pads(length)
                y = self._conv(_pad_time(x, left, right), kernel)
                y = y if bias is None else y + bias
                y = tf.gather(tf.nn.relu(y) if p["relu"] else y, channels, axis=2)
                return y, (length, left, y)
            if channels is not None and _MATMUL_TRANSPOSES[-1]:  # from the [C_out, k, C_in] layout (one copy)
                kernel = tf.transpose(tf.gather(tf.transpose(kernel, [2, 0, 1]), channels), [1, 2, 0])
                bias = None if bias is None else tf.gather(bias, channels)
            elif channels is not None:
                kernel = tf.gather(kernel, channels, axis=2)
                bias = None if bias is None else tf.gather(bias, channels)
            left, right = self._pads(length)
            y = self._conv(_pad_time(x, left, right), kernel)
            if bias is not None:
                y = y + bias
            if p["relu"]:
                y = tf.nn.relu(y)
            return y, (length, left, y)
        if kind == "maxpool":
            window, stride = p["window"], p["stride"]
            if p.get("own_switches"):  # MaxPool1DWithSwitches: unpool with the switches the layer returns
                pooled, switches = self.layer(x)
                return pooled, ("pair", switches, length)
            if window == 2 and stride == 2 and p["padding"] == "valid":  # CNN12's pool: float switches
                pooled, switches = max_pool_with_switches(x)
                return pooled, ("pair", switches, length)
            left, right = self._pads(length)
            padded = _pad_time(x, left, right, value=float("-inf")) if p["padding"] == "same" else x
            out = (tf.shape(padded)[1] - window) // stride + 1
            views = _windows(padded, window, stride, out)
            best, index = views[0], tf.zeros_like(views[0], dtype=tf.int32)
            for i, view in enumerate(views[1:], start=1):
                index = tf.where(view > best, tf.fill(tf.shape(index), i), index)  # ties stay with the first
                best = tf.maximum(best, view)
            return best, ("index", index, length, left, right)
        if kind == "avgpool":
            window, stride = p["window"], p["stride"]
            left, right = self._pads(length)
            padded = _pad_time(x, left, right)
            out = (tf.shape(padded)[1] - window) // stride + 1
            total = tf.add_n(_windows(padded, window, stride, out))
            if p["padding"] == "same":
                ones = _pad_time(tf.ones(tf.stack([1, length, 1]), x.dtype), left, right)
                count = tf.add_n(_windows(ones, window, stride, out))
            else:
                count = tf.constant(float(window), x.dtype)
            return total / count, (length, left, right, count)
        raise AssertionError(kind)

    def _conv(self, padded: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """VALID convolution of ``[n, time, C_in]`` with ``kernel`` ``[k, C_in, C_out]`` (the step's stride, dilation)."""
        p = self.params
        return conv1d(padded, kernel, p["stride"], p["dilation"])

    def _pads(self, length):
        p = self.params
        if p["padding"] == "same":
            return _same_pads(length, p["stride"], p["window"])
        if p["padding"] == "causal":
            return p["window"] - 1, 0
        return 0, 0

    # ---- backward (the deconvnet rules) ----
    def backward(self, g: tf.Tensor, state, take, kernels: tf.Tensor | None = None,
                 rule: str = "deconvnet") -> list[tf.Tensor]:
        """The step's backward rule; ``rule`` picks the ReLU's: ``"deconvnet"`` ``relu(upstream)`` or
        ``"guided"`` (guided backpropagation) ``upstream`` where the ReLU's input and ``upstream`` are both > 0."""
        kind, p = self.kind, self.params
        if kind == "add":
            return [g] * len(self.inputs)
        if kind == "identity":
            return [g]
        if kind == "relu":
            return [_relu_rule(g, state, take, rule)]
        if kind == "affine":
            scale, _ = self.affine()
            if kernels is not None and scale.shape[0] != 1:  # rows of single selected channels
                scale = tf.reshape(tf.gather(scale, kernels), [-1, 1, 1])
            return [g * scale]
        if kind == "pad":
            return [g[:, p["left"] : (-p["right"]) or None]]
        if kind == "crop":
            return [_pad_time(g, p["left"], p["right"])]
        if kind == "conv":
            length, left, output = state
            if p["relu"]:
                g = _relu_rule(g, output, take, rule)
            return [self._transpose(g, length, left, kernels)]
        if kind == "maxpool":
            if state[0] == "pair":
                return [max_unpool(g, take(state[1]), state[2])]
            _, index, length, left, right = state
            index = take(index)
            parts = [g * tf.cast(tf.equal(index, i), g.dtype) for i in range(p["window"])]
            return [self._unpad(_spread(parts, p["stride"]), length, left, right)]
        if kind == "avgpool":
            length, left, right, count = state
            share = g / count
            return [self._unpad(_spread([share] * p["window"], p["stride"]), length, left, right)]
        raise AssertionError(kind)

    def _unpad(self, full: tf.Tensor, length, left, right) -> tf.Tensor:
        """Bring a padded-frame signal of length ``<= length + left + right`` back to ``[n, length, C]``."""
        if self.params["stride"] == 1 and isinstance(left, int) and isinstance(right, int):
            # stride 1: the transpose spans exactly the padded frame; constant slice bounds keep a
            # dynamic-length LiteRT model on XNNPACK
            return full[:, left : (-right) or None]
        padded_length = length + left + right
        full = tf.pad(full, [[0, 0], [0, padded_length - tf.shape(full)[1]], [0, 0]])
        return full[:, left : left + length]

    def _transpose(self, g: tf.Tensor, length, left, selected: tf.Tensor | None) -> tf.Tensor:
        """Transposed convolution of ``g`` ``[n, out, C_out]`` with the layer's kernel -> ``[n, length, C_in]``.

        ``selected`` (int32 ``[n]``): ``g`` has one channel per row, the output channel ``selected[i]``
        of the conv; row ``i`` is then transposed with that channel's kernel column only.
        """
        p = self.params
        kernel = self.kernel()
        k, dilation, stride = kernel.shape[0], p["dilation"], p["stride"]
        right = self._pads(length)[1]
        padded_length = length + left + right
        exact = p["padding"] == "valid" and stride == 1  # the transpose already has the input's length
        if selected is not None and k <= 64 and not _CONSTANT_KERNELS[-1]:
            if _MATMUL_TRANSPOSES[-1]:  # gather rows of the [C_out, k, C_in] layout TFLite's CONV_2D stores too
                rows = tf.gather(tf.transpose(kernel, [2, 0, 1]), selected)
            else:
                rows = tf.transpose(tf.gather(kernel, selected, axis=2), [2, 0, 1])
            full = _transpose_rows(drop_channel_axis(g), rows, stride, dilation)
            return full if exact else self._unpad(full, length, left, right)
        if _MATMUL_TRANSPOSES[-1]:
            if selected is not None:
                g = g * tf.expand_dims(tf.one_hot(selected, kernel.shape[2], dtype=g.dtype), 1)
            full = _transpose_matmul(g, kernel, stride, dilation)
            return full if exact else self._unpad(full, length, left, right)
        if selected is not None:  # wide kernels: one-hot rows through the full kernel (bounded memory)
            g = g * tf.expand_dims(tf.one_hot(selected, kernel.shape[2], dtype=g.dtype), 1)
        shape = tf.stack([tf.shape(g)[0], padded_length, kernel.shape[1]])
        full = tf.nn.conv1d_transpose(g, _dilate_kernel(kernel, dilation), shape, strides=stride, padding="VALID")
        return full if p["padding"] == "valid" else full[:, left : left + length]


def _relu_rule(g: tf.Tensor, output: tf.Tensor, take, rule: str) -> tf.Tensor:
    """A ReLU's backward: deconvnet ``relu(g)``; guided ``g`` where ``g > 0`` and the ReLU's output (``take`` of
    the recorded ``[batch, ...]``) ``> 0``; gradient ``g`` where the output ``> 0``."""
    if rule == "deconvnet":
        return tf.nn.relu(g)
    active = take(output) > 0.0
    if rule == "guided":
        return tf.where(active & (g > 0.0), g, tf.zeros_like(g))
    if rule == "gradient":
        return tf.where(active, g, tf.zeros_like(g))
    raise ValueError(f"rule must be 'deconvnet', 'guided' or 'gradient'; received {rule!r}")


_MATMUL_TRANSPOSES = [False]
_CONSTANT_KERNELS = [False]


@contextlib.contextmanager
def constant_kernels():
    """Trace every convolution with the layer's whole constant kernel, never a gathered part of it.

    The chosen-maps savings (the top conv computed for the chosen channels only, its transpose with
    the map's own kernel column) read kernels through ``tf.gather``: a computed filter. TFLite's
    full-integer quantiser treats a computed filter as an activation (asymmetric zero point), which
    its int8 ``CONV_2D`` refuses (``zero_point != 0``). Inside this context the top conv runs on all
    channels and its output is gathered, and the transposes mask one-hot rows through the whole
    kernel: the same numbers (tested), more arithmetic, every filter a constant. Used by the TFLite
    exporter for ``quantize="int8"``.
    """
    _CONSTANT_KERNELS.append(True)
    try:
        yield
    finally:
        _CONSTANT_KERNELS.pop()


@contextlib.contextmanager
def matmul_transposes():
    """Trace transposed convolutions as a matmul with the ``[C_out, k * C_in]`` kernel plus an overlap-add.

    Inside this context the deconvnet's backward convolutions (and the selected-map rows) read
    each kernel in the layout TFLite's forward ``CONV_2D`` stores (``[C_out, 1, k, C_in]``), so the
    TFLite exporter can keep one copy of each weight (``tfsonify.export.tflite_weights``); the
    result equals ``tf.nn.conv1d_transpose``'s (same sums, another order: ~1e-6 relative).
    Outside it (the TF runtime) ``conv1d_transpose`` is used.
    """
    _MATMUL_TRANSPOSES.append(True)
    try:
        yield
    finally:
        _MATMUL_TRANSPOSES.pop()


def _transpose_matmul(g: tf.Tensor, kernel: tf.Tensor, stride: int, dilation: int) -> tf.Tensor:
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
    taps = _upsample(taps, stride)
    span = dilation * (k - 1)
    parts = [tf.pad(taps[:, :, j * c_in : (j + 1) * c_in], [[0, 0], [j * dilation, span - j * dilation], [0, 0]])
             for j in range(k)]
    return _sum(parts)


def _sum(parts: list[tf.Tensor]) -> tf.Tensor:
    """``tf.add_n(parts)`` as a tree of pairwise adds: LiteRT's XNNPACK delegate runs ``ADD`` on all cores but
    not ``ADD_N`` (single-threaded outside the delegate)."""
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _transpose_rows(signal: tf.Tensor, kernels: tf.Tensor, stride: int, dilation: int) -> tf.Tensor:
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
        signal = drop_channel_axis(_upsample(add_channel_axis(signal), stride))
    padded = tf.pad(signal, [[0, 0], [span, span]])
    # tap j: padded[span - j d : span - j d + out + span], i.e. up to j d samples before the end
    taps = [padded[:, span - j * dilation : (-j * dilation) or None] for j in range(k)]
    return tf.matmul(tf.stack(taps, axis=-1), kernels)


# ------------------------------------------------------------------------------ graph walk
class DeconvNet:
    """The deconvnet of a Keras model, from its waveform input to any supported layer.

    Args:
        model: a built Keras 3 model (Functional, Sequential or a Functional subclass such as
            :class:`tfsonify.CNN12`) with one input ``[batch, time]`` or ``[batch, time, 1]``.

    Raises:
        ValueError: several inputs, no waveform input, an unbuilt model, no supported layer after
            the input, or a convolution reachable only through an unsupported layer (the message
            names that layer, its class and what is supported).

    Kernels and statistics are read from the model's variables at call time, so a later ``fit`` or
    ``load_weights`` is seen without rebuilding.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        try:
            inputs = list(model.inputs)
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            raise ValueError(f"model {model.name!r} has no defined input; build it on keras.Input(shape=(None,)) "
                             "(a waveform [batch, time]) before sonifying")
        if len(inputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(inputs)} inputs; the deconvnet needs exactly one waveform "
                             "input [batch, time] or [batch, time, 1]")
        source = inputs[0]
        shape = tuple(source.shape)[1:]
        if len(shape) == 1:
            layout = ("T",)
        elif len(shape) == 2 and shape[1] == 1:
            layout = ("T", "C")
        else:
            raise ValueError(f"model {model.name!r} takes input of shape {tuple(source.shape)}; the deconvnet needs a "
                             "waveform input [batch, time] or [batch, time, 1]")
        self.input_rank = len(shape) + 1
        self._tensors: dict[int, object] = {id(source): source}
        self.layouts: dict[int, tuple[str, ...]] = {id(source): layout}
        self.channels: dict[int, int] = {id(source): 1}
        self.blocked: dict[int, Unsupported] = {}
        self.steps: list[_Step] = []
        self.prelude: list[keras.layers.Layer] = []
        self.start = id(source)
        self.by_name: dict[str, int] = {}  # layer name -> index in self.steps
        self.blocked_names: dict[str, Unsupported] = {}
        self._min_lengths: dict[str, int] = {}  # layer name -> min_length (the model is fixed once walked)
        self._walk(model, source)
        self._analyse()

    # ------------------------------------------------------------------ construction
    def _nodes(self, model) -> list:
        """The model's nodes in topological order (inputs first), found backwards from its outputs."""
        order, seen = [], set()

        def visit(tensor):
            history = getattr(tensor, "_keras_history", None)
            if history is None:
                return
            node = history.operation._inbound_nodes[history.node_index]
            if id(node) in seen:
                return
            seen.add(id(node))
            for parent in node.input_tensors:
                visit(parent)
            order.append(node)

        for output in model.outputs:
            visit(output)
        return order

    def _walk(self, model, source) -> None:
        calls: dict[int, int] = {}
        nodes = self._nodes(model)
        for node in nodes:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        prelude_open = True
        for node in nodes:
            layer = node.operation
            if isinstance(layer, keras.layers.InputLayer):
                continue
            inputs = [id(t) for t in node.input_tensors]
            outputs = list(node.outputs)
            for tensor in outputs:
                self._tensors[id(tensor)] = tensor
            blocker = next((self.blocked[i] for i in inputs if i in self.blocked), None)
            if blocker is None and any(i not in self.layouts for i in inputs):
                blocker = _unsupported(layer, "one of its inputs does not come from the waveform input")
            if blocker is None:
                try:
                    if calls[id(layer)] > 1:
                        raise _unsupported(layer, f"it is called {calls[id(layer)]} times in the model; each layer "
                                                  "on the path must be called once")
                    if len(outputs) != 1 and not (isinstance(layer, MaxPool1DWithSwitches) and len(outputs) == 2):
                        raise _unsupported(layer, f"it has {len(outputs)} outputs")
                    if is_input_scaling(layer):
                        if not (prelude_open and inputs == [self.start]):
                            raise _unsupported(layer, "an input-scaling layer must come directly after the input")
                        self.prelude.append(layer)
                        self.start = id(outputs[0])
                        self.layouts[self.start] = self.layouts[inputs[0]]
                        self.channels[self.start] = 1
                        continue
                    step = self._make_step(layer, inputs, outputs[0])
                except Unsupported as error:
                    blocker = error
                else:
                    prelude_open = False
                    self.by_name[layer.name] = len(self.steps)
                    self.steps.append(step)
                    for extra in outputs[1:]:  # MaxPool1DWithSwitches' switches: read by the step, not a feature map
                        self.blocked[id(extra)] = _unsupported(
                            layer, "its second output holds the pool's switches, not feature maps; use its first output")
                    continue
            for tensor in outputs:
                self.blocked[id(tensor)] = blocker
            self.blocked_names.setdefault(layer.name, blocker)

    def _make_step(self, layer, inputs: list[int], output) -> _Step:
        layouts = [self.layouts[i] for i in inputs]
        layout, channels = layouts[0], self.channels[inputs[0]]
        out_shape = tuple(output.shape)[1:]
        step = _Step(layer, "identity", inputs, id(output))
        new_layout, new_channels = layout, channels
        if isinstance(layer, keras.layers.Add):
            if len(set(layouts)) != 1 or len({self.channels[i] for i in inputs}) != 1:
                raise _unsupported(layer, "its inputs have different layouts or channel counts")
            step.kind = "add"
        elif len(inputs) != 1:
            raise _unsupported(layer, f"it merges {len(inputs)} tensors (only Add is supported)")
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)) and not isinstance(
                layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv1D,
                        keras.layers.DepthwiseConv2D, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
            time_axis = self._spatial(layer, layout)
            if getattr(layer, "groups", 1) != 1:
                raise _unsupported(layer, f"groups={layer.groups} (only 1)")
            activation = getattr(layer.activation, "__name__", str(layer.activation))
            if activation not in ("relu", "linear"):
                raise _unsupported(layer, f"activation {activation!r} (only relu or linear)")
            sizes = dict(kernel=layer.kernel_size, strides=layer.strides, dilation_rate=layer.dilation_rate)
            params = {}
            for key, value in sizes.items():
                value = tuple(value)
                if len(value) == 2:
                    if value[1 - time_axis] != 1:
                        raise _unsupported(layer, f"{key}={value} is not 1 along the singleton axis (Conv2D must act as a 1-D conv)")
                    value = (value[time_axis],)
                params[key] = int(value[0])
            padding = layer.padding
            step.kind = "conv"
            step.params = dict(window=params["dilation_rate"] * (params["kernel"] - 1) + 1, stride=params["strides"],
                               dilation=params["dilation_rate"], padding=padding, relu=activation == "relu",
                               time_axis=time_axis)
            if padding == "causal":
                step.params["window"] = params["dilation_rate"] * (params["kernel"] - 1) + 1
            new_channels = int(layer.filters)
        elif isinstance(layer, MaxPool1DWithSwitches):
            if layout != ("T", "C"):
                raise _unsupported(layer, f"it needs a [time, channels] input; its input layout is {list(layout)}")
            step.kind = "maxpool"
            step.params = dict(window=2, stride=2, padding="valid", own_switches=True)
        elif isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
                                keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)):
            time_axis = self._spatial(layer, layout)
            pool, strides = tuple(layer.pool_size), tuple(layer.strides)
            if len(pool) == 2:
                if pool[1 - time_axis] != 1 or strides[1 - time_axis] != 1:
                    raise _unsupported(layer, f"pool_size={pool}, strides={strides} are not 1 along the singleton axis")
                pool, strides = (pool[time_axis],), (strides[time_axis],)
            step.kind = "maxpool" if isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)) else "avgpool"
            step.params = dict(window=int(pool[0]), stride=int(strides[0]), padding=layer.padding)
        elif isinstance(layer, keras.layers.ReLU):
            config = layer.get_config()
            if config.get("max_value") is not None or config.get("negative_slope", 0) or config.get("threshold", 0):
                raise _unsupported(layer, "only the plain ReLU (no max_value, negative_slope or threshold)")
            step.kind = "relu"
        elif isinstance(layer, keras.layers.Activation):
            name = getattr(layer.activation, "__name__", str(layer.activation))
            if name not in ("relu", "linear"):
                raise _unsupported(layer, f"activation {name!r} (only relu or linear)")
            step.kind = "relu" if name == "relu" else "identity"
        elif isinstance(layer, keras.layers.BatchNormalization):
            rank = len(layout) + 1
            if layout == ("T",) or int(layer.axis) % rank != rank - 1:
                raise _unsupported(layer, f"axis={layer.axis} is not the channel axis")
            step.kind = "affine"
        elif isinstance(layer, keras.layers.Rescaling):
            scale, offset = np.asarray(layer.scale, np.float32), np.asarray(layer.offset, np.float32)
            for value in (scale, offset):
                if value.size not in (1, channels) or (value.ndim > 1 and max(value.shape[:-1], default=1) != 1):
                    raise _unsupported(layer, "scale/offset must be scalars or per-channel vectors")
            step.kind = "affine"
            step.params = dict(scale=scale.reshape(-1).tolist(), offset=offset.reshape(-1).tolist())
        elif isinstance(layer, _IDENTITY):
            step.kind = "identity"
        elif isinstance(layer, (keras.layers.ZeroPadding1D, keras.layers.Cropping1D,
                                keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
            amounts = layer.padding if hasattr(layer, "padding") else layer.cropping
            amounts = tuple(tuple(a) if isinstance(a, (tuple, list)) else a for a in amounts)
            if isinstance(layer, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
                time_axis = self._spatial(layer, layout)
                if tuple(amounts[1 - time_axis]) != (0, 0):
                    raise _unsupported(layer, f"it pads or crops the singleton axis ({amounts})")
                amounts = tuple(amounts[time_axis])
            else:
                if layout != ("T", "C"):
                    raise _unsupported(layer, f"its input layout is {layout}, not [time, channels]")
                if getattr(layer, "data_format", "channels_last") != "channels_last":
                    raise _unsupported(layer, "data_format must be channels_last")
            step.kind = "pad" if isinstance(layer, (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)) else "crop"
            step.params = dict(left=int(amounts[0]), right=int(amounts[1]))
        elif isinstance(layer, (keras.layers.Reshape, keras.layers.Permute)):
            new_layout = self._moved_layout(layer, layout, channels, tuple(self._tensors[inputs[0]].shape)[1:], out_shape)
            step.kind = "identity"
        else:
            raise _unsupported(layer, "this layer type has no deconvnet rule")
        self.layouts[id(output)] = new_layout
        self.channels[id(output)] = new_channels
        return step

    def _spatial(self, layer, layout: tuple[str, ...]) -> int:
        """Time axis (0 or 1) of a 1-D/2-D layer's spatial axes; checks layout and data format."""
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, "data_format must be channels_last")
        two_d = isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                                   keras.layers.ZeroPadding2D, keras.layers.Cropping2D))
        if two_d:
            if layout not in (("T", "1", "C"), ("1", "T", "C")):
                raise _unsupported(layer, f"a 2-D layer needs a [time, 1, channels] or [1, time, channels] input; "
                                          f"its input layout is {list(layout)}")
            return layout.index("T")
        if layout != ("T", "C"):
            raise _unsupported(layer, f"a 1-D layer needs a [time, channels] input; its input layout is {list(layout)}")
        return 0

    def _moved_layout(self, layer, layout, channels, in_shape, out_shape) -> tuple[str, ...]:
        """Layout after a Reshape/Permute, or Unsupported if it does more than move singleton axes."""
        if isinstance(layer, keras.layers.Permute):
            new = tuple(layout[d - 1] for d in layer.dims)
        else:
            time = in_shape[layout.index("T")]
            non_single = [i for i, size in enumerate(out_shape) if size != 1]
            expected = 2 if channels > 1 else 1
            new = ["1"] * len(out_shape)
            if len(non_single) != expected:
                raise _unsupported(layer, f"reshapes {in_shape} to {out_shape}; only inserting or dropping singleton axes "
                                          "around [time, channels] is supported")
            new[non_single[0]] = "T"
            if out_shape[non_single[0]] not in (None, time):
                raise _unsupported(layer, f"reshapes time {time} into {out_shape[non_single[0]]}")
            if channels > 1:
                if non_single[1] != len(out_shape) - 1 or out_shape[-1] != channels:
                    raise _unsupported(layer, f"reshapes {in_shape} to {out_shape}: channels must stay last")
                new[-1] = "C"
            elif len(out_shape) > 1 and new[-1] == "1":
                new[-1] = "C"
            new = tuple(new)
        if new not in _LAYOUTS or (new == ("T",) and channels != 1):
            raise _unsupported(layer, f"its output layout {list(new)} is not one of [time], [time, channels], "
                                      "[time, 1, channels], [1, time, channels]")
        return new

    def _analyse(self) -> None:
        """Geometry per step output; the build-time errors."""
        self.fields: dict[int, tuple[int, int]] = {self.start: (1, 1)}
        self.convolved: dict[int, bool] = {self.start: False}
        for step in self.steps:
            self.fields[step.output] = step.geometry([self.fields[i] for i in step.inputs])
            self.convolved[step.output] = step.kind in ("conv", "maxpool", "avgpool") or any(
                self.convolved[i] for i in step.inputs)
        # any convolution (Conv1D/2D, depthwise, separable, transposed) reachable only through an unsupported layer
        convs = [layer for layer in self.model.layers if "Conv" in type(layer).__name__]
        for layer in convs:
            if layer.name in self.blocked_names:
                error = self.blocked_names[layer.name]
                raise ValueError(f"cannot sonify {layer.name!r}: {error} (to sonify the layers before it, build a "
                                 f"sub-model, e.g. keras.Model(model.input, model.get_layer(NAME).output))") from None
        if not any(self.convolved.values()):
            first = next(iter(self.blocked_names.values()), None)
            raise ValueError(f"model {self.model.name!r} has no sonifiable layer after its waveform input"
                             + (f": {first}" if first else ""))
        # blocks: conv, then the per-channel layers after it, up to the next conv
        self.blocks: list[str] = []
        current = None
        for step in self.steps:
            if step.kind == "conv":
                if current is not None:
                    self.blocks.append(current)
                current = step.name
            elif current is not None and step.kind in ("relu", "maxpool", "avgpool", "affine", "add"):
                current = step.name
        if current is not None:
            self.blocks.append(current)

    # ------------------------------------------------------------------ queries
    def resolve(self, layer: str | int) -> str:
        """A layer name for ``layer``: a name, or a 1-based block index (see :meth:`layers`)."""
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            if not 1 <= layer <= len(self.blocks):
                raise ValueError(f"layer must be an integer block index in 1..{len(self.blocks)} or a layer name; received {layer!r}")
            return self.blocks[int(layer) - 1]
        if not isinstance(layer, str):
            raise ValueError(f"layer must be a layer name (str) or a block index (int); received {layer!r}")
        if layer in self.by_name and self.convolved[self.steps[self.by_name[layer]].output]:
            return layer
        if layer in self.blocked_names:
            raise ValueError(f"layer {layer!r} lies past the supported path: {self.blocked_names[layer]}")
        names = [info.name for info in self.layers()]
        raise ValueError(f"layer {layer!r} is not a sonifiable layer of model {self.model.name!r}; sonifiable: {names}")

    def step(self, name: str) -> _Step:
        return self.steps[self.by_name[name]]

    def num_features(self, name: str) -> int:
        return self.channels[self.step(name).output]

    def geometry(self, name: str) -> tuple[int, int]:
        """``(receptive_field, total_stride)`` in input samples of layer ``name``'s output."""
        return self.fields[self.step(name).output]

    def output_length(self, name: str, num_samples: int) -> int:
        """Time steps of layer ``name``'s output for ``num_samples`` input samples (0 if too short)."""
        lengths = {self.start: int(num_samples)}
        for step in self._path(name):
            lengths[step.output] = step.length([lengths[i] for i in step.inputs])
            if lengths[step.output] < 1:
                return 0
        return lengths[self.step(name).output]

    def min_length(self, name: str) -> int:
        """Fewest input samples for which layer ``name`` yields at least one time step (cached per layer)."""
        if name not in self._min_lengths:
            self._min_lengths[name] = self._search_min_length(name)
        return self._min_lengths[name]

    def _search_min_length(self, name: str) -> int:
        high = 1
        while self.output_length(name, high) < 1:
            high *= 2
        low = high // 2
        while high - low > 1:
            middle = (low + high) // 2
            if self.output_length(name, middle) >= 1:
                high = middle
            else:
                low = middle
        return high

    def layers(self) -> list[LayerInfo]:
        """Every sonifiable layer in graph order with its channels, receptive field, stride and minimum length."""
        blocks = {name: index for index, name in enumerate(self.blocks, start=1)}
        result = []
        for step in self.steps:
            if not self.convolved[step.output]:
                continue
            rf, stride = self.fields[step.output]
            result.append(LayerInfo(step.name, type(step.layer).__name__, blocks.get(step.name),
                                    self.channels[step.output], rf, stride, self.min_length(step.name)))
        return result

    def _path(self, name: str) -> list[_Step]:
        """The steps the output of layer ``name`` depends on, in graph order."""
        needed = {self.step(name).output}
        chosen = []
        for step in reversed(self.steps):
            if step.output in needed:
                chosen.append(step)
                needed.update(step.inputs)
        return chosen[::-1]

    def _top(self, name: str) -> list[_Step] | None:
        """The last conv on the way to ``name`` plus the per-channel single-input steps after it, or None."""
        chain = []
        step = self.step(name)
        while True:
            chain.append(step)
            if step.kind == "conv":
                return chain[::-1]
            if step.kind not in ("relu", "maxpool", "avgpool", "affine", "identity", "pad", "crop") or len(step.inputs) != 1:
                return None
            producer = next((s for s in self.steps if s.output == step.inputs[0]), None)
            if producer is None:
                return None
            step = producer

    # ------------------------------------------------------------------ graphs
    def scale_input(self, waveform: tf.Tensor) -> tf.Tensor:
        """Model input ``[batch, time]`` -> the deconvnet's input ``[batch, time, 1]`` (input-scaling layers applied)."""
        x = waveform if self.input_rank == 2 else add_channel_axis(waveform)
        for layer in self.prelude:
            x = layer(x, training=False) if "training" in layer.call.__code__.co_varnames else layer(x)
        return x if self.input_rank == 3 else add_channel_axis(x)

    def outputs(self, x: tf.Tensor, names: Sequence[str]) -> list[tf.Tensor]:
        """Outputs ``[batch, time_l, C_l]`` of several layers from one forward pass of ``[batch, time, 1]``."""
        deepest = max(names, key=lambda n: self.by_name[n])
        needed = {id(s) for n in names for s in self._path(n)}
        values = {self.start: x}
        for step in self.steps[: self.by_name[deepest] + 1]:
            if id(step) in needed:
                values[step.output] = step.forward([values[i] for i in step.inputs])[0]
        return [values[self.step(n).output] for n in names]

    def forward(self, x: tf.Tensor, name: str, channels: tf.Tensor | None = None):
        """Forward pass of ``[batch, time, 1]`` (after input scaling) up to layer ``name``.

        Args:
            channels: int32 ``[u]``: compute the top conv block of ``name`` (see ``_top``) only for these
                output channels; requires a conv below ``name`` reached through per-channel layers.

        Returns:
            ``(output [batch, time_L, C_L or u], states)``; ``states`` is what :meth:`backward` needs.
        """
        path = self._path(name)
        top = self._top(name) if channels is not None else None
        if channels is not None and top is None:
            raise ValueError(f"layer {name!r} has no conv block to restrict to chosen channels")
        top_ids = {id(s) for s in (top or [])}
        values, states = {self.start: x}, {}
        for step in path:
            restrict = channels if id(step) in top_ids else None
            values[step.output], states[id(step)] = step.forward([values[i] for i in step.inputs], restrict)
        return values[self.step(name).output], states

    def backward(self, name: str, signal: tf.Tensor, states: dict, batch_index: tf.Tensor,
                 features: tf.Tensor, columns: tf.Tensor | None = None) -> tf.Tensor:
        """Deconvnet from layer ``name`` down to the input.

        Args:
            signal: ``[n, time_L, 1]`` the kept map of each row (its values: the objective's gradient).
            states: from :meth:`forward` (``[batch, ...]``).
            batch_index: int32 ``[n]`` clip of each row.
            features: int32 ``[n]`` channel of each row's map.
            columns: int32 ``[n]`` column of each row's map in the top block's states (default ``features``;
                the positions in ``channels`` when :meth:`forward` ran the top block on chosen channels).

        When ``name`` ends a conv block (:meth:`_top`), that block runs per row on its single map and the
        conv is transposed with the map's own kernel column; otherwise the map is one-hot over the
        channels and every step runs on full tensors.

        Returns:
            ``[n, time]`` raw reconstruction at the deconvnet's input (no scaling).
        """
        path = self._path(name)
        top = self._top(name)
        top_ids = {id(s) for s in (top or [])}
        output = self.step(name).output
        if top is None:
            signal = signal * tf.expand_dims(tf.one_hot(features, self.channels[output], dtype=signal.dtype), 1)
        rows = tf.stack([batch_index, features if columns is None else columns], axis=1)
        pick = lambda t: _pick_rows(t, rows)  # noqa: E731
        # one clip (a static batch of 1): its states broadcast over the rows (no copies; LiteRT's GATHER
        # runs outside XNNPACK)
        gather = lambda t: t if t.shape[0] == 1 else tf.gather(t, batch_index)  # noqa: E731
        grads = {output: signal}
        for step in reversed(path):
            if step.output not in grads:
                continue
            g = grads.pop(step.output)
            in_top = id(step) in top_ids
            outs = step.backward(g, states[id(step)], pick if in_top else gather, features if in_top else None)
            for key, value in zip(step.inputs, outs):
                grads[key] = value if key not in grads else grads[key] + value
        return drop_channel_axis(grads[self.start])

    def backward_full(self, name: str, upstream: tf.Tensor, states: dict, rule: str = "deconvnet") -> tf.Tensor:
        """The backward rules from a full upstream signal at layer ``name`` down to the input.

        Args:
            upstream: ``[batch, time_L, C_L]`` (e.g. an output unit's gradient at ``name``, or one-hot maps).
            states: from :meth:`forward` of the same ``[batch, ...]`` input without ``channels``.
            rule: the ReLU rule: ``"deconvnet"`` (``relu(upstream)``, :meth:`backward`'s), ``"guided"``
                (guided backpropagation: ``upstream`` where input and ``upstream`` are > 0) or ``"gradient"``
                (the plain gradient). Every other step's rule is the same for all three.

        Returns:
            ``[batch, time]`` at the deconvnet's input (after input scaling; no rescaling).
        """
        same = lambda t: t  # noqa: E731
        grads = {self.step(name).output: upstream}
        for step in reversed(self._path(name)):
            if step.output not in grads:
                continue
            outs = step.backward(grads.pop(step.output), states[id(step)], same, None, rule)
            for key, value in zip(step.inputs, outs):
                grads[key] = value if key not in grads else grads[key] + value
        return drop_channel_axis(grads[self.start])

    def last_layer(self, tensor) -> str | None:
        """The name of the step whose output is Keras tensor ``tensor``, or None if it is not on the walk."""
        return next((step.name for step in self.steps if step.output == id(tensor)), None)

    def reconstruct(self, x: tf.Tensor, name: str, batch_index: tf.Tensor, features: tf.Tensor,
                    channels: tf.Tensor | None = None) -> tf.Tensor:
        """Raw deconvnet output ``[n, time]`` for map ``features[i]`` of clip ``batch_index[i]``.

        The forward pass stops at layer ``name``; when ``name`` ends a conv block, that block is computed
        only for the requested channels.

        Args:
            x: ``[batch, time, 1]`` the deconvnet's input (after input scaling).
            features: int32 ``[n]``: channels; with ``channels`` (int32 ``[u]``, distinct), positions in it.
        """
        if channels is None:
            channels, slots = features, tf.range(tf.shape(features)[0])
        else:
            slots = features
        chosen = tf.gather(channels, slots)
        if self._top(name) is None:
            output, states = self.forward(x, name)
            return self.backward(name, _pick_rows(output, tf.stack([batch_index, chosen], 1)), states, batch_index, chosen)
        output, states = self.forward(x, name, channels)
        signal = _pick_rows(output, tf.stack([batch_index, slots], axis=1))
        return self.backward(name, signal, states, batch_index, chosen, columns=slots)

    def reconstruct_top(self, x: tf.Tensor, name: str, k) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The ``k`` maps of layer ``name`` with the largest maximum over time, per clip, and their raw deconvnet.

        Returns ``(features [batch, k] int32, scores [batch, k], reconstructions [batch * k, time])``.
        """
        output, states = self.forward(x, name)
        scores, features = tf.math.top_k(tf.reduce_max(output, axis=1), k=k)
        flat = tf.reshape(features, [-1])
        batch_index = tf.repeat(tf.range(tf.shape(x)[0]), k)
        rows = tf.stack([batch_index, flat], axis=1)
        return features, scores, self.backward(name, _pick_rows(output, rows), states, batch_index, flat)
