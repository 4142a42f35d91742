"""The one rule that tells deconvnet, guided backpropagation and the gradient apart: a ReLU's backward.

Every other layer's rule is the same for the three methods (Springenberg et al., 2015, Fig. 1; zennit's
composites differ the same way). A rule is an object: ``rule(upstream, output, take)`` gives the ReLU's
input signal from ``upstream`` (the signal arriving from above) and the ReLU's recorded forward ``output``
(``take(output)`` brings the recorded ``[batch, ...]`` tensor to the rows being deconvolved).

=================  =======================================================  =========================
rule               backward of ``y = relu(x)``                              paper
=================  =======================================================  =========================
:data:`DECONVNET`  ``relu(upstream)`` (ignores the forward pass)           Zeiler & Fergus 2014 §2.1
:data:`GUIDED`     ``upstream`` where ``y > 0`` and ``upstream > 0``       Springenberg et al. 2015
:data:`GRADIENT`   ``upstream`` where ``y > 0`` (the plain gradient)        (saliency)
=================  =======================================================  =========================
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

__all__ = ["ReluRule", "Deconvnet", "Guided", "Gradient", "DECONVNET", "GUIDED", "GRADIENT", "relu_rule"]


class ReluRule:
    """Base class: the backward signal of a ReLU. Subclass and override :meth:`__call__` for a new method.

    Attributes:
        name: the rule's name (``relu_rule(name)`` finds the built-in ones).
    """

    name = "relu-rule"

    def __call__(self, upstream: tf.Tensor, output: tf.Tensor, take: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """``upstream`` ``[n, T, C]`` -> the signal at the ReLU's input ``[n, T, C]``.

        Args:
            upstream: the signal from the layer above, rows of the deconvolved maps.
            output: the ReLU's recorded forward output ``[batch, T, C]`` (``relu(x)``).
            take: maps a recorded ``[batch, ...]`` tensor to the rows of ``upstream``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Deconvnet(ReluRule):
    """Zeiler & Fergus' deconvnet: ``relu(upstream)``, the forward pass is not consulted."""

    name = "deconvnet"

    def __call__(self, upstream, output, take):
        return tf.nn.relu(upstream)


class Guided(ReluRule):
    """Guided backpropagation: ``upstream`` where the ReLU's output and ``upstream`` are both positive."""

    name = "guided"

    def __call__(self, upstream, output, take):
        return tf.where((take(output) > 0.0) & (upstream > 0.0), upstream, tf.zeros_like(upstream))


class Gradient(ReluRule):
    """The plain gradient: ``upstream`` where the ReLU's output is positive."""

    name = "gradient"

    def __call__(self, upstream, output, take):
        return tf.where(take(output) > 0.0, upstream, tf.zeros_like(upstream))


DECONVNET, GUIDED, GRADIENT = Deconvnet(), Guided(), Gradient()
_BY_NAME = {rule.name: rule for rule in (DECONVNET, GUIDED, GRADIENT)}


def relu_rule(rule: "str | ReluRule") -> ReluRule:
    """A :class:`ReluRule` from itself or a built-in name (``"deconvnet"``, ``"guided"``, ``"gradient"``)."""
    if isinstance(rule, ReluRule):
        return rule
    if isinstance(rule, str) and rule in _BY_NAME:
        return _BY_NAME[rule]
    raise ValueError(f"rule must be a ReluRule or one of {', '.join(repr(n) for n in _BY_NAME)}; received {rule!r}")
