"""``tfsonify sonify INPUT --model MODEL.keras --layer L [--feature F ... | --top K] --out DIR``."""
from __future__ import annotations

import argparse

from tfsonify.commands import load_model, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sonify",
        help="sonify feature maps of a raw-waveform Keras CNN (CNN12, CREPE, your own) for one audio file",
        description="Write one WAV per sonified map, the input at the model's rate, a spectrogram PNG per "
        "input/sonification pair and manifest.json into --out. Files of any length: the input is read in blocks "
        "(soxr streaming resampling), run as exact overlapping windows and the WAVs are written incrementally.",
    )
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
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="exact window length in seconds (default 5; memory is bounded by one window)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(func=run)


def _layer(text: str) -> int | str:
    """``--layer`` value: a block index when it is all digits, else a layer name."""
    return int(text) if text.strip().isdigit() else text


def run(args: argparse.Namespace) -> int:
    from tfsonify.engine.long_clips import DEFAULT_WINDOW_SECONDS
    from tfsonify.engine.long_files import sonify_file
    from tfsonify.io.render import check_writable_dir
    from tfsonify.engine.sonifier import Sonifier

    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be >= 1 (the number of most active maps to sonify); received {args.top}")
    out_dir = check_writable_dir(args.out)
    model = load_model(args.model, any_model=True)  # a contrastive checkpoint: its CNN12 encoder
    sonifier = Sonifier(model)
    window = DEFAULT_WINDOW_SECONDS if args.window_seconds is None else args.window_seconds
    manifest = sonify_file(sonifier, args.input, out_dir, args.layer, features=args.feature, top=args.top,
                           window_seconds=window, plots=not args.no_plots, progress=not args.no_progress,
                           extra={"model": str(args.model)})
    print(f"wrote {len(manifest['sonifications'])} sonification(s) to {out_dir}/ (manifest.json)")
    return 0
