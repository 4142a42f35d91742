"""Time-invariance of sonifications (paper §3.2, Figure B.3): sonify(x shifted) == sonify(x) shifted.

For block ``L`` with ``p`` pooled blocks at or below it, the pool grid has period ``P = 2**p``. If
``B = x[k:]`` (``x`` advanced by ``k`` samples) and ``k`` is a multiple of ``P``, every block's output
of ``B`` equals ``x``'s with its first ``k / 2**j`` steps dropped (the same pool pairs, the same
switches), so the sonifications agree sample for sample, ``s_B[n] = s_x[n + k]``, except within one
receptive field (``min_length(L)`` samples) of the cut, where ``x``'s dropped activations contribute.
Each sonification is scaled to its own peak, so both are compared after scaling the compared
region to unit peak. Shifts that break pool alignment change which samples win each pool, and the
reported error shows by how much.

The model scales its input to unit peak, so the comparison is exact only when the clip's peak
survives the shift (``peak_kept``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from tfsonify.analysis.clip_batches import as_sonifier, describe_layer

__all__ = ["pool_period", "ShiftCheck", "time_invariance"]


def pool_period(layer: int | str, sonifier) -> int:
    """Input samples between output steps of ``layer``: shifts that are multiples of this keep every pool and
    stride aligned. The layer's total stride (:meth:`tfsonify.Sonifier.geometry`, ``LayerInfo.stride``; CNN12:
    ``2 ** (number of pooled blocks among 1..layer)``); ``sonifier`` a :class:`tfsonify.Sonifier` or a model."""
    return int(as_sonifier(sonifier).geometry(layer)[1])


@dataclass
class ShiftCheck:
    """Result for one shift: ``max_error`` is ``max |a - b|`` of the unit-peak compared regions (0 = equal)."""

    shift: int
    aligned: bool
    peak_kept: bool
    compared_samples: int
    max_error: float
    relative_rms_error: float


def time_invariance(sonifier, waveform: np.ndarray, layer: int, feature: int | None = None,
                    shifts: Iterable[int] = (1, 3)) -> list[ShiftCheck]:
    """Compare the sonification of ``waveform[k:]`` with the sonification of ``waveform`` advanced by ``k``.

    Args:
        sonifier: a :class:`tfsonify.Sonifier` of any supported model (or a model, wrapped in one).
        waveform: mono float32 ``[time]`` at the model's rate; must be at least
            ``max(shifts) + 2 * min_length(layer)`` samples so a region remains to compare.
        layer: a block index or layer name (:meth:`tfsonify.Sonifier.layers`).
        feature: map index (default: the clip's most active map).
        shifts: positive sample offsets; include multiples of ``pool_period(layer)`` for the
            exact case (the layer's stride, ``pool_period(layer, sonifier)``) and others to see the error
            when alignment breaks.

    Returns:
        One :class:`ShiftCheck` per shift, in the given order.
    """
    sonifier = as_sonifier(sonifier)
    margin = sonifier.min_length(layer)  # ValueError for a layer the model does not have
    waveform = np.asarray(waveform, np.float32)
    shifts = [int(shift) for shift in shifts]
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be mono [time]; received shape {waveform.shape}")
    if not shifts or min(shifts) < 1:
        raise ValueError(f"shifts must be positive sample offsets; received {shifts}")
    if waveform.size < max(shifts) + 2 * margin:
        raise ValueError(f"clip has {waveform.size} samples; {describe_layer(layer)} with shift {max(shifts)} needs at least "
                         f"{max(shifts) + 2 * margin} (shift + two receptive fields of {margin})")
    if feature is None:
        feature = int(sonifier.top_features(waveform, layer, 1)[0][0])
    reference = sonifier.sonify(waveform, layer, feature=feature)
    period = pool_period(layer, sonifier)
    peak = float(np.max(np.abs(waveform)))
    checks = []
    for shift in shifts:
        shifted = waveform[shift:]
        sound = sonifier.sonify(shifted, layer, feature=feature)
        a = reference[shift + margin:]
        b = sound[margin:]
        scale_a = float(np.max(np.abs(a)))
        scale_b = float(np.max(np.abs(b)))
        a = a / scale_a if scale_a > 0 else a
        b = b / scale_b if scale_b > 0 else b
        difference = a.astype(np.float64) - b
        rms = float(np.sqrt(np.mean(difference**2)) / max(np.sqrt(np.mean(a.astype(np.float64) ** 2)), 1e-12))
        checks.append(ShiftCheck(shift=shift, aligned=shift % period == 0, peak_kept=float(np.max(np.abs(shifted))) == peak,
                                 compared_samples=int(a.size), max_error=float(np.max(np.abs(difference))), relative_rms_error=rms))
    return checks
