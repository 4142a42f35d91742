#!/usr/bin/env python3
"""Fine-tuning ("full") of a pretrained CNN12 encoder on a labelled task (paper App. A.2/A.3, Tables A.2-A.6).

The same recipe as ``linear_eval.py`` with ``--mode full``: the encoder loads from a contrastive or a
supervised ``.keras`` checkpoint without hand-editing, a new classifier head goes on top and *every* layer
trains, on augmented (random gain, Gaussian noise, time mask) crops, with the paper's AdamW + warm-up +
cosine schedule, checkpoints every epoch and ``BackupAndRestore`` (rerun the same command to resume).
``--baseline-random`` also trains the same model from a random initialisation (the "Pretraining: None" row).

Example::

    python recipes/finetune.py --data /tmp/keywords --checkpoint runs/simclr/contrastive.keras \\
        --holdout 'en-029|gbcwmd' --epochs 20 --baseline-random
"""
from __future__ import annotations

from tfsonify.train.linear_eval import parse_linear_eval_args, run_linear_eval


def main(argv=None) -> int:
    return run_linear_eval(parse_linear_eval_args(argv, "full", description=__doc__))


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "finetune.py")
