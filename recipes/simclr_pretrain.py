#!/usr/bin/env python3
"""SimCLR contrastive pretraining of CNN12 on unlabelled audio (paper §3.1, Appendix A.2).

Two non-overlapping random patches per clip (2.5 s by default), each independently augmented (random
gain, Gaussian noise, time mask, mix-back with other clips of the batch at a random SNR), CNN12 encoder +
projection MLP (512 hidden, 512 out), NT-Xent with τ = 0.1 and negatives gathered from all replicas,
AdamW (weight decay 1e-3, not on biases) with linear warm-up then cosine decay. Labels are ignored: any
reader's clips are a source (folder-per-class incl. the demo data, Speech Commands v2, FSD50K, ESC-50).

Outputs in ``--out``: ``contrastive.keras`` (final model; feed it to ``linear_eval.py`` / ``finetune.py``),
``checkpoints/epoch-NNN.keras``, ``backup/`` (rerun the same command to resume after a crash or
preemption), ``logs/`` (TensorBoard: ``tensorboard --logdir OUT/logs``), ``history.csv``, ``config.json``.

Examples::

    python recipes/simclr_pretrain.py --data demo_data/keywords --out runs/simclr --patch-seconds 0.35
    python recipes/simclr_pretrain.py --data /data/fsd50k --format fsd50k --out runs/simclr_fsd --width 1.0
    python recipes/simclr_pretrain.py --build-espeak-keywords /tmp/keywords   # a small real keyword set
"""
from __future__ import annotations

import argparse
import json
import time

from dataclasses import dataclass, field

from tfsonify.train.config import parse_config_args
from tfsonify.data.readers import DATASET_FORMATS


