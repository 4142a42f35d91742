"""Feature evolution over training time (paper §3.4, Figure 5) and a TensorBoard callback.

:func:`feature_evolution` finds, at the *final* checkpoint, the maximally activating clip of each
chosen map, then sonifies that same map on that same clip at every checkpoint, so the picture does
not jump when the best clip changes (the smoother view the paper contrasts with Zeiler & Fergus).
:func:`plot_evolution_strip` draws one strip of log spectrograms per map (input, then checkpoints).

:class:`SonificationLogger` logs chosen sonifications (audio) and their log spectrograms (images)
to TensorBoard every N epochs while a model trains.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsonify.analysis.topk import top_activating_inputs
from tfsonify.models.checkpoint import sonifiable_of
from tfsonify.models.metadata import sample_rate_of
from tfsonify.io.render import log_spectrogram
from tfsonify.validation import check_int

__all__ = ["conv_widths", "EvolutionResult", "feature_evolution", "plot_evolution_strip",
           "spectrogram_image", "SonificationLogger"]


def conv_widths(model: keras.Model) -> list[tuple[str, int]]:
    """``(layer name, maps)`` of every sonifiable layer of ``model`` in graph order (CNN12: ``conv1`` ... ``conv11``
    and their pools), as the deconvnet walks it; two checkpoints of one architecture give equal lists."""
    from tfsonify.engine.walk import DeconvNet

    return [(info.name, int(info.channels)) for info in DeconvNet(model).layers()]


@dataclass
class EvolutionResult:
    """Sonifications of fixed maps on fixed clips across checkpoints.

    Attributes:
        maps: ``(layer, feature)`` per map.
        clip_ids: per map, the dataset position of its maximally activating clip (final checkpoint).
        inputs: per map, that clip, float32 ``[time]``.
        sonifications: per map, float32 ``[checkpoints, time]``.
        activations: per map, ``[checkpoints]`` max activation of the map on the clip.
        labels: one label per checkpoint.
        sample_rate: the models' rate in Hz (of the final checkpoint).
    """

    maps: list[tuple[int | str, int]]
    clip_ids: list[int]
    inputs: list[np.ndarray]
    sonifications: list[np.ndarray]
    activations: list[np.ndarray]
    labels: list[str]
    sample_rate: int


def feature_evolution(checkpoints: Sequence, clips: Sequence, maps: Iterable[tuple[int, int]],
                      labels: Sequence[str] | None = None, batch_size: int = 8) -> EvolutionResult:
    """Sonify chosen maps at every checkpoint on the clip that activates them most at the last one.

    Args:
        checkpoints: ``.keras`` paths or models in training order (the last one picks the clips);
            every one must have the same sonifiable layers and widths (any model the deconvnet walks).
        clips: random-access dataset of mono float32 ``[time]`` waveforms at the model's rate.
        maps: ``(layer, feature)`` pairs; ``layer`` a block index or a layer name.
        labels: names of the checkpoints (default file stems or ``ckpt{i}``).

    Raises:
        ValueError: a checkpoint of a different width, unknown map indices, too few clips.
    """
    from tfsonify.engine.sonifier import Sonifier

    if len(checkpoints) == 0:
        raise ValueError("feature_evolution needs at least one checkpoint")
    maps = [(layer if isinstance(layer, str) else int(layer), int(feature)) for layer, feature in maps]
    if not maps:
        raise ValueError("maps must list at least one (layer, feature) pair")
    models = [sonifiable_of(checkpoint) for checkpoint in checkpoints]
    final = models[-1]
    reference = conv_widths(final)
    for index, model in enumerate(models):
        widths = conv_widths(model)
        if widths != reference:
            name = checkpoints[index] if isinstance(checkpoints[index], (str, os.PathLike)) else model.name
            where = next(((mine, theirs) for mine, theirs in zip(widths, reference) if mine != theirs), None)
            detail = (f"layer {where[0][0]!r} has {where[0][1]} maps, the final checkpoint's {where[1][0]!r} {where[1][1]}"
                      if where else f"{len(widths)} sonifiable layers, the final checkpoint {len(reference)}")
            raise ValueError(f"checkpoint {index} ({name}): {detail}; all checkpoints must come from one architecture "
                             "and width")
    if labels is None:
        labels = [Path(c).stem if isinstance(c, (str, os.PathLike)) else f"ckpt{i}" for i, c in enumerate(checkpoints)]
    if len(labels) != len(models):
        raise ValueError(f"got {len(labels)} labels for {len(models)} checkpoints")
    final_sonifier = Sonifier(final)
    for layer, feature in maps:
        count = final_sonifier.num_features(layer)  # ValueError naming a layer the model does not have
        if not 0 <= feature < count:
            what = f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"
            raise ValueError(f"map (layer {layer}, feature {feature}) does not exist; {what} has {count} maps")
    best = top_activating_inputs(final_sonifier, clips, list(dict.fromkeys(layer for layer, _ in maps)), k=1,
                                 batch_size=batch_size)
    clip_ids = [int(best.ids[layer][feature, 0]) for layer, feature in maps]
    inputs = [np.asarray(clips[i], np.float32) for i in clip_ids]
    sonifiers = [Sonifier(model) for model in models]
    sounds, activations = [], []
    for (layer, feature), waveform in zip(maps, inputs):
        sounds.append(np.stack([s.sonify(waveform, layer, feature=feature) for s in sonifiers]))
        activations.append(np.array([float(s.activations(waveform, layer)[:, feature].max()) for s in sonifiers], np.float32))
    return EvolutionResult(maps, clip_ids, inputs, sounds, activations, list(labels), final_sonifier.sample_rate)


def plot_evolution_strip(result: EvolutionResult, index: int, path: str | os.PathLike, sample_rate: int | None = None) -> str:
    """One PNG strip for map ``result.maps[index]``: the input's log spectrogram, then one per checkpoint
    (``sample_rate`` in Hz, default ``result.sample_rate``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfsonify.io.audio import atomic_path

    sample_rate = result.sample_rate if sample_rate is None else sample_rate
    layer, feature = result.maps[index]
    panels = [("input", result.inputs[index])] + list(zip(result.labels, result.sonifications[index]))
    figure, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.4), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    spectra = [log_spectrogram(signal, sample_rate) for _, signal in panels]
    top = max(db.max() for _, _, db in spectra)  # one colour scale: sonifications share the input's peak level
    for axis, (label, signal), (freqs, times, db) in zip(axes, panels, spectra):
        axis.pcolormesh(times, freqs / 1000.0, db, shading="auto", vmin=top - 80.0, vmax=top, cmap="magma")
        axis.set_title(label, fontsize=8)
        axis.set_xlabel("s", fontsize=7)
        if not np.any(signal):
            axis.text(0.5, 0.5, "silent\n(dead map)", color="white", ha="center", va="center", transform=axis.transAxes, fontsize=8)
    axes[0].set_ylabel("kHz")
    activations = ", ".join(f"{a:.3g}" for a in result.activations[index])
    figure.suptitle(f"{f'layer {layer}' if isinstance(layer, str) else f'block {layer}'}, map {feature}: clip {result.clip_ids[index]}; max activation per checkpoint {activations}", fontsize=9)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    plt.close(figure)
    return str(path)


