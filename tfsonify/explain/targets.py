"""What an explanation explains: a :class:`Target` and the differentiable score of a model for it.

Every method of :mod:`tfsonify.explain.methods` explains a scalar score per clip:

* ``Target.map(layer, index)`` - one feature map of a layer the deconvnet walks, summed over time:
  ``y = sum_t A_layer[index, t]`` (the paper's objective: its sonification is the deconvnet of that map);
* ``Target.unit(index)`` - output unit ``index`` of the model before a final sigmoid/softmax (a class logit for
  CNN12 with a head, a pitch bin's logit for CREPE), through the read-out layers after the walk
  (:func:`tfsonify.explain.relevance.readout`).

``index`` is an int (the same for every clip), an int array ``[n]`` (one per clip), or ``"top"``: per clip, the
largest logit (units) or the map with the largest sum over time (maps).

**Input domain.** Scores are functions of the *deconvnet's input* ``z`` (float32 ``[n, T]``): the clip after the
model's input-scaling layers (CNN12: peak normalisation, so ``max|z| = 1``; CREPE: per-frame standardisation; a
model without one: the raw waveform). Attributions are taken with respect to ``z`` - the same signal the
sonification ends at - and perturbations (occlusion, deletion, masks) are applied to ``z``. Because the
scalings are scale-invariant, perturbing ``z`` or the raw clip gives the same scores except where a
perturbation removes the clip's peak sample.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine.sonifier import Sonifier
from tfsonify.engine.walk import DeconvNet
from tfsonify.explain.relevance import Readout, readout, readout_forward

__all__ = ["Target", "Explained", "explained", "RULES"]

RULES = ("gradient", "guided", "deconvnet")


@dataclass(frozen=True)
class Target:
    """A map of a layer (``layer`` set) or an output unit (``layer`` None); ``index``: int, int ``[n]`` or "top"."""

    layer: str | int | None
    index: object = "top"

    @staticmethod
    def map(layer: str | int, index=0) -> "Target":
        """Feature map ``index`` of ``layer`` (a layer name or CNN-style block index), summed over time."""
        return Target(layer, index)

    @staticmethod
    def unit(index="top") -> "Target":
        """Output unit ``index`` (class or pitch bin) before the final sigmoid/softmax."""
        return Target(None, index)

    def describe(self) -> str:
        index = self.index if isinstance(self.index, (str, int, np.integer)) else "per-clip"
        return f"unit {index}" if self.layer is None else f"map {index} of layer {self.layer}"


def readout_logits(head: Readout, top: tf.Tensor, rule: str = "gradient") -> tf.Tensor:
    """The read-out on the walk's ``[n, time, C]`` output -> logits ``[n, units]`` (final sigmoid/softmax left out).

    ``rule`` sets the backward of every ReLU in the read-out (as captum's GuidedBackprop / Deconvolution override
    every ReLU of the network): ``"gradient"``, ``"guided"`` or ``"deconvnet"``.
    """
    return readout_forward(head.layers, top, rule)


def _final_activation(head: Readout | None) -> str:
    """``"softmax"``, ``"sigmoid"`` or ``"none"``: what turns the logits into the model's output probabilities."""
    if head is None or not head.layers:
        return "none"
    last = head.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    name = getattr(getattr(last, "activation", None), "__name__", "linear")
    return name if name in ("softmax", "sigmoid") else "none"


