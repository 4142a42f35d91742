"""Sonification by a deconvnet that shares CNN12's kernels (paper §3.2, Figure B.2).

For block ``L`` and feature map ``f``:

1. forward pass, storing every block's output and its max-pool switches;
2. keep only map ``f`` of block ``L`` (all other maps set to zero);
3. for each block from ``L`` down to 1: max-unpool with that block's switches
   (blocks 1-8), ReLU, ``tf.nn.conv1d_transpose`` with the block's own conv
   kernel (shared with the model, no copy, no bias);
4. scale to unit peak and multiply by ``max|x|``.

This equals the gradient of ``sum_t A_L[f, t] * stop_gradient(A_L[f, t])`` with
respect to the (peak-normalised) input when every ReLU's backward pass is
replaced by ``relu(upstream)`` (Zeiler & Fergus' deconvnet rule); the tests keep
that formulation as the oracle.

Two exact savings over the paper's pseudocode: the forward pass stops at block
``L``, and block ``L`` itself is computed (forward and transposed) only for the
selected maps, not for all of its channels.

Long clips: the public methods run a clip longer than ``window_seconds`` (default
:data:`tfsonify.long_clips.DEFAULT_WINDOW_SECONDS`) as exact overlapping windows with bounded memory
(:mod:`tfsonify.long_clips`, planned by :mod:`tfsonify.windows`), through four hooks:
:meth:`Sonifier.raw_reconstruction`, :meth:`Sonifier.peak_activations`, :meth:`Sonifier.geometry` and
``Sonifier.sample_rate``. :meth:`Sonifier.stream` sonifies live audio block by block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify import long_clips
from tfsonify.cnn12 import BLOCKS, NUM_BLOCKS, _check_layer, min_length
from tfsonify.layers import max_pool_with_switches, max_unpool, peak_normalize

__all__ = ["BlockState", "Sonifier", "validate_waveform"]


@dataclass
class BlockState:
    """What the forward pass keeps of one block for the deconvnet.

    Attributes:
        output: ``[batch, time_l, channels_l]`` the block's output (after its pool, if any).
        switches: ``[batch, time_l, channels_l]`` pool switches (1.0 = first sample of
            the window won), or None for blocks 9-11 which have no pool.
        conv_length: time length of the conv output before pooling (scalar int32).
        input_length: time length of the block's input (scalar int32).
    """

    output: tf.Tensor
    switches: tf.Tensor | None
    conv_length: tf.Tensor
    input_length: tf.Tensor


def validate_waveform(waveform, layer: int = NUM_BLOCKS) -> np.ndarray:
    """Check a waveform for the sonifier and return it as float32 ``[batch, time]``.

    Raises ``ValueError`` naming the problem for: non-numeric data, rank other than
    1 or 2, an empty clip, NaN or Inf samples, or fewer samples than block
    ``layer`` needs (``min_length(layer)``).
    """
    _check_layer(layer)
    try:
        array = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"waveform must be a numeric array [time] or [batch, time]; could not convert: {error}") from None
    if array.ndim not in (1, 2):
        raise ValueError(f"waveform must have shape [time] or [batch, time]; received shape {array.shape}")
    batch = array[None] if array.ndim == 1 else array
    if batch.shape[0] == 0 or batch.shape[1] == 0:
        raise ValueError(f"waveform is empty (shape {array.shape}); expected at least {min_length(layer)} samples")
    if not np.all(np.isfinite(batch)):
        bad = int(np.size(batch) - np.count_nonzero(np.isfinite(batch)))
        raise ValueError(f"waveform contains {bad} NaN or Inf samples; expected finite values")
    if batch.shape[1] < min_length(layer):
        raise ValueError(
            f"clip has {batch.shape[1]} samples but block {layer} needs at least {min_length(layer)} "
            f"(pad or use a longer clip, or a shallower layer)"
        )
    return batch


def _pick_rows(tensor: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``tensor[rows[i, 0], :, rows[i, 1]]`` for each ``i``: ``[batch, time, channels]`` -> ``[n, time]``."""
    return tf.gather_nd(tf.transpose(tensor, [0, 2, 1]), rows)


