#!/usr/bin/env python3
"""Speech Commands v2 keyword spotting with CNN12 (paper Appendix A.3.3, Table A.6).

Multi-class categorical cross-entropy, whole 1 s clips (no cropping), batch 128, AdamW (weight decay 1e-3,
not on biases), 10 warm-up epochs then cosine decay; random gain, Gaussian noise, time masking, mixup.
Reads the dataset's own layout (``validation_list.txt``, ``testing_list.txt``, ``_background_noise_``);
``--variant 12`` gives the 10 words + ``_unknown_`` + ``_silence_`` task. Resumable: rerun the same
command after an interruption. TensorBoard: ``tensorboard --logdir OUT/training/logs``.

    python recipes/speech_commands.py --data ~/speech_commands_v0.02 --out runs/speech_commands
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.train.experiment import Config, parse_config_args, run_experiment

# === Config === (every field is also a command-line flag)
# the rest is the paper's schedule (Appendix A.3), Config's defaults: CNN12 at width 1.0, 100 epochs with 10 of
# warm-up, peak learning rate 1e-3 per 128 examples of global batch, mixup 0.2
CONFIG = Config(
    multi_label=False,
    per_replica_batch_size=128,
    crop_seconds=None,  # all clips are <= 1 s: no cropping
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="extracted Speech Commands v2 folder")
    parser.add_argument("--out", default="runs/speech_commands", help="output folder (default runs/speech_commands)")
    parser.add_argument("--variant", choices=["35", "12"], default="35", help="35 words or the 12-class task")
    parser.add_argument("--cache", default=None, help="decoded-audio cache folder (default OUT/cache)")
    args, config = parse_config_args(parser, CONFIG, argv)

    from tfsonify.data.pipeline import decode_clips
    from tfsonify.data.readers import read_speech_commands

    cache = Path(args.cache or Path(args.out) / "cache")
    splits = {split: decode_clips(read_speech_commands(args.data, split, variant=args.variant), cache_dir=cache)
              for split in ("train", "validation", "test")}
    run_experiment(f"speech_commands_v2_{args.variant}", config, splits["train"],
                   {"validation": splits["validation"], "test": splits["test"]}, args.out)
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "speech_commands.py")