class Explained:
    """A model prepared for explanation: its deconvnet, read-out, sample rate and compiled score graphs.

    Build with :func:`explained` (cached per model). All graphs take float32 ``z`` ``[n, T]`` (see the module
    docstring) and int32 ``index`` ``[n]``.
    """

    def __init__(self, model: keras.Model, deconvnet: DeconvNet, sample_rate: int):
        self.model = model
        self.deconvnet = deconvnet
        self.sample_rate = int(sample_rate)
        try:
            self.head, self.head_error = readout(deconvnet), None
            if not self.head.layers:
                self.head, self.head_error = None, ValueError(
                    f"model {model.name!r} has no read-out after the layers the deconvnet walks; pass a map target "
                    "(Target.map(layer, index)) instead of a unit")
        except ValueError as problem:
            self.head, self.head_error = None, problem
        self.activation = _final_activation(self.head)
        self._graphs: dict = {}

    # ------------------------------------------------------------------ checks
    def layer_name(self, target: Target) -> str:
        """The deconvnet layer the target's backward pass starts from (the map's layer, or the read-out's base)."""
        if target.layer is None:
            if self.head is None:
                raise self.head_error
            return self.head.base
        return self.deconvnet.resolve(target.layer)

    def width(self, target: Target) -> int:
        return self.head.units if target.layer is None else self.deconvnet.num_features(self.layer_name(target))

    def min_length(self, target: Target) -> int:
        return self.deconvnet.min_length(self.layer_name(target))

    def check_clips(self, clips, target: Target) -> np.ndarray:
        """``clips`` as float32 ``[n, T]``; ValueError for a wrong shape, non-finite values or clips too short."""
        batch = np.asarray(clips, np.float32)
        if batch.ndim == 1:
            batch = batch[None]
        if batch.ndim != 2 or batch.shape[0] < 1:
            raise ValueError(f"clips must be float32 [n, time] (or one [time] clip); received shape {batch.shape}")
        if not np.all(np.isfinite(batch)):
            raise ValueError("clips contain NaN or infinite samples")
        name = self.layer_name(target)
        needed = self.deconvnet.min_length(name)
        if batch.shape[1] < needed:
            raise ValueError(f"clips of {batch.shape[1]} samples are shorter than layer {name!r}'s minimum of {needed} "
                             f"samples ({needed / self.sample_rate:.3f} s at {self.sample_rate} Hz)")
        fixed = self.model.inputs[0].shape[1]
        if target.layer is None and fixed is not None and batch.shape[1] != fixed:
            raise ValueError(f"model {self.model.name!r} takes exactly {fixed} samples per clip for a unit target; "
                             f"received {batch.shape[1]}")
        return batch

    def indices(self, target: Target, z: np.ndarray) -> np.ndarray:
        """int32 ``[n]`` target index per clip (``"top"`` resolved on ``z``); ValueError when out of range."""
        width, n = self.width(target), z.shape[0]
        index = target.index
        if isinstance(index, str):
            if index != "top":
                raise ValueError(f"target index must be an int, an int array [n] or 'top'; received {index!r}")
            scores = self.run_all(target, z)
            return np.argmax(scores, axis=1).astype(np.int32)
        values = np.asarray(index)
        if values.dtype.kind not in "iu" or values.ndim > 1 or (values.ndim == 1 and values.size != n):
            raise ValueError(f"target index must be an int, an int array of one index per clip ({n}) or 'top'; "
                             f"received {index!r}")
        if np.any(values < 0) or np.any(values >= width):
            what = "unit" if target.layer is None else f"map of layer {self.layer_name(target)!r}"
            raise ValueError(f"target {what} index must be in 0..{width - 1}; received {index!r}")
        return np.broadcast_to(values, (n,)).astype(np.int32)

    # ------------------------------------------------------------------ graphs
    def scale(self, clips: np.ndarray) -> np.ndarray:
        """Raw clips ``[n, T]`` -> the deconvnet's input ``z`` ``[n, T]`` (input scaling applied)."""
        return self.graph("scale", None)(tf.constant(clips)).numpy()

    def _top(self, z: tf.Tensor, target: Target):
        name = self.layer_name(target)
        return self.deconvnet.forward(tf.expand_dims(z, -1), name)

    def _all_scores(self, z, target: Target, rule: str = "gradient"):
        """``[n, width]``: every map's sum over time, or every unit's logit."""
        top, states = self._top(z, target)
        if target.layer is None:
            return readout_logits(self.head, top, rule), top, states
        return tf.reduce_sum(top, axis=1), top, states

    def _score(self, z, index, target: Target):
        scores, _, _ = self._all_scores(z, target)
        return tf.reduce_sum(scores * tf.one_hot(index, tf.shape(scores)[1], dtype=scores.dtype), axis=1)

    def _upstream(self, z, index, target: Target, rule: str, activation_weighted: bool = False):
        """``(upstream [n, time_L, C_L], states)``: d score / d A_L with ``rule`` in the read-out; with
        ``activation_weighted`` the gradient times ``A_L`` (the sonification's signal)."""
        top, states = self._top(z, target)
        if target.layer is None:
            with tf.GradientTape() as tape:
                tape.watch(top)
                logits = readout_logits(self.head, top, rule)
                objective = tf.reduce_sum(logits * tf.one_hot(index, self.head.units, dtype=logits.dtype))
            upstream = tape.gradient(objective, top)
        else:
            upstream = tf.ones_like(top) * tf.expand_dims(tf.one_hot(index, tf.shape(top)[2], dtype=top.dtype), 1)
        return (upstream * top if activation_weighted else upstream), states

    def _backward(self, z, index, target: Target, rule: str, activation_weighted: bool = False):
        upstream, states = self._upstream(z, index, target, rule, activation_weighted)
        return self.deconvnet.backward_full(self.layer_name(target), upstream, states, rule=rule)

    def graph(self, kind: str, target: Target | None, rule: str = "gradient"):
        """A compiled graph: ``"scale"`` (clips), ``"all_scores"`` (z), ``"score"`` (z, index) -> ``[n]``,
        ``"probability"`` (z, index) -> ``[n]``, ``"backward"`` (z, index) -> ``[n, T]`` with ``rule``,
        ``"sonification"`` (z, index) -> ``[n, T]`` (the deconvnet of the activation-weighted signal)."""
        key = (kind, None if target is None else (target.layer is None, self.layer_name(target)), rule)
        if key in self._graphs:
            return self._graphs[key]
        wave, ints = tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)
        if kind == "scale":
            fn, sig = (lambda x: self.deconvnet.scale_input(x)[..., 0]), [wave]
        elif kind == "all_scores":
            fn, sig = (lambda z: self._all_scores(z, target)[0]), [wave]
        elif kind == "score":
            fn, sig = (lambda z, i: self._score(z, i, target)), [wave, ints]
        elif kind == "probability":
            fn, sig = (lambda z, i: self._probability(z, i, target)), [wave, ints]
        elif kind == "backward":
            fn, sig = (lambda z, i: self._backward(z, i, target, rule)), [wave, ints]
        elif kind == "sonification":
            fn, sig = (lambda z, i: self._backward(z, i, target, "deconvnet", True)), [wave, ints]
        else:
            raise AssertionError(kind)
        self._graphs[key] = tf.function(fn, input_signature=sig, reduce_retracing=True, autograph=False)
        return self._graphs[key]

    def _probability(self, z, index, target: Target):
        scores, _, _ = self._all_scores(z, target)
        if target.layer is None and self.activation == "softmax":
            scores = tf.nn.softmax(scores)
        elif target.layer is None and self.activation == "sigmoid":
            scores = tf.sigmoid(scores)
        return tf.reduce_sum(scores * tf.one_hot(index, tf.shape(scores)[1], dtype=scores.dtype), axis=1)

    def run(self, kind: str, target: Target, z: np.ndarray, index: np.ndarray, rule: str = "gradient",
            batch_size: int = 64) -> np.ndarray:
        """A graph over ``z`` ``[n, T]`` in batches of ``batch_size`` clips (numpy in, numpy out)."""
        fn = self.graph(kind, target, rule)
        parts = [fn(tf.constant(z[s : s + batch_size]), tf.constant(index[s : s + batch_size])).numpy()
                 for s in range(0, z.shape[0], batch_size)]
        return np.concatenate(parts, axis=0)


    def run_all(self, target: Target, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``[n, width]`` every unit's logit (or every map's sum over time) of ``z`` ``[n, T]``, in batches."""
        fn = self.graph("all_scores", target)
        return np.concatenate([fn(tf.constant(z[s : s + batch_size])).numpy() for s in range(0, z.shape[0], batch_size)])


_CACHE: "weakref.WeakKeyDictionary[keras.Model, Explained]" = weakref.WeakKeyDictionary()


def explained(model, sample_rate: int | None = None) -> Explained:
    """The :class:`Explained` of a Keras model or a :class:`tfsonify.Sonifier` (cached per model).

    ``sample_rate`` (Hz) defaults to the Sonifier's, else the rate stored with the model
    (:func:`tfsonify.models.metadata.sample_rate_of`).
    """
    if isinstance(model, Explained):
        return model
    if isinstance(model, Sonifier):
        keras_model, deconvnet = model.model, model.deconvnet
        rate = sample_rate or model.sample_rate
    elif isinstance(model, keras.Model):
        keras_model, deconvnet = model, None
        from tfsonify.models.metadata import sample_rate_of

        rate = sample_rate or sample_rate_of(model)
    else:
        raise ValueError(f"model must be a Keras model or a tfsonify.Sonifier; received {type(model).__name__}")
    if keras_model not in _CACHE:
        _CACHE[keras_model] = Explained(keras_model, deconvnet or DeconvNet(keras_model), rate)
    return _CACHE[keras_model]
