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
from tfsonify.engine.rules.base import (LAYOUTS, LayerContext, Rule, Unsupported, make_rule, register_rule, rule_for,
                                       spatial_axis, supported_layers, unsupported)
from tfsonify.engine.rules.conv import ConvRule
from tfsonify.engine.rules.elementwise import (ActivationRule, AddRule, BatchNormRule, CropRule, IdentityRule, PadRule,
                                              ReLURule, RescalingRule, ReshapeRule)
from tfsonify.engine.rules.pools import AveragePoolRule, MaxPoolRule, SwitchPoolRule

__all__ = ["Rule", "LayerContext", "Unsupported", "register_rule", "rule_for", "make_rule", "supported_layers",
           "unsupported", "spatial_axis", "LAYOUTS",
           "ConvRule", "ReLURule", "ActivationRule", "MaxPoolRule", "SwitchPoolRule", "AveragePoolRule",
           "BatchNormRule", "RescalingRule", "IdentityRule", "ReshapeRule", "PadRule", "CropRule", "AddRule"]
