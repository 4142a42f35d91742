"""``tfsonify sonify INPUT --model MODEL.keras --layer L [--feature F ... | --top K] --out DIR``.

Write one WAV per sonified map, the input at the model's rate, a spectrogram PNG per input/sonification pair and
manifest.json into --out. Files of any length: the input is read in blocks (soxr streaming resampling), run as exact
overlapping windows (or in one pass, for a model whose padding windows cannot reproduce) and the WAVs are written
incrementally.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.commands import load_model

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "sonify",
                         "sonify feature maps of a raw-waveform Keras CNN (CNN12, CREPE, your own) for one audio file", __doc__)
    parser.add_argument("input", help="audio file (WAV, FLAC, OGG, MP3); downmixed and resampled to the model's rate")
    parser.add_argument("--model", required=True,
                        help="a .keras file: a tfsonify CNN12 (with or without head), a ContrastiveModel (its encoder is "
                             "sonified) or any Keras model the deconvnet supports (README: bring your own model)")
    parser.add_argument("--layer", type=_layer, required=True, action="append",
                        help="a layer name (e.g. conv4) or a block index (CNN12: 1..11); repeat for several layers")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--feature", type=int, action="append", help="map index (0-based); repeat for several")
    choice.add_argument("--top", type=int, default=None, help="sonify the K most active maps (default 1)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--no-plots", action="store_true", help="skip the spectrogram PNGs")
    parser.add_argument("--window-seconds", type=_window_seconds, default="auto", metavar="SECONDS|auto|0",
                        help="auto (default): the engine picks: one pass for clips up to 30 s, exact 5 s windows "
                             "beyond (memory bounded by one window), the model's own frames for a fixed-frame model "
                             "(CREPE), one pass for a model with a custom input scaling; SECONDS: exact windows of "
                             "that length; 0: the whole clip in one pass (memory grows with the clip)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(func=run)


def _layer(text: str) -> int | str:
    """``--layer`` value: a block index when it is all digits, else a layer name."""
    stripped = text.strip()
    return int(stripped) if stripped.isdecimal() else text


def _window_seconds(text: str) -> float | str | None:
    """``--window-seconds`` value: ``auto``, ``0`` (one pass: None) or a positive number of seconds."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 (one pass) or auto; received {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0 (0: one pass) or auto; received {text!r}")
    return None if value == 0 else value


def run(args: argparse.Namespace) -> int:
    from tfsonify.engine.long_files import sonify_file
    from tfsonify.io.render import check_output_dir
    from tfsonify.engine.sonifier import Sonifier

    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be >= 1 (the number of most active maps to sonify); received {args.top}")
    check_output_dir(args.out)  # nothing is created before the whole request is checked
    model = load_model(args.model, any_model=True)  # a contrastive checkpoint: its CNN12 encoder
    sonifier = Sonifier(model)
    manifest = sonify_file(sonifier, args.input, args.out, args.layer, features=args.feature, top=args.top,
                           window_seconds=args.window_seconds, plots=not args.no_plots, progress=not args.no_progress,
                           extra={"model": str(args.model)})
    print(f"wrote {len(manifest['sonifications'])} sonification(s) to {Path(args.out)}/ (manifest.json)")
    return 0
