#!/usr/bin/env python3
"""The demo keyword task as a recipe: CNN12 (width 0.25) on the real synthesised keyword dataset.

Builds the demo data if needed (``tfsonify build-demo-data``; espeak-ng, flite, SVOX Pico, ...), trains
on the ``train`` split and evaluates on whole clips of: voice variants never seen in training (espeak-ng
``+m3`` / ``+f4`` in every accent, flite ``awb``), one whole synthesis engine never seen (SVOX Pico), and
the speech-over-background mixtures. ``tfsonify demo`` runs the same task (plus speed perturbation,
which this generic runner does not have) and then sonifies.

    python recipes/demo.py --out runs/demo
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.train.demo import DEMO_CONFIG
from tfsonify.train.experiment import parse_config_args, run_experiment

# === Config === the demo's hyper-parameters, written once in tfsonify.train.demo (sized for 2 CPU cores)
CONFIG = DEMO_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="demo dataset folder (default OUT/data; built if missing)")
    parser.add_argument("--out", default="runs/demo")
    args, config = parse_config_args(parser, CONFIG, argv)

    from tfsonify.data.demo import ensure_demo_data, read_demo
    from tfsonify.data.pipeline import decode_clips

    data = ensure_demo_data(Path(args.data or Path(args.out) / "data"))
    keywords = decode_clips(read_demo(data, "keywords"), cache_dir=data / ".cache")
    evaluation = {name: keywords.select("split", [name]) for name in ("heldout_voice", "heldout_engine")}
    evaluation["mixtures"] = decode_clips(read_demo(data, "mixtures"))
    run_experiment("demo_keywords", config, keywords.select("split", ["train"]), evaluation, args.out)
    return 0


if __name__ == "__main__":
    from tfsonify.cli import run_script

    run_script(main, "demo.py")
