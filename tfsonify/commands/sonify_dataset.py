"""``tfsonify sonify-dataset CLIPS... --model M.keras --layers 5,11 [--top K] --out DIR [--runner R]``.

For every clip and block, the --top most active maps are sonified and written as
OUT/wav/<clip>-<hash>/L05_r0_f0012.wav, listed in OUT/manifest-00000-of-00001.jsonl; clips that cannot be used are
listed with their reason in OUT/dead_letter-00000-of-00001.jsonl. A rerun (without --runner) skips clips whose
complete outputs an earlier, possibly interrupted, run with the same model, --layers and --top left
(OUT/wav/<clip>-<hash>/clip.json); --no-resume recomputes every clip. Other files are replaced.
"""
from __future__ import annotations

import argparse

from tfsonify.commands import beam_options, progress

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "sonify-dataset",
                         "sonify the most active map(s) of every clip of a dataset (WAVs + manifest)", __doc__)
    parser.add_argument("clips", nargs="+", help="audio files, folders (recursive) or, with --runner, file patterns/URLs")
    parser.add_argument("--model", required=True, help="a .keras file: a tfsonify CNN12 (or ContrastiveModel), CREPE or "
                        "your own Keras CNN")
    parser.add_argument("--layers", default=None, help="blocks or layer names, e.g. 1,4,8-11 or conv4 (default every block)")
    parser.add_argument("--top", type=int, default=1, help="most active maps sonified per clip and block (default 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8)")
    parser.add_argument("--manifest-shards", type=int, default=1, help="with --runner: manifest shards (default 1)")
    parser.add_argument("--no-resume", action="store_true", help="recompute every clip, even those an earlier run "
                        "finished (default: skip them; not with --runner)")
    parser.add_argument("--out", required=True, help="output folder (or, with --runner, a URL such as gs://bucket/out)")
    beam_options.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.commands.analyze import parse_layers

    layers = parse_layers(args.layers)
    if args.runner:
        from tfsonify.analysis.beam import run_sonify_dataset

        if args.manifest_shards < 1:
            raise ValueError(f"--manifest-shards must be a positive integer; received {args.manifest_shards}")
        options = beam_options.options(args)
        with progress(f"sonifying on {args.runner}"):
            result = run_sonify_dataset(beam_options.clip_patterns(args.clips), args.model, args.out, layers, args.top,
                                        args.batch_size, options, manifest_shards=args.manifest_shards)
    else:
        from tfsonify import Sonifier, load_audio
        from tfsonify.analysis.sonify_dataset import sonify_dataset
        from tfsonify.commands import load_model
        from tfsonify.commands.analyze import audio_files
        from tfsonify.models.metadata import sample_rate_of

        model = load_model(args.model, any_model=True)
        sonifier = Sonifier(model, sample_rate=sample_rate_of(model))
        files = audio_files(args.clips)
        clips = ((str(f), (lambda f=f: load_audio(f, sonifier.sample_rate))) for f in files)
        with progress(f"sonifying {len(files)} clip(s)"):
            result = sonify_dataset(sonifier, clips, args.out, layers, args.top, args.batch_size,
                                    resume=not args.no_resume)
    skipped = ", ".join(f"{'layer' if isinstance(layer, str) else 'block'} {layer}: {n}"
                        for layer, n in result.skipped.items() if n) or "none"
    resumed = f" ({result.resumed} clip(s) already complete from an earlier run, skipped)" \
        if getattr(result, "resumed", 0) else ""
    print(f"wrote {result.wavs} sonification(s) of {result.clips} clip(s) to {args.out}/ (manifest){resumed}; "
          f"skipped as too short: {skipped}; dead letter: {len(result.dead_letter)} clip(s)")
    for record in result.dead_letter[:10]:
        print(f"  {record['clip']}: {record['reason']}")
    return 0
