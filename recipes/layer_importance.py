#!/usr/bin/env python3
"""Layer importance (paper Appendix B, Figure 4): keep the first L blocks, average over time, classify.

For every pretraining type (``--checkpoint contrastive=runs/simclr/contrastive.keras --checkpoint
supervised=runs/sc/final.keras``, plus ``--random`` for a randomly initialised encoder), every mode
(``fconly``: only the new head trains; ``full``: the retained blocks are fine-tuned too) and every
``L`` in ``--blocks`` (default 1-11), a classifier is trained and evaluated on whole held-out clips.

fconly trains the head on the cached time-averaged block-L features of the whole training clips (exact
for a frozen encoder without augmentation, and fast); full trains end to end on augmented clips with
the paper's schedule (checkpoints + ``BackupAndRestore`` per run: rerun the same command to resume).

Outputs in ``--out``: ``layer_importance.csv`` (pretraining, mode, blocks, metric, seconds),
``layer_importance.png`` (metric vs. L, one line per pretraining type, one panel per mode) and
``results.json``; the table is printed at the end.

Example::

    python recipes/layer_importance.py --data /tmp/keywords --holdout 'en-029|gbcwmd' \\
        --checkpoint contrastive=runs/simclr/contrastive.keras --random --modes fconly
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfsonify.train.config import parse_config_args
from tfsonify.data.readers import DATASET_FORMATS, decode_dataset
from tfsonify.data.splits import select_train_meta, split_holdout
from tfsonify.train.layer_importance import parse_blocks

@dataclass
class LayerImportanceConfig:
    """Hyper-parameters of the layer-importance sweep; every field is a flag."""

    modes: str = field(default="fconly,full", metadata={"help": "comma-separated: fconly (probe) and/or full"})
    blocks: str = field(default="1-11", metadata={"help": "blocks L to sweep, e.g. 1-11 or 1,3,5"})
    width: float = field(default=0.25, metadata={"help": "width of the random encoder without checkpoints"})
    fconly_epochs: int = field(default=300, metadata={
        "help": "linear probe on cached, standardised features (tfsonify.train.linear_eval.PROBE)"})
    probe_batch_size: int = 128
    probe_learning_rate: float = field(default=1e-2, metadata={
        "help": "fconly probe on standardised features; not scaled with the batch"})
    full_epochs: int = 10
    warmup_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    test_fraction: float = 0.2
    seed: int = 0


# === Config === (the defaults of every flag)
CONFIG = LayerImportanceConfig()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", default="folder", choices=DATASET_FORMATS)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="a pretraining type and its .keras checkpoint (contrastive or supervised); repeatable")
    parser.add_argument("--random", action="store_true", help="also sweep a randomly initialised encoder")
    parser.add_argument("--holdout", metavar="REGEX", help="test set = clips whose path matches REGEX")
    parser.add_argument("--holdout-meta", metavar="COLUMN=V1,V2", help="test set = clips with these metadata values")
    parser.add_argument("--train-meta", metavar="COLUMN=V1,V2",
                        help="train only on clips with these metadata values (e.g. split=train for the demo data)")
    parser.add_argument("--out", default="runs/layer_importance")
    args, args.config = parse_config_args(parser, CONFIG, argv,
                                          check=lambda args: "give at least one --checkpoint NAME=PATH or --random" if not args.checkpoint and not args.random else None)
    return args


def run_one(encoder, blocks: int, mode: str, train, test, args, out_dir: Path) -> float:
    """Train the truncated classifier; return the whole-clip test metric (accuracy or mAP)."""
    import keras

    from tfsonify.data.augment import Augmenter
    from tfsonify.data.pipeline import training_dataset
    from tfsonify.models.heads import truncated_classifier
    from tfsonify.train.linear_eval import fit_probe
    from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

    keras.utils.set_random_seed(args.seed)
    model = truncated_classifier(encoder, blocks, train.num_classes, mode, train.multi_label)
    learning_rate = args.learning_rate * args.batch_size / 128
    if mode == "fconly":
        fit_probe(model, "temporal_pool", train, epochs=args.fconly_epochs, batch_size=args.probe_batch_size,
                  learning_rate=args.probe_learning_rate, warmup_epochs=args.warmup_epochs,
                  weight_decay=args.weight_decay, seed=args.seed)
    else:
        dataset = training_dataset(train, args.batch_size, augment=Augmenter(), seed=args.seed, one_hot=True)
        steps = max(1, len(train) // args.batch_size)
        compile_classifier(model, multi_label=train.multi_label, learning_rate=learning_rate, steps_per_epoch=steps,
                           epochs=args.full_epochs, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay)
        fit(model, dataset, epochs=args.full_epochs, out_dir=out_dir, verbose=0)
    result = evaluate_clips(model, test.dataset(), multi_label=test.multi_label)
    return float(result["mAP"] if test.multi_label else result["accuracy"])


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfsonify.models.cnn12 import CNN12
    from tfsonify.io.render import check_writable_dir
    from tfsonify.train.layer_importance import plot_sweep, write_table
    from tfsonify.models.checkpoint import cnn12_of
    from tfsonify.models.heads import check_mode, encoder_copy

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        check_mode(mode)
    blocks = parse_blocks(args.blocks)
    out = check_writable_dir(args.out)
    sources = []
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint must be NAME=PATH (e.g. contrastive=runs/simclr/contrastive.keras); received {item!r}")
        sources.append((name, encoder_copy(cnn12_of(path, what="checkpoint"))))
    if args.random:
        width = sources[0][1].width_multiplier if sources else args.width
        sources.append(("random_init", CNN12(width_multiplier=width, name="encoder")))

    decoded = decode_dataset(args.data, args.format, out / "cache")
    train, test = split_holdout(decoded, args.holdout, args.test_fraction, args.seed, args.holdout_meta)
    train = select_train_meta(train, args.train_meta)
    metric = "mAP" if decoded.multi_label else "accuracy"
    print(f"{len(train)} training clips, {len(test)} test clips; {len(sources)} encoder(s) x {modes} x L = {blocks}")
    rows = []
    for name, encoder in sources:
        for mode in modes:
            for count in blocks:
                started = time.perf_counter()
                value = run_one(encoder, count, mode, train, test, args, out / "runs" / f"{name}_{mode}_L{count:02d}")
                rows.append({"pretraining": name, "mode": mode, "blocks": count, metric: round(value, 4),
                             "seconds": round(time.perf_counter() - started, 1)})
                print(f"  {name:<12} {mode:<6} L={count:<2d} {metric} = {value:.4f}", flush=True)
    table = write_table(rows, out / "layer_importance.csv")
    figure = plot_sweep(rows, metric, out / "layer_importance.png")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{'pretraining':<12} {'mode':<6} " + " ".join(f"L={b:<5d}" for b in blocks))
    for name, _ in sources:
        for mode in modes:
            values = {r["blocks"]: r[metric] for r in rows if r["pretraining"] == name and r["mode"] == mode}
            print(f"{name:<12} {mode:<6} " + " ".join(f"{values[b]:<7.3f}" for b in blocks))
    print(f"table: {table}\nplot: {figure}")
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "layer_importance.py")
