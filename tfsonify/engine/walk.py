"""The graph walk: a deconvnet for any raw-waveform Keras CNN, read from the model's Keras graph (paper §3.2).

:class:`DeconvNet` reads a Keras 3 model (Functional or Sequential) from its waveform input
(``[batch, time]`` or ``[batch, time, 1]``) and turns every layer call on the way into a *rule*
(:mod:`tfsonify.engine.rules`: one class per Keras layer type, in a registry keyed by the type) with a
forward pass (which records what the way back needs, e.g. max-pool switches) and a backward pass.
The ReLU's backward is an object (:mod:`tfsonify.engine.relu_rules`: deconvnet, guided, gradient), and how
the graph is written for a runtime is an explicit :class:`~tfsonify.engine.lowering.Lowering`.

Leading *input-scaling* layers (``tfsonify.PeakNormalization`` or any layer whose class sets
``sonify_input_scaling = True``, e.g. a per-frame standardisation) are applied in the forward
pass and the deconvnet ends at their output, as the paper's sonification of CNN12 ends at the
peak-normalised waveform.

The result of the rules equals the gradient of ``sum_t A[f, t] * stop_gradient(A[f, t])`` with
respect to the deconvnet's input when every ReLU's backward is replaced by ``relu(upstream)``
(tests/oracle.py).

Internally every tensor is ``[batch, time, channels]`` (a Conv2D's singleton axis is dropped);
the layout of the Keras tensor is only used to check that a layer works along time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine.lowering import TENSORFLOW, Lowering
from tfsonify.engine.ops import pick_rows
from tfsonify.engine.relu_rules import DECONVNET, ReluRule, relu_rule
from tfsonify.engine.rules import LayerContext, Rule, Unsupported, make_rule, supported_layers, unsupported
from tfsonify.layers import MaxPool1DWithSwitches, PeakNormalization, add_channel_axis, drop_channel_axis

__all__ = ["DeconvNet", "LayerInfo", "is_input_scaling", "supported_layers"]


def is_input_scaling(layer) -> bool:
    """True for layers the deconvnet treats as input scaling (``PeakNormalization``, ``sonify_input_scaling``)."""
    return isinstance(layer, PeakNormalization) or bool(getattr(type(layer), "sonify_input_scaling", False))


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


class DeconvNet:
    """The deconvnet of a Keras model, from its waveform input to any supported layer.

    Args:
        model: a built Keras 3 model (Functional, Sequential or a Functional subclass such as
            :class:`tfsonify.CNN12`) with one input ``[batch, time]`` or ``[batch, time, 1]``.
        lowering: how the graph is written (:data:`~tfsonify.engine.lowering.TENSORFLOW`; the TFLite exporter
            passes :data:`~tfsonify.engine.lowering.TFLITE` or ``TFLITE_INT8``).

    Raises:
        ValueError: several inputs, no waveform input, an unbuilt model, no supported layer after
            the input, or a convolution reachable only through an unsupported layer (the message
            names that layer, its class and what is supported).

    Kernels and statistics are read from the model's variables at call time, so a later ``fit`` or
    ``load_weights`` is seen without rebuilding.
    """

    def __init__(self, model: keras.Model, lowering: Lowering = TENSORFLOW):
        if not isinstance(lowering, Lowering):
            raise ValueError(f"lowering must be a tfsonify.engine.lowering.Lowering; received {lowering!r}")
        self.model = model
        self.lowering = lowering
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
        self.steps: list[Rule] = []
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
                blocker = unsupported(layer, "one of its inputs does not come from the waveform input")
            if blocker is None:
                try:
                    if calls[id(layer)] > 1:
                        raise unsupported(layer, f"it is called {calls[id(layer)]} times in the model; each layer "
                                                  "on the path must be called once")
                    if len(outputs) != 1 and not (isinstance(layer, MaxPool1DWithSwitches) and len(outputs) == 2):
                        raise unsupported(layer, f"it has {len(outputs)} outputs")
                    if is_input_scaling(layer):
                        if not (prelude_open and inputs == [self.start]):
                            raise unsupported(layer, "an input-scaling layer must come directly after the input")
                        self.prelude.append(layer)
                        self.start = id(outputs[0])
                        self.layouts[self.start] = self.layouts[inputs[0]]
                        self.channels[self.start] = 1
                        continue
                    step = make_rule(LayerContext(
                        layer, tuple(inputs), id(outputs[0]), tuple(self.layouts[i] for i in inputs),
                        tuple(self.channels[i] for i in inputs), tuple(tuple(self._tensors[i].shape)[1:] for i in inputs),
                        tuple(outputs[0].shape)[1:], self.lowering))
                    self.layouts[step.output] = step.out_layout
                    self.channels[step.output] = step.out_channels
                except Unsupported as error:
                    blocker = error
                else:
                    prelude_open = False
                    self.by_name[layer.name] = len(self.steps)
                    self.steps.append(step)
                    for extra in outputs[1:]:  # MaxPool1DWithSwitches' switches: read by the step, not a feature map
                        self.blocked[id(extra)] = unsupported(
                            layer, "its second output holds the pool's switches, not feature maps; use its first output")
                    continue
            for tensor in outputs:
                self.blocked[id(tensor)] = blocker
            self.blocked_names.setdefault(layer.name, blocker)

    def _analyse(self) -> None:
        """Geometry per step output; the build-time errors."""
        self.fields: dict[int, tuple[int, int]] = {self.start: (1, 1)}
        self.convolved: dict[int, bool] = {self.start: False}
        self.obstacles: dict[int, str | None] = {self.start: None}
        for step in self.steps:
            self.fields[step.output] = step.geometry([self.fields[i] for i in step.inputs])
            own = step.window_obstacle()
            inherited = next((self.obstacles[i] for i in step.inputs if self.obstacles[i]), None)
            self.obstacles[step.output] = inherited or (f"layer {step.name!r} ({own})" if own else None)
            self.convolved[step.output] = step.convolves or any(
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
            if step.opens_block:
                if current is not None:
                    self.blocks.append(current)
                current = step.name
            elif current is not None and step.extends_block:
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

    def step(self, name: str) -> Rule:
        return self.steps[self.by_name[name]]

    def num_features(self, name: str) -> int:
        return self.channels[self.step(name).output]

    def geometry(self, name: str) -> tuple[int, int]:
        """``(receptive_field, total_stride)`` in input samples of layer ``name``'s output."""
        return self.fields[self.step(name).output]

    def window_obstacle(self, name: str) -> str | None:
        """The first layer on the way to ``name`` that exact windows cannot reproduce (``"layer 'c1' ('same'
        padding)"``, see :meth:`tfsonify.engine.rules.Rule.window_obstacle`), or a custom input scaling
        (``sonify_input_scaling`` other than ``PeakNormalization``: its effect on a window is not its effect on the
        clip), or None."""
        prelude = list(self.prelude)
        if prelude and not (len(prelude) == 1 and isinstance(prelude[0], PeakNormalization)):
            return "the model scales its input with a custom layer"
        return self.obstacles[self.step(name).output]

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

    def _path(self, name: str) -> list[Rule]:
        """The steps the output of layer ``name`` depends on, in graph order."""
        needed = {self.step(name).output}
        chosen = []
        for step in reversed(self.steps):
            if step.output in needed:
                chosen.append(step)
                needed.update(step.inputs)
        return chosen[::-1]

    def _top(self, name: str) -> list[Rule] | None:
        """The last conv on the way to ``name`` plus the per-channel single-input steps after it, or None."""
        chain = []
        step = self.step(name)
        while True:
            chain.append(step)
            if step.opens_block:
                return chain[::-1]
            if not step.per_channel or len(step.inputs) != 1:
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
                 features: tf.Tensor, columns: tf.Tensor | None = None,
                 rule: str | ReluRule = DECONVNET) -> tf.Tensor:
        """Deconvnet from layer ``name`` down to the input.

        Args:
            signal: ``[n, time_L, 1]`` the kept map of each row (its values: the objective's gradient).
            states: from :meth:`forward` (``[batch, ...]``).
            batch_index: int32 ``[n]`` clip of each row.
            features: int32 ``[n]`` channel of each row's map.
            columns: int32 ``[n]`` column of each row's map in the top block's states (default ``features``;
                the positions in ``channels`` when :meth:`forward` ran the top block on chosen channels).
            rule: the ReLU rule (:mod:`tfsonify.engine.relu_rules`; default the deconvnet's).

        When ``name`` ends a conv block (:meth:`_top`), that block runs per row on its single map and the
        conv is transposed with the map's own kernel column; otherwise the map is one-hot over the
        channels and every step runs on full tensors.

        Returns:
            ``[n, time]`` raw reconstruction at the deconvnet's input (no scaling).
        """
        top = self._top(name)
        output = self.step(name).output
        if top is None:
            signal = signal * tf.expand_dims(tf.one_hot(features, self.channels[output], dtype=signal.dtype), 1)
        rows = tf.stack([batch_index, features if columns is None else columns], axis=1)
        # one clip (a static batch of 1): its states broadcast over the rows (no copies; LiteRT's GATHER
        # runs outside XNNPACK)
        gather = lambda t: t if t.shape[0] == 1 else tf.gather(t, batch_index)  # noqa: E731
        return self._propagate(name, signal, states, relu_rule(rule), gather, top or [],
                               lambda t: pick_rows(t, rows), features)

    def backward_full(self, name: str, upstream: tf.Tensor, states: dict,
                      rule: str | ReluRule = DECONVNET) -> tf.Tensor:
        """The backward rules from a full upstream signal at layer ``name`` down to the input.

        Args:
            upstream: ``[batch, time_L, C_L]`` (e.g. an output unit's gradient at ``name``, or one-hot maps).
            states: from :meth:`forward` of the same ``[batch, ...]`` input without ``channels``.
            rule: the ReLU rule (:mod:`tfsonify.engine.relu_rules`): ``DECONVNET`` (``relu(upstream)``,
                :meth:`backward`'s), ``GUIDED`` (guided backpropagation) or ``GRADIENT`` (the plain gradient),
                or their names. Every other layer's rule is the same for all three.

        Returns:
            ``[batch, time]`` at the deconvnet's input (after input scaling; no rescaling).
        """
        return self._propagate(name, upstream, states, relu_rule(rule), lambda t: t)

    def _propagate(self, name: str, upstream: tf.Tensor, states: dict, relu: ReluRule, take,
                   top: Sequence[Rule] = (), take_top=None, kernels: tf.Tensor | None = None) -> tf.Tensor:
        """Run every rule's backward from layer ``name`` down to the input (summing where branches join);
        the rules in ``top`` get ``take_top`` and the rows' ``kernels``, the others ``take`` and None."""
        top_ids = {id(s) for s in top}
        grads = {self.step(name).output: upstream}
        for step in reversed(self._path(name)):
            if step.output not in grads:
                continue
            in_top = id(step) in top_ids
            outs = step.backward(grads.pop(step.output), states[id(step)], take_top if in_top else take,
                                 kernels if in_top else None, relu)
            for key, value in zip(step.inputs, outs):
                grads[key] = value if key not in grads else grads[key] + value
        return drop_channel_axis(grads[self.start])

    def last_layer(self, tensor) -> str | None:
        """The name of the step whose output is Keras tensor ``tensor``, or None if it is not on the walk."""
        return next((step.name for step in self.steps if step.output == id(tensor)), None)

    def reconstruct(self, x: tf.Tensor, name: str, batch_index: tf.Tensor, features: tf.Tensor,
                    channels: tf.Tensor | None = None, rule: str | ReluRule = DECONVNET) -> tf.Tensor:
        """Raw deconvnet output ``[n, time]`` for map ``features[i]`` of clip ``batch_index[i]``.

        The forward pass stops at layer ``name``; when ``name`` ends a conv block, that block is computed
        only for the requested channels.

        Args:
            x: ``[batch, time, 1]`` the deconvnet's input (after input scaling).
            features: int32 ``[n]``: channels; with ``channels`` (int32 ``[u]``, distinct), positions in it.
            rule: the ReLU rule (default the deconvnet's; ``"guided"`` gives guided backpropagation of the map).
        """
        if channels is None:
            channels, slots = features, tf.range(tf.shape(features)[0])
        else:
            slots = features
        chosen = tf.gather(channels, slots)
        if self._top(name) is None:
            output, states = self.forward(x, name)
            return self.backward(name, pick_rows(output, tf.stack([batch_index, chosen], 1)), states, batch_index, chosen,
                                 rule=rule)
        output, states = self.forward(x, name, channels)
        signal = pick_rows(output, tf.stack([batch_index, slots], axis=1))
        return self.backward(name, signal, states, batch_index, chosen, columns=slots, rule=rule)

    def reconstruct_top(self, x: tf.Tensor, name: str, k,
                        rule: str | ReluRule = DECONVNET) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The ``k`` maps of layer ``name`` with the largest maximum over time, per clip, and their raw deconvnet.

        Returns ``(features [batch, k] int32, scores [batch, k], reconstructions [batch * k, time])``.
        """
        output, states = self.forward(x, name)
        scores, features = tf.math.top_k(tf.reduce_max(output, axis=1), k=k)
        flat = tf.reshape(features, [-1])
        batch_index = tf.repeat(tf.range(tf.shape(x)[0]), k)
        rows = tf.stack([batch_index, flat], axis=1)
        return features, scores, self.backward(name, pick_rows(output, rows), states, batch_index, flat, rule=rule)
