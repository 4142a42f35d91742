#!/usr/bin/env python3
"""Leave-one-engine-out benchmark of the demo keyword model: one CNN12 (width 0.25) per held-out speech engine.

For every engine in the demo dataset (or ``--engines``), trains on all the others with the demo's schedule and
augmentation (``recipes/demo.py`` with ``--held-out-engine``) and prints one row per held-out engine: accuracy on that
engine, on the held-out espeak-ng voice variants, on the mixtures and on the mixtures at 0 dB SNR. Targets (issue 25):
held-out engine >= 85 %, held-out voices >= 95 %, mixtures at 0 dB >= 80 %.

    nice -n 10 python benchmarks/demo_generalisation_bench.py --data demo_output/data --out runs/loeo [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {"heldout_engine": 0.85, "heldout_voice": 0.95, "mixtures_0db": 0.80}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a built demo dataset (tfsonify build-demo-data)")
    parser.add_argument("--out", default="runs/loeo")
    parser.add_argument("--engines", default=None, help="comma-separated engines to hold out in turn (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's)")
    args = parser.parse_args(argv)
    manifest = json.loads((Path(args.data) / "manifest.json").read_text())
    built = sorted({c["engine"] for c in manifest["clips"] if c["task"] == "keywords"})
    engines = args.engines.split(",") if args.engines else built
    unknown = [e for e in engines if e not in built]
    if unknown:
        parser.error(f"engines {unknown} are not in {args.data}; its engines: {', '.join(built)}")
    rows = []
    for engine in engines:
        out = Path(args.out) / engine
        command = [sys.executable, str(Path(__file__).resolve().parents[1] / "recipes" / "demo.py"), "--data", args.data,
                   "--out", str(out), "--held-out-engine", engine] + (["--epochs", str(args.epochs)] if args.epochs else [])
        started = time.perf_counter()
        subprocess.run(command, check=True)
        results = json.loads((out / "results.json").read_text())["results"]
        rows.append((engine, results, time.perf_counter() - started))

    def cell(results, key):
        if key == "mixtures_0db":
            value = results.get("mixtures", {}).get("by_snr", {}).get("0")
        else:
            value = results.get(key, {}).get("accuracy")
        if value is None:
            return "   n/a"
        return f"{100 * value:5.1f}{'' if value >= TARGETS.get(key, 0) else '*'}"

    print("\nleave-one-engine-out (CNN12 x0.25; * = below the issue-25 target)")
    print(f"{'held-out engine':16s} {'engine':>7s} {'voices':>7s} {'mixtures':>8s} {'mix 0dB':>7s} {'minutes':>7s}")
    for engine, results, seconds in rows:
        print(f"{engine:16s} {cell(results, 'heldout_engine'):>7s} {cell(results, 'heldout_voice'):>7s} "
              f"{cell(results, 'mixtures'):>8s} {cell(results, 'mixtures_0db'):>7s} {seconds / 60:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
