"""``tfsonify build-demo-data --out DIR [--small]``: build the real keyword demo dataset.

Spoken keywords (yes no up down left right on off stop go) from espeak-ng (accents x voice variants),
flite (kal, awb, rms, slt) and SVOX Pico (py-nanotts), instrument clips (fluidsynth + fluid-soundfont-gm),
drum one-shots (hydrogen-drumkits), background loops (sonic-pi-samples) and speech-over-background
mixtures at known SNRs, in a folder-per-class layout with DIR/manifest.json. Nothing is installed:
missing Debian packages are named with the exact apt-get line.
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("build-demo-data", help="build the keyword demo dataset from Debian audio packages",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--small", action="store_true", help="small subset for tests (3 words, espeak-ng + drums only)")
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter, levels, offsets and SNRs (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="synthesis threads (default: CPU count)")
    parser.add_argument("--takes", type=int, default=2,
                        help="jittered takes per espeak-ng voice and word (flite 3x, Pico 6x as many; default 2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.data.demo import build_demo_data

    print(f"building the {'small ' if args.small else ''}demo dataset in {args.out}", file=sys.stderr, flush=True)
    try:
        manifest = build_demo_data(args.out, small=args.small, seed=args.seed, workers=args.workers, takes=args.takes,
                                   progress=True)
    except RuntimeError as error:  # a required Debian package is missing
        print(f"tfsonify build-demo-data: error: {error}", file=sys.stderr)
        return 1
    for task, splits in manifest["counts"].items():
        print(f"{task:12s} " + ", ".join(f"{split}: {count}" for split, count in sorted(splits.items())))
    held = manifest["held_out"]
    flite = f", flite {held['flite_voice']}" if held["flite_voice"] else ""
    print(f"held-out voice variants: espeak-ng {' and '.join('+' + v for v in held['voice_variants'])} (all accents){flite}; "
          f"held-out engine: {held['engine']}")
    for component, reason in manifest["skipped"].items():
        print(f"skipped {component}: {reason}")
    print(f"built in {manifest['build_seconds']} s; manifest: {args.out}/manifest.json")
    return 0
