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

from tfsonify.models.cnn12 import NUM_BLOCKS

from tfsonify.io.render import check_writable_dir
from tfsonify.io.audio import atomic_path

__all__ = ["parse_blocks", "write_table", "plot_sweep"]


def parse_blocks(text: str) -> list[int]:
    """``"1-11"`` or ``"1,3,5"`` -> sorted block indices in 1..11."""
    blocks: set[int] = set()
    try:
        for part in text.split(","):
            if "-" in part:
                low, high = (int(v) for v in part.split("-"))
                blocks.update(range(low, high + 1))
            elif part.strip():
                blocks.add(int(part))
    except ValueError:
        raise ValueError(f"--blocks must look like 1-11 or 1,3,5; received {text!r}") from None
    if not blocks or min(blocks) < 1 or max(blocks) > NUM_BLOCKS:
        raise ValueError(f"--blocks must name blocks in 1..{NUM_BLOCKS}; received {text!r}")
    return sorted(blocks)


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
