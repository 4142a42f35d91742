#!/usr/bin/env python3
"""ESC-50 environmental sound classification with CNN12: 5-fold cross-validation.

For each test fold 1-5, trains on the other four folds (categorical cross-entropy, whole 5 s clips)
and reports accuracy on the held-out fold, then the mean and standard deviation over folds (the
ESC-50 protocol). ``--esc10`` runs the 10-class subset. Each fold writes ``OUT/fold-K/`` (model,
resumable training state, TensorBoard logs, results.json).

    python recipes/esc50.py --data ~/ESC-50-master --out runs/esc50
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tfsonify.train.experiment import Config, parse_config_args, run_experiment

# === Config ===
# the rest is the paper's schedule (Appendix A.3), Config's defaults: CNN12 at width 1.0, 100 epochs with 10 of
# warm-up, peak learning rate 1e-3 per 128 examples of global batch, mixup 0.2
CONFIG = Config(
    multi_label=False,
    per_replica_batch_size=64,
    crop_seconds=None,  # every ESC-50 clip is 5 s: train and evaluate on the whole clip
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="ESC-50 folder (meta/esc50.csv, audio/)")
    parser.add_argument("--out", default="runs/esc50")
    parser.add_argument("--folds", default="1,2,3,4,5", help="test folds to run (default all five)")
    parser.add_argument("--esc10", action="store_true", help="the ESC-10 subset")
    parser.add_argument("--cache", default=None, help="decoded-audio cache folder (default OUT/cache)")
    args, config = parse_config_args(parser, CONFIG, argv)
    folds = [int(f) for f in args.folds.split(",")]

    from tfsonify.data.pipeline import decode_clips
    from tfsonify.data.readers import esc50_folds, read_esc50

    everything = decode_clips(read_esc50(args.data, esc10=args.esc10), cache_dir=Path(args.cache or Path(args.out) / "cache"))
    accuracies = {}
    for fold in folds:
        esc50_folds(args.data, fold, esc10=args.esc10)  # validates the fold number
        train, test = everything.exclude("fold", fold), everything.select("fold", fold)
        summary = run_experiment(f"esc50_fold{fold}", config, train, {f"fold{fold}": test}, Path(args.out) / f"fold-{fold}")
        accuracies[fold] = summary["results"][f"fold{fold}"]["accuracy"]
    values = np.array(list(accuracies.values()))
    print(f"\nESC-{'10' if args.esc10 else '50'} cross-validation over folds {folds}: accuracy "
          f"{100 * values.mean():.2f} % +- {100 * values.std():.2f} (per fold: "
          + ", ".join(f"{k}: {100 * v:.1f} %" for k, v in accuracies.items()) + ")")
    (Path(args.out) / "cross_validation.json").write_text(json.dumps({"folds": accuracies, "mean": values.mean(),
                                                                      "std": values.std()}, indent=2))
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "esc50.py")
