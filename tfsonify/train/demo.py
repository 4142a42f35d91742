"""The demo keyword task (``tfsonify demo``, ``recipes/demo.py``): its configuration, augmentation, training and
whole-clip evaluation, written once.

CNN12 at width 0.25 on the 10 spoken keywords of the demo dataset (:mod:`tfsonify.data.demo`), trained with the
paper's recipe scaled down to a few minutes on 2 CPU cores (AdamW, weight decay 1e-3 not on biases, warm-up then
cosine decay, gain / noise / time-mask augmentation plus speed perturbation), evaluated on whole 1 s clips of voice
variants and a synthesis engine never trained on.
"""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from tfsonify.data.augment import Augmenter
from tfsonify.data.microphone import MicrophoneAugmenter
from tfsonify.data.demo import SAMPLE_RATE, keyword_split, read_demo
from tfsonify.data.pipeline import decode_clips, is_cached, training_dataset
from tfsonify.models.cnn12 import CNN12
from tfsonify.progress import progress
from tfsonify.train.demo_config import DEMO_CONFIG  # TensorFlow-free: `tfsonify demo --help` reads it
from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

__all__ = ["DEMO_CONFIG", "DemoAugment", "KeepBestAndLast", "build_demo_model", "keyword_splits", "load_backgrounds", "train_keywords", "evaluate"]

#: Backgrounds mixed into training clips: chance per clip and SNR range (dB). The pool is the demo data's
#: ``augment_backgrounds`` (sonic-pi one-shots and textures: drums, bass, guitar, ambience, vinyl noise), its
#: ``instruments`` (fluidsynth notes) and ``drums`` (hydrogen one-shots) — never the loops the mixtures are made of.
BACKGROUND_PROBABILITY = 0.5
BACKGROUND_SNR_DB = (-5.0, 20.0)
BACKGROUND_TASKS = ("augment_backgrounds", "instruments", "drums")


class DemoAugment:
    """The demo's augmentation: :class:`~tfsonify.data.microphone.MicrophoneAugmenter` with its default ranges.

    ``foreground`` (before background mixing): speed 0.85-1.15 (tempo and pitch), pitch shift ±3 semitones (half
    the clips), a synthetic room with RT60 0.2-1.0 s and direct-to-reverberant ratio -3..12 dB (half the clips).
    ``__call__`` (after it): a random microphone / channel EQ (80 % of clips: flat, telephone 300-3400 Hz, laptop
    mic, random 3-band ±8 dB with a -6..+3 dB/octave tilt, muffled 0.7-2 kHz low-pass, one band cut 15-30 dB),
    coloured noise β 0-2 at 10-40 dB SNR (half the clips), gain ±6 dB, DC offset ±0.01, one time mask up to 10 % of
    the clip. ``ranges`` override any :class:`MicrophoneAugmenter` argument.
    """

    def __init__(self, **ranges):
        self.microphone = MicrophoneAugmenter(**ranges)

    def foreground(self, waves, seed):
        return self.microphone.foreground(waves, seed)

    def __call__(self, waves, seed):
        return self.microphone(waves, seed)


class KeepBestAndLast(keras.callbacks.Callback):
    """Delete every ``epoch-NNN.keras`` checkpoint in ``folder`` but the last and the best (lowest ``monitor``)."""

    def __init__(self, folder: Path, monitor: str = "loss"):
        super().__init__()
        self.folder, self.monitor = Path(folder), monitor
        self.best_epoch, self.best = None, float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch + 1
        keep = {f"epoch-{epoch + 1:03d}.keras"} | ({f"epoch-{self.best_epoch:03d}.keras"} if self.best_epoch else set())
        for path in self.folder.glob("epoch-*.keras"):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def load_backgrounds(data_dir: Path, tasks=BACKGROUND_TASKS) -> list:
    """The training background pool of a demo dataset (float32 ``[T]`` at 8 kHz each); empty when none is built."""
    from tfsonify.io.audio import load_audio

    pool = []
    for task in tasks:
        try:
            clips = read_demo(data_dir, task)
        except ValueError:  # not built (small build or a missing package)
            continue
        pool += [load_audio(path, SAMPLE_RATE) for path in clips.paths]
    return [wave for wave in pool if wave.size and abs(wave).max() > 0]


