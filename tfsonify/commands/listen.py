"""``tfsonify listen --model M.keras --layer L --feature F (--input FILE | --mic) [--out OUT.wav] [--play]``.

Stream audio through the deconvnet block by block (exact windows, fixed latency = the layer's margin plus the hop)
and write the sonification to --out (aligned with the input) and/or play it. The input is divided by --reference-
peak (default 1.0: full scale); the output is scaled by the largest raw reconstruction seen so far, or fixed by
--calibrate FILE (then a stream of FILE equals `tfsonify sonify FILE --feature F`).
"""
from __future__ import annotations

import argparse
import sys

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "listen",
                         "live sonification of one feature map: a file at real-time pace or the microphone", __doc__)
    parser.add_argument("--model", required=True, help="a .keras file: a tfsonify CNN12 (or ContrastiveModel), CREPE or "
                        "your own Keras CNN (read at the sample rate stored with it)")
    parser.add_argument("--layer", type=_layer_arg, required=True, help="block index (1..N) or layer name")
    parser.add_argument("--feature", type=int, required=True, help="map index (0-based)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="audio file streamed at real-time pace (see --fast)")
    source.add_argument("--mic", action="store_true", help="the default input device (needs tfsonify[live] and PortAudio)")
    parser.add_argument("--out", help="WAV file for the sonification (float, model rate)")
    parser.add_argument("--play", action="store_true", help="play the sonification on the default output device")
    parser.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not at real-time pace")
    parser.add_argument("--seconds", type=float, default=None, help="with --mic: stop after this long (default: Ctrl-C)")
    parser.add_argument("--reference-peak", type=float, default=None, help="input level of full scale (default 1.0)")
    parser.add_argument("--calibrate", help="recording whose peak and reconstruction peak fix the normalisation")
    parser.add_argument("--block-size", type=int, default=512, help="samples per block at the model rate (default 512)")
    parser.add_argument("--hop", type=int, default=None, help="samples computed per step (multiple of the stride; "
                        "default: the margin, at least 512); latency = margin + hop - 1")
    parser.set_defaults(func=run)


def _layer_arg(text: str) -> int | str:
    """``--layer``: a block index or a layer name."""
    return int(text) if text.isdecimal() else text


def _describe(layer: int | str) -> str:
    return f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"


def run(args: argparse.Namespace) -> int:
    if args.out is None and not args.play:
        raise ValueError("give --out FILE.wav and/or --play (otherwise the sonification goes nowhere)")
    if args.block_size < 1:
        raise ValueError(f"--block-size must be a positive number of samples; received {args.block_size}")
    from tfsonify.engine import long_clips
    from tfsonify.io import live
    from tfsonify.io.blocks import read_whole
    from tfsonify.commands import load_model
    from tfsonify.models.metadata import sample_rate_of
    from tfsonify.io.render import check_writable_dir
    from tfsonify.engine.sonifier import Sonifier

    if args.out is not None:
        from pathlib import Path

        check_writable_dir(Path(args.out).parent)
    if args.mic:
        live.import_sounddevice()  # fail before loading the model
    model = load_model(args.model, any_model=True)
    sonifier = Sonifier(model, sample_rate=sample_rate_of(model))
    # a layer the model lacks or a map outside it: one line (the engine's own check), before streaming
    sonifier.check_features([args.feature], args.layer)
    rate = sonifier.sample_rate
    reconstruction_peak, reference = None, 1.0 if args.reference_peak is None else args.reference_peak
    if args.calibrate:
        peak, reconstruction_peak = long_clips.calibrate(sonifier, read_whole(args.calibrate, rate), args.layer,
                                                         [args.feature])
        reference = peak if args.reference_peak is None else args.reference_peak
    stream = sonifier.stream(args.layer, [args.feature], reference_peak=reference,
                             reconstruction_peak=reconstruction_peak, hop=args.hop)
    if args.input:
        blocks = live.file_blocks(args.input, rate, args.block_size, realtime=not args.fast)
    else:
        blocks = live.microphone_blocks(rate, args.block_size, seconds=args.seconds)
    player = live.open_player(rate) if args.play else None
    print(f"{_describe(args.layer)}, map {args.feature}: latency {stream.latency} samples "
          f"({1000 * stream.latency / rate:.0f} ms), hop {stream.hop}; {'Ctrl-C to stop' if args.mic else args.input}",
          file=sys.stderr)
    try:
        report = live.run_stream(stream, blocks, rate, out_path=args.out, player=player, stop_on_interrupt=args.mic)
    finally:
        if player is not None:
            player.stop()
            player.close()
    print(f"{report.seconds:.1f} s of audio, {report.realtime_factor:.1f}x real time"
          + (f", wrote {args.out}" if args.out else ""), file=sys.stderr)
    return 0
