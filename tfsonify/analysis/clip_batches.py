"""Shared helpers for the analyses: checking clips and grouping them into equal-length batches."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from tfsonify.models.cnn12 import min_length
from tfsonify.validation import check_int

__all__ = ["Skipped", "as_clip", "equal_length_batches", "check_layers", "layer_min_length"]


@dataclass
class Skipped:
    """Counts of clips an analysis could not use, by reason (for reports and CLI output)."""

    too_short: int = 0
    silent: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.too_short + self.silent

    def describe(self) -> str:
        parts = []
        if self.too_short:
            parts.append(f"{self.too_short} too short")
        if self.silent:
            parts.append(f"{self.silent} silent")
        return ", ".join(parts) if parts else "none"


def check_layers(layers: Iterable[int | str] | None, num_blocks: int = 11, sonifier=None) -> list:
    """Validate the layers an analysis runs on; returns them unique, in graph order.

    Without ``sonifier`` (CNN12): block indices 1..``num_blocks``; ``None`` means all of them. With a
    :class:`tfsonify.Sonifier` (any model): block indices 1..N of its model or layer names from
    :meth:`tfsonify.Sonifier.layers` (a digit string counts as an index, as the CLI passes them); ``None``
    means all of its blocks. Each layer is kept as given (an index stays an int, a name a str).
    """
    if sonifier is not None:
        return _check_model_layers(layers, sonifier)
    if layers is None:
        return list(range(1, num_blocks + 1))
    chosen = sorted({layer for layer in layers})
    if not chosen:
        raise ValueError("layers must name at least one block in 1..11; received an empty list")
    for layer in chosen:
        check_int("layers", layer, 1, num_blocks, detail=" (block indices)")
    return [int(layer) for layer in chosen]


def _check_model_layers(layers, sonifier) -> list:
    infos = sonifier.layers()
    if layers is None:
        blocks = [info.block for info in infos if info.block is not None]
        if not blocks:
            raise ValueError(f"model {sonifier.model.name!r} has no conv block; name its layers: "
                             f"{[info.name for info in infos]}")
        return blocks
    order = {info.name: position for position, info in enumerate(infos)}
    chosen: dict[str, int | str] = {}
    for layer in layers:
        if isinstance(layer, str) and layer.isdigit():
            layer = int(layer)
        name = sonifier.deconvnet.resolve(layer)  # ValueError naming the layer and what is sonifiable
        chosen.setdefault(name, layer)
    if not chosen:
        raise ValueError(f"layers must name at least one layer of {[info.name for info in infos]}; received an empty list")
    return [chosen[name] for name in sorted(chosen, key=order.__getitem__)]


def layer_min_length(layer, sonifier=None) -> int:
    """Fewest samples ``layer`` needs: ``sonifier.min_length(layer)`` (any model), else CNN12's ``min_length``."""
    return min_length(layer) if sonifier is None else sonifier.min_length(layer)


def describe_layer(layer) -> str:
    """``"block 5"`` for an index, ``"layer 'conv4'"`` for a name (for messages)."""
    return f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"


def as_clip(clip, index: int) -> np.ndarray:
    """A dataset element as mono float32 ``[time]``; ``ValueError`` naming the clip otherwise."""
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"clip {index} must be a non-empty mono waveform [time]; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"clip {index} contains NaN or Inf samples")
    return array


def equal_length_batches(clips: Iterable, batch_size: int, layer: int | str, skipped: Skipped,
                         sonifier=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Group consecutive usable clips of equal length into ``[batch, time]`` float32 batches.

    Clips shorter than ``layer``'s minimum length (:func:`layer_min_length`) are skipped and counted in ``skipped.too_short``.

    Yields:
        ``(indices [batch] int64, waveforms [batch, time] float32)``; indices are positions in ``clips``.
    """
    check_int("batch_size", batch_size, minimum=1)
    needed = layer_min_length(layer, sonifier)
    pending: list[np.ndarray] = []
    pending_index: list[int] = []
    for index, clip in enumerate(clips):
        clip = as_clip(clip, index)
        if clip.size < needed:
            skipped.too_short += 1
            continue
        if pending and (clip.size != pending[0].size or len(pending) == batch_size):
            yield np.asarray(pending_index), np.stack(pending)
            pending, pending_index = [], []
        pending.append(clip)
        pending_index.append(index)
    if pending:
        yield np.asarray(pending_index), np.stack(pending)


def as_sonifier(model_or_sonifier):
    """A :class:`tfsonify.Sonifier` for a Sonifier, a CNN12, or a model holding one as ``.encoder`` (contrastive)."""
    from tfsonify.models.cnn12 import CNN12
    from tfsonify.engine.sonifier import Sonifier

    if isinstance(model_or_sonifier, Sonifier):
        return model_or_sonifier
    encoder = getattr(model_or_sonifier, "encoder", None)
    if not isinstance(model_or_sonifier, CNN12) and isinstance(encoder, CNN12):
        return Sonifier(encoder)
    return Sonifier(model_or_sonifier)