class Sonifier:
    """Sonify CNN12 feature maps.

    Args:
        model: a :class:`tfsonify.CNN12` (with or without a head), or any Keras
            model with ``Conv1D`` layers named ``conv1`` ... ``conv11`` laid out as
            in Figure A.1. Kernels are read from the model's variables at call
            time, so a later ``fit`` or ``load_weights`` is seen without rebuilding.
        jit_compile: compile the graphs with XLA (as on TPU). On CPU the plain
            graph is as fast; XLA is offered for parity checks and accelerators.

    All public methods take a waveform as float32 ``[time]`` or ``[batch, time]`` at
    the model's sample rate (8 kHz by default), any amplitude; ``layer`` is the
    block index 1..11 and feature indices are 0-based channel indices of that
    block's conv.

    Example:
    >>> model = tfsonify.CNN12(width_multiplier=0.125)
    >>> sonifier = tfsonify.Sonifier(model)
    >>> s = sonifier.sonify(np.random.randn(8000).astype("float32"), layer=5, feature=3)
    >>> s.shape
    (8000,)
    """

    def __init__(self, model: keras.Model, jit_compile: bool = False):
        try:
            self.convs = [model.get_layer(f"conv{i}") for i in range(1, NUM_BLOCKS + 1)]
        except ValueError as error:
            raise ValueError(f"model must have Conv1D layers named conv1..conv11 as CNN12 does: {error}") from None
        for index, (conv, spec) in enumerate(zip(self.convs, BLOCKS), start=1):
            if not isinstance(conv, keras.layers.Conv1D) or conv.kernel_size[0] != spec.kernel_size:
                raise ValueError(f"layer conv{index} must be a Conv1D with kernel size {spec.kernel_size}")
        self.model = model
        self.jit_compile = bool(jit_compile)
        self.sample_rate = int(getattr(model, "sample_rate", 8000))
        self._graphs: dict[tuple[str, int], tf.types.experimental.GenericFunction] = {}

    # ------------------------------------------------------------------ sizes
    def num_features(self, layer: int) -> int:
        """Number of feature maps (conv filters) of block ``layer``."""
        _check_layer(layer)
        return int(self.convs[layer - 1].filters)

    @staticmethod
    def min_length(layer: int) -> int:
        """Fewest samples block ``layer`` accepts (see :func:`tfsonify.cnn12.min_length`)."""
        return min_length(layer)

    # ----------------------------------------------------------- graph parts
    def _kernel(self, block: int) -> tf.Tensor:
        """``[kernel_size, in_channels, out_channels]`` kernel of ``conv{block}`` (the variable's value)."""
        return tf.convert_to_tensor(self.convs[block - 1].kernel)

    def _block(self, block: int, inputs: tf.Tensor, kernel: tf.Tensor | None = None, bias: tf.Tensor | None = None) -> BlockState:
        """Run block ``block`` (1-based) on ``[batch, time, channels]`` and keep its state.

        ``kernel``/``bias`` restrict the block to chosen output channels (default: all).
        """
        conv = self.convs[block - 1]
        kernel = self._kernel(block) if kernel is None else kernel
        bias = tf.convert_to_tensor(conv.bias) if bias is None else bias
        activation = tf.nn.relu(tf.nn.conv1d(inputs, kernel, stride=1, padding="VALID") + bias)
        conv_length = tf.shape(activation)[1]
        if BLOCKS[block - 1].pooled:
            pooled, switches = max_pool_with_switches(activation)
            return BlockState(pooled, switches, conv_length, tf.shape(inputs)[1])
        return BlockState(activation, None, conv_length, tf.shape(inputs)[1])

    def encode(self, waveform: tf.Tensor, layer: int) -> list[BlockState]:
        """Forward pass through blocks 1..``layer`` of a peak-normalised ``[batch, time]`` waveform.

        Returns one :class:`BlockState` per block, index 0 for block 1.
        """
        hidden = tf.expand_dims(waveform, -1)
        states = []
        for block in range(1, layer + 1):
            state = self._block(block, hidden)
            states.append(state)
            hidden = state.output
        return states

    def _transpose_single(self, signal: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
        """Transposed conv of one channel per row with a per-row kernel.

        Args:
            signal: ``[n, time]``, row ``i`` the only non-zero channel of map ``i``.
            kernels: ``[n, kernel_size, in_channels]``, the conv kernel column of map ``i``.

        Returns:
            ``[n, time + kernel_size - 1, in_channels]``, equal to
            ``conv1d_transpose`` of the one-hot-masked maps with the full kernel.
        """
        kernel_size = kernels.shape[1]
        padded = tf.pad(signal, [[0, 0], [kernel_size - 1, kernel_size - 1]])
        out_length = tf.shape(signal)[1] + kernel_size - 1
        taps = [padded[:, kernel_size - 1 - j : kernel_size - 1 - j + out_length] for j in range(kernel_size)]
        frames = tf.stack(taps, axis=-1)  # [n, out_length, kernel_size]
        return tf.matmul(frames, kernels)

    def deconvolve(self, selected: tf.Tensor, selected_switches: tf.Tensor | None, selected_conv_length: tf.Tensor,
                   features: tf.Tensor, states: Sequence[BlockState], batch_index: tf.Tensor, layer: int) -> tf.Tensor:
        """Map selected block-``layer`` feature maps back to the input domain (unnormalised).

        Args:
            selected: ``[n, time_L]`` the kept map of each row (block ``layer``'s output).
            selected_switches: ``[n, time_L]`` its pool switches, or None for blocks 9-11.
            selected_conv_length: block ``layer``'s pre-pool length.
            features: ``[n]`` int32 channel index of each row's map.
            states: forward states of blocks ``1..layer-1`` (``[batch, ...]``).
            batch_index: ``[n]`` int32, which clip of the batch each row belongs to.
            layer: the block of the maps.

        Returns:
            ``[n, time]`` raw reconstruction (before the unit-peak scaling).
        """
        signal = selected
        if selected_switches is not None:
            signal = tf.squeeze(max_unpool(tf.expand_dims(selected, -1), tf.expand_dims(selected_switches, -1),
                                           selected_conv_length), -1)
        signal = tf.nn.relu(signal)
        kernels = tf.transpose(tf.gather(self._kernel(layer), features, axis=2), [2, 0, 1])  # [n, k, c_in]
        hidden = self._transpose_single(signal, kernels)
        for block in range(layer - 1, 0, -1):
            state = states[block - 1]
            if state.switches is not None:
                hidden = max_unpool(hidden, tf.gather(state.switches, batch_index), state.conv_length)
            hidden = tf.nn.relu(hidden)
            kernel = self._kernel(block)
            output_shape = tf.stack([tf.shape(hidden)[0], state.input_length, kernel.shape[1]])
            hidden = tf.nn.conv1d_transpose(hidden, kernel, output_shape, strides=1, padding="VALID")
        return tf.squeeze(hidden, -1)

    @staticmethod
    def _rescale(reconstruction: tf.Tensor, peaks: tf.Tensor) -> tf.Tensor:
        """Scale each row of ``[n, time]`` to unit peak, then by ``peaks`` ``[n]``; zero rows stay zero."""
        scale = tf.reduce_max(tf.abs(reconstruction), axis=-1, keepdims=True)
        safe = tf.where(scale > 0.0, scale, tf.ones_like(scale))
        return reconstruction / safe * tf.expand_dims(peaks, -1)

    def sonify_selected_graph(self, waveform: tf.Tensor, layer: int, batch_index: tf.Tensor, features: tf.Tensor,
                              channels: tf.Tensor | None = None) -> tf.Tensor:
        """Pure-TF sonification of chosen maps (usable inside ``tf.function``, XLA, exporters).

        Args:
            waveform: float32 ``[batch, time]``, raw amplitude.
            layer: Python int, block 1..11.
            batch_index: int32 ``[n]``, clip of each requested map.
            features: int32 ``[n]``, channel of each requested map; or, when ``channels`` is
                given, the position of that channel in ``channels``.
            channels: optional int32 ``[u]`` distinct channels to compute at block ``layer``
                (default: ``features`` itself). Only these channels of block ``layer`` are
                computed, for every clip of the batch.

        Returns:
            float32 ``[n, time]`` sonifications, each scaled to ``max|x|`` of its clip.
        """
        if channels is None:
            channels, slots = features, tf.range(tf.shape(features)[0])
        else:
            channels, slots = channels, features
        normalized = peak_normalize(waveform)
        states = self.encode(normalized, layer - 1) if layer > 1 else []
        below = tf.expand_dims(normalized, -1) if layer == 1 else states[-1].output
        conv = self.convs[layer - 1]
        kernel = tf.gather(self._kernel(layer), channels, axis=2)  # [k, c_in, u]
        bias = tf.gather(tf.convert_to_tensor(conv.bias), channels)
        top = self._block(layer, below, kernel, bias)  # [batch, time_L, u]
        rows = tf.stack([batch_index, slots], axis=1)
        switches = None if top.switches is None else _pick_rows(top.switches, rows)
        reconstruction = self.deconvolve(_pick_rows(top.output, rows), switches, top.conv_length,
                                         tf.gather(channels, slots), states, batch_index, layer)
        peaks = tf.gather(tf.reduce_max(tf.abs(waveform), axis=-1), batch_index)
        return self._rescale(reconstruction, peaks)

    def raw_reconstruction_graph(self, normalized: tf.Tensor, layer: int, channels: tf.Tensor) -> tf.Tensor:
        """Pure-TF raw deconvnet output of maps ``channels`` of one clip already divided by a peak.

        Args:
            normalized: float32 ``[1, time]``, not normalised again.
            layer: Python int, block 1..11.
            channels: int32 ``[F]`` maps of block ``layer``.

        Returns:
            float32 ``[F, time]``, before any scaling (:meth:`deconvolve`'s output).
        """
        states = self.encode(normalized, layer - 1) if layer > 1 else []
        below = tf.expand_dims(normalized, -1) if layer == 1 else states[-1].output
        conv = self.convs[layer - 1]
        kernel = tf.gather(self._kernel(layer), channels, axis=2)
        bias = tf.gather(tf.convert_to_tensor(conv.bias), channels)
        top = self._block(layer, below, kernel, bias)  # [1, time_L, F]
        switches = None if top.switches is None else tf.transpose(top.switches[0])
        batch_index = tf.zeros_like(channels)
        return self.deconvolve(tf.transpose(top.output[0]), switches, top.conv_length, channels, states, batch_index, layer)

    def activations_graph(self, waveform: tf.Tensor, layer: int) -> tf.Tensor:
        """Block ``layer``'s output ``[batch, time_L, channels_L]`` for a raw ``[batch, time]`` waveform."""
        return self.encode(peak_normalize(waveform), layer)[-1].output

    def sonify_top_graph(self, waveform: tf.Tensor, layer: int, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Pure-TF: the ``k`` most active maps of each clip and their sonifications, one forward pass.

        Args:
            waveform: float32 ``[batch, time]``.
            layer: Python int, block 1..11.
            k: int32 scalar, ``1 <= k <= channels_L``.

        Returns:
            ``(features [batch, k] int32, activations [batch, k] float32, sonifications [batch, k, time])``,
            maps ordered by decreasing maximum activation over time.
        """
        normalized = peak_normalize(waveform)
        states = self.encode(normalized, layer)
        top = states[-1]
        scores, features = tf.math.top_k(tf.reduce_max(top.output, axis=1), k=k)
        batch = tf.shape(waveform)[0]
        flat_features = tf.reshape(features, [-1])
        batch_index = tf.repeat(tf.range(batch), k)
        rows = tf.stack([batch_index, flat_features], axis=1)
        switches = None if top.switches is None else _pick_rows(top.switches, rows)
        reconstruction = self.deconvolve(_pick_rows(top.output, rows), switches, top.conv_length, flat_features, states[:-1], batch_index, layer)
        peaks = tf.gather(tf.reduce_max(tf.abs(waveform), axis=-1), batch_index)
        sonifications = tf.reshape(self._rescale(reconstruction, peaks), tf.stack([batch, k, tf.shape(waveform)[1]]))
        return features, scores, sonifications

    # ---------------------------------------------------------- compiled graphs
    def _graph(self, kind: str, layer: int):
        key = (kind, layer)
        if key not in self._graphs:
            wave = tf.TensorSpec([None, None], tf.float32)
            ints = tf.TensorSpec([None], tf.int32)
            scalar = tf.TensorSpec([], tf.int32)
            if kind == "selected":
                fn = lambda w, b, f, c: self.sonify_selected_graph(w, layer, b, f, c)  # noqa: E731
                signature = [wave, ints, ints, ints]
            elif kind == "raw":
                fn = lambda w, c: self.raw_reconstruction_graph(w, layer, c)  # noqa: E731
                signature = [tf.TensorSpec([1, None], tf.float32), ints]
            elif kind == "peaks":
                fn = lambda w: tf.reduce_max(self.encode(w, layer)[-1].output, axis=1)[0]  # noqa: E731
                signature = [tf.TensorSpec([1, None], tf.float32)]
            elif kind == "top":
                fn = lambda w, k: self.sonify_top_graph(w, layer, k)  # noqa: E731
                signature = [wave, scalar]
            else:
                fn = lambda w: self.activations_graph(w, layer)  # noqa: E731
                signature = [wave]
            self._graphs[key] = tf.function(fn, input_signature=signature, jit_compile=self.jit_compile, reduce_retracing=True)
        return self._graphs[key]

    # ------------------------------------------------ window hooks (long clips, streams)
    def geometry(self, layer: int) -> tuple[int, int]:
        """``(receptive_field, total_stride)`` of block ``layer`` in input samples.

        Block-``layer`` time step ``i`` sees exactly input samples ``[stride*i, stride*i + receptive_field)``;
        for CNN12 ``receptive_field = min_length(layer)`` and ``stride = 2**(pooled blocks 1..layer)``
        (block 11: ``(2370, 256)``).
        """
        _check_layer(layer)
        return min_length(layer), 2 ** sum(spec.pooled for spec in BLOCKS[:layer])

    def _check_normalised(self, normalised, layer: int) -> np.ndarray:
        array = np.asarray(normalised, np.float32)
        if array.ndim != 1 or array.size < min_length(layer) or not np.all(np.isfinite(array)):
            raise ValueError(f"normalised must be a finite float32 clip [time] of at least {min_length(layer)} samples "
                             f"for block {layer}; received shape {array.shape}")
        return array

    def raw_reconstruction(self, normalised, layer: int, features: Sequence[int]) -> np.ndarray:
        """Unnormalised deconvnet reconstruction of maps ``features`` of block ``layer``.

        Args:
            normalised: float32 ``[time]``, the clip (or window) already divided by the whole clip's peak; not
                normalised again.
            layer: block 1..11.
            features: ``F`` map indices.

        Returns:
            float32 ``[F, time]``, before the unit-peak scaling (:meth:`sonify` divides a whole clip's rows by
            their peak and multiplies by ``max|x|``).
        """
        array = self._check_normalised(normalised, layer)
        chosen = self._check_features(list(features), layer)
        return self._graph("raw", layer)(tf.constant(array[None]), tf.constant(chosen)).numpy()

    def peak_activations(self, normalised, layer: int) -> np.ndarray:
        """Each map's maximum over time of block ``layer``'s output, float32 ``[C_L]``, for an already
        normalised ``[time]`` clip (not normalised again)."""
        array = self._check_normalised(normalised, layer)
        return self._graph("peaks", layer)(tf.constant(array[None])).numpy()

    def stream(self, layer: int, features: Sequence[int], reference_peak: float, reconstruction_peak=None,
               hop: int | None = None):
        """A live sonification stream of maps ``features`` of block ``layer``.

        Feed float ``[n]`` blocks of any size at :attr:`sample_rate` to ``stream.process(block)``; each call returns
        ``[F, n]`` sonified samples delayed by ``stream.latency`` samples (margin ``R - S`` plus ``hop - 1``);
        ``stream.flush()`` returns the rest. Input is divided by ``reference_peak``; see
        :class:`tfsonify.windows.WindowedStream` for the output scaling and :func:`tfsonify.long_clips.calibrate`
        for taking both peaks from a recording (then the stream equals :meth:`sonify` of it).
        """
        chosen = self._check_features(list(np.atleast_1d(features)), layer)
        return long_clips.stream(self, layer, chosen, reference_peak, reconstruction_peak, hop)

    # ------------------------------------------------------------- public API
    def _check_features(self, features: Sequence[int], layer: int) -> np.ndarray:
        width = self.num_features(layer)
        array = np.asarray(features)
        if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"features must be a non-empty list of integer map indices; received {features!r}")
        bad = array[(array < 0) | (array >= width)]
        if bad.size:
            raise ValueError(f"feature index {int(bad[0])} is outside block {layer}'s {width} maps (valid: 0..{width - 1})")
        return array.astype(np.int32)

    def _check_k(self, k: int, layer: int) -> int:
        width = self.num_features(layer)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= width:
            raise ValueError(f"k must be an integer in 1..{width} (block {layer}'s maps); received {k!r}")
        return int(k)

    def activations(self, waveform, layer: int, window_seconds: float | None = long_clips.DEFAULT_WINDOW_SECONDS) -> np.ndarray:
        """Block ``layer``'s output, float32 ``[time_L, channels_L]`` or ``[batch, time_L, channels_L]``.

        Clips longer than ``window_seconds`` (None: never) run as exact windows (:mod:`tfsonify.long_clips`).
        """
        batch = validate_waveform(waveform, layer)
        if long_clips.needs_windows(self, batch.shape[1], layer, window_seconds):
            out = long_clips.activations(self, batch, layer, window_seconds)
            return out[0] if np.ndim(waveform) == 1 else out
        out = self._graph("activations", layer)(tf.constant(batch)).numpy()
        return out[0] if np.ndim(waveform) == 1 else out

    def top_features(self, waveform, layer: int, k: int = 1,
                     window_seconds: float | None = long_clips.DEFAULT_WINDOW_SECONDS) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most active feature maps of block ``layer``.

        "Most active" is the paper's criterion: the largest activation over time of the
        block's output (after ReLU and pooling), ``max_t A_L[f, t]``.

        Returns:
            ``(indices, scores)``: int32 and float32, ``[k]`` for a ``[time]`` input or
            ``[batch, k]`` for ``[batch, time]``, in decreasing order of score.
        """
        batch = validate_waveform(waveform, layer)
        k = self._check_k(k, layer)
        if long_clips.needs_windows(self, batch.shape[1], layer, window_seconds):
            indices, scores = long_clips.top_features(self, batch, layer, k, window_seconds)
            return (indices[0], scores[0]) if np.ndim(waveform) == 1 else (indices, scores)
        scores, indices = tf.math.top_k(tf.reduce_max(self._graph("activations", layer)(tf.constant(batch)), axis=1), k=k)
        indices, scores = indices.numpy().astype(np.int32), scores.numpy()
        return (indices[0], scores[0]) if np.ndim(waveform) == 1 else (indices, scores)

    def sonify_top(self, waveform, layer: int, k: int,
                   window_seconds: float | None = long_clips.DEFAULT_WINDOW_SECONDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sonify the ``k`` most active maps in one forward pass and one batched deconvnet pass.

        Returns:
            ``(features, activations, sonifications)`` shaped ``[k]``, ``[k]``, ``[k, time]`` for a
            ``[time]`` input, or with a leading batch axis for ``[batch, time]``.
        """
        batch = validate_waveform(waveform, layer)
        k = self._check_k(k, layer)
        if long_clips.needs_windows(self, batch.shape[1], layer, window_seconds):
            features, scores, sounds = long_clips.sonify_top(self, batch, layer, k, window_seconds)
        else:
            features, scores, sounds = (t.numpy() for t in self._graph("top", layer)(tf.constant(batch),
                                                                                   tf.constant(k, tf.int32)))
        if np.ndim(waveform) == 1:
            return features[0], scores[0], sounds[0]
        return features, scores, sounds

    def sonify(self, waveform, layer: int, feature: int | None = None, features: Sequence[int] | None = None,
               window_seconds: float | None = long_clips.DEFAULT_WINDOW_SECONDS) -> np.ndarray:
        """Sonify feature maps of block ``layer``.

        Args:
            waveform: float32 ``[time]`` or ``[batch, time]`` at the model's rate.
            layer: block 1..11.
            feature: one map index -> output shaped like ``waveform``.
            features: several map indices -> ``[k, time]`` (or ``[batch, k, time]``),
                computed in one batched pass with the maps on the batch axis.
            With neither, the most active map of each clip is sonified (output shaped
            like ``waveform``).
            window_seconds: clips longer than this (None: never) run as exact overlapping windows with
                bounded memory (:mod:`tfsonify.long_clips`): the same result as one pass.

        Returns:
            float32 sonification(s) in ``[-max|x|, max|x|]``; a silent clip gives zeros.
        """
        if feature is not None and features is not None:
            raise ValueError("give either feature=F or features=[...], not both")
        batch = validate_waveform(waveform, layer)
        if feature is None and features is None:
            sounds = self.sonify_top(batch, layer, 1, window_seconds=window_seconds)[2][:, 0]
            return sounds[0] if np.ndim(waveform) == 1 else sounds
        chosen = self._check_features([feature] if feature is not None else features, layer)
        clips = batch.shape[0]
        if long_clips.needs_windows(self, batch.shape[1], layer, window_seconds):
            sounds = long_clips.sonify(self, batch, layer, chosen, window_seconds)
            sounds = sounds[:, 0] if feature is not None else sounds
            return sounds[0] if np.ndim(waveform) == 1 else sounds
        batch_index = np.repeat(np.arange(clips, dtype=np.int32), chosen.size)
        slots = np.tile(np.arange(chosen.size, dtype=np.int32), clips)
        sounds = self._graph("selected", layer)(tf.constant(batch), tf.constant(batch_index), tf.constant(slots),
                                                tf.constant(chosen)).numpy()
        sounds = sounds.reshape(clips, chosen.size, -1)
        if feature is not None:
            sounds = sounds[:, 0]
        return sounds[0] if np.ndim(waveform) == 1 else sounds
