"""``tfsonify sonify INPUT --model MODEL.keras --layer L [--feature F ... | --top K] --out DIR``."""
from __future__ import annotations

import argparse

from tfsonify.commands import load_model, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sonify",
        help="sonify feature maps of a raw-waveform Keras CNN (CNN12, CREPE, your own) for one audio file",
        description="Write one WAV per sonified map, the input at the model's rate, a spectrogram PNG per "
        "input/sonification pair and manifest.json into --out.",
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
    parser.set_defaults(func=run)


def _layer(text: str) -> int | str:
    """``--layer`` value: a block index when it is all digits, else a layer name."""
    return int(text) if text.strip().isdigit() else text


def run(args: argparse.Namespace) -> int:
    from tfsonify.audio import load_audio
    from tfsonify.render import check_writable_dir, write_sonifications
    from tfsonify.sonifier import Sonifier

    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be >= 1 (the number of most active maps to sonify); received {args.top}")
    out_dir = check_writable_dir(args.out)
    model = load_model(args.model, any_model=True)  # a contrastive checkpoint: its CNN12 encoder
    sonifier = Sonifier(model)
    waveform = load_audio(args.input, sonifier.sample_rate)
    for layer in args.layer:
        sonifier.validate(waveform, layer)
        where = f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"
        if args.feature:
            features = list(args.feature)
            for feature in features:
                if not 0 <= feature < sonifier.num_features(layer):
                    raise ValueError(f"--feature {feature} is outside {where}'s {sonifier.num_features(layer)} maps")
            with progress(f"{where}: sonifying {len(features)} map(s)"):
                sounds = sonifier.sonify(waveform, layer, features=features)
                peaks = sonifier.activations(waveform, layer).max(axis=0)[features]
        else:
            with progress(f"{where}: sonifying the top {args.top or 1} map(s)"):
                features, peaks, sounds = sonifier.sonify_top(waveform, layer, args.top or 1)
        with progress(f"{where}: writing {len(features)} WAV(s){'' if args.no_plots else ' and spectrograms'}"):
            manifest = write_sonifications(out_dir, waveform, sounds, layer, list(features), list(peaks), sonifier.sample_rate,
                                           source=str(args.input), extra={"model": str(args.model)}, plots=not args.no_plots)
    print(f"wrote {len(manifest['sonifications'])} sonification(s) to {out_dir}/ (manifest.json)")
    return 0
