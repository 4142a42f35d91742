"""``tfsonify demo --out DIR``: the main job end to end on the bundled default.

Speech from espeak-ng over a drum loop from hydrogen-drumkits (6 dB SNR), a small
CNN12 (width 0.25, fixed seed), the top maps of blocks 1, 4, 8 and 11 sonified into DIR.
"""
from __future__ import annotations

import argparse

import numpy as np

from tfsonify.commands import progress


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the bundled end-to-end demo", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--top", type=int, default=3, help="maps per layer (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def demo_clip(sample_rate: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(mixture, speech, background)``: 'left, right, stop, go' over a kick/snare loop at 6 dB SNR."""
    from tfsonify.audio import load_audio
    from tfsonify.data.sources import drum_samples, mix_at_snr, speak

    speech = speak("left. right. stop. go.", voice="en-us+m3", speed=140, sample_rate=sample_rate)
    kick = load_audio(drum_samples("EE_Kick_Low_1")[0], sample_rate)
    snare = load_audio(drum_samples("EE_Snare_1")[0], sample_rate)
    beat = np.zeros(sample_rate // 2 * 4, np.float32)  # 4 beats at 120 bpm
    for index, hit in enumerate([kick, snare, kick, snare]):
        start = index * sample_rate // 2
        length = min(hit.size, beat.size - start)
        beat[start : start + length] += hit[:length]
    mixture, background = mix_at_snr(speech, beat, 6.0)
    return mixture, speech, background


def run(args: argparse.Namespace) -> int:
    import keras

    from tfsonify.cnn12 import CNN12
    from tfsonify.render import check_writable_dir, write_sonifications
    from tfsonify.sonifier import Sonifier

    out_dir = check_writable_dir(args.out)
    with progress("synthesising the demo clip (espeak-ng speech over hydrogen drums)"):
        mixture, _, _ = demo_clip()
    keras.utils.set_random_seed(args.seed)
    model = CNN12(width_multiplier=0.25)
    model.save(out_dir / "model.keras")
    sonifier = Sonifier(model)
    for layer in (1, 4, 8, 11):
        with progress(f"block {layer}: sonifying the top {args.top} maps"):
            features, peaks, sounds = sonifier.sonify_top(mixture, layer, args.top)
            write_sonifications(out_dir, mixture, sounds, layer, list(features), list(peaks), sonifier.sample_rate,
                                source="espeak-ng + hydrogen-drumkits", extra={"model": "model.keras"})
    print(f"results in {out_dir}/ (manifest.json, WAVs, spectrogram PNGs)")
    return 0
