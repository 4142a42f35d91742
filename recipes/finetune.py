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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linear_eval import main  # noqa: E402

if __name__ == "__main__":
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(__doc__)
    from tfsonify.cli import run_script

    run_script(lambda: main(mode="full"), "finetune.py")
