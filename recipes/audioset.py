#!/usr/bin/env python3
"""AudioSet sound event recognition with CNN12 (paper Appendix A.3.1, Tables A.2-A.3).

Multi-label binary cross-entropy over the 527 classes; training on 5 s random crops, per-replica batch
128; evaluation on whole 10 s clips with mAP, mAUC and d'. AudioSet is distributed as YouTube IDs, so
this recipe reads the official CSVs plus audio you have fetched yourself:

    DATA/class_labels_indices.csv                 index,mid,display_name
    DATA/balanced_train_segments.csv              # comments, then YTID, start_seconds, end_seconds, "labels"
    DATA/unbalanced_train_segments.csv            (optional, --train unbalanced)
    DATA/eval_segments.csv
    DATA/audio/<anything>/<YTID>[...].{wav,flac}  file stem = YTID, Y<YTID> or <YTID>_<start>...

Segments whose audio is missing are counted and reported, not silently dropped. The paper holds out a
random 10 % of the training set for tuning (``--holdout 0.1``). Resumable; TensorBoard logs in
``OUT/training/logs``.

    python recipes/audioset.py --data ~/audioset --out runs/audioset_balanced
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from tfsonify.io.audio import AUDIO_EXTENSIONS

from tfsonify.train.experiment import Config, parse_config_args, run_experiment

# === Config ===
# the rest is the paper's schedule (Appendix A.3), Config's defaults: CNN12 at width 1.0, 100 epochs with 10 of
# warm-up, peak learning rate 1e-3 per 128 examples of global batch, mixup 0.2
CONFIG = Config(
    multi_label=True,
    per_replica_batch_size=128,  # x 8 TPU cores = 1024 in the paper
    crop_seconds=5.0,
)


def _audio_index(audio_dir: Path) -> dict[str, Path]:
    index = {}
    for path in sorted(audio_dir.rglob("*")):
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            stem = path.stem[1:] if path.stem.startswith("Y") and len(path.stem) >= 12 else path.stem
            index.setdefault(stem[:11], path)  # YouTube IDs are 11 characters
    return index


def read_audioset(root: str | Path, csv_name: str):
    """AudioSet segments of ``csv_name`` that have audio: a multi-label ``ClipList`` over the 527 classes."""
    from tfsonify.data.pipeline import ClipList, warn

    root = Path(root)
    labels_csv, segments_csv = root / "class_labels_indices.csv", root / csv_name
    for path in (labels_csv, segments_csv):
        if not path.is_file():
            raise ValueError(f"AudioSet: {str(path)!r} is missing (expected the official CSV files in {str(root)!r})")
    with open(labels_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    mids = {row["mid"]: int(row["index"]) for row in rows}
    class_names = [row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"]))]
    audio = _audio_index(root / "audio") if (root / "audio").is_dir() else {}
    paths, targets, missing, unknown = [], [], [], set()
    with open(segments_csv, newline="") as handle:
        for row in csv.reader(handle, skipinitialspace=True):
            if not row or row[0].startswith("#"):
                continue
            ytid, labels = row[0], row[3].split(",")
            if ytid not in audio:
                missing.append(ytid)
                continue
            target = np.zeros(len(class_names), np.float32)
            for mid in labels:
                if mid in mids:
                    target[mids[mid]] = 1.0
                else:
                    unknown.add(mid)
            paths.append(audio[ytid])
            targets.append(target)
    if missing:
        warn(f"AudioSet {csv_name}: {len(missing)} segments have no audio under {str(root / 'audio')!r} and are "
             f"skipped (first: {', '.join(missing[:5])})")
    if unknown:
        warn(f"AudioSet {csv_name}: labels not in class_labels_indices.csv ignored: {sorted(unknown)[:5]}")
    if not paths:
        raise ValueError(f"AudioSet {csv_name}: no segment has audio under {str(root / 'audio')!r}")
    return ClipList(paths=paths, labels=np.stack(targets), class_names=class_names, multi_label=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with the AudioSet CSVs and audio/")
    parser.add_argument("--out", default="runs/audioset")
    parser.add_argument("--train", choices=["balanced", "unbalanced"], default="balanced")
    parser.add_argument("--holdout", type=float, default=0.0, help="fraction of training clips held out for tuning")
    parser.add_argument("--cache", default=None, help="decoded-audio cache folder (default OUT/cache)")
    args, config = parse_config_args(parser, CONFIG, argv)
    if not 0.0 <= args.holdout < 1.0:
        raise ValueError(f"--holdout must be in [0, 1); received {args.holdout}")

    from tfsonify.data.pipeline import decode_clips

    cache = Path(args.cache or Path(args.out) / "cache")
    train = decode_clips(read_audioset(args.data, f"{args.train}_train_segments.csv"), cache_dir=cache)
    evaluation = {"eval": decode_clips(read_audioset(args.data, "eval_segments.csv"), cache_dir=cache)}
    if args.holdout:
        order = np.random.default_rng(config.seed).permutation(len(train))
        cut = int(round(args.holdout * len(train)))
        evaluation["holdout"] = train.subset(np.sort(order[:cut]))
        train = train.subset(np.sort(order[cut:]))
    run_experiment(f"audioset_{args.train}", config, train, evaluation, args.out)
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "audioset.py")
