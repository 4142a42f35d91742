"""The explorer's only door to a model: layers, sample rate, predictions, activations, sonifications.

Everything :mod:`tfsonify.explore.app` knows about a model goes through :class:`ModelSession`, so moving to the
generic any-model Sonifier (layers by name, ``sonifier.layers()``, ``sonifier.sample_rate``) changes this file
only. Today a session holds a tfsonify CNN12 (any width, with or without a head) or the CNN12 encoder of a
contrastive checkpoint; its layers are the blocks 1..11, keyed by the strings ``"1"`` .. ``"11"``.

Not thread-safe: the app calls a session from its single model worker thread only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["LayerInfo", "ModelSession", "load_labels", "PREVIEW_SECONDS", "OVERVIEW_COLUMNS", "EXPLAIN_SECONDS"]

PREVIEW_SECONDS = 30.0
"""The head's prediction and the per-layer coherence curve of a longer clip are of its first 30 s (said in the
page): both need whole passes that a long clip would multiply, and neither is what a listener looks at first."""
OVERVIEW_COLUMNS = 2400
"""A long clip's activation overview is max-pooled over time to at most this many columns (the image width)."""
EXPLAIN_SECONDS = 30.0
"""Longest clip the method picker explains (other methods than the sonification run on the whole clip at once:
integrated gradients is 32 passes of it, occlusion 31; no windows)."""


@dataclass(frozen=True)
class LayerInfo:
    """One sonifiable layer.

    Attributes:
        id: the key used in URLs and by :class:`ModelSession` methods (``"8"`` for block 8).
        label: what the page shows ("block 8").
        maps: number of feature maps (channels).
        min_samples: fewest input samples the layer accepts.
        stride: input samples per activation step (``2 ** pooled blocks up to the layer``).
        receptive_field: input samples one activation step depends on.
    """

    id: str
    label: str
    maps: int
    min_samples: int
    stride: int
    receptive_field: int

    def to_json(self) -> dict:
        return {"id": self.id, "label": self.label, "maps": self.maps, "min_samples": self.min_samples,
                "stride": self.stride, "receptive_field": self.receptive_field}


