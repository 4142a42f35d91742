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

from tfsonify.data.readers import DATASET_FORMATS

# === Config (defaults of the command-line flags) ===
CONFIG = {
    "format": "folder",  # folder | demo (tfsonify build-demo-data keywords) | speech_commands | fsd50k | esc50
    "width": 0.25,  # CNN12 width multiplier (1.0 = the paper's CNN12)
    "batch_size": 64,  # per replica; global = batch_size x replicas (the paper: 2048 on a TPUv3-8)
    "epochs": 30,
    "warmup_epochs": 3,  # the paper: 10 (of many more epochs)
    "learning_rate": 1e-3,  # Adam's default at global batch 128, scaled linearly with the global batch
    "weight_decay": 1e-3,
    "temperature": 0.1,
    "patch_seconds": 2.5,
    "short_clips": "skip",  # skip | pad: clips shorter than two patches
    "gain_db": (-6.0, 6.0),
    "noise_snr_db": (20.0, 40.0),
    "mask_fraction": 0.1,
    "mix_back_snr_db": (5.0, 20.0),
    "strategy": "auto",
    "max_minutes": None,  # stop after this wall-clock budget (the model so far is saved)
    "seed": 0,
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset folder (any supported layout; labels are ignored)")
    parser.add_argument("--format", default=CONFIG["format"], choices=DATASET_FORMATS)
    parser.add_argument("--out", default="runs/simclr", help="output folder (rerun the same command to resume)")
    parser.add_argument("--width", type=float, default=CONFIG["width"])
    parser.add_argument("--batch-size", type=int, default=CONFIG["batch_size"], help="per replica")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--warmup-epochs", type=int, default=CONFIG["warmup_epochs"])
    parser.add_argument("--learning-rate", type=float, default=CONFIG["learning_rate"], help="at global batch 128")
    parser.add_argument("--weight-decay", type=float, default=CONFIG["weight_decay"])
    parser.add_argument("--temperature", type=float, default=CONFIG["temperature"])
    parser.add_argument("--patch-seconds", type=float, default=CONFIG["patch_seconds"])
    parser.add_argument("--short-clips", default=CONFIG["short_clips"], choices=["skip", "pad"])
    parser.add_argument("--trim-silence-db", type=float, default=None,
                        help="cut clips to their span within this many dB of the peak before patching (keyword clips)")
    parser.add_argument("--speed-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="resample each view at its own random speed factor in [LOW, HIGH] (e.g. 0.8 1.25 for speech)")
    parser.add_argument("--dropout", type=float, default=0.4, help="encoder dropout during pretraining")
    parser.add_argument("--no-mix-back", action="store_true", help="disable mix-back")
    parser.add_argument("--strategy", default=CONFIG["strategy"], choices=["auto", "tpu", "mirrored", "default"])
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    parser.add_argument("--max-minutes", type=float, default=CONFIG["max_minutes"])
    parser.add_argument("--seed", type=int, default=CONFIG["seed"])
    parser.add_argument("--holdout", metavar="REGEX",
                        help="leave clips whose path matches REGEX out of pretraining (keep evaluation clips unseen)")
    parser.add_argument("--holdout-meta", metavar="COLUMN=V1,V2",
                        help="leave clips with these metadata values out of pretraining, e.g. split=heldout_voice,heldout_engine")
    parser.add_argument("--build-espeak-keywords", metavar="DIR",
                        help="only write a small espeak-ng keyword set (folder-per-class) to DIR and exit")
    args = parser.parse_args(argv)
    if not args.build_espeak_keywords and not args.data:
        parser.error("--data is required (or use --build-espeak-keywords DIR)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.build_espeak_keywords:
        from tfsonify.data.demo import build_espeak_keywords

        build_espeak_keywords(args.build_espeak_keywords, seed=args.seed)
        return 0

    import keras

    import tfsonify.train as train
    from tfsonify.progress import progress
    from tfsonify.data.augment import Augmenter
    from tfsonify.checkpoint import save_model
    from tfsonify.data.readers import decode_dataset
    from tfsonify.data.splits import split_holdout
    from tfsonify.models.contrastive import ContrastiveModel, check_temperature
    from tfsonify.render import check_writable_dir
    from tfsonify.train.callbacks import TimeLimit
    from tfsonify.train.patches import contrastive_dataset
    from tfsonify.train.supervised import fit

    check_temperature(args.temperature)
    out = check_writable_dir(args.out)
    keras.utils.set_random_seed(args.seed)
    chosen = train.strategy(args.strategy)
    global_batch = train.global_batch_size(args.batch_size, chosen)
    learning_rate = train.scale_learning_rate(args.learning_rate, global_batch)
    print(f"strategy: {train.describe(chosen)}; global batch {global_batch}; peak learning rate {learning_rate:.2e}")

    decoded = decode_dataset(args.data, args.format, out / "cache")
    if args.holdout or args.holdout_meta:
        decoded, held_out = split_holdout(decoded, args.holdout, 0.0, args.seed, args.holdout_meta)
        print(f"{len(held_out)} clips ({args.holdout_meta or args.holdout}) left out of pretraining")
    augment = Augmenter(gain_db=CONFIG["gain_db"], noise_snr_db=CONFIG["noise_snr_db"], mask_fraction=CONFIG["mask_fraction"])
    dataset, num_short = contrastive_dataset(
        decoded, global_batch, patch_seconds=args.patch_seconds, augment=augment,
        mix_back_snr_db=None if args.no_mix_back else CONFIG["mix_back_snr_db"], short_clips=args.short_clips,
        seed=args.seed, trim_silence_db=args.trim_silence_db, speed_range=args.speed_range)
    usable = len(decoded) - (num_short if args.short_clips == "skip" else 0)
    steps_per_epoch = usable // global_batch
    print(f"{usable} clips usable ({num_short} shorter than two {args.patch_seconds} s patches, {args.short_clips}); "
          f"{steps_per_epoch} steps per epoch")
    config = {**vars(args), "global_batch": global_batch, "peak_learning_rate": learning_rate,
              "clips": len(decoded), "short_clips_count": num_short, "strategy_used": train.describe(chosen)}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))

    with chosen.scope():
        model = ContrastiveModel(width_multiplier=args.width, temperature=args.temperature, dropout=args.dropout)
        schedule = train.warmup_cosine(learning_rate, steps_per_epoch, args.epochs, args.warmup_epochs)
        model.compile(optimizer=train.adamw(schedule, args.weight_decay), jit_compile=bool(args.jit))
    callbacks = [TimeLimit(args.max_minutes)] if args.max_minutes else []
    started = time.perf_counter()
    history = fit(model, dataset, epochs=args.epochs, out_dir=out, callbacks=callbacks, verbose=2)
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
