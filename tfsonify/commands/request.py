"""``tfsonify request URL clip.wav --layer L --top K --out DIR``: sonify through a served model."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "request", help="sonify an audio file through a TF Serving / tfsonify serve endpoint",
        description="URL: http://HOST:8501/v1/models/NAME[/versions/V] (REST) or grpc://HOST:8500/NAME[/V]. "
        "Writes the input and one WAV per sonified map, spectrogram PNGs and manifest.json into --out.")
    parser.add_argument("url", help="model URL (REST or grpc://)")
    parser.add_argument("input", help="audio file; downmixed and resampled to --sample-rate")
    parser.add_argument("--layer", type=int, required=True, help="block 1..11")
    parser.add_argument("--top", type=int, default=1, help="sonify the K most active maps (default 1)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--sample-rate", type=int, default=8000, help="the served model's rate in Hz (default 8000)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--no-plots", action="store_true", help="skip the spectrogram PNGs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.audio import load_audio
    from tfsonify.commands import progress
    from tfsonify.render import check_writable_dir, write_sonifications
    from tfsonify.serving.client import Client, ServingRequestError

    if args.top < 1:
        raise ValueError(f"--top must be >= 1; received {args.top}")
    out_dir = check_writable_dir(args.out)
    waveform = load_audio(args.input, args.sample_rate)
    client = Client(args.url, timeout=args.timeout)
    try:
        with progress(f"requesting the top {args.top} map(s) of block {args.layer} from {args.url}"):
            features, activations, sounds = client.sonify_top_k(waveform, args.layer, args.top)
    except ServingRequestError as error:
        raise ValueError(f"server rejected the request ({error.status}): {error.message}") from None
    except OSError as error:
        raise ValueError(f"cannot reach {args.url}: {error}") from None
    finally:
        client.close()
    manifest = write_sonifications(out_dir, waveform, sounds, args.layer, [int(f) for f in features],
                                   [float(a) for a in activations], args.sample_rate, source=str(args.input),
                                   extra={"url": args.url}, plots=not args.no_plots)
    print(f"wrote {len(manifest['sonifications'])} sonification(s) to {out_dir}/ (manifest.json)")
    return 0
