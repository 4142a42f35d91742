"""The rule base class, the registry keyed by Keras layer type, and the helpers every rule shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import tensorflow as tf

from tfsonify.engine import ops
from tfsonify.engine.lowering import TENSORFLOW, Lowering
from tfsonify.engine.relu_rules import DECONVNET, ReluRule

__all__ = ["Rule", "LayerContext", "Unsupported", "register_rule", "rule_for", "make_rule", "supported_layers",
           "unsupported", "spatial_axis", "LAYOUTS"]

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

    def window_obstacle(self) -> str | None:
        """Why a window of a longer clip cannot reproduce this layer's output on the window's steps, or None.

        Exact windows (:mod:`tfsonify.engine.windows`) need output step ``i`` to see exactly input samples
        ``[S*i, S*i + R)`` whatever the input's length: no padding and no cropping. A layer that pads (``'same'``,
        ``'causal'``, ``ZeroPadding``) feeds a window's edge steps zeros where the whole clip has samples, and its
        ``'same'`` padding depends on the input's length; the engine then runs such layers in one pass.
        """
        return None

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
def activation_name(layer) -> str:
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


def along_time(layer, name: str, value, time_axis: int) -> int:
    """The time-axis entry of a 1-tuple or (2-D layers) a 2-tuple that must be 1 along the singleton axis."""
    value = tuple(value)
    if len(value) == 2:
        if value[1 - time_axis] != 1:
            raise unsupported(layer, f"{name}={value} is not 1 along the singleton axis (a 2-D layer must act as 1-D)")
        value = (value[time_axis],)
    return int(value[0])


class WindowRule(Rule):
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

    def window_obstacle(self):
        return None if self.padding == "valid" else f"{self.padding!r} padding"

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
