"""Shared helpers for the analyses: checking clips and grouping them into equal-length batches."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

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


def check_layers(layers: Iterable[int | str] | None, sonifier) -> list:
    """Validate the layers an analysis runs on against ``sonifier``'s model; returns them unique, in graph order.

    ``layers``: block indices 1..N of the :class:`tfsonify.Sonifier`'s model (any model the deconvnet walks) or
    layer names from :meth:`tfsonify.Sonifier.layers` (a digit string counts as an index, as the CLI passes them);
    ``None`` means all of its blocks. Each layer is kept as given (an index stays an int, a name a str).
    """
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
        if isinstance(layer, str) and layer.isdecimal():
            layer = int(layer)
        name = sonifier.deconvnet.resolve(layer)  # ValueError naming the layer and what is sonifiable
        chosen.setdefault(name, layer)
    if not chosen:
        raise ValueError(f"layers must name at least one layer of {[info.name for info in infos]}; received an empty list")
    return [chosen[name] for name in sorted(chosen, key=order.__getitem__)]


def layer_min_length(layer, sonifier) -> int:
    """Fewest samples ``layer`` needs: ``sonifier.min_length(layer)`` (the deconvnet's walk of the model)."""
    return sonifier.min_length(layer)


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
                         sonifier) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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
    """A :class:`tfsonify.Sonifier` for a Sonifier, or for a model: its sonifiable part
    (:func:`tfsonify.models.checkpoint.sonifiable_of`: a contrastive model's encoder, else the model), at the rate
    stored with it (:func:`tfsonify.models.metadata.sample_rate_of`)."""
    from tfsonify.engine.sonifier import Sonifier
    from tfsonify.models.checkpoint import sonifiable_of
    from tfsonify.models.metadata import sample_rate_of

    if isinstance(model_or_sonifier, Sonifier):
        return model_or_sonifier
    model = sonifiable_of(model_or_sonifier)
    return Sonifier(model, sample_rate=sample_rate_of(model))
