"""A tfsonify ``.tflite`` sonifier on LiteRT, with the geometry, rate and labels it carries (no TensorFlow).

:class:`EdgeModel` opens the flatbuffer once: its tfsonify record (:func:`tfsonify.edge.metadata.read_metadata`:
sample rate, per-layer receptive field and stride, class names, the fixed length) and a LiteRT ``Interpreter``.
Every method takes a layer as the export named it (a block index such as 11, or a layer name such as "conv4") and
finds its signatures from the record, so the same code runs CNN12, CREPE or a user's model::

    model = EdgeModel("sonifier.tflite", num_threads=2)
    features, activations, sounds = model.sonify_top(clip, 11, 3)    # clip: float32 [T] at model.sample_rate
    stream = model.stream(11, [4], reference_peak=1.0)                # live, exact windows
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from tfsonify.edge import windows as edge_windows
from tfsonify.edge.metadata import read_metadata

__all__ = ["EdgeModel"]


class EdgeModel:
    """A tfsonify ``.tflite`` (path or flatbuffer bytes) on a LiteRT interpreter.

    Attributes:
        record: the tfsonify record (dict; see :mod:`tfsonify.edge.metadata`).
        sample_rate: the model's rate in Hz.
        class_names: the labels stored with the model, or None.
        length: the fixed clip length ``W`` in samples, or None for a dynamic-length model.
        frame_length: the model's own fixed input frame (CREPE: 1024 samples), or None for a model of any length.
        interpreter: the ``ai_edge_litert.interpreter.Interpreter``.

    Raises:
        ValueError: an unreadable file, not a TFLite flatbuffer, or one without a tfsonify record.
    """

    def __init__(self, source: str | os.PathLike | bytes, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.record = read_metadata(source)
        self.sample_rate = int(self.record["sample_rate"])
        self.class_names = self.record.get("class_names")
        self.length = self.record.get("length")
        self.frame_length = self.record.get("input_length")
        threads = num_threads or os.cpu_count() or 1
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                self.interpreter = Interpreter(model_content=bytes(source), num_threads=threads)
            else:
                self.interpreter = Interpreter(model_path=os.fspath(source), num_threads=threads)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"LiteRT cannot load this model: {error}") from None

    @property
    def layers(self) -> list[int | str]:
        """The exported layers (block indices as ints, layer names as strings), in export order."""
        return [int(key) if key.isdecimal() else key for key in self.record["signatures"]]

    def _suffix(self, layer: int | str) -> str:
        key = str(layer)
        if key not in self.record["signatures"]:
            raise ValueError(f"layer {layer!r} is not in this model; exported layers: {self.layers}")
        return self.record["signatures"][key]

    def geometry(self, layer: int | str) -> edge_windows.Geometry:
        """The layer's :class:`tfsonify.edge.windows.Geometry` (receptive field and stride in samples)."""
        self._suffix(layer)
        return edge_windows.Geometry.of(self.record, layer)

    def runner(self, kind: str, layer: int | str):
        """The signature runner ``{kind}_{suffix}`` (kind: ``top_k``, ``sonify``, ``sonify_raw``, ``peak_activations``)."""
        name = f"{kind}_{self._suffix(layer)}"
        if name not in self.interpreter.get_signature_list():
            raise ValueError(f"this model has no {name!r} signature (export it with a current `tfsonify export tflite`)")
        return self.interpreter.get_signature_runner(name)

    def num_features(self, layer: int | str) -> int:
        """The layer's number of maps ``C_L``."""
        return int(self.runner("peak_activations", layer).get_output_details()["activations"]["shape"][1])

    def functions(self, layer: int | str) -> tuple[Callable[[np.ndarray, int], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
        """Window runners of a fixed-length model: ``(raw(window [n <= W], feature) -> [n], peaks(window) -> [C_L])``.

        Windows shorter than ``W`` are zero-padded at the end and the output cut back: padding adds only steps
        after the window's own, whose reconstruction lands after the window's exact span.

        Raises:
            ValueError: a dynamic-length model; (``raw``) a feature outside ``0..C_L-1`` or a window longer than
                ``W``; (``peaks``) a window whose padding would add a step.
        """
        if self.length is None:
            raise ValueError("windows need a fixed-length model; a dynamic-length model takes the whole clip at once")
        length, geometry = int(self.length), self.geometry(layer)
        raw_runner, peak_runner = self.runner("sonify_raw", layer), self.runner("peak_activations", layer)
        width = self.num_features(layer)

        def padded(window: np.ndarray) -> np.ndarray:
            window = np.asarray(window, np.float32).reshape(-1)
            if window.size > length:
                raise ValueError(f"a {window.size}-sample window is longer than this model's fixed {length} samples")
            return np.pad(window, (0, length - window.size)).reshape(1, -1)

        def raw(window: np.ndarray, feature: int) -> np.ndarray:
            if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < width:
                raise ValueError(f"feature must be a map index in 0..{width - 1} of {geometry.name}; received {feature!r}")
            out = raw_runner(waveform=padded(window), feature=np.array([feature], np.int32))["reconstruction"][0]
            return out[:np.size(window)]

        def peaks(window: np.ndarray) -> np.ndarray:
            # zero padding must add no step (its maxima are not the clip's): at least the W-window's effective length
            if edge_windows.output_length(np.size(window), geometry) != edge_windows.output_length(length, geometry):
                shortest = length - (length - geometry.receptive_field) % geometry.stride
                raise ValueError(f"peak_activations needs a window of {shortest}..{length} samples; received "
                                 f"{np.size(window)}")
            return peak_runner(waveform=padded(window))["activations"][0]

        return raw, peaks

    def windowed(self, num_samples: int) -> bool:
        """Whether a ``num_samples`` clip runs as exact windows (a fixed-length model of any-length input, and a
        clip longer than ``W``)."""
        return self.length is not None and self.frame_length is None and num_samples > int(self.length)

    def check_clip(self, clip: np.ndarray, layer: int | str) -> np.ndarray:
        """``clip`` as float32 ``[T]`` this model can sonify at ``layer``; ``ValueError`` saying why not (NaN/Inf,
        shape, too short, or longer than a fixed-frame model's one frame)."""
        array = np.asarray(clip, np.float32)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"clip must be a non-empty mono float32 array [time]; received shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"clip contains {int(array.size - np.count_nonzero(np.isfinite(array)))} NaN or Inf samples")
        geometry = self.geometry(layer)
        if self.frame_length is not None and array.size > int(self.frame_length):
            raise ValueError(f"this model takes fixed {self.frame_length}-sample frames and the edge runtime runs one "
                             f"frame; the clip has {array.size} samples: cut one frame, or sonify the whole clip "
                             f"frame by frame with `tfsonify sonify` (TensorFlow)")
        needed = int(geometry.min_length or geometry.receptive_field)
        if self.frame_length is None and array.size < needed:
            raise ValueError(f"the clip has {array.size} samples at {self.sample_rate} Hz but {geometry.name} needs at "
                             f"least {needed} ({needed / self.sample_rate:.3f} s)")
        if self.windowed(array.size):
            edge_windows.check_windows(geometry, f"the clip has {array.size} samples, more than this model's fixed "
                                                 f"{self.length}: ")
        return array

    def sonify_top(self, clip: np.ndarray, layer: int | str, k: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(features [k] int32, activations [k] float32, sonifications [k, T] float32)`` of ``clip`` (float32
        ``[T]`` at :attr:`sample_rate`): exact windows for a long clip on a fixed-length model, else one call of
        ``top_k`` (a shorter clip is zero-padded to ``W`` and the outputs cut back to ``T``). ``k`` defaults to the
        export's ``top_k``."""
        clip = self.check_clip(clip, layer)
        runner = self.runner("top_k", layer)
        exported = int(runner.get_output_details()["features"]["shape"][1])
        k = exported if k is None else k
        if self.windowed(clip.size):
            raw, peaks = self.functions(layer)
            geometry = self.geometry(layer)
            features, activations = edge_windows.top_features_windowed(clip, geometry, int(self.length), peaks,
                                                                       min(k, self.num_features(layer)))
            return features, activations, edge_windows.sonify_windowed(clip, geometry, int(self.length), raw, features)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= exported:
            raise ValueError(f"k must be an integer in 1..{exported} (the export's top_k) for a clip of one call; "
                             f"received {k!r}")
        fixed = self.frame_length or self.length
        padded = clip if fixed is None else np.pad(clip, (0, int(fixed) - clip.size))
        outputs = runner(waveform=padded[np.newaxis])
        return (outputs["features"][0][:k], outputs["activations"][0][:k],
                outputs["sonifications"][0][:k, :clip.size])

    def stream(self, layer: int | str, features, reference_peak: float, reconstruction_peak=None,
               hop: int | None = None) -> edge_windows.WindowedStream:
        """A live exact stream (:func:`tfsonify.edge.windows.stream`) of a fixed-length model of any-length input."""
        if self.frame_length is not None:
            raise ValueError(f"live streams need a model of any input length; this one takes fixed "
                             f"{self.frame_length}-sample frames")
        raw, _ = self.functions(layer)
        return edge_windows.stream(raw, self.geometry(layer), int(self.length), features, reference_peak,
                                   reconstruction_peak, hop)
