"""Layer importance (paper Appendix B, Figure 4): the first L blocks, temporal average pooling, a classifier.

For ``L = 1 … 11`` the pretrained encoder is truncated after block ``L`` (``conv L`` and its max pool, if
any), its feature maps ``[batch, time_L, channels_L]`` are averaged over time and a new
``Dense(num_classes)`` head is trained on top: ``fconly`` trains the head only (blocks frozen), ``full``
fine-tunes the retained blocks too. Sweeping ``L`` for a contrastive and a supervised checkpoint gives
Figure 4 (metric vs. L, one line per pretraining type): :func:`write_table` and :func:`plot_sweep`.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import keras

from tfsonify.cnn12 import BLOCKS, NUM_BLOCKS, CNN12, block_widths
from tfsonify.layers import PeakNormalization
from tfsonify.render import check_writable_dir
from tfsonify.audio import atomic_path
from tfsonify.train.linear_eval import _check_mode

__all__ = ["truncated_classifier", "write_table", "plot_sweep"]


def truncated_classifier(
    encoder: CNN12,
    num_blocks: int,
    num_classes: int,
    mode: str = "fconly",
    multi_label: bool = False,
) -> keras.Model:
    """The first ``num_blocks`` blocks of ``encoder`` (weights copied) + temporal average pooling + a new head.

    Args:
        encoder: a pretrained CNN12 (any head is ignored), e.g. from
            :func:`tfsonify.train.linear_eval.load_encoder`.
        num_blocks: ``L`` in ``1 … 11``.
        num_classes: classes of the new head.
        mode: ``"fconly"`` (retained blocks frozen) or ``"full"``.
        multi_label: sigmoid head instead of softmax.

    Returns:
        A functional ``keras.Model``: waveform float32 ``[batch, time]`` at 8 kHz (``time ≥
        min_length(num_blocks)``) -> probabilities ``[batch, num_classes]``. Layer names match CNN12's
        (``conv1`` … ``conv{L}``, ``pool*``) plus ``temporal_pool`` and ``classifier``.
    """
    _check_mode(mode)
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or not 1 <= num_blocks <= NUM_BLOCKS:
        raise ValueError(f"num_blocks must be an integer in 1..{NUM_BLOCKS}; received {num_blocks!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; received {num_classes!r}")
    frozen = mode == "fconly"
    waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
    x = PeakNormalization(name="peak_normalization")(waveform)
    x = keras.layers.Reshape((-1, 1), name="add_channel")(x)
    widths = block_widths(encoder.width_multiplier)
    convs = []
    for index in range(1, num_blocks + 1):
        spec = BLOCKS[index - 1]
        conv = keras.layers.Conv1D(widths[index - 1], spec.kernel_size, padding="valid", activation="relu",
                                   name=f"conv{index}", trainable=not frozen)
        x = conv(x)
        convs.append(conv)
        if spec.pooled:
            x = keras.layers.MaxPooling1D(pool_size=2, strides=2, padding="valid", name=f"pool{index}")(x)
    x = keras.layers.GlobalAveragePooling1D(name="temporal_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax", name="classifier")(x)
    model = keras.Model(waveform, outputs, name=f"cnn12_first{num_blocks}_{mode}")
    for conv in convs:
        conv.set_weights(encoder.get_layer(conv.name).get_weights())
    return model


def write_table(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write sweep results (dicts with the same keys, e.g. ``pretraining, mode, blocks, accuracy``) as CSV, atomically."""
    if not rows:
        raise ValueError("no results to write")
    path = Path(path)
    check_writable_dir(path.parent)
    keys = list(rows[0])
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    return path


def plot_sweep(rows: list[dict], metric: str, path: str | os.PathLike) -> Path:
    """Figure 4: ``metric`` vs. retained blocks L, one line per pretraining type, one panel per mode (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no results to plot")
    path = Path(path)
    check_writable_dir(path.parent)
    modes = sorted({row["mode"] for row in rows})
    figure, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.6), squeeze=False)
    for axis, mode in zip(axes[0], modes):
        for pretraining in sorted({row["pretraining"] for row in rows}):
            points = sorted((int(r["blocks"]), float(r[metric])) for r in rows
                            if r["mode"] == mode and r["pretraining"] == pretraining)
            if points:
                axis.plot(*zip(*points), marker="o", label=pretraining)
        axis.set_title(mode)
        axis.set_xlabel("retained blocks L")
        axis.set_ylabel(metric)
        axis.set_xticks(range(1, NUM_BLOCKS + 1))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return path
