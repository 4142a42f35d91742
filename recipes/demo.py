#!/usr/bin/env python3
"""The demo keyword task as a recipe: CNN12 (width 0.25) on the real synthesised keyword dataset.

Builds the demo data if needed (``tfsonify build-demo-data``; espeak-ng, flite, Festival, SVOX Pico, and MBROLA /
RHVoice when installed), trains on every engine but ``--held-out-engine`` (default: the one the data was built with,
SVOX Pico) with the demo's augmentation (:class:`tfsonify.train.demo.DemoAugment` plus background mixing), and
evaluates on whole clips of: held-out voice variants (espeak-ng ``+m3`` / ``+f4`` in every accent), the held-out
engine, and the speech-over-background mixtures (by SNR). The same code as ``tfsonify demo``, without sonification.

    python recipes/demo.py --out runs/demo --held-out-engine festival
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tfsonify.train.demo import DEMO_CONFIG
from tfsonify.train.experiment import parse_config_args

# === Config === the demo's hyper-parameters, written once in tfsonify.train.demo (sized for 2 CPU cores)
CONFIG = DEMO_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="demo dataset folder (default OUT/data; built if missing)")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--held-out-engine", default="auto", help="engine never trained on ('none' for none)")
    args, config = parse_config_args(parser, CONFIG, argv)
    held = None if args.held_out_engine.lower() == "none" else args.held_out_engine

    from tfsonify.models.checkpoint import save_model
    from tfsonify.commands.demo import check_held_out_engine, summary_lines
    from tfsonify.data.demo import ensure_demo_data
    from tfsonify.train.demo import evaluate, train_keywords

    out = Path(args.out)
    data = Path(args.data or out / "data")
    check_held_out_engine(data, None, held)
    ensure_demo_data(data, held_out_engine=held)
    model, splits, seconds = train_keywords(
        data, out, width=config.width, epochs=config.epochs, batch_size=config.per_replica_batch_size,
        learning_rate=config.base_learning_rate, warmup_epochs=config.warmup_epochs, seed=config.seed,
        dropout=config.dropout, mixup_alpha=config.mixup_alpha, held_out_engine=held,
        jit_compile=config.jit_compile != "false")
    held = splits.pop("held_out_engine")
    save_model(model, out / "model.keras", class_names=list(splits["train"].class_names))
    results = evaluate(model, splits, data)
    print(f"\ndemo_keywords (held-out engine {held}): whole-clip evaluation after {seconds / 60:.1f} min of training")
    for line in summary_lines(results, held):
        print("  " + line)
    (out / "results.json").write_text(json.dumps({"held_out_engine": held, "training_seconds": seconds, "results": {
        k: {key: v[key] for key in ("accuracy", "clips", "by_engine", "by_snr") if key in v} for k, v in results.items()}},
        indent=2))
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "demo.py")
