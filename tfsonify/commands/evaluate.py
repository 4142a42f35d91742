"""``tfsonify evaluate MODEL CLIPS --methods ... --metrics ... --out DIR``: faithfulness of explanations.

Writes ``faithfulness.json``, ``faithfulness.md`` / ``.csv`` (mean ± 95 % CI per method and metric), plots
(``curves.png``, ``bars.png``, ``randomisation.png``) and ``examples/*.wav`` into ``--out``. TensorFlow is
imported inside :func:`run` only.
"""
from __future__ import annotations

import argparse

METHOD_NAMES = ("sonification", "deconvnet", "guided_backprop", "gradient", "gradient_x_input",
                "integrated_gradients", "smoothgrad", "occlusion", "occlusion_band", "nmf")
METRIC_NAMES = ("mixture", "deletion", "lmac", "randomisation", "cost")


def _names(text: str, valid: tuple, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(valid)
    from tfsonify.validation import check_names

    return check_names(what, names, valid, hint=" (or 'all')")


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="measure how faithful each explanation method is to the model (deletion/insertion, mixtures, sanity checks)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=".keras model the deconvnet walks")
    p.add_argument("clips", nargs="+", help="audio files or folders (the explained clips; the mixtures with --sources)")
    p.add_argument("--methods", default="all", help=f"comma list of {', '.join(METHOD_NAMES)} or 'all'")
    p.add_argument("--metrics", default="deletion,lmac,cost", help=f"comma list of {', '.join(METRIC_NAMES)} or 'all'")
    p.add_argument("--sources", nargs="*", default=None, help="the known source of each clip, in the same order (mixture metric)")
    p.add_argument("--backgrounds", nargs="*", default=None, help="the known background of each clip (mixture metric)")
    p.add_argument("--layer", default=None, help="explain a feature map of this layer (name or block) instead of a class")
    p.add_argument("--index", default="top", help="class / map index, or 'top' (the predicted class, the strongest map)")
    p.add_argument("--steps", type=int, default=20, help="deletion/insertion fractions")
    p.add_argument("--stages", type=int, default=None, help="layers randomised in the cascade (default all)")
    p.add_argument("--randomisation-clips", type=int, default=32, metavar="N",
                   help="clips (spread evenly) re-explained after each randomisation stage (default 32; 0: every clip)")
    p.add_argument("--seconds", type=float, default=1.0, help="clips are cut or zero-padded to this length")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    methods = _names(args.methods, METHOD_NAMES, "method")
    metrics = _names(args.metrics, METRIC_NAMES, "metric")
    if args.randomisation_clips < 0:
        raise ValueError(f"--randomisation-clips must be >= 0 (0: every clip); received {args.randomisation_clips}")
    import numpy as np

    from tfsonify.commands import load_model
    from tfsonify.commands.analyze import load_clips
    from tfsonify.explain.evaluate import evaluate, summary_table, write_outputs
    from tfsonify.explain.targets import Target, explained

    model = load_model(args.model, any_model=True)
    state = explained(model)
    rate = state.sample_rate
    length = int(round(args.seconds * rate))

    def fit(waves):
        return np.stack([np.pad(w[:length], (0, max(0, length - w.size))) for w in waves]).astype("float32")

    _, clips = load_clips(args.clips, rate)
    sources = backgrounds = None
    if "mixture" in metrics:
        if not args.sources or not args.backgrounds:
            raise ValueError("--metrics mixture needs --sources and --backgrounds (one file per clip, same order)")
        raw_s, raw_b = load_clips(args.sources, rate)[1], load_clips(args.backgrounds, rate)[1]
        for i, (c, s, b) in enumerate(zip(clips, raw_s, raw_b)):
            if not c.size == s.size == b.size:
                raise ValueError(f"mixture {i}: clip, source and background have {c.size}, {s.size}, {b.size} samples; they must match")
        sources, backgrounds = fit(raw_s), fit(raw_b)
    index = args.index if args.index == "top" else int(args.index)
    layer = None if args.layer is None else (int(args.layer) if args.layer.isdecimal() else args.layer)
    target = Target(layer, index)
    result, explanations = evaluate(state, fit(clips), methods, metrics, target, sources, backgrounds,
                                    steps=args.steps, stages=args.stages,
                                    randomisation_clips=args.randomisation_clips)
    files = write_outputs(result, explanations, args.out)
    print(summary_table(result))
    print(f"wrote {len(files)} files to {args.out}/")
    return 0