def load_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one per line (blank lines ignored), or a JSON list of strings."""
    import json

    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        names = json.loads(text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"labels file {str(path)!r} must hold a JSON list of strings")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


class ModelSession:
    """A loaded model seen as the page needs it.

    Args:
        model: a path to a tfsonify ``.keras`` file, or a Keras model (CNN12 or ContrastiveModel).
        name: shown in the page (default: the file name, or the model's name).
        labels: class names for the model's head (must match its size); default the names stored with the model
            (:func:`tfsonify.models.metadata.class_names_of`; a model with stored names but no ``num_classes``
            attribute has a head of that many classes).
    """

    def __init__(self, model, name: str | None = None, labels: Sequence[str] | None = None):
        import keras

        import tfsonify
        from tfsonify.models.checkpoint import sonifiable_of
        from tfsonify.models.metadata import class_names_of, sample_rate_of

        if not isinstance(model, keras.Model):
            path = Path(model)
            name = name or path.name
            model = tfsonify.load_checkpoint(path)
        self.model = model
        self.network = sonifiable_of(model)  # a CNN12 (a contrastive model's encoder) or any supported model
        self.name = name or self.network.name
        self.sonifier = tfsonify.Sonifier(self.network, sample_rate=sample_rate_of(self.network))
        self.sample_rate = int(self.sonifier.sample_rate)
        stored = class_names_of(self.network)
        labels = stored if labels is None else labels
        self.num_classes = getattr(self.network, "num_classes", None) or (len(stored) if stored else None)
        self.multi_label = bool(getattr(self.network, "multi_label", False))
        if labels is not None and self.num_classes is not None and len(labels) != self.num_classes:
            raise ValueError(f"{len(labels)} labels given for model {self.name!r}, whose head has {self.num_classes} classes")
        self.labels = list(labels) if labels is not None and self.num_classes else None
        self._layers = self._describe_layers()
        self._by_id = {info.id: info for info in self._layers}

    # ------------------------------------------------------------------ layers
    def _describe_layers(self) -> list[LayerInfo]:
        """One entry per conv block of the model (CNN12: blocks 1..11), from the deconvnet's layer walk."""
        layers = []
        for info in self.sonifier.layers():
            if info.block is None:
                continue
            label = f"block {info.block}" if info.name.startswith(("conv", "pool")) else f"block {info.block} ({info.name})"
            layers.append(LayerInfo(str(info.block), label, info.channels, info.min_length, info.stride,
                                    info.receptive_field))
        if not layers:
            raise ValueError(f"model {self.name!r} has no sonifiable conv blocks")
        return layers

    def layers(self) -> list[LayerInfo]:
        """The sonifiable layers, input side first."""
        return list(self._layers)

    def layer(self, layer_id: str) -> LayerInfo:
        """The layer with id ``layer_id``; ``ValueError`` naming the valid ids otherwise."""
        info = self._by_id.get(str(layer_id))
        if info is None:
            ids = [i.id for i in self._layers]
            raise ValueError(f"unknown layer {str(layer_id)[:40]!r}; model {self.name!r} has layers {ids[0]}..{ids[-1]}")
        return info

    def _block(self, layer_id: str) -> int:
        return int(self.layer(layer_id).id)

    def check_length(self, waveform: np.ndarray, layer_id: str) -> None:
        """``ValueError`` if ``waveform`` is too short for the layer (says how long it must be)."""
        info = self.layer(layer_id)
        if waveform.shape[-1] < info.min_samples:
            raise ValueError(f"the clip has {waveform.shape[-1]} samples ({waveform.shape[-1] / self.sample_rate:.3f} s); "
                             f"{info.label} needs at least {info.min_samples} ({info.min_samples / self.sample_rate:.3f} s)")

    def frame_times(self, layer_id: str, steps: int) -> np.ndarray:
        """Centre, in seconds, of the input span each of ``steps`` activation steps of the layer depends on."""
        info = self.layer(layer_id)
        return (np.arange(steps) * info.stride + (info.receptive_field - 1) / 2.0) / self.sample_rate

    # ------------------------------------------------------------- computation
    def predict(self, waveform: np.ndarray) -> list[dict] | None:
        """The head's scores for a mono float32 ``[time]`` clip (its first :data:`PREVIEW_SECONDS` if longer), best
        first (at most 5), or None without a head.

        Each entry: ``{"label": str, "index": int, "score": float}``.
        """
        if not self.num_classes:
            return None
        waveform = waveform[:int(PREVIEW_SECONDS * self.sample_rate)]  # a long clip: its first 30 s
        if waveform.shape[-1] < self._layers[-1].min_samples:
            return None
        fixed = self.network.inputs[0].shape[1]
        if fixed is not None and waveform.shape[-1] != fixed:
            return None  # a fixed-length model (CREPE: 1024 samples) scores frames, not a whole clip
        scores = np.asarray(self.network(np.asarray(waveform, np.float32)[None], training=False))[0]
        order = np.argsort(-scores)[:5]
        names = self.labels or [f"class {i}" for i in range(self.num_classes)]
        return [{"label": names[i], "index": int(i), "score": float(scores[i])} for i in order]

    def activations(self, waveform: np.ndarray, layer_id: str) -> np.ndarray:
        """The layer's output for a mono ``[time]`` clip: float32 ``[steps, maps]`` (after ReLU and pooling)."""
        self.check_length(waveform, layer_id)
        return np.asarray(self.sonifier.activations(waveform, self._block(layer_id)), np.float32)

    def overview(self, waveform: np.ndarray, layer_id: str, columns: int = OVERVIEW_COLUMNS) -> dict:
        """What the activation overview needs, with memory bounded for long clips.

        Returns ``{"acts": float32 [rows, maps], "maxima": float32 [maps] (exact, over the whole clip), "steps": int
        (the layer's real steps), "pooled": bool, "times": (first, step) in seconds}``. A clip that fits in one
        window of :data:`tfsonify.engine.long_clips.DEFAULT_WINDOW_SECONDS` gives its exact frames (``rows == steps``); a
        longer one runs window by window (:func:`tfsonify.engine.long_clips.pooled_activations`, the engine's) and each
        map is max-pooled over ``ceil(steps / columns)``-step bins as it goes (``rows == min(steps, columns)``), so a
        one-hour clip at block 1 never holds its 14 M x 64 frames.
        """
        from tfsonify.engine import long_clips

        self.check_length(waveform, layer_id)
        info, block = self.layer(layer_id), self._block(layer_id)
        first_time = (info.receptive_field - 1) / 2.0 / self.sample_rate
        acts, steps = long_clips.pooled_activations(self.sonifier, waveform, block, columns,
                                                     long_clips.DEFAULT_WINDOW_SECONDS)
        return {"acts": acts, "maxima": acts.max(axis=0), "steps": int(steps), "pooled": acts.shape[0] < steps,
                "times": (first_time, info.stride * steps / acts.shape[0] / self.sample_rate)}

    def sonify(self, waveform: np.ndarray, layer_id: str, features: Sequence[int]) -> np.ndarray:
        """Sonifications of maps ``features`` of the layer: float32 ``[len(features), time]`` at :attr:`sample_rate`."""
        self.check_length(waveform, layer_id)
        return np.asarray(self.sonifier.sonify(waveform, self._block(layer_id), features=list(features)), np.float32)

    def explain(self, waveform: np.ndarray, layer_id: str, feature: int, method: str) -> np.ndarray:
        """Map ``feature`` of the layer explained by ``method`` (one of :data:`tfsonify.explain.methods.METHODS`) as a
        sound: float32 ``[time]`` scaled to the clip's peak.

        ``"sonification"`` is :meth:`sonify` (the page's own sound). The others run
        :func:`tfsonify.explain.methods.explain` on the map's sum over time (``Target.map``) and are heard as
        :func:`tfsonify.explain.evaluate.listening_examples` makes them (a waveform as it is, a time-frequency mask
        applied to the input). ``ValueError`` for an unknown method, a bad map, or a clip too short or longer than
        :data:`EXPLAIN_SECONDS`.
        """
        from tfsonify.explain.evaluate import listening_examples
        from tfsonify.explain.methods import check_methods, explain
        from tfsonify.explain.targets import Target

        check_methods([method])
        self.check_length(waveform, layer_id)
        if method == "sonification":
            return self.sonify(waveform, layer_id, [feature])[0]
        if waveform.shape[-1] > EXPLAIN_SECONDS * self.sample_rate:
            raise ValueError(f"the clip is {waveform.shape[-1] / self.sample_rate:.1f} s long; methods other than the "
                             f"sonification explain clips of up to {EXPLAIN_SECONDS:g} s")
        clip = np.asarray(waveform, np.float32)[None]
        explanation = explain(method, self.sonifier, clip, Target.map(self._block(layer_id), int(feature)))
        return listening_examples(explanation, [0], float(np.max(np.abs(clip))))[0]

    def coherence(self, waveform: np.ndarray) -> dict:
        """Per layer, the mean top-5 magnitude-squared coherence between the clip and the sonification of its most
        active map (paper §4.2.1, :func:`tfsonify.analysis.coherence.layer_coherence` on this one clip).

        Of the first :data:`PREVIEW_SECONDS` of a longer clip. Returns ``{"layers": [ids], "labels": [...],
        "coherence": [float or None], "seconds": measured, "of_seconds": clip length}`` (None: too short or silent).
        """
        from tfsonify.analysis.coherence import layer_coherence

        seconds = waveform.shape[-1] / self.sample_rate
        waveform = waveform[:int(PREVIEW_SECONDS * self.sample_rate)]  # a long clip: its first 30 s
        usable = [info for info in self._layers if waveform.shape[-1] >= info.min_samples]
        if not usable or float(np.max(np.abs(waveform))) == 0.0:
            raise ValueError("the clip is silent or too short for every layer: no coherence to measure")
        result = layer_coherence(self.sonifier, [waveform], layers=[int(info.id) for info in usable])
        by_layer = {str(layer): (mean if clips else None) for layer, mean, clips in zip(result.layers, result.mean, result.clips)}
        return {"layers": [info.id for info in self._layers], "labels": [info.label for info in self._layers],
                "coherence": [by_layer.get(info.id) for info in self._layers], "k": result.k, "nperseg": result.nperseg,
                "seconds": min(seconds, PREVIEW_SECONDS), "of_seconds": seconds}

    def describe(self) -> dict:
        """JSON-ready summary for the page."""
        return {"name": self.name, "sample_rate": self.sample_rate, "head": bool(self.num_classes),
                "classes": self.num_classes, "multi_label": self.multi_label,
                "parameters": int(self.network.count_params()), "layers": [info.to_json() for info in self._layers]}
