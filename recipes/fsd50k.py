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

from tfsonify.train.experiment import Config, parse_config_args, run_experiment

# === Config ===
# the rest is the paper's schedule (Appendix A.3), Config's defaults: CNN12 at width 1.0, 100 epochs with 10 of
# warm-up, peak learning rate 1e-3 per 128 examples of global batch, mixup 0.2
CONFIG = Config(
    multi_label=True,
    per_replica_batch_size=64,  # "a per-tpu-core batch size of 64 worked best"
    base_batch_size=64,
    crop_seconds=2.5,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FSD50K folder (with FSD50K.ground_truth/)")
    parser.add_argument("--out", default="runs/fsd50k")
    parser.add_argument("--cache", default=None, help="decoded-audio cache folder (default OUT/cache)")
    args, config = parse_config_args(parser, CONFIG, argv)

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