def keyword_splits(decoded, held_out_engine: str | None = "auto") -> tuple[dict, str | None]:
    """``({"train", "heldout_voice", "heldout_engine": clips}, engine)`` with ``held_out_engine`` never trained on.

    ``"auto"`` keeps the split the dataset was built with. Raises ``ValueError`` for an engine the dataset does not
    have (listing the ones it has) or one that leaves no training clip.
    """
    engines = sorted(set(decoded.metadata["engine"]))
    if held_out_engine == "auto":
        held = sorted({e for e, s in zip(decoded.metadata["engine"], decoded.metadata["split"]) if s == "heldout_engine"})
        held_out_engine = held[0] if held else None
    elif held_out_engine is not None and held_out_engine not in engines:
        raise ValueError(f"held-out engine {held_out_engine!r} is not in the demo dataset; its engines: {', '.join(engines)}")
    split = np.asarray([keyword_split(e, v, voice, held_out_engine) for e, v, voice in
                        zip(decoded.metadata["engine"], decoded.metadata["variant"], decoded.metadata["voice"])])
    splits = {name: decoded.subset(split == name) for name in ("train", "heldout_voice", "heldout_engine")}
    if len(splits["train"]) == 0:
        raise ValueError(f"holding out {held_out_engine!r} leaves no training clips (engines in the data: {', '.join(engines)})")
    return splits, held_out_engine


def build_demo_model(width: float, num_classes: int, dropout: float, seed: int):
    """The demo's CNN12(width) with a softmax head, its conv kernels He-uniform, reproducible from ``seed``.

    CNN12 has 11 conv-ReLU blocks and no normalisation layer. With Keras' default Glorot-uniform kernels each
    ReLU block about halves the activation variance: at init conv11 carries 1-3 % of conv1's RMS and the softmax
    is flat to ~1e-4 across clips, and training often never leaves chance (loss ln 10, conv10/conv11 ReLUs ~1 %
    active; every run on the 4-engine demo data did). He-uniform (variance 2 / fan-in, the ReLU-preserving scale)
    keeps the RMS roughly constant through the blocks. Only the initial values change, not the architecture, so
    saved models load as before.
    """
    keras.utils.set_random_seed(seed)
    model = CNN12(width_multiplier=width, num_classes=num_classes, dropout=dropout)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv1D):  # ReLU layers; the linear embedding and the head keep Glorot
            layer.kernel.assign(keras.initializers.HeUniform()(layer.kernel.shape))  # global seed: reproducible
    return model


