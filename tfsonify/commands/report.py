"""``tfsonify report MODEL.keras CLIPS... --out DIR``: one offline HTML page with sonifications, coherence and residuals.

Per block, the most active maps of each clip with audio players for input and sonification, their log-spectrogram
pair, activation and coherence; the coherence-per-layer plot; the residual table. Open DIR/index.html (works
offline; media in DIR/media).

``--faithfulness [METHODS]`` adds a section comparing explanation methods on the clips (tfsonify.explain.evaluate:
deletion/insertion, cost and, for a model with a head, the L-MAC protocol), with one listening example per method.
Without a list it runs the cheap set sonification, guided_backprop, gradient, integrated_gradients, occlusion.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "report",
                         "write a self-contained HTML report (audio players, spectrograms, coherence, residual table)", __doc__)
    parser.add_argument("model", help="a .keras file: a tfsonify CNN12, CREPE or your own Keras CNN")
    parser.add_argument("clips", nargs="+", help="audio files or folders (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--layers", default=None, help="blocks or layer names, e.g. 1,4,8-11 or conv4_pool (default all blocks)")
    parser.add_argument("--top", type=int, default=3, help="most active maps per clip and block (default 3)")
    parser.add_argument("--title", default="")
    parser.add_argument("--no-residual", action="store_true", help="skip the residual experiment")
    parser.add_argument("--faithfulness", nargs="?", const="default", default=None, metavar="METHODS",
                        help="add a faithfulness section: comma list of explanation methods or 'all' (without a list: "
                             "sonification, guided_backprop, gradient, integrated_gradients, occlusion)")
    parser.add_argument("--faithfulness-seconds", type=float, default=1.0,
                        help="clips are cut or zero-padded to this length for the faithfulness section (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.commands import load_model
    from tfsonify.commands.analyze import load_clips, parse_layers
    from tfsonify.report import build_report

    if args.top < 1:
        raise ValueError(f"--top must be at least 1; received {args.top}")
    faithfulness = None
    if args.faithfulness is not None:  # names checked before the model loads
        from tfsonify.commands.evaluate import METHOD_NAMES, _names

        faithfulness = True if args.faithfulness == "default" else _names(args.faithfulness, METHOD_NAMES, "method")
    from tfsonify.models.metadata import sample_rate_of

    model = load_model(args.model, any_model=True)
    names, clips = load_clips(args.clips, sample_rate_of(model))
    labels = {}
    for name in names:  # unique, readable names
        stem = Path(name).stem
        labels[stem if stem not in labels else name] = None
    clip_map = dict(zip(labels, clips))
    title = args.title or f"tfsonify report: {Path(args.model).name}"
    index = build_report(model, clip_map, args.out, parse_layers(args.layers), top=args.top, title=title,
                         residual=not args.no_residual, faithfulness=faithfulness,
                         faithfulness_seconds=args.faithfulness_seconds, progress=True)  # a line per step
    print(f"wrote {index}")
    return 0
