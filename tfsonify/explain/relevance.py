"""Gradient relevance signals for raw-waveform CNNs (Muckenhirn et al., 2019, §2-3).

* :func:`guided_backprop` - relevance ``f[n] = d y_c / d x_n`` of one output unit (or of one feature map's
  sum over time) with respect to the deconvnet's input waveform, where every ReLU passes back only positive
  gradients at positive inputs (Springenberg et al.'s guided backpropagation). It runs on the same layer walk
  as the sonifier (:class:`tfsonify.engine.walk.DeconvNet`: one recorded forward pass, max-unpooling with its
  switches, transposed convolutions with the layers' own kernels); the ReLU rule is the one difference
  (deconvnet ``relu(upstream)``, guided ``upstream`` where the ReLU's input and ``upstream`` are > 0). The
  layers after the walk (the *read-out*: temporal pooling, ``Flatten``, ``Dense``, ``BatchNormalization``,
  activations; CNN12's temporal mean + embedding + classifier, CREPE's flatten + classifier) are
  differentiated with guided ReLUs.
* :func:`spectral_relevance` - ``|g[k]|`` with ``g = DFT^-1{f}`` (their Eq. 3-4) for
  ``k = 0 .. ceil(N/2) - 1``, and :func:`short_time_spectral_relevance`, its framed version.
* :func:`cumulative_frequency_response` - ``F_cum = sum_k F_k / ||F_k||_2`` over the first layer's
  filters (their Eq. 1).
* :func:`input_frequency_response` - ``s = |sum_k <x, f_k> DFT[f_k]|`` for input segments of the
  first layer's kernel width (their Eq. 2).

Input conventions follow :class:`tfsonify.Sonifier`: waveforms are float32 ``[time]`` or
``[batch, time]`` at the model's rate (CNN12 8 kHz, CREPE 16 kHz), any amplitude. Relevance is taken with
respect to the deconvnet's input: after the model's input-scaling layers (CNN12's peak normalisation, so
it does not depend on the recording level; CREPE's per-frame standardisation), else the raw waveform.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine.rules import ConvRule
from tfsonify.engine.walk import DeconvNet
from tfsonify.engine.sonifier import Sonifier, check_clip

__all__ = [
    "Readout",
    "readout",
    "output_logits",
    "guided_backprop",
    "spectral_relevance",
    "short_time_spectral_relevance",
    "cumulative_frequency_response",
    "input_frequency_response",
]

_POOLS = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
          keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D)
_PASS = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.Identity,
         keras.layers.ActivityRegularization, keras.layers.AlphaDropout)
READOUT_LAYERS = ("GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D (keepdims=False), Flatten, Dense, "
                  "BatchNormalization, ReLU, Activation, Softmax, Dropout-like identities; a final sigmoid/softmax "
                  "is left out (the unit is its logit)")


@tf.custom_gradient
def _guided_relu(x):
    """ReLU whose backward passes ``upstream`` only where ``x > 0`` and ``upstream > 0``."""
    def grad(upstream):
        return tf.where((x > 0.0) & (upstream > 0.0), upstream, tf.zeros_like(upstream))

    return tf.nn.relu(x), grad


@dataclass(frozen=True)
class Readout:
    """From the deconvnet walk's last layer to the model's output.

    Attributes:
        base: name of the last layer the deconvnet walks (the read-out's input).
        layers: the Keras layers after it, input first (empty when the model's output is ``base`` itself).
        units: width of the model's output (the unit index range).
    """

    base: str
    layers: tuple
    units: int


def _check_readout_layer(layer) -> None:
    ok = isinstance(layer, _POOLS + _PASS + (keras.layers.Flatten, keras.layers.Dense, keras.layers.BatchNormalization,
                                             keras.layers.Activation, keras.layers.Softmax))
    if isinstance(layer, _POOLS) and getattr(layer, "keepdims", False):
        ok = False
    if isinstance(layer, keras.layers.ReLU):
        ok = (layer.max_value is None and not float(layer.negative_slope) and not float(layer.threshold))
    if not ok:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) between the deconvnet's last layer and the "
                         f"model's output is not supported for relevance of an output unit (supported: "
                         f"{READOUT_LAYERS}); pass layer=NAME to take the relevance of a feature map instead")


def readout(deconvnet: DeconvNet) -> Readout:
    """The model's read-out after the layers the deconvnet walks (see :class:`Readout`).

    Raises:
        ValueError: several outputs, a merge or an unsupported layer in the read-out (named).
    """
    model = deconvnet.model
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs; relevance of an output unit needs "
                         "one (pass layer=NAME for a feature map)")
    tensor, layers = model.outputs[0], []
    units = int(model.outputs[0].shape[-1])
    while (base := deconvnet.last_layer(tensor)) is None:
        history = getattr(tensor, "_keras_history", None)
        if history is None or id(tensor) == deconvnet.start:
            raise ValueError(f"model {model.name!r}: its output is not reached from a layer the deconvnet walks")
        node = history.operation._inbound_nodes[history.node_index]
        if len(node.input_tensors) != 1:
            raise ValueError(f"layer {node.operation.name!r} ({type(node.operation).__name__}) after the deconvnet's "
                             "last layer merges several tensors; relevance of an output unit needs a single chain "
                             "(pass layer=NAME for a feature map)")
        _check_readout_layer(node.operation)
        layers.append(node.operation)
        tensor = node.input_tensors[0]
    return Readout(base, tuple(reversed(layers)), units)


@tf.custom_gradient
def _deconv_relu(x):
    def grad(upstream):
        return tf.nn.relu(upstream)
    return tf.nn.relu(x), grad


def _relu(h: tf.Tensor, rule: str) -> tf.Tensor:
    return tf.nn.relu(h) if rule == "gradient" else (_guided_relu(h) if rule == "guided" else _deconv_relu(h))


def _activation(function, h: tf.Tensor, last: bool, rule: str) -> tf.Tensor:
    name = getattr(function, "__name__", str(function))
    if name == "linear" or (last and name in ("sigmoid", "softmax")):
        return h
    if name == "relu":
        return _relu(h, rule)
    return function(h)


def readout_forward(layers: tuple, h: tf.Tensor, rule: str = "gradient") -> tf.Tensor:
    """The read-out on the walk's ``[batch, time, channels]`` tensor -> the output units' logits ``[batch, units]``.

    The walk drops a Conv2D's singleton axis and keeps time before channels, so ``Flatten`` of it orders the
    values as Keras' ``Flatten`` of ``[time, 1, channels]`` does. ``rule`` sets the backward of every ReLU in the
    read-out: ``"gradient"``, ``"guided"`` (guided backpropagation) or ``"deconvnet"`` (``relu(upstream)``).
    """
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        if isinstance(layer, (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)):
            h = tf.reduce_mean(h, axis=1) if h.shape.rank == 3 else h
        elif isinstance(layer, (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D)):
            h = tf.reduce_max(h, axis=1) if h.shape.rank == 3 else h
        elif isinstance(layer, keras.layers.Flatten):
            h = tf.reshape(h, tf.stack([tf.shape(h)[0], -1]))
        elif isinstance(layer, keras.layers.Dense):
            h = tf.tensordot(h, tf.convert_to_tensor(layer.kernel), axes=[[h.shape.rank - 1], [0]])
            if layer.bias is not None:
                h = h + tf.convert_to_tensor(layer.bias)
            h = _activation(layer.activation, h, last, rule)
        elif isinstance(layer, keras.layers.BatchNormalization):
            h = layer(h, training=False)
        elif isinstance(layer, keras.layers.ReLU):
            h = _relu(h, rule)
        elif isinstance(layer, keras.layers.Activation):
            h = _activation(layer.activation, h, last, rule)
        elif isinstance(layer, keras.layers.Softmax):
            h = h if last else tf.nn.softmax(h)
    return h


@dataclass
class _Relevance:
    """Per model: its deconvnet, read-out (or the error why there is none) and compiled graphs."""

    deconvnet: DeconvNet
    readout: Readout | None
    readout_error: ValueError | None
    graphs: dict


_PER_MODEL: "weakref.WeakKeyDictionary[keras.Model, _Relevance]" = weakref.WeakKeyDictionary()


def _state(model) -> _Relevance:
    if isinstance(model, Sonifier):
        model = model.model
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a Keras model or a tfsonify.Sonifier; received {type(model).__name__}")
    if model not in _PER_MODEL:
        deconvnet = DeconvNet(model)
        try:
            result, error = readout(deconvnet), None
        except ValueError as problem:
            result, error = None, problem
        _PER_MODEL[model] = _Relevance(deconvnet, result, error, {})
    return _PER_MODEL[model]


def _need_readout(state: _Relevance) -> Readout:
    if state.readout is None:
        raise state.readout_error
    return state.readout


def _logits_graph(state: _Relevance, waveform: tf.Tensor) -> tf.Tensor:
    head = _need_readout(state)
    top, _ = state.deconvnet.forward(state.deconvnet.scale_input(waveform), head.base)
    return readout_forward(head.layers, top, "gradient")


def _guided_graph(state: _Relevance, layer: str | None, waveform: tf.Tensor, units: tf.Tensor) -> tf.Tensor:
    """``[batch, time]`` guided relevance of output unit (``layer`` None) or map ``units[b]`` of ``layer``."""
    deconvnet = state.deconvnet
    name = layer if layer is not None else state.readout.base
    top, states = deconvnet.forward(deconvnet.scale_input(waveform), name)
    if layer is None and state.readout.layers:
        with tf.GradientTape() as tape:
            tape.watch(top)
            logits = readout_forward(state.readout.layers, top, "guided")
            objective = tf.reduce_sum(logits * tf.one_hot(units, state.readout.units, dtype=logits.dtype))
        upstream = tape.gradient(objective, top)
    else:  # d (sum_t A[c, t]) / d A
        upstream = tf.ones_like(top) * tf.expand_dims(tf.one_hot(units, top.shape[-1], dtype=top.dtype), 1)
    return deconvnet.backward_full(name, upstream, states, rule="guided")


def _graph(state: _Relevance, kind: str, layer: str | None, jit_compile: bool):
    key = (kind, layer, jit_compile)
    if key not in state.graphs:
        wave = tf.TensorSpec([None, None], tf.float32)
        if kind == "logits":
            fn, signature = (lambda w: _logits_graph(state, w)), [wave]
        else:
            fn, signature = (lambda w, u: _guided_graph(state, layer, w, u)), [wave, tf.TensorSpec([None], tf.int32)]
        state.graphs[key] = tf.function(fn, input_signature=signature, jit_compile=jit_compile, reduce_retracing=True,
                                        autograph=False)  # plain Python loops over the walk; no conversion needed
    return state.graphs[key]


def _checked(state: _Relevance, waveform, name: str, readout: bool = False) -> np.ndarray:
    """``waveform`` as float32 ``[batch, time]``; through the read-out a model with a fixed input length (e.g.
    CREPE's 1024-sample frames before ``Flatten``) takes exactly that many samples."""
    batch = check_clip(waveform, state.deconvnet.min_length(name), f"layer {name!r}")
    fixed = state.deconvnet.model.inputs[0].shape[1]
    if readout and fixed is not None and batch.shape[1] != fixed:
        raise ValueError(f"model {state.deconvnet.model.name!r} takes exactly {fixed} samples per clip for the "
                         f"relevance of an output unit; received {batch.shape[1]} (pass layer=NAME for a feature "
                         "map of a clip of any length)")
    return batch


def output_logits(model, waveform) -> np.ndarray:
    """Pre-activation outputs ``[batch, units]`` (logits before a final sigmoid/softmax) - the ``y_c`` relevance uses.

    Args:
        model: a Keras model the deconvnet supports whose read-out (:func:`readout`) is supported, or a Sonifier.
        waveform: float32 ``[time]`` or ``[batch, time]`` at the model's rate.
    """
    state = _state(model)
    head = _need_readout(state)
    batch = _checked(state, waveform, head.base, readout=True)
    return _graph(state, "logits", None, False)(tf.constant(batch)).numpy()


def guided_backprop(model, waveform, unit: int | None = None, jit_compile: bool = False,
                    layer: int | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Guided-backprop relevance of one output unit (or one feature map) with respect to the input waveform.

    Args:
        model: any model :class:`tfsonify.Sonifier` supports (or a Sonifier). Without ``layer``, ``y_c`` is the
            model's output unit ``c`` before a final sigmoid/softmax (CNN12 with head: the classifier's logit;
            without: the embedding unit; CREPE: pitch bin ``c``), through the read-out (:func:`readout`).
        waveform: float32 ``[time]`` or ``[batch, time]`` at the model's rate (at least the minimum length of
            the deconvnet's last layer, or of ``layer``; CNN12: 2370 samples).
        unit: output index ``c`` (with ``layer``: the map index); default the largest logit of each clip
            (with ``layer``: the map with the largest maximum over time).
        jit_compile: compile the pass with XLA (as on TPU).
        layer: a layer name or block index (as :meth:`tfsonify.Sonifier.layers`): relevance of
            ``y = sum_t A_layer[c, t]`` instead of an output unit - for any supported model, also one whose
            read-out is not supported.

    Returns:
        ``(relevance, units)``: float32 relevance shaped like ``waveform`` (``d y_c / d x_n`` at the deconvnet's
        input, guided), and the int32 unit used per clip (``[]`` or ``[batch]``).
    """
    state = _state(model)
    if layer is None:
        name = _need_readout(state).base
        width = state.readout.units if state.readout.layers else state.deconvnet.num_features(name)
        graph_layer = None if state.readout.layers else name
    else:
        name = graph_layer = state.deconvnet.resolve(layer)
        width = state.deconvnet.num_features(name)
    batch = _checked(state, waveform, name, readout=graph_layer is None)
    if unit is None:
        if graph_layer is None:
            scores = _graph(state, "logits", None, False)(tf.constant(batch)).numpy()
        else:
            out, _ = state.deconvnet.forward(state.deconvnet.scale_input(tf.constant(batch)), name)
            scores = tf.reduce_max(out, axis=1).numpy()
        units = np.argmax(scores, axis=1).astype(np.int32)
    else:
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < width:
            what = "an output index" if graph_layer is None else f"a map index of layer {name!r}"
            raise ValueError(f"unit must be {what} in 0..{width - 1}; received {unit!r}")
        units = np.full(batch.shape[0], unit, np.int32)
    relevance = _graph(state, "guided", graph_layer, bool(jit_compile))(tf.constant(batch), tf.constant(units)).numpy()
    if np.ndim(waveform) == 1:
        return relevance[0], units[0]
    return relevance, units


def spectral_relevance(relevance: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectral relevance ``|DFT^-1{f}[k]|`` for ``k = 0 .. ceil(N/2) - 1`` (Muckenhirn et al., Eq. 4).

    Args:
        relevance: float ``[time]`` (or ``[batch, time]``) time-domain relevance ``f[n]``.
        sample_rate: Hz, for the frequency axis.

    Returns:
        ``(freqs_hz [ceil(N/2)], magnitude [..., ceil(N/2)])`` float64.
    """
    relevance = np.asarray(relevance, np.float64)
    if relevance.ndim not in (1, 2) or relevance.shape[-1] < 2:
        raise ValueError(f"relevance must be [time] or [batch, time] with time >= 2; received shape {relevance.shape}")
    size = relevance.shape[-1]
    bins = int(np.ceil(size / 2))
    magnitude = np.abs(np.fft.ifft(relevance, axis=-1))[..., :bins]
    return np.arange(bins) * sample_rate / size, magnitude


def short_time_spectral_relevance(relevance: np.ndarray, sample_rate: int, window_ms: float = 25.0,
                                  hop_ms: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time spectral relevance: :func:`spectral_relevance` of Hann-windowed frames of ``f[n]``.

    Args:
        relevance: float ``[time]``.
        window_ms, hop_ms: frame length and hop in milliseconds (25 ms as in the paper's analysis).

    Returns:
        ``(freqs_hz [bins], frame_centres_s [frames], magnitude [frames, bins])``.
    """
    relevance = np.asarray(relevance, np.float64)
    window = int(round(window_ms * sample_rate / 1000.0))
    hop = int(round(hop_ms * sample_rate / 1000.0))
    if relevance.ndim != 1 or window < 2 or hop < 1 or relevance.size < window:
        raise ValueError(f"need a [time] relevance of at least one {window}-sample window and a positive hop; "
                         f"received shape {relevance.shape}, window {window}, hop {hop}")
    starts = np.arange(0, relevance.size - window + 1, hop)
    frames = np.stack([relevance[s : s + window] for s in starts]) * np.hanning(window)
    freqs, magnitude = spectral_relevance(frames, sample_rate)
    return freqs, (starts + window / 2.0) / sample_rate, magnitude


def _first_layer_filters(model) -> np.ndarray:
    """``[n_f, kW]`` float64 filters of the first convolution on the waveform (CNN12's ``conv1``, CREPE's ``conv1``)."""
    deconvnet = _state(model).deconvnet
    first = next((step for step in deconvnet.steps if isinstance(step, ConvRule)), None)
    kernel = np.asarray(first.kernel())  # [kW, 1, n_f] (a Conv2D-as-1-D's singleton axis dropped)
    if first.dilation != 1 or kernel.shape[1] != 1:
        raise ValueError(f"the first-layer responses need an undilated conv on the 1-channel waveform; layer "
                         f"{first.name!r} has dilation {first.dilation} and {kernel.shape[1]} input channels")
    return kernel[:, 0, :].T.astype(np.float64)


def cumulative_frequency_response(model: keras.Model, n_fft: int = 512, sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """First-layer cumulative frequency response ``F_cum = sum_k F_k / ||F_k||_2`` (Muckenhirn et al., Eq. 1).

    ``F_k`` is the magnitude of the ``n_fft``-point DFT of filter ``k`` (zero-padded), bins
    ``0 .. n_fft // 2``. All-zero filters are left out. ``sample_rate`` (Hz) labels the bins; default the rate
    stored with the model.

    Returns:
        ``(freqs_hz [n_fft // 2 + 1], response [n_fft // 2 + 1])`` float64.
    """
    filters = _first_layer_filters(model)
    if n_fft < filters.shape[1]:
        raise ValueError(f"n_fft must be at least the kernel width {filters.shape[1]}; received {n_fft}")
    spectra = np.abs(np.fft.rfft(filters, n=n_fft, axis=1))
    norms = np.linalg.norm(spectra, axis=1, keepdims=True)
    keep = norms[:, 0] > 0
    return np.fft.rfftfreq(n_fft, 1.0 / _rate(model, sample_rate)), (spectra[keep] / norms[keep]).sum(axis=0)


def _rate(model, sample_rate: int | None) -> int:
    """``sample_rate``, else the rate stored with ``model`` (:func:`tfsonify.models.metadata.sample_rate_of`)."""
    from tfsonify.models.metadata import sample_rate_of

    return int(sample_rate) if sample_rate is not None else sample_rate_of(model)


def input_frequency_response(model: keras.Model, waveform, n_fft: int = 512, hop: int | None = None,
                             sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Input-dependent first-layer response ``s = |sum_k <x, f_k> DFT[f_k]|`` (Muckenhirn et al., Eq. 2).

    Args:
        waveform: float ``[time]``; peak-normalised as the model does, then cut into segments of the
            first layer's kernel width ``kW`` (7 for CNN12) with hop ``hop`` (default ``kW``).
        n_fft: DFT size for ``DFT[f_k]``.

    Returns:
        ``(freqs_hz [n_fft // 2 + 1], response [segments, n_fft // 2 + 1])`` float64.
    """
    filters = _first_layer_filters(model)
    width = filters.shape[1]
    waveform = np.asarray(waveform, np.float64)
    if waveform.ndim != 1 or waveform.size < width or not np.all(np.isfinite(waveform)):
        raise ValueError(f"waveform must be a finite [time] array of at least {width} samples; received shape {waveform.shape}")
    hop = width if hop is None else int(hop)
    if hop < 1:
        raise ValueError(f"hop must be a positive number of samples; received {hop}")
    peak = np.max(np.abs(waveform))
    normalized = waveform / peak if peak > 0 else waveform
    starts = np.arange(0, normalized.size - width + 1, hop)
    segments = np.stack([normalized[s : s + width] for s in starts])  # [segments, kW]
    weights = segments @ filters.T  # <x, f_k> (the conv's cross-correlation)  [segments, n_f]
    spectra = np.fft.rfft(filters, n=n_fft, axis=1)  # complex [n_f, bins]
    return np.fft.rfftfreq(n_fft, 1.0 / _rate(model, sample_rate)), np.abs(weights @ spectra)
