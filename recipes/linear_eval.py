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

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simclr_pretrain import decode, save_atomic, select_train_meta, split_holdout  # noqa: E402

# === Config (defaults; every entry is a command-line flag) ===
CONFIG = {
    "format": "folder",
    "mode": "fconly",  # fconly (linear evaluation) | full (fine-tuning)
    "batch_size": 32,
    "epochs": 30,  # training through the encoder (full, or fconly --augment)
    "warmup_epochs": 5,
    "learning_rate": 1e-3,  # at global batch 128, scaled linearly
    # fconly on cached embeddings: a linear probe on standardised features, trained to convergence
    # (tfsonify.train.linear_eval.PROBE; epochs are cheap there)
    "probe_epochs": 300,
    "probe_batch_size": 128,
    "probe_learning_rate": 1e-2,
    "weight_decay": 1e-3,
    "crop_seconds": None,  # random training crops (5 AudioSet, 2.5 FSD50K); None for <= 1 s clips
    "test_fraction": 0.2,  # stratified random test split when --holdout is not given
    "seed": 0,
}


def parse_args(argv=None, mode: str = CONFIG["mode"]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled dataset folder")
    parser.add_argument("--format", default=CONFIG["format"], choices=["folder", "demo", "speech_commands", "fsd50k", "esc50"])
    parser.add_argument("--checkpoint", help="contrastive or supervised .keras file (omit for a random encoder)")
    parser.add_argument("--width", type=float, default=0.25, help="width of the random encoder (no --checkpoint)")
    parser.add_argument("--baseline-random", action="store_true",
                        help="also evaluate a randomly initialised encoder of the same width, same settings")
    parser.add_argument("--mode", default=mode, choices=["fconly", "full"])
    parser.add_argument("--out", default=f"runs/{mode}")
    parser.add_argument("--batch-size", type=int, default=CONFIG["batch_size"], help="per replica")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--warmup-epochs", type=int, default=CONFIG["warmup_epochs"])
    parser.add_argument("--learning-rate", type=float, default=CONFIG["learning_rate"])
    parser.add_argument("--weight-decay", type=float, default=CONFIG["weight_decay"])
    parser.add_argument("--probe-epochs", type=int, default=CONFIG["probe_epochs"],
                        help="fconly on cached embeddings: epochs of the linear probe")
    parser.add_argument("--probe-batch-size", type=int, default=CONFIG["probe_batch_size"])
    parser.add_argument("--probe-learning-rate", type=float, default=CONFIG["probe_learning_rate"],
                        help="on standardised features; not scaled with the batch")
    parser.add_argument("--crop-seconds", type=float, default=CONFIG["crop_seconds"])
    parser.add_argument("--augment", action="store_true", help="fconly: train end to end on augmented crops")
    parser.add_argument("--holdout", metavar="REGEX", help="test set = clips whose path matches REGEX")
    parser.add_argument("--holdout-meta", metavar="COLUMN=V1,V2", help="test set = clips with these metadata values")
    parser.add_argument("--train-meta", metavar="COLUMN=V1,V2",
                        help="train only on clips with these metadata values (e.g. split=train for the demo data)")
    parser.add_argument("--test-fraction", type=float, default=CONFIG["test_fraction"])
    parser.add_argument("--strategy", default="auto", choices=["auto", "tpu", "mirrored", "default"])
    parser.add_argument("--seed", type=int, default=CONFIG["seed"])
    return parser.parse_args(argv)


def train_head_on_embeddings(model, train, args) -> float:
    """fconly without augmentation: embeddings of the frozen encoder once, then the head alone (standardised
    features, folded back into the classifier layer; see ``fit_probe``). Returns the final training loss."""
    from tfsonify.progress import progress
    from tfsonify.train.linear_eval import fit_probe

    with progress(f"linear probe on the frozen encoder's embeddings of {len(train)} training clips "
                  f"({args.probe_epochs} epochs)"):
        return fit_probe(model, "embedding", train, epochs=args.probe_epochs, batch_size=args.probe_batch_size,
                         learning_rate=args.probe_learning_rate, warmup_epochs=args.warmup_epochs,
                         weight_decay=args.weight_decay, seed=args.seed)


def evaluate_source(name: str, source, train, test, args, out: Path, chosen, learning_rate: float) -> dict:
    """Train a new head (fconly) or everything (full) on ``source``'s encoder; whole-clip test figures."""
    import keras

    from tfsonify.data.augment import Augmenter
    from tfsonify.data.pipeline import training_dataset
    from tfsonify.train.linear_eval import classifier_from_checkpoint
    from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    run_dir = out / name
    with chosen.scope():
        model = classifier_from_checkpoint(source, train.num_classes, args.mode, train.multi_label,
                                           width_multiplier=args.width)
    train_loss = None
    if args.mode == "fconly" and not args.augment:
        train_loss = train_head_on_embeddings(model, train, args)
    else:
        global_batch = args.batch_size * chosen.num_replicas_in_sync
        dataset = training_dataset(train, global_batch, crop_seconds=args.crop_seconds, augment=Augmenter(),
                                   seed=args.seed, one_hot=True)
        steps = max(1, len(train) // global_batch)
        with chosen.scope():
            compile_classifier(model, multi_label=train.multi_label, learning_rate=learning_rate, steps_per_epoch=steps,
                               epochs=args.epochs, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay)
        fit(model, dataset, epochs=args.epochs, out_dir=run_dir, verbose=2)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_atomic(model, run_dir / "final.keras")
    result = evaluate_clips(model, test.dataset(), multi_label=test.multi_label, class_names=test.class_names)
    result.pop("per_class_accuracy", None)
    if train_loss is not None:
        result["probe_train_loss"] = train_loss
    result.update(name=name, mode=args.mode, seconds=round(time.perf_counter() - started, 1),
                  source=str(source) if source is not None else f"random init, width {args.width}")
    return result


def main(argv=None, mode: str = CONFIG["mode"]) -> int:
    args = parse_args(argv, mode)
    import tfsonify.train as train_lib
    from tfsonify.render import check_writable_dir
    from tfsonify.checkpoint import cnn12_of

    out = check_writable_dir(args.out)
    decoded = decode(args.data, args.format, out)
    train, test = split_holdout(decoded, args.holdout, args.test_fraction, args.seed, args.holdout_meta)
    train = select_train_meta(train, args.train_meta)
    split = (f"clips with {args.holdout_meta}" if args.holdout_meta else f"clips matching {args.holdout!r}" if args.holdout
             else f"a stratified random {args.test_fraction:.0%}")
    print(f"{len(train)} training clips, {len(test)} test clips ({split}); {decoded.num_classes} classes")
    chosen = train_lib.strategy(args.strategy)
    learning_rate = train_lib.scale_learning_rate(args.learning_rate, args.batch_size * chosen.num_replicas_in_sync)

    sources = []
    if args.checkpoint:
        args.width = cnn12_of(args.checkpoint, what="checkpoint").width_multiplier  # the baseline matches the checkpoint's width
        sources.append(("pretrained", args.checkpoint))
    if not args.checkpoint or args.baseline_random:
        sources.append(("random_init", None))
    results = [evaluate_source(name, source, train, test, args, out, chosen, learning_rate) for name, source in sources]

    metric = "mAP" if decoded.multi_label else "accuracy"
    print(f"\n{args.mode} on {len(test)} held-out clips ({split}), CNN12 width {args.width}:")
    for result in results:
        value = result.get(metric, result.get("map"))
        loss = f"; probe training loss {result['probe_train_loss']:.3f}" if "probe_train_loss" in result else ""
        print(f"  {result['name']:<12} {metric} = {value:.4f}   ({result['source']}; {result['seconds']:.0f} s{loss})")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "linear_eval.py")