def spectrogram_image(waveform: np.ndarray, sample_rate: int, dynamic_range_db: float = 80.0) -> np.ndarray:
    """A log spectrogram (``waveform`` float32 ``[time]`` at ``sample_rate`` Hz) as an RGB image ``[freq, frames, 3]`` uint8, low frequencies at the bottom (magma colours)."""
    from matplotlib import colormaps

    _, _, db = log_spectrogram(np.asarray(waveform, np.float32), sample_rate)
    top = db.max()
    scaled = np.clip((db - (top - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)[::-1]
    return (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)


def _tag(layer: int | str) -> str:
    """``L05`` for block 5, the name for a named layer (file and summary tags)."""
    return str(layer) if isinstance(layer, str) else f"L{int(layer):02d}"


class SonificationLogger(keras.callbacks.Callback):
    """Log sonifications of chosen maps (audio) and their spectrograms (images) to TensorBoard.

    Args:
        log_dir: TensorBoard folder (a ``sonifications`` run is written inside it).
        clips: ``name -> waveform`` (mono float32 ``[time]`` at the model's rate).
        maps: ``(layer, feature)`` pairs; ``feature=None`` sonifies the clip's most active map.
        every_n_epochs: log after every ``N``-th epoch (and never on the others).
        model: the model to sonify (default the model being trained; a contrastive model's
            ``encoder`` is used when it has one).

    Example:
    >>> logger = SonificationLogger("runs/exp1", {"speech": clip}, [(3, 0), (8, None)], every_n_epochs=5)
    >>> model.fit(data, epochs=50, callbacks=[logger])
    """

    def __init__(self, log_dir: str | os.PathLike, clips: dict[str, np.ndarray], maps: Iterable[tuple[int, int | None]],
                 every_n_epochs: int = 1, model: keras.Model | None = None, sample_rate: int | None = None):
        super().__init__()
        check_int("every_n_epochs", every_n_epochs, minimum=1)
        if not clips:
            raise ValueError("clips must name at least one waveform")
        self.clips = {str(name): np.asarray(wave, np.float32) for name, wave in clips.items()}
        self.maps = [(layer if isinstance(layer, str) else int(layer), None if feature is None else int(feature))
                     for layer, feature in maps]
        if not self.maps:
            raise ValueError("maps must list at least one (layer, feature) pair")
        self.every_n_epochs = every_n_epochs
        self.sample_rate = None if sample_rate is None else int(sample_rate)  # None: the model's own
        self.log_dir = Path(log_dir) / "sonifications"
        self._target = model
        self._writer = None

    def _sonifier(self):
        from tfsonify.engine.sonifier import Sonifier

        model = sonifiable_of(self._target if self._target is not None else self.model)
        return Sonifier(model, sample_rate=self.sample_rate or sample_rate_of(model))

    def log(self, step: int) -> None:
        """Write the sonifications for training step/epoch ``step`` now."""
        sonifier = self._sonifier()
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default(step=step):
            for name, waveform in self.clips.items():
                for layer, feature in self.maps:
                    if waveform.size < sonifier.min_length(layer):
                        continue
                    if feature is None:
                        chosen, _, sound = sonifier.sonify_top(waveform, layer, 1)
                        tag, sound = f"{name}/{_tag(layer)}_top", sound[0]
                    else:
                        sound = sonifier.sonify(waveform, layer, feature=feature)
                        tag = f"{name}/{_tag(layer)}_f{feature:04d}"
                    peak = max(float(np.max(np.abs(sound))), 1e-9)
                    tf.summary.audio(tag, (sound / peak)[None, :, None], sonifier.sample_rate, step=step)
                    tf.summary.image(tag + "_spectrogram", spectrogram_image(sound, sonifier.sample_rate)[None], step=step)
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self.log(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
