#!/usr/bin/env python3
"""Linear evaluation ("fconly") of a pretrained CNN12 encoder on a labelled task (paper App. A.2, A.3).

The encoder loads from a contrastive (``simclr_pretrain.py``'s ``contrastive.keras``) or a supervised
(``CNN12`` with a head, any ``.keras`` checkpoint) file without hand-editing; a new classifier head is
trained on top, the encoder frozen (bit-identical afterwards). ``--baseline-random`` also trains the same
head on a randomly initialised encoder of the same width with identical settings and prints both figures.
Evaluation is on whole clips: accuracy (multi-class) or mAP / mAUC / d' (multi-label).

fconly training, by default, computes the frozen encoder's 512-d embeddings of the whole training clips
once and trains the head on them, standardised (exactly the fconly model without augmentation or dropout,
much faster on a CPU; the standardisation is folded into the head's weights); ``--augment`` instead trains the frozen model end to end on augmented crops every epoch.
``finetune.py`` is the same recipe with ``--mode full`` (everything trains, with augmentation).

Outputs in ``--out``: ``<name>/final.keras`` (the classifier), ``<name>/`` checkpoints, TensorBoard logs,
``history.csv`` (resumable: rerun the same command), and ``results.json`` with every figure printed.

Examples::

    python recipes/linear_eval.py --data /tmp/keywords --checkpoint runs/simclr/contrastive.keras \\
        --holdout 'en-029|gbcwmd' --baseline-random
    python recipes/linear_eval.py --data /data/fsd50k --format fsd50k --checkpoint runs/supervised/final.keras
"""
from __future__ import annotations

from tfsonify.train.linear_eval import parse_linear_eval_args, run_linear_eval


def main(argv=None, mode: str = "fconly") -> int:
    return run_linear_eval(parse_linear_eval_args(argv, mode, description=__doc__))


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "linear_eval.py")
