"""The deconvnet's rules: one class per Keras layer type, found in a registry keyed by that type.

A *rule* is one layer call of the walked model (:mod:`tfsonify.engine.walk`) in ``[batch, time, channels]``
form, with a forward pass (which records what the way back needs, e.g. max-pool switches) and a backward
pass (Zeiler & Fergus' deconvnet, paper §3.2):

=============================================  ===========================================================
layer (rule class)                             backward rule
=============================================  ===========================================================
``Conv1D``; ``Conv2D`` as 1-D on                transposed convolution with the layer's own kernel: stride,
``[time, 1, channels]`` / ``[1, time, ch]``     dilation and valid/same/causal padding inverted exactly; no
(:class:`ConvRule`)                             bias. A fused ``activation="relu"`` is a ReLU rule.
``ReLU``, ``Activation("relu"|"linear")``       the ReLU rule object (:mod:`tfsonify.engine.relu_rules`):
(:class:`ReLURule`, :class:`ActivationRule`)    deconvnet ``relu(upstream)``, guided, or the gradient
``MaxPooling1D``/``2D`` (as 1-D)                max-unpooling with the switches recorded in the forward pass
(:class:`MaxPoolRule`)                          (any pool size and stride, overlapping windows, valid/same)
``tfsonify.MaxPool1DWithSwitches``              max-unpooling with the switches the layer itself returns
(:class:`SwitchPoolRule`)                       (its second output; only ``pooled`` is a feature map)
``AveragePooling1D``/``2D`` (as 1-D)            the average's gradient (spread over the window)
(:class:`AveragePoolRule`)
``BatchNormalization`` (inference),             multiply by the per-channel scale (their gradient)
``Rescaling`` (:class:`BatchNormRule`,
:class:`RescalingRule`)
``Dropout``, ``SpatialDropout1D/2D``,           identity
``GaussianNoise``, ``GaussianDropout``,
``Identity``, ``ActivityRegularization``
(:class:`IdentityRule`); ``Reshape``/``Permute``
moving singleton axes (:class:`ReshapeRule`)
``ZeroPadding1D/2D``, ``Cropping1D/2D`` on      crop / zero-pad the time axis back
the time axis (:class:`PadRule`, :class:`CropRule`)
``Add`` (:class:`AddRule`, residual)            the upstream to every input
=============================================  ===========================================================

A layer type without a rule stops the walk there (the message names the layer and lists the registered
types). To support your own layer, subclass :class:`Rule` and register it for the layer's class (the MRO is
searched, so subclasses of a registered Keras layer inherit its rule)::

    @tfsonify.engine.rules.register_rule(MyGain)
    class MyGainRule(tfsonify.engine.rules.Rule):
        per_channel = True
        def forward(self, inputs, channels=None):
            return inputs[0] * self.layer.gain, None
        def backward(self, upstream, state, take, kernels=None, relu=None):
            return [upstream * self.layer.gain]

Switches come from an in-window comparison (ties to the first sample, as TF's max-pool gradient), never
``tf.nn.max_pool_with_argmax``: every op has an XLA kernel and a TFLite builtin. How a rule is written for a
runtime is the explicit :class:`tfsonify.engine.lowering.Lowering` it is built with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine import ops
from tfsonify.engine.lowering import TENSORFLOW, Lowering
from tfsonify.engine.relu_rules import DECONVNET, ReluRule
from tfsonify.layers import MaxPool1DWithSwitches, conv1d, drop_channel_axis, max_pool_with_switches, max_unpool

__all__ = ["Rule", "LayerContext", "Unsupported", "register_rule", "rule_for", "make_rule", "supported_layers",
           "ConvRule", "ReLURule", "ActivationRule", "MaxPoolRule", "SwitchPoolRule", "AveragePoolRule",
           "BatchNormRule", "RescalingRule", "IdentityRule", "ReshapeRule", "PadRule", "CropRule", "AddRule"]

Layout = tuple  # of "T" (time), "C" (channels), "1" (a singleton axis): the Keras tensor's axes after batch
LAYOUTS = {("T",), ("T", "C"), ("T", "1", "C"), ("1", "T", "C")}
Take = Callable[[tf.Tensor], tf.Tensor]


class Unsupported(ValueError):
    """A layer the deconvnet cannot invert; the message names the layer, its class and what is supported."""


def unsupported(layer, why: str) -> Unsupported:
    return Unsupported(f"layer {layer.name!r} ({type(layer).__name__}) is not supported by the deconvnet: {why}. "
                       f"Supported: {supported_layers()}")


@dataclass(frozen=True)
class LayerContext:
    """What the walk knows about one layer call when it builds the call's rule.

    Attributes:
        layer: the Keras layer.
        inputs: ids of its input tensors (keys of the walk's tensors); ``output``: id of its output.
        layouts: each input's axes after batch (``("T", "C")`` etc.); ``channels``: each input's channel count.
        input_shapes, output_shape: the Keras tensors' shapes without batch (``None`` for unknown time).
        lowering: how the graph is written for its runtime.
    """

    layer: keras.layers.Layer
    inputs: tuple[int, ...]
    output: int
    layouts: tuple[Layout, ...]
    channels: tuple[int, ...]
    input_shapes: tuple[tuple, ...]
    output_shape: tuple
    lowering: Lowering = TENSORFLOW


class Rule:
    """One layer call's deconvnet rule, in ``[batch, time, channels]`` form (the identity by default).

    Class attributes say how the walk treats the rule:
        convolves: a conv or pool: changes receptive field and stride; layers after one are sonifiable.
        opens_block: a conv: starts a new block (block ``L`` = the ``L``-th conv and the layers it extends with).
        extends_block: ReLU, pools, affine, Add: the current block ends after this layer.
        per_channel: single-input and channel-wise: may follow the top conv when only chosen maps are computed.
        merges: takes several inputs (Add).

    Instance attributes: ``layer``, ``inputs``, ``output`` (tensor ids), ``lowering``, ``out_layout``,
    ``out_channels`` (the output's layout and channel count; default the input's).
    """

    convolves = False
    opens_block = False
    extends_block = False
    per_channel = False
    merges = False

    def __init__(self, context: LayerContext):
        self.layer = context.layer
        self.inputs = list(context.inputs)
        self.output = context.output
        self.lowering = context.lowering
        self.in_layout = context.layouts[0]
        self.out_layout = context.layouts[0]
        self.out_channels = context.channels[0]

    @property
    def name(self) -> str:
        return self.layer.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---- geometry (Python ints) ----
    def length(self, lengths: list[int]) -> int:
        """Output time steps for input lengths ``lengths`` (0 if too short)."""
        return lengths[0]

    def geometry(self, fields: list[tuple[int, int]]) -> tuple[int, int]:
        """``(receptive_field, stride)`` in input samples of the output, from those of the inputs."""
        return fields[0]

    # ---- the two passes ----
    def forward(self, inputs: list[tf.Tensor], channels: tf.Tensor | None = None) -> tuple[tf.Tensor, object]:
        """``inputs`` (each ``[batch, T, C]``) -> ``(output [batch, T', C'], state for backward)``.

        ``channels`` (int32 ``[u]`` or None) restricts a per-channel rule to those output channels.
        """
        return inputs[0], None

    def backward(self, upstream: tf.Tensor, state, take: Take, kernels: tf.Tensor | None = None,
                 relu: ReluRule = DECONVNET) -> list[tf.Tensor]:
        """The signal at each input from ``upstream`` ``[n, T', C']``.

        Args:
            state: what :meth:`forward` recorded (``[batch, ...]`` tensors).
            take: maps a recorded ``[batch, ...]`` tensor to the rows of ``upstream``.
            kernels: int32 ``[n]``: row ``i`` holds only output channel ``kernels[i]`` (single-map rows of the top
                block), or None (full tensors).
            relu: the ReLU rule (deconvnet, guided, gradient).
        """
        return [upstream]


RuleFactory = Callable[[LayerContext], Rule]
_REGISTRY: dict[type, RuleFactory] = {}


def register_rule(*layer_types: type) -> Callable[[RuleFactory], RuleFactory]:
    """Class decorator: ``rule`` builds the deconvnet rule of every layer of ``layer_types`` (and subclasses)."""
    if not layer_types or not all(isinstance(t, type) for t in layer_types):
        raise ValueError(f"register_rule needs one or more layer classes; received {layer_types!r}")

    def register(rule: RuleFactory) -> RuleFactory:
        for layer_type in layer_types:
            _REGISTRY[layer_type] = rule
        return rule

    return register


def rule_for(layer) -> RuleFactory | None:
    """The registered rule of ``layer``'s class or its nearest registered base class, or None."""
    for klass in type(layer).__mro__:
        if klass in _REGISTRY:
            return _REGISTRY[klass]
    return None


def supported_layers() -> str:
    """The registered layer types, for messages."""
    return ", ".join(sorted({t.__name__ for t in _REGISTRY})) + ", InputLayer and input-scaling layers " \
        "(PeakNormalization or sonify_input_scaling = True) directly after the input"


def make_rule(context: LayerContext) -> Rule:
    """The rule of one layer call; :class:`Unsupported` naming the layer when there is none or it does not apply."""
    layer = context.layer
    factory = rule_for(layer)
    if len(context.inputs) != 1 and not getattr(factory, "merges", False):
        raise unsupported(layer, f"it merges {len(context.inputs)} tensors (only Add is supported)")
    if factory is None:
        raise unsupported(layer, "this layer type has no deconvnet rule")
    rule = factory(context)
    if rule.out_layout not in LAYOUTS:
        raise unsupported(layer, f"its output layout {list(rule.out_layout)} is not one of [time], [time, channels], "
                                 "[time, 1, channels], [1, time, channels]")
    return rule


# ------------------------------------------------------------------------------- helpers
def _activation_name(layer) -> str:
    return getattr(layer.activation, "__name__", str(layer.activation))


def spatial_axis(layer, layout: Layout, two_d: bool) -> int:
    """Time axis (0 or 1) of a 1-D/2-D layer's spatial axes; checks its input layout and data format."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, "data_format must be channels_last")
    if two_d:
        if layout not in (("T", "1", "C"), ("1", "T", "C")):
            raise unsupported(layer, f"a 2-D layer needs a [time, 1, channels] or [1, time, channels] input; "
                                     f"its input layout is {list(layout)}")
        return layout.index("T")
    if layout != ("T", "C"):
        raise unsupported(layer, f"a 1-D layer needs a [time, channels] input; its input layout is {list(layout)}")
    return 0


def _along_time(layer, name: str, value, time_axis: int) -> int:
    """The time-axis entry of a 1-tuple or (2-D layers) a 2-tuple that must be 1 along the singleton axis."""
    value = tuple(value)
    if len(value) == 2:
        if value[1 - time_axis] != 1:
            raise unsupported(layer, f"{name}={value} is not 1 along the singleton axis (a 2-D layer must act as 1-D)")
        value = (value[time_axis],)
    return int(value[0])


class _WindowRule(Rule):
    """A conv or pool: windows of ``window`` samples (effective size), ``stride``, ``padding`` valid/same/causal."""

    convolves = True
    window: int
    stride: int
    padding: str

    def length(self, lengths):
        t = lengths[0]
        if t < 1:
            return 0
        if self.padding in ("same", "causal"):
            return ops.ceil_div(t, self.stride)
        return (t - self.window) // self.stride + 1 if t >= self.window else 0

    def geometry(self, fields):
        rf, stride = fields[0]
        return rf + (self.window - 1) * stride, stride * self.stride

    def pads(self, length):
        """``(left, right)`` padding of an input of ``length`` samples."""
        if self.padding == "same":
            return ops.same_pads(length, self.stride, self.window)
        if self.padding == "causal":
            return self.window - 1, 0
        return 0, 0

    def unpad(self, full: tf.Tensor, length, left, right) -> tf.Tensor:
        """Bring a padded-frame signal of length ``<= length + left + right`` back to ``[n, length, C]``."""
        if self.stride == 1 and isinstance(left, int) and isinstance(right, int):
            # stride 1: the transpose spans exactly the padded frame; constant slice bounds keep a
            # dynamic-length LiteRT model on XNNPACK
            return full[:, left : (-right) or None]
        padded_length = length + left + right
        full = tf.pad(full, [[0, 0], [0, padded_length - tf.shape(full)[1]], [0, 0]])
        return full[:, left : left + length]


# --------------------------------------------------------------------------------- rules
@register_rule(keras.layers.Conv1D, keras.layers.Conv2D)
class ConvRule(_WindowRule):
    """``Conv1D``, or ``Conv2D`` acting along time: backward = transposed convolution with the layer's own kernel."""

    opens_block = True

    def __init__(self, context):
        super().__init__(context)
        layer = self.layer
        self.time_axis = spatial_axis(layer, self.in_layout, isinstance(layer, keras.layers.Conv2D))
        if getattr(layer, "groups", 1) != 1:
            raise unsupported(layer, f"groups={layer.groups} (only 1)")
        activation = _activation_name(layer)
        if activation not in ("relu", "linear"):
            raise unsupported(layer, f"activation {activation!r} (only relu or linear)")
        kernel = _along_time(layer, "kernel", layer.kernel_size, self.time_axis)
        self.stride = _along_time(layer, "strides", layer.strides, self.time_axis)
        self.dilation = _along_time(layer, "dilation_rate", layer.dilation_rate, self.time_axis)
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


@register_rule(keras.layers.ReLU)
class ReLURule(Rule):
    """A plain ``ReLU``: the backward is the :class:`~tfsonify.engine.relu_rules.ReluRule` object passed in."""

    per_channel = True
    extends_block = True

    def __init__(self, context):
        super().__init__(context)
        config = self.layer.get_config()
        if config.get("max_value") is not None or config.get("negative_slope", 0) or config.get("threshold", 0):
            raise unsupported(self.layer, "only the plain ReLU (no max_value, negative_slope or threshold)")

    def forward(self, inputs, channels=None):
        y = tf.nn.relu(inputs[0])
        return y, y  # the output is kept for the guided/gradient masks (pre > 0 <=> relu(pre) > 0)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [relu(upstream, state, take)]


@register_rule(keras.layers.Activation)
class ActivationRule(ReLURule):
    """``Activation("relu")`` (a ReLU rule) or ``Activation("linear")`` (the identity)."""

    def __init__(self, context):
        Rule.__init__(self, context)
        name = _activation_name(self.layer)
        if name not in ("relu", "linear"):
            raise unsupported(self.layer, f"activation {name!r} (only relu or linear)")
        self.linear = name == "linear"
        self.extends_block = not self.linear

    def forward(self, inputs, channels=None):
        return (inputs[0], None) if self.linear else super().forward(inputs, channels)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [upstream] if self.linear else super().backward(upstream, state, take, kernels, relu)


@register_rule(MaxPool1DWithSwitches)
class SwitchPoolRule(_WindowRule):
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


class _PoolRule(_WindowRule):
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


class _AffineRule(Rule):
    """``x * scale + offset`` per channel (or scalars); the backward multiplies by ``scale``."""

    per_channel = True
    extends_block = True

    def affine(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-channel ``(scale, offset)`` ``[C]`` (or ``[1]``), read at call time."""
        raise NotImplementedError

    def forward(self, inputs, channels=None):
        scale, offset = self.affine()
        if channels is not None:  # per-channel values of the chosen channels; scalars broadcast
            scale = scale if scale.shape[0] == 1 else tf.gather(scale, channels)
            offset = offset if offset.shape[0] == 1 else tf.gather(offset, channels)
        return inputs[0] * scale + offset, None

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        scale, _ = self.affine()
        if kernels is not None and scale.shape[0] != 1:  # rows of single selected channels
            scale = tf.reshape(tf.gather(scale, kernels), [-1, 1, 1])
        return [upstream * scale]


@register_rule(keras.layers.BatchNormalization)
class BatchNormRule(_AffineRule):
    """Inference-mode ``BatchNormalization`` on the channel axis (moving statistics)."""

    def __init__(self, context):
        super().__init__(context)
        rank = len(self.in_layout) + 1
        if self.in_layout == ("T",) or int(self.layer.axis) % rank != rank - 1:
            raise unsupported(self.layer, f"axis={self.layer.axis} is not the channel axis")

    def affine(self):
        layer = self.layer
        scale = tf.math.rsqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
        if layer.scale:
            scale = scale * tf.convert_to_tensor(layer.gamma)
        offset = -tf.convert_to_tensor(layer.moving_mean) * scale
        if layer.center:
            offset = offset + tf.convert_to_tensor(layer.beta)
        return scale, offset


@register_rule(keras.layers.Rescaling)
class RescalingRule(_AffineRule):
    """``Rescaling`` with scalar or per-channel ``scale`` and ``offset``."""

    def __init__(self, context):
        super().__init__(context)
        scale = np.asarray(self.layer.scale, np.float32)
        offset = np.asarray(self.layer.offset, np.float32)
        for value in (scale, offset):
            if value.size not in (1, self.out_channels) or (value.ndim > 1 and max(value.shape[:-1], default=1) != 1):
                raise unsupported(self.layer, "scale/offset must be scalars or per-channel vectors")
        self._scale, self._offset = scale.reshape(-1), offset.reshape(-1)

    def affine(self):
        return tf.constant(self._scale, tf.float32), tf.constant(self._offset, tf.float32)


@register_rule(keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
               keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.Identity,
               keras.layers.ActivityRegularization)
class IdentityRule(Rule):
    """Layers that are the identity at inference."""

    per_channel = True


@register_rule(keras.layers.Reshape, keras.layers.Permute)
class ReshapeRule(IdentityRule):
    """``Reshape``/``Permute`` that only insert, drop or move singleton axes around ``[time, channels]``."""

    def __init__(self, context):
        super().__init__(context)
        layer, layout, channels = self.layer, self.in_layout, self.out_channels
        in_shape, out_shape = context.input_shapes[0], context.output_shape
        if isinstance(layer, keras.layers.Permute):
            new = tuple(layout[d - 1] for d in layer.dims)
        else:
            time = in_shape[layout.index("T")]
            non_single = [i for i, size in enumerate(out_shape) if size != 1]
            expected = 2 if channels > 1 else 1
            new = ["1"] * len(out_shape)
            if len(non_single) != expected:
                raise unsupported(layer, f"reshapes {in_shape} to {out_shape}; only inserting or dropping singleton axes "
                                         "around [time, channels] is supported")
            new[non_single[0]] = "T"
            if out_shape[non_single[0]] not in (None, time):
                raise unsupported(layer, f"reshapes time {time} into {out_shape[non_single[0]]}")
            if channels > 1:
                if non_single[1] != len(out_shape) - 1 or out_shape[-1] != channels:
                    raise unsupported(layer, f"reshapes {in_shape} to {out_shape}: channels must stay last")
                new[-1] = "C"
            elif len(out_shape) > 1 and new[-1] == "1":
                new[-1] = "C"
            new = tuple(new)
        if new not in LAYOUTS or (new == ("T",) and channels != 1):
            raise unsupported(layer, f"its output layout {list(new)} is not one of [time], [time, channels], "
                                     "[time, 1, channels], [1, time, channels]")
        self.out_layout = new


class _TimeAmountRule(Rule):
    """Zero padding or cropping of ``left``/``right`` samples on the time axis."""

    per_channel = True

    def __init__(self, context):
        super().__init__(context)
        layer = self.layer
        amounts = layer.padding if hasattr(layer, "padding") else layer.cropping
        amounts = tuple(tuple(a) if isinstance(a, (tuple, list)) else a for a in amounts)
        if isinstance(layer, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
            time_axis = spatial_axis(layer, self.in_layout, two_d=True)
            if tuple(amounts[1 - time_axis]) != (0, 0):
                raise unsupported(layer, f"it pads or crops the singleton axis ({amounts})")
            amounts = tuple(amounts[time_axis])
        else:
            if self.in_layout != ("T", "C"):
                raise unsupported(layer, f"its input layout is {self.in_layout}, not [time, channels]")
            if getattr(layer, "data_format", "channels_last") != "channels_last":
                raise unsupported(layer, "data_format must be channels_last")
        self.left, self.right = int(amounts[0]), int(amounts[1])

    def _pad(self, x):
        return ops.pad_time(x, self.left, self.right)

    def _crop(self, x):
        return x[:, self.left : (-self.right) or None]


@register_rule(keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)
class PadRule(_TimeAmountRule):
    """Zero padding along time; the backward crops it off."""

    def length(self, lengths):
        return lengths[0] + self.left + self.right if lengths[0] >= 1 else 0

    def forward(self, inputs, channels=None):
        return self._pad(inputs[0]), None

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [self._crop(upstream)]


@register_rule(keras.layers.Cropping1D, keras.layers.Cropping2D)
class CropRule(_TimeAmountRule):
    """Cropping along time; the backward zero-pads it back."""

    def length(self, lengths):
        return max(lengths[0] - self.left - self.right, 0) if lengths[0] >= 1 else 0

    def forward(self, inputs, channels=None):
        return self._crop(inputs[0]), None

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [self._pad(upstream)]


@register_rule(keras.layers.Add)
class AddRule(Rule):
    """A residual ``Add``: the upstream goes to every input."""

    merges = True
    extends_block = True

    def __init__(self, context):
        super().__init__(context)
        if len(set(context.layouts)) != 1 or len(set(context.channels)) != 1:
            raise unsupported(self.layer, "its inputs have different layouts or channel counts")

    def length(self, lengths):
        return min(lengths) if lengths[0] >= 1 else 0

    def geometry(self, fields):
        return max(f[0] for f in fields), max(f[1] for f in fields)

    def forward(self, inputs, channels=None):
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total, None

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [upstream] * len(self.inputs)
