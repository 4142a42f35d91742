"""Sonification by a deconvnet that shares the model's kernels (paper §3.2, Figure B.2).

Any raw-waveform Keras CNN the graph-walking :class:`tfsonify.engine.walk.DeconvNet` supports (CNN12,
CREPE, your own Conv1D/Conv2D stack). For CNN12's block ``L`` (or any layer by name) and map ``f``:

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
``L``, and block ``L``'s conv (and the per-channel layers after it) is computed
(forward and transposed) only for the selected maps, not for all of its channels.

Long clips: the public methods run a clip longer than ``window_seconds`` (default ``"auto"``: clips over
:data:`tfsonify.engine.long_clips.ONE_PASS_SECONDS` in windows of :data:`tfsonify.engine.long_clips.DEFAULT_WINDOW_SECONDS`)
as exact overlapping windows with bounded memory
(:mod:`tfsonify.engine.long_clips`, planned by :mod:`tfsonify.engine.windows`), through four hooks:
:meth:`Sonifier.raw_reconstruction` (unscaled deconvnet output of an already-scaled clip),
:meth:`Sonifier.peak_activations`, :meth:`Sonifier.geometry` (receptive field and total stride in input samples)
and ``Sonifier.sample_rate``. :meth:`Sonifier.stream` sonifies live audio block by block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify.engine import long_clips
from tfsonify.engine.lowering import TENSORFLOW, Lowering
from tfsonify.engine.walk import DeconvNet, LayerInfo
from tfsonify.layers import add_channel_axis
from tfsonify.models.metadata import sample_rate_of
from tfsonify.validation import check_clip

__all__ = ["BlockState", "Sonifier"]


@dataclass
class BlockState:
    """One block's output from :meth:`Sonifier.encode` (the deconvnet keeps its own state internally).

    Attributes:
        output: ``[batch, time_l, channels_l]`` the block's output (after its pool, if any).
        switches: ``[batch, time_l, channels_l]`` pool switches (1.0 = first sample of
            the window won), or None for blocks 9-11 which have no pool.
        conv_length: time length of the conv output before pooling (scalar int32).
        input_length: time length of the block's input (scalar int32).
    """

    output: tf.Tensor
    switches: tf.Tensor | None = None
    conv_length: tf.Tensor | None = None
    input_length: tf.Tensor | None = None


Layer = "int | str"


class Sonifier:
    """Sonify feature maps of a raw-waveform Keras CNN.

    Args:
        model: any model :class:`tfsonify.engine.walk.DeconvNet` supports: a :class:`tfsonify.CNN12` (with or
            without head), CREPE, or your own Functional/Sequential Conv1D/Conv2D stack with one waveform
            input ``[batch, time]`` or ``[batch, time, 1]``. Kernels are read from the model's variables
            at call time, so a later ``fit`` or ``load_weights`` is seen without rebuilding.
        sample_rate: the model's rate in Hz; default the rate stored with the model or its ``sample_rate``
            attribute (CNN12: 8000, CREPE: 16000), see :func:`tfsonify.models.metadata.sample_rate_of`.
        jit_compile: compile the graphs with XLA (as on TPU). On CPU the plain graph is as fast; XLA is
            offered for parity checks and accelerators.
        lowering: how the graphs are written (:mod:`tfsonify.engine.lowering`; the TFLite exporter passes
            ``TFLITE`` or ``TFLITE_INT8``; the default suits TensorFlow's runtime).

    Raises:
        ValueError: when the model has an unsupported layer on the way to a conv, several inputs or no
            waveform input (the message names the layer, its class and what is supported).

    All public methods take a waveform as float32 ``[time]`` or ``[batch, time]`` at ``sample_rate``,
    any amplitude. ``layer`` is a layer name (``"conv3"``; see :meth:`layers`) or a block index
    1..N: block ``L`` is the ``L``-th conv with the per-channel layers after it (for CNN12 the
    blocks 1..11 of Figure A.1, i.e. ``pool1``..``pool8``, ``conv9``..``conv11``). Feature indices
    are 0-based channel indices of that layer's output.

    Example:
    >>> model = tfsonify.CNN12(width_multiplier=0.125)
    >>> sonifier = tfsonify.Sonifier(model)
    >>> s = sonifier.sonify(np.random.randn(8000).astype("float32"), layer=5, feature=3)
    >>> s.shape
    (8000,)
    """

    def __init__(self, model: keras.Model, sample_rate: int | None = None, jit_compile: bool = False,
                 lowering: Lowering = TENSORFLOW):
        self.deconvnet = DeconvNet(model, lowering)
        self.model = model
        self.jit_compile = bool(jit_compile)
        rate = sample_rate_of(model) if sample_rate is None else sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz; received {rate!r}")
        self.sample_rate = int(rate)
        self._graphs: dict[tuple, tf.types.experimental.GenericFunction] = {}

    # ------------------------------------------------------------------ layers
    def _name(self, layer: Layer) -> str:
        return self.deconvnet.resolve(layer)

    @staticmethod
    def _describe(layer: Layer) -> str:
        return f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"

    def layers(self) -> list[LayerInfo]:
        """The sonifiable layers in graph order: name, class, block index, channels, receptive field and
        stride (input samples) and minimum input length (see :class:`tfsonify.engine.walk.LayerInfo`)."""
        return self.deconvnet.layers()

    def num_features(self, layer: Layer) -> int:
        """Number of feature maps (channels) of ``layer``."""
        return self.deconvnet.num_features(self._name(layer))

    def min_length(self, layer: Layer) -> int:
        """Fewest input samples ``layer`` accepts (CNN12 block 11: 2370)."""
        return self.deconvnet.min_length(self._name(layer))

    def geometry(self, layer: Layer) -> tuple[int, int]:
        """``(receptive_field, total_stride)`` of ``layer`` in input samples.

        One output step of ``layer`` sees ``receptive_field`` consecutive input samples, and consecutive
        steps are ``total_stride`` samples apart; the long-audio windowing uses both.
        """
        return self.deconvnet.geometry(self._name(layer))

    @property
    def input_scaling(self) -> str | None:
        """What the model does to a clip before its first conv: ``"peak"`` (a ``PeakNormalization`` divides by
        ``max|x|``, as CNN12), ``None`` (nothing: the deconvnet sees the samples as given), or ``"custom"`` (another
        ``sonify_input_scaling`` layer). Exact windows of long clips reproduce the first two."""
        from tfsonify.layers import PeakNormalization

        prelude = list(self.deconvnet.prelude)
        if not prelude:
            return None
        return "peak" if len(prelude) == 1 and isinstance(prelude[0], PeakNormalization) else "custom"

    def window_obstacle(self, layer: Layer) -> str | None:
        """Why exact windows (long clips, live streams) cannot reproduce the whole-clip pass at ``layer``, or None:
        a custom input scaling (its effect on a window is not its effect on the clip), or a layer on the way that
        pads or crops (:meth:`tfsonify.engine.walk.DeconvNet.window_obstacle`). The engine then sonifies in one pass
        (:func:`tfsonify.engine.long_clips.choose`) and refuses live streams."""
        return self.deconvnet.window_obstacle(self._name(layer))

    def validate(self, waveform, layer: Layer) -> np.ndarray:
        """Check a waveform for ``layer`` and return it as float32 ``[batch, time]`` (see :func:`check_clip`)."""
        return check_clip(waveform, self.deconvnet.min_length(self._name(layer)), self._describe(layer))

    # ----------------------------------------------------------- graph parts
    def encode(self, normalized: tf.Tensor, layer: int) -> list[BlockState]:
        """Outputs of blocks ``1..layer`` for a deconvnet-input ``[batch, time]`` waveform (already scaled).

        Returns one :class:`BlockState` per block, index 0 for block 1.
        """
        names = [self._name(block) for block in range(1, layer + 1)]
        return [BlockState(out) for out in self.deconvnet.outputs(add_channel_axis(normalized), names)]

    @staticmethod
    def _rescale(reconstruction: tf.Tensor, peaks: tf.Tensor) -> tf.Tensor:
        """Scale each row of ``[n, time]`` to unit peak, then by ``peaks`` ``[n]``; zero rows stay zero."""
        scale = tf.reduce_max(tf.abs(reconstruction), axis=-1, keepdims=True)
        safe = tf.where(scale > 0.0, scale, tf.ones_like(scale))
        return reconstruction / safe * tf.expand_dims(peaks, -1)

    def sonify_selected_graph(self, waveform: tf.Tensor, layer: Layer, batch_index: tf.Tensor, features: tf.Tensor,
                              channels: tf.Tensor | None = None) -> tf.Tensor:
        """Pure-TF sonification of chosen maps (usable inside ``tf.function``, XLA, exporters).

        Args:
            waveform: float32 ``[batch, time]``, raw amplitude.
            layer: a layer name or block index (Python value).
            batch_index: int32 ``[n]``, clip of each requested map.
            features: int32 ``[n]``, channel of each requested map; or, when ``channels`` is
                given, the position of that channel in ``channels``.
            channels: optional int32 ``[u]`` distinct channels to compute at the top conv block
                (default: ``features`` itself). Only these channels are computed, for every clip.

        Returns:
            float32 ``[n, time]`` sonifications, each scaled to ``max|x|`` of its clip.
        """
        x = self.deconvnet.scale_input(waveform)
        reconstruction = self.deconvnet.reconstruct(x, self._name(layer), batch_index, features, channels)
        peaks = tf.gather(tf.reduce_max(tf.abs(waveform), axis=-1), batch_index)
        return self._rescale(reconstruction, peaks)

    def raw_reconstruction_graph(self, normalized: tf.Tensor, layer: Layer, batch_index: tf.Tensor,
                                 features: tf.Tensor) -> tf.Tensor:
        """Pure-TF deconvnet output before any scaling: ``[batch, time]`` (already scaled) -> ``[n, time]``.

        ``normalized`` is the deconvnet's input: the clip divided by the *whole clip's* peak, not normalised
        again here (input-scaling layers are skipped), and the output is not rescaled, so windows of a
        long clip stitch into the full clip's reconstruction.
        """
        x = add_channel_axis(normalized)
        return self.deconvnet.reconstruct(x, self._name(layer), batch_index, features)

    def peak_activations_graph(self, normalized: tf.Tensor, layer: Layer) -> tf.Tensor:
        """Pure-TF ``[batch, C]`` maximum over time of each map of ``layer`` for a deconvnet-input waveform."""
        return tf.reduce_max(self.deconvnet.forward(add_channel_axis(normalized), self._name(layer))[0], axis=1)

    def activations_graph(self, waveform: tf.Tensor, layer: Layer) -> tf.Tensor:
        """``layer``'s output ``[batch, time_L, channels_L]`` for a raw ``[batch, time]`` waveform."""
        return self.deconvnet.forward(self.deconvnet.scale_input(waveform), self._name(layer))[0]

    def sonify_top_graph(self, waveform: tf.Tensor, layer: Layer, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Pure-TF: the ``k`` most active maps of each clip and their sonifications, one forward pass.

        Args:
            waveform: float32 ``[batch, time]``.
            layer: a layer name or block index (Python value).
            k: int32 scalar, ``1 <= k <= channels``.

        Returns:
            ``(features [batch, k] int32, activations [batch, k] float32, sonifications [batch, k, time])``,
            maps ordered by decreasing maximum activation over time.
        """
        features, scores, reconstruction = self.deconvnet.reconstruct_top(
            self.deconvnet.scale_input(waveform), self._name(layer), k)
        batch = tf.shape(waveform)[0]
        peaks = tf.repeat(tf.reduce_max(tf.abs(waveform), axis=-1), k)
        sonifications = tf.reshape(self._rescale(reconstruction, peaks), tf.stack([batch, k, tf.shape(waveform)[1]]))
        return features, scores, sonifications

    # ---------------------------------------------------------- compiled graphs
    def _graph(self, kind: str, layer: Layer):
        layer = self._name(layer)
        key = (kind, layer)
        if key not in self._graphs:
            wave = tf.TensorSpec([None, None], tf.float32)
            ints = tf.TensorSpec([None], tf.int32)
            scalar = tf.TensorSpec([], tf.int32)
            if kind == "selected":
                fn = lambda w, b, f, c: self.sonify_selected_graph(w, layer, b, f, c)  # noqa: E731
                signature = [wave, ints, ints, ints]
            elif kind == "top":
                fn = lambda w, k: self.sonify_top_graph(w, layer, k)  # noqa: E731
                signature = [wave, scalar]
            elif kind == "raw":
                fn = lambda w, b, f: self.raw_reconstruction_graph(w, layer, b, f)  # noqa: E731
                signature = [wave, ints, ints]
            elif kind == "scale":
                fn = lambda w: self.deconvnet.scale_input(w)[..., 0]  # noqa: E731
                signature = [wave]
            elif kind == "peaks":
                fn = lambda w: self.peak_activations_graph(w, layer)  # noqa: E731
                signature = [wave]
            else:
                fn = lambda w: self.activations_graph(w, layer)  # noqa: E731
                signature = [wave]
            self._graphs[key] = tf.function(fn, input_signature=signature, jit_compile=self.jit_compile, reduce_retracing=True,
                                            autograph=False)  # plain Python loops over the walk: nothing to convert
        return self._graphs[key]

    # ------------------------------------------------------------- public API
    def check_features(self, features: Sequence[int], layer: Layer) -> np.ndarray:
        """Map indices of ``layer`` as int32 ``[F]``; ``ValueError`` naming the first bad one (and the valid range)."""
        return self._check_features(features, layer)

    def check_k(self, k: int, layer: Layer) -> int:
        """A number of top maps, ``1 <= k <= channels`` of ``layer``; ``ValueError`` otherwise."""
        return self._check_k(k, layer)

    def _check_features(self, features: Sequence[int], layer: Layer) -> np.ndarray:
        width = self.num_features(layer)
        array = np.asarray(features)
        if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"features must be a non-empty list of integer map indices; received {features!r}")
        bad = array[(array < 0) | (array >= width)]
        if bad.size:
            raise ValueError(f"feature index {int(bad[0])} is outside {self._describe(layer)}'s {width} maps (valid: 0..{width - 1})")
        return array.astype(np.int32)

    def _check_k(self, k: int, layer: Layer) -> int:
        width = self.num_features(layer)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= width:
            raise ValueError(f"k must be an integer in 1..{width} ({self._describe(layer)}'s maps); received {k!r}")
        return int(k)

    def activations(self, waveform, layer: Layer, window_seconds: float | str | None = long_clips.AUTO) -> np.ndarray:
        """Block ``layer``'s output, float32 ``[time_L, channels_L]`` or ``[batch, time_L, channels_L]``.

        Clips longer than ``window_seconds`` (None: never) run as exact windows (:mod:`tfsonify.engine.long_clips`).
        A fixed-frame model's activations are of one pass over the whole clip (its layers' time steps, not frames).
        """
        batch = self.validate(waveform, layer)
        if long_clips.choose(self, batch.shape[1], layer, window_seconds) == long_clips.WINDOWS:
            out = long_clips.activations(self, batch, layer, window_seconds)
            return out[0] if np.ndim(waveform) == 1 else out
        out = self._graph("activations", layer)(tf.constant(batch)).numpy()
        return out[0] if np.ndim(waveform) == 1 else out

    def top_features(self, waveform, layer: Layer, k: int = 1,
                     window_seconds: float | str | None = long_clips.AUTO) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most active feature maps of ``layer``.

        "Most active" is the paper's criterion: the largest activation over time of the
        block's output (after ReLU and pooling), ``max_t A_L[f, t]``.

        Returns:
            ``(indices, scores)``: int32 and float32, ``[k]`` for a ``[time]`` input or
            ``[batch, k]`` for ``[batch, time]``, in decreasing order of score.
        """
        batch = self.validate(waveform, layer)
        k = self._check_k(k, layer)
        if long_clips.choose(self, batch.shape[1], layer, window_seconds) != long_clips.ONE_PASS:
            indices, scores = long_clips.top_features(self, batch, layer, k, window_seconds)
            return (indices[0], scores[0]) if np.ndim(waveform) == 1 else (indices, scores)
        scores, indices = tf.math.top_k(tf.reduce_max(self._graph("activations", layer)(tf.constant(batch)), axis=1), k=k)
        indices, scores = indices.numpy().astype(np.int32), scores.numpy()
        return (indices[0], scores[0]) if np.ndim(waveform) == 1 else (indices, scores)

    def sonify_top(self, waveform, layer: Layer, k: int,
                   window_seconds: float | str | None = long_clips.AUTO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sonify the ``k`` most active maps in one forward pass and one batched deconvnet pass.

        Returns:
            ``(features, activations, sonifications)`` shaped ``[k]``, ``[k]``, ``[k, time]`` for a
            ``[time]`` input, or with a leading batch axis for ``[batch, time]``.
        """
        batch = self.validate(waveform, layer)
        k = self._check_k(k, layer)
        if long_clips.choose(self, batch.shape[1], layer, window_seconds) != long_clips.ONE_PASS:
            features, scores, sounds = long_clips.sonify_top(self, batch, layer, k, window_seconds)
        else:
            features, scores, sounds = (t.numpy() for t in self._graph("top", layer)(tf.constant(batch),
                                                                                   tf.constant(k, tf.int32)))
        if np.ndim(waveform) == 1:
            return features[0], scores[0], sounds[0]
        return features, scores, sounds

    def sonify(self, waveform, layer: Layer, feature: int | None = None, features: Sequence[int] | None = None,
               window_seconds: float | str | None = long_clips.AUTO) -> np.ndarray:
        """Sonify feature maps of ``layer`` (a name or block index).

        Args:
            waveform: float32 ``[time]`` or ``[batch, time]`` at the model's rate.
            layer: a layer name or block index (CNN12: 1..11).
            feature: one map index -> output shaped like ``waveform``.
            features: several map indices -> ``[k, time]`` (or ``[batch, k, time]``),
                computed in one batched pass with the maps on the batch axis. With neither ``feature`` nor
                ``features``, the most active map of each clip is sonified (output shaped like ``waveform``).
            window_seconds: clips longer than this (None: never; ``"auto"``: clips over 30 s, in 5 s windows) run
                as exact overlapping windows with bounded memory (:mod:`tfsonify.engine.long_clips`): the same result as
                one pass. A fixed-frame model (CREPE) is run on frames as its tracker cuts them, overlap-added
                (:mod:`tfsonify.engine.frames`), unless ``window_seconds=None``; a model with a custom input scaling
                in one pass (:func:`tfsonify.engine.long_clips.choose`).

        Returns:
            float32 sonification(s) in ``[-max|x|, max|x|]``; a silent clip gives zeros.
        """
        if feature is not None and features is not None:
            raise ValueError("give either feature=F or features=[...], not both")
        batch = self.validate(waveform, layer)
        if feature is None and features is None:
            sounds = self.sonify_top(batch, layer, 1, window_seconds=window_seconds)[2][:, 0]
            return sounds[0] if np.ndim(waveform) == 1 else sounds
        chosen = self._check_features([feature] if feature is not None else features, layer)
        clips = batch.shape[0]
        if long_clips.choose(self, batch.shape[1], layer, window_seconds) != long_clips.ONE_PASS:
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

    def raw_reconstruction(self, normalised, layer: Layer, features: Sequence[int]) -> np.ndarray:
        """Unscaled deconvnet output of maps ``features`` of ``layer`` (for exact windowing of long clips).

        Args:
            normalised: float32 ``[time]`` or ``[batch, time]`` at ``sample_rate``, the clip already divided
                by the *whole clip's* peak. It is not scaled again (input-scaling layers such as
                ``PeakNormalization`` are skipped) and the output is not rescaled.
            layer: a layer name or block index.
            features: map indices.

        Returns:
            float32 ``[F, time]`` for a ``[time]`` input, ``[batch, F, time]`` for ``[batch, time]``.
        """
        batch = self.validate(normalised, layer)
        chosen = self._check_features(features, layer)
        clips = batch.shape[0]
        batch_index = np.repeat(np.arange(clips, dtype=np.int32), chosen.size)
        rows = np.tile(chosen, clips)
        out = self._graph("raw", layer)(tf.constant(batch), tf.constant(batch_index), tf.constant(rows)).numpy()
        out = out.reshape(clips, chosen.size, -1)
        return out[0] if np.ndim(normalised) == 1 else out

    def scaled_input(self, waveform) -> np.ndarray:
        """The deconvnet's input for raw clips: float32 ``[batch, time]`` through the model's input-scaling layers
        (``PeakNormalization``, CREPE's per-frame standardisation; unchanged without any), float32 ``[batch, time]``.
        """
        batch = np.asarray(waveform, np.float32)
        return self._graph("scale", 1)(
            tf.constant(batch.reshape(-1, batch.shape[-1]))).numpy().reshape(batch.shape)

    def peak_activations(self, normalised, layer: Layer) -> np.ndarray:
        """Each map's maximum over time of ``layer`` for an already-scaled clip (as :meth:`raw_reconstruction`).

        Returns:
            float32 ``[C]`` for a ``[time]`` input, ``[batch, C]`` for ``[batch, time]``.
        """
        batch = self.validate(normalised, layer)
        out = self._graph("peaks", layer)(tf.constant(batch)).numpy()
        return out[0] if np.ndim(normalised) == 1 else out

    def stream(self, layer: Layer, features: Sequence[int], reference_peak: float, reconstruction_peak=None,
               hop: int | None = None):
        """A live sonification stream of maps ``features`` of ``layer``.

        Feed float ``[n]`` blocks of any size at :attr:`sample_rate` to ``stream.process(block)``; each call returns
        ``[F, n]`` sonified samples delayed by ``stream.latency`` samples (margin ``R - S`` plus ``hop - 1``);
        ``stream.flush()`` returns the rest. Input is divided by ``reference_peak``; see
        :class:`tfsonify.engine.windows.WindowedStream` for the output scaling and :func:`tfsonify.engine.long_clips.calibrate`
        for taking both peaks from a recording (then the stream equals :meth:`sonify` of it).
        """
        chosen = self._check_features(list(np.atleast_1d(features)), layer)
        return long_clips.stream(self, layer, chosen, reference_peak, reconstruction_peak, hop)
