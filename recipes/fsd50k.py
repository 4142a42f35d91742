#!/usr/bin/env python3
"""FSD50K sound event recognition with CNN12 (paper Appendix A.3.2, Tables A.4-A.5).

Multi-label binary cross-entropy over the 200 classes of ``vocabulary.csv``; training on 2.5 s random
crops, per-replica batch 64; evaluation on whole clips (mAP, mAUC, d' per class). Reads
``FSD50K.ground_truth/{dev,eval}.csv`` and ``FSD50K.{dev,eval}_audio/``. Resumable; TensorBoard logs
in ``OUT/training/logs``.

    python recipes/fsd50k.py --data ~/FSD50K --out runs/fsd50k
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.train.experiment import Config, add_config_arguments, config_from_args, run_experiment

# === Config ===
CONFIG = Config(
    multi_label=True,
    width=1.0,
    per_replica_batch_size=64,  # "a per-tpu-core batch size of 64 worked best"
    epochs=100,
    warmup_epochs=10,
    base_learning_rate=1e-3,
    base_batch_size=64,
    crop_seconds=2.5,
    mixup_alpha=0.2,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FSD50K folder (with FSD50K.ground_truth/)")
    parser.add_argument("--out", default="runs/fsd50k")
    parser.add_argument("--cache", default=None, help="decoded-audio cache folder (default OUT/cache)")
    add_config_arguments(parser, CONFIG)
    args = parser.parse_args(argv)
    config = config_from_args(args, CONFIG)

    from tfsonify.data.pipeline import decode_clips
    from tfsonify.data.readers import read_fsd50k

    cache = Path(args.cache or Path(args.out) / "cache")
    splits = {split: decode_clips(read_fsd50k(args.data, split), cache_dir=cache)
              for split in ("train", "validation", "eval")}
    run_experiment("fsd50k", config, splits["train"], {"validation": splits["validation"], "eval": splits["eval"]},
                   args.out)
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "fsd50k.py")
