"""Top maximally activating inputs per feature map (paper §3.3), streamed with bounded memory.

One pass over a dataset keeps, for every block and every map, the ``k`` (default 3) clips with the
largest activation ``max_t A_L[f, t]``: memory is ``O(sum_L channels_L * k)`` numbers, independent of
the dataset size. Ties go to the earlier clip. The clips themselves are not kept; sonify them
afterwards from a random-access dataset (:func:`sonify_top_inputs`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfsonify.analysis.clip_batches import as_sonifier, Skipped, check_layers, describe_layer, equal_length_batches
from tfsonify.validation import check_int

__all__ = ["StreamingTopK", "TopKResult", "per_map_maxima", "top_activating_inputs", "sonify_top_inputs"]


class StreamingTopK:
    """Running top-``k`` of scores per channel: ``update`` with ``[batch, channels]`` scores and clip ids.

    Args:
        channels: number of maps.
        k: how many best clips to keep per map.

    Attributes:
        scores: float32 ``[channels, k]``, best first; ``-inf`` where fewer than ``k`` clips were seen.
        ids: int64 ``[channels, k]`` clip ids of ``scores``; -1 where empty.
    """

    def __init__(self, channels: int, k: int):
        check_int("k", k, minimum=1)
        self.k = int(k)
        self.scores = np.full((channels, self.k), -np.inf, np.float32)
        self.ids = np.full((channels, self.k), -1, np.int64)
        self.seen = 0

    def update(self, scores: np.ndarray, ids: np.ndarray) -> None:
        """Merge a batch: ``scores`` float ``[batch, channels]``, ``ids`` int ``[batch]`` (increasing)."""
        scores = np.asarray(scores, np.float32)
        ids = np.asarray(ids, np.int64)
        if scores.ndim != 2 or scores.shape[1] != self.scores.shape[0] or ids.shape != (scores.shape[0],):
            raise ValueError(f"expected scores [batch, {self.scores.shape[0]}] and ids [batch]; received {scores.shape}, {ids.shape}")
        all_scores = np.concatenate([self.scores, scores.T], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, (self.scores.shape[0], ids.size))], axis=1)
        # Sort by score descending, then id ascending (earlier clip wins ties); empty slots (id -1, -inf) last.
        order = np.lexsort((np.where(all_ids < 0, np.iinfo(np.int64).max, all_ids), -all_scores.astype(np.float64)), axis=1)[:, : self.k]
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.ids = np.take_along_axis(all_ids, order, axis=1)
        self.seen += ids.size


@dataclass
class TopKResult:
    """Per block: ``ids [channels, k]`` (clip positions in the dataset) and ``scores [channels, k]``."""

    k: int
    ids: dict[int, np.ndarray]
    scores: dict[int, np.ndarray]
    clips: dict[int, int]
    skipped: dict[int, int] = field(default_factory=dict)


def _score_graph(sonifier, layers: tuple):
    """One forward pass (the deconvnet's walk, input scaling included) to the deepest of ``layers``."""
    names = tuple(sonifier.deconvnet.resolve(layer) for layer in layers)
    key = ("topk_scores", names)
    if key not in sonifier._graphs:
        def scores(waveform):
            deconvnet = sonifier.deconvnet
            return [tf.reduce_max(out, axis=1) for out in deconvnet.outputs(deconvnet.scale_input(waveform), names)]

        sonifier._graphs[key] = tf.function(scores, input_signature=[tf.TensorSpec([None, None], tf.float32)],
                                            jit_compile=sonifier.jit_compile, reduce_retracing=True, autograph=False)
    return sonifier._graphs[key]


def per_map_maxima(sonifier, batch: np.ndarray, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """Every map's largest activation ``max_t A_L[f, t]`` for the blocks a batch is long enough for.

    Args:
        sonifier: a :class:`tfsonify.Sonifier`.
        batch: float32 ``[batch, time]`` equal-length clips at the model's rate (raw amplitude).
        layers: sorted blocks 1..11.

    Returns:
        ``{layer: float32 [batch, channels_L]}`` for each block with ``min_length(layer) <= time``, from one
        forward pass to the deepest of them (the blocks the clips are too short for are absent).
    """
    usable = tuple(layer for layer in layers if batch.shape[1] >= sonifier.min_length(layer))
    if not usable:
        return {}
    outputs = _score_graph(sonifier, usable)(tf.constant(batch, tf.float32))
    return {layer: scores.numpy() for layer, scores in zip(usable, outputs)}


def top_activating_inputs(sonifier, clips: Iterable, layers: Iterable[int] | None = None, k: int = 3,
                          batch_size: int = 8) -> TopKResult:
    """Stream ``clips`` once and keep the ``k`` most activating clips of every map of every block.

    Args:
        sonifier: a :class:`tfsonify.Sonifier` (or a CNN12 / contrastive model, wrapped in one).
        clips: iterable of mono float32 ``[time]`` waveforms at the model's rate.
        layers: blocks (default all 11).
        k: clips kept per map (3 in the paper).
        batch_size: clips per forward pass (consecutive equal-length clips are batched).

    Returns:
        :class:`TopKResult`. A clip too short for a block is skipped for that block and counted.

    Raises:
        ValueError: fewer usable clips than ``k`` for some block (the message gives the counts).
    """
    sonifier = as_sonifier(sonifier)
    layers = check_layers(layers, sonifier=sonifier)
    trackers = {layer: StreamingTopK(sonifier.num_features(layer), k) for layer in layers}
    skipped = {layer: 0 for layer in layers}
    shallow = Skipped()
    for ids, batch in equal_length_batches(clips, batch_size, layers[0], shallow, sonifier=sonifier):
        maxima = per_map_maxima(sonifier, batch, layers)
        for layer in layers:
            if layer in maxima:
                trackers[layer].update(maxima[layer], ids)
            else:
                skipped[layer] += ids.size
    for layer in layers:
        skipped[layer] += shallow.too_short
    short = {layer: trackers[layer].seen for layer in layers if trackers[layer].seen < k}
    if short:
        layer, seen = next(iter(short.items()))
        raise ValueError(f"the dataset has {seen} usable clip(s) for {describe_layer(layer)} but k={k} are needed per map "
                         f"({skipped[layer]} clip(s) were skipped as shorter than {sonifier.min_length(layer)} samples); "
                         f"use a smaller k or more clips")
    return TopKResult(k=int(k), ids={layer: trackers[layer].ids for layer in layers},
                      scores={layer: trackers[layer].scores for layer in layers},
                      clips={layer: trackers[layer].seen for layer in layers}, skipped=skipped)


def sonify_top_inputs(sonifier, result: TopKResult, clips: Sequence, layer: int, features: Sequence[int] | None = None
                      ) -> list[dict]:
    """Sonify each map on its top clips.

    Args:
        clips: random-access dataset (``clips[i]`` is the ``[time]`` waveform of id ``i``), the same
            one that was streamed.
        layer: a block present in ``result``.
        features: maps to sonify (default all of the block's maps).

    Returns:
        One dict per (map, rank): ``feature``, ``rank`` (0 = most activating), ``clip`` id,
        ``activation``, ``input`` ``[time]`` and ``sonification`` ``[time]`` float32.
    """
    if layer not in result.ids:
        raise ValueError(f"{describe_layer(layer)} was not streamed; available: {sorted(result.ids)}")
    features = range(result.ids[layer].shape[0]) if features is None else features
    entries = []
    for feature in features:
        for rank in range(result.k):
            clip_id = int(result.ids[layer][feature, rank])
            waveform = np.asarray(clips[clip_id], np.float32)
            sound = sonifier.sonify(waveform, layer, feature=int(feature))
            entries.append({"feature": int(feature), "rank": rank, "clip": clip_id,
                            "activation": float(result.scores[layer][feature, rank]), "input": waveform, "sonification": sound})
    return entries
