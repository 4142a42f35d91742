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

from tfsonify.data.augment import Augmenter, as_seed, speed_perturb, split_seed
from tfsonify.data.demo import read_demo
from tfsonify.data.pipeline import decode_clips, training_dataset
from tfsonify.models.cnn12 import CNN12
from tfsonify.progress import progress
from tfsonify.train.demo_config import DEMO_CONFIG  # TensorFlow-free: `tfsonify demo --help` reads it
from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

__all__ = ["DEMO_CONFIG", "DemoAugment", "train_keywords", "evaluate"]

class DemoAugment:
    """Speed perturbation (0.85-1.15) then the paper's gain / Gaussian noise / time-mask chain, per batch."""

    def __init__(self):
        self.augmenter = Augmenter(gain_db=(-6, 6), noise_snr_db=(20, 40), mask_fraction=0.1)

    def __call__(self, waves, seed):
        seeds = split_seed(as_seed(seed), 2)
        return self.augmenter(speed_perturb(waves, seeds[0]), seeds[1])


def train_keywords(data_dir: Path, out_dir: Path, *, width: float, epochs: int, batch_size: int,
                   learning_rate: float, warmup_epochs: int, seed: int, dropout: float = 0.1,
                   mixup_alpha: float | None = None, verbose: int | str = "auto"):
    """Train CNN12(width) on the demo keyword task; return ``(model, decoded_splits, training_seconds)``.

    Training clips are the demo manifest's ``split == "train"`` keywords (espeak-ng voice variants other
    than m3/f4, flite kal/rms/slt); clips are 1 s at 8 kHz, so no cropping. Checkpoints, BackupAndRestore
    state and TensorBoard logs go to ``out_dir/training``.
    """
    with progress("decoding the keyword clips (cached after the first run)"):
        decoded = decode_clips(read_demo(data_dir, "keywords"), cache_dir=data_dir / ".cache", verbose=False)
    splits = {name: decoded.select("split", [name]) for name in ("train", "heldout_voice", "heldout_engine")}
    if len(splits["train"]) == 0:
        raise ValueError(f"the demo dataset in {data_dir} has no training keyword clips")
    train = splits["train"]
    steps_per_epoch = len(train) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(train)} training clips")
    dataset = training_dataset(train, batch_size, augment=DemoAugment(), mixup_alpha=mixup_alpha, seed=seed,
                               one_hot=True)
    keras.utils.set_random_seed(seed)
    model = CNN12(width_multiplier=width, num_classes=train.num_classes, dropout=dropout)
    compile_classifier(model, multi_label=False, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=epochs, warmup_epochs=warmup_epochs, jit_compile=False)
    print(f"training CNN12(width={width:g}, {model.count_params():,} parameters) on {len(train)} clips "
          f"({', '.join(train.class_names)}): {epochs} epochs x {steps_per_epoch} steps of {batch_size}", flush=True)
    started = time.perf_counter()
    fit(model, dataset, epochs=epochs, out_dir=out_dir / "training", verbose=verbose)
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
        if len(clips) == 0:
            continue
        result = evaluate_clips(model, clips.dataset(), multi_label=False, class_names=clips.class_names)
        result["voices"] = sorted({f"{e}:{v}" for e, v in zip(clips.metadata["engine"], clips.metadata["voice"])})
        engines = sorted(set(clips.metadata["engine"]))
        if len(engines) > 1:
            result["by_engine"] = {engine: evaluate_clips(model, clips.select("engine", [engine]).dataset(),
                                                          multi_label=False)["accuracy"] for engine in engines}
        results[name] = result
    return results