@dataclass
class PretrainConfig:
    """Hyper-parameters of SimCLR pretraining; every field is a flag (``--batch-size``, ``--no-mix-back``, ...)."""

    width: float = field(default=0.25, metadata={"help": "CNN12 width multiplier (1.0 = the paper's CNN12)"})
    batch_size: int = field(default=64, metadata={"help": "per replica; global = batch size x replicas (the paper: "
                                                           "2048 on a TPUv3-8)"})
    epochs: int = 30
    warmup_epochs: int = field(default=3, metadata={"help": "linear warm-up epochs (the paper: 10 of many more)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "at global batch 128, scaled linearly"})
    weight_decay: float = 1e-3
    temperature: float = field(default=0.1, metadata={"help": "NT-Xent temperature"})
    dropout: float = field(default=0.4, metadata={"help": "encoder dropout during pretraining"})
    patch_seconds: float = field(default=2.5, metadata={"help": "length of each of the two patches per clip"})
    short_clips: str = field(default="skip", metadata={"choices": ("skip", "pad"),
                                                       "help": "clips shorter than two patches"})
    trim_silence_db: float | None = field(default=None, metadata={
        "help": "cut clips to their span within this many dB of the peak before patching (keyword clips)"})
    speed_range: tuple[float, float] | None = field(default=None, metadata={
        "help": "resample each view at its own random speed factor in [LOW, HIGH] (e.g. 0.8 1.25 for speech)"})
    gain_db: tuple[float, float] | None = field(default=(-6.0, 6.0), metadata={"help": "random gain range"})
    noise_snr_db: tuple[float, float] | None = field(default=(20.0, 40.0), metadata={"help": "Gaussian noise SNR range"})
    mask_fraction: float | None = field(default=0.1, metadata={"help": "longest time mask, as a fraction of the patch"})
    mix_back: bool = field(default=True, metadata={"help": "mix-back with other clips of the batch"})
    mix_back_snr_db: tuple[float, float] = field(default=(5.0, 20.0), metadata={"help": "mix-back SNR range"})
    strategy: str = field(default="auto", metadata={"choices": ("auto", "tpu", "mirrored", "default")})
    jit: bool = field(default=False, metadata={"help": "compile the train step with XLA"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop after this wall-clock budget (the model so far is saved)"})
    seed: int = 0


# === Config === (the defaults of every flag)
CONFIG = PretrainConfig()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset folder (any supported layout; labels are ignored)")
    parser.add_argument("--format", default="folder", choices=DATASET_FORMATS,
                        help="folder | demo (tfsonify build-demo-data keywords) | speech_commands | fsd50k | esc50")
    parser.add_argument("--out", default="runs/simclr", help="output folder (rerun the same command to resume)")
    parser.add_argument("--holdout", metavar="REGEX",
                        help="leave clips whose path matches REGEX out of pretraining (keep evaluation clips unseen)")
    parser.add_argument("--holdout-meta", metavar="COLUMN=V1,V2",
                        help="leave clips with these metadata values out of pretraining, e.g. split=heldout_voice,heldout_engine")
    parser.add_argument("--build-espeak-keywords", metavar="DIR",
                        help="only write a small espeak-ng keyword set (folder-per-class) to DIR and exit")
    args, args.config = parse_config_args(parser, CONFIG, argv,
                                          check=lambda args: "--data is required (or use --build-espeak-keywords DIR)" if not args.build_espeak_keywords and not args.data else None)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    config = args.config
    if args.build_espeak_keywords:
        from tfsonify.data.demo import build_espeak_keywords

        build_espeak_keywords(args.build_espeak_keywords, seed=config.seed)
        return 0

    import keras

    import tfsonify.train as train
    from tfsonify.progress import progress
    from tfsonify.data.augment import Augmenter
    from tfsonify.models.checkpoint import save_model
    from tfsonify.data.readers import decode_dataset
    from tfsonify.data.splits import split_holdout
    from tfsonify.models.contrastive import ContrastiveModel, check_temperature
    from tfsonify.io.render import check_writable_dir
    from tfsonify.train.callbacks import TimeLimit
    from tfsonify.train.patches import contrastive_dataset
    from tfsonify.train.supervised import fit

    check_temperature(config.temperature)
    out = check_writable_dir(args.out)
    keras.utils.set_random_seed(config.seed)
    chosen = train.strategy(config.strategy)
    global_batch = train.global_batch_size(config.batch_size, chosen)
    learning_rate = train.scale_learning_rate(config.learning_rate, global_batch)
    print(f"strategy: {train.describe(chosen)}; global batch {global_batch}; peak learning rate {learning_rate:.2e}")

    decoded = decode_dataset(args.data, args.format, out / "cache")
    if args.holdout or args.holdout_meta:
        decoded, held_out = split_holdout(decoded, args.holdout, 0.0, config.seed, args.holdout_meta)
        print(f"{len(held_out)} clips ({args.holdout_meta or args.holdout}) left out of pretraining")
    augment = Augmenter(gain_db=config.gain_db, noise_snr_db=config.noise_snr_db, mask_fraction=config.mask_fraction)
    dataset, num_short = contrastive_dataset(
        decoded, global_batch, patch_seconds=config.patch_seconds, augment=augment,
        mix_back_snr_db=config.mix_back_snr_db if config.mix_back else None, short_clips=config.short_clips,
        seed=config.seed, trim_silence_db=config.trim_silence_db, speed_range=config.speed_range)
    usable = len(decoded) - (num_short if config.short_clips == "skip" else 0)
    steps_per_epoch = usable // global_batch
    print(f"{usable} clips usable ({num_short} shorter than two {config.patch_seconds} s patches, {config.short_clips}); "
          f"{steps_per_epoch} steps per epoch")
    run_config = {**{k: v for k, v in vars(args).items() if k != "config"}, "config": vars(config), "global_batch": global_batch, "peak_learning_rate": learning_rate,
              "clips": len(decoded), "short_clips_count": num_short, "strategy_used": train.describe(chosen)}
    (out / "config.json").write_text(json.dumps(run_config, indent=2, default=str))

    with chosen.scope():
        model = ContrastiveModel(width_multiplier=config.width, temperature=config.temperature, dropout=config.dropout)
        schedule = train.warmup_cosine(learning_rate, steps_per_epoch, config.epochs, config.warmup_epochs)
        model.compile(optimizer=train.adamw(schedule, config.weight_decay), jit_compile=config.jit)
    callbacks = [TimeLimit(config.max_minutes)] if config.max_minutes else []
    started = time.perf_counter()
    history = fit(model, dataset, epochs=config.epochs, out_dir=out, callbacks=callbacks, verbose=2)
    elapsed = time.perf_counter() - started
    with progress(f"saving {out / 'contrastive.keras'}"):
        save_model(model, out / "contrastive.keras")
    losses = history.history.get("loss", [])
    accuracy = history.history.get("contrastive_accuracy", [])
    if losses:
        print(f"pretraining: {len(losses)} epochs this run in {elapsed:.0f} s; NT-Xent {losses[0]:.3f} -> {losses[-1]:.3f}; "
              f"contrastive accuracy {accuracy[0]:.3f} -> {accuracy[-1]:.3f} (chance {1 / (2 * global_batch - 1):.3f})")
    print(f"encoder checkpoint: {out / 'contrastive.keras'} (use with recipes/linear_eval.py --checkpoint)")
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "simclr_pretrain.py")
