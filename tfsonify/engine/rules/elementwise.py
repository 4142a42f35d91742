"""Per-sample and per-channel layers: ReLU, activations, affine (BatchNorm, Rescaling), identities, reshapes, time padding and cropping, Add."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine import ops
from tfsonify.engine.relu_rules import DECONVNET
from tfsonify.engine.rules.base import LAYOUTS, Rule, activation_name, register_rule, spatial_axis, unsupported


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
        name = activation_name(self.layer)
        if name not in ("relu", "linear"):
            raise unsupported(self.layer, f"activation {name!r} (only relu or linear)")
        self.linear = name == "linear"
        self.extends_block = not self.linear

    def forward(self, inputs, channels=None):
        return (inputs[0], None) if self.linear else super().forward(inputs, channels)

    def backward(self, upstream, state, take, kernels=None, relu=DECONVNET):
        return [upstream] if self.linear else super().backward(upstream, state, take, kernels, relu)


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

    def window_obstacle(self):
        if self.left or self.right:
            return "zero padding" if isinstance(self, PadRule) else "cropping"
        return None

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
