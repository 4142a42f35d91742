"""``tfsonify request URL clip.wav --layer L --top K --out DIR``: sonify through a served model."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "request", help="sonify an audio file through a TF Serving / tfsonify serve endpoint",
        description="URL: http://HOST:8501/v1/models/NAME[/versions/V] (REST) or grpc://HOST:8500/NAME[/V]. "
        "Writes the input and one WAV per sonified map, spectrogram PNGs and manifest.json into --out.")
    parser.add_argument("url", help="model URL (REST or grpc://)")
    parser.add_argument("input", help="audio file; downmixed and resampled to the served model's rate")
    parser.add_argument("--layer", type=int, required=True, help="layer id as exported (a block index; the "
                        "metadata's layer_names maps ids to layer names)")
    parser.add_argument("--top", type=int, default=1, help="sonify the K most active maps (default 1)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="the served model's rate in Hz (default: the rate `tfsonify serve` reports with the "
                        "model; give it for a server that does not, e.g. tensorflow_model_server)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--no-plots", action="store_true", help="skip the spectrogram PNGs")
    parser.add_argument("--floats", action="store_true",
                        help="send and receive float32 samples (sonify_top_k) instead of 16-bit WAV files "
                        "(sonify_top_k_wav, the default: smaller requests; needs a model exported by this version)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.io.audio import load_audio
    from tfsonify.commands import progress
    from tfsonify.io.render import check_writable_dir, write_sonifications
    from tfsonify.serving.client import Client, ServingRequestError

    if args.top < 1:
        raise ValueError(f"--top must be >= 1; received {args.top}")
    from tfsonify.export.wav_graph import decode_wav_files, encode_wav_files, parse_wav_header

    client = Client(args.url, timeout=args.timeout)
    try:
        if args.sample_rate is None:
            record = client.model_record()
            if not record.get("sample_rate"):
                raise ValueError(f"{args.url} does not report the model's sample rate (a tfsonify serve server "
                                 f"does); give it with --sample-rate HZ")
            args.sample_rate = int(record["sample_rate"])
        waveform = load_audio(args.input, args.sample_rate)
        out_dir = check_writable_dir(args.out)
        with progress(f"requesting the top {args.top} map(s) of layer {args.layer} from {args.url}"):
            if args.floats:
                features, activations, sounds = client.sonify_top_k(waveform, args.layer, args.top)
            else:
                wav = _as_sent(args.input, args.sample_rate, parse_wav_header)
                if wav is None:  # another format, rate or sample type: resampled here, sent as 16-bit PCM
                    wav = encode_wav_files(waveform, args.sample_rate)[0]
                waveform = decode_wav_files([wav])[0]  # what the server heard
                out = client.sonify_top_k_wav(wav, args.layer, args.top)
                features, activations = out["features"], out["activations"]
                sounds = decode_wav_files(out["sonifications_bytes"], out["sonification_peaks"])
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


def _as_sent(path: str, sample_rate: int, parse_wav_header) -> bytes | None:
    """The file's own bytes if it is a mono 16-bit PCM WAV at ``sample_rate`` (sent untouched), else None."""
    try:
        data = open(path, "rb").read()
        header = parse_wav_header(data)
    except (OSError, ValueError):
        return None
    ok = header.format_tag == 1 and header.bits_per_sample == 16 and header.channels == 1 and header.sample_rate == sample_rate
    return data if ok else None