def train_keywords(data_dir: Path, out_dir: Path, *, width: float, epochs: int, batch_size: int,
                   learning_rate: float, warmup_epochs: int, seed: int, dropout: float = 0.1,
                   mixup_alpha: float | None = None, verbose: int | str = "auto", held_out_engine: str | None = "auto",
                   augment: bool = True, jit_compile: bool = True):
    """Train CNN12(width) on the demo keyword task; return ``(model, decoded_splits, training_seconds)``.

    Training clips are the keywords of every engine but ``held_out_engine`` (``"auto"``: the one the dataset was
    built with, SVOX Pico by default), less the held-out espeak-ng variants (m3, f4); clips are 1 s at 8 kHz, so no
    cropping. :class:`DemoAugment` and background mixing (:data:`BACKGROUND_PROBABILITY`,
    :data:`BACKGROUND_SNR_DB`) run on the fly (``augment=False``: gain / noise / time mask only, the old chain).
    Checkpoints (the best and the last epoch only), BackupAndRestore state and TensorBoard logs go to
    ``out_dir/training``. ``decoded_splits`` also has ``"held_out_engine"``: the engine's name. ``jit_compile``: an
    XLA-compiled train step (about 1.9x faster on 2 CPU cores; ~10 s to compile once).
    """
    keywords, cache = read_demo(data_dir, "keywords"), data_dir / ".cache"
    with progress(f"reading the {len(keywords)} decoded keyword clips from {cache}"
                  if is_cached(keywords, SAMPLE_RATE, cache)
                  else f"decoding the {len(keywords)} keyword clips (kept in {cache} for the next runs)"):
        decoded = decode_clips(keywords, SAMPLE_RATE, cache_dir=cache, verbose=False)
    splits, held_out_engine = keyword_splits(decoded, held_out_engine)
    train = splits["train"]
    steps_per_epoch = len(train) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(train)} training clips")
    if augment:
        chain = DemoAugment()
        backgrounds = load_backgrounds(data_dir)
        dataset = training_dataset(train, batch_size, augment=chain, foreground_augment=chain.foreground,
                                   backgrounds=backgrounds or None, background_probability=BACKGROUND_PROBABILITY,
                                   background_snr_db=BACKGROUND_SNR_DB, mixup_alpha=mixup_alpha, seed=seed, one_hot=True)
    else:
        backgrounds = []
        dataset = training_dataset(train, batch_size, augment=Augmenter(gain_db=(-6, 6), noise_snr_db=(20, 40), mask_fraction=0.1),
                                   mixup_alpha=mixup_alpha, seed=seed, one_hot=True)
    model = build_demo_model(width, train.num_classes, dropout, seed)
    compile_classifier(model, multi_label=False, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=epochs, warmup_epochs=warmup_epochs, jit_compile=jit_compile)
    engines = sorted(set(train.metadata["engine"]))
    print(f"training CNN12(width={width:g}, {model.count_params():,} parameters) on {len(train)} clips of "
          f"{', '.join(engines)} (held out: {held_out_engine or 'no engine'}; {len(backgrounds)} background clips): "
          f"{epochs} epochs x {steps_per_epoch} steps of {batch_size}", flush=True)
    started = time.perf_counter()
    folder = out_dir / "training"
    fit(model, dataset, epochs=epochs, out_dir=folder, verbose=verbose,
        callbacks=[KeepBestAndLast(folder / "checkpoints")])
    splits["held_out_engine"] = held_out_engine
    return model, splits, time.perf_counter() - started


def _describe_split(clips) -> str:
    voices = sorted({f"{engine}:{voice}" for engine, voice in zip(clips.metadata["engine"], clips.metadata["voice"])})
    return f"{len(clips)} clips, voices {', '.join(voices[:6])}{' ...' if len(voices) > 6 else ''}"


def evaluate(model, splits: dict, data_dir: Path) -> dict:
    """Whole-clip accuracy on every held-out split (and the mixtures); prints one line each."""
    results = {}
    try:
        splits = {**splits, "mixtures": decode_clips(read_demo(data_dir, "mixtures"), verbose=False)}
    except ValueError:
        pass
    for name, clips in splits.items():
        if isinstance(clips, str) or clips is None or len(clips) == 0:
            continue
        result = evaluate_clips(model, clips.dataset(), multi_label=False, class_names=clips.class_names)
        result["voices"] = sorted({f"{e}:{v}" for e, v in zip(clips.metadata["engine"], clips.metadata["voice"])})
        engines = sorted(set(clips.metadata["engine"]))
        if len(engines) > 1:
            result["by_engine"] = {engine: evaluate_clips(model, clips.select("engine", [engine]).dataset(),
                                                          multi_label=False)["accuracy"] for engine in engines}
        if "snr_db" in clips.metadata:
            snrs = np.asarray(clips.metadata["snr_db"], np.float64)
            result["by_snr"] = {f"{snr:g}": evaluate_clips(model, clips.subset(snrs == snr).dataset(), multi_label=False)["accuracy"]
                                for snr in sorted(set(snrs.tolist()))}
        results[name] = result
    return results
