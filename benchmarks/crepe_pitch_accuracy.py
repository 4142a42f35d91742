"""Pitch accuracy of the imported CREPE (tiny and full) on pure tones and fluidsynth notes of known pitch.

    python benchmarks/crepe_pitch_accuracy.py [--sizes tiny,full] [--hop 320]

Pure tones: 0.5 s sines at 16 kHz; only frames whose 1024-sample window lies inside the tone are scored.
Notes: General-MIDI notes A2..E6 rendered by fluidsynth with Debian's FluidR3_GM soundfont (fluid-soundfont-gm),
scored on the steady part 0.1-0.5 s after the onset against the note's equal-tempered frequency (A4 = 440 Hz).
Prints, per size, the median and 95th-percentile absolute error in cents and the share of frames within 25 cents.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TONES = (55.0, 82.4, 110.0, 155.0, 220.0, 311.0, 440.0, 622.0, 880.0, 1245.0, 1760.0)
PROGRAMS = {0: "piano", 24: "nylon guitar", 40: "violin", 42: "cello", 56: "trumpet", 71: "clarinet", 73: "flute",
            19: "church organ"}
NOTES = (45, 57, 64, 69, 76, 81, 88)  # A2 110 Hz .. E6 1318.5 Hz
SR = 16000


def summary(errors: np.ndarray) -> str:
    errors = np.abs(errors)
    return (f"median {np.median(errors):5.1f}  p95 {np.percentile(errors, 95):6.1f}  "
            f"within 25 c {100 * np.mean(errors < 25):5.1f} %  ({errors.size} frames)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--hop", type=int, default=320, help="hop at 16 kHz (default 320 = 20 ms)")
    args = parser.parse_args()

    from tfsonify.data.sources import render_notes
    from tfsonify.models.crepe import FRAME_LENGTH, crepe_pitch, frequency_to_cents, pretrained_crepe

    requests = [(program, note, 1.0) for program in PROGRAMS for note in NOTES]
    clips = render_notes(requests, note_seconds=0.6, gap_seconds=0.1, sample_rate=SR)
    for size in args.sizes.split(","):
        model = pretrained_crepe(size)
        start = time.perf_counter()
        tone_errors = []
        for frequency in TONES:
            clip = (0.4 * np.sin(2 * np.pi * frequency * np.arange(SR // 2) / SR)).astype(np.float32)
            hz, _ = crepe_pitch(model, clip, hop=args.hop)
            starts = np.arange(hz.size) * args.hop - FRAME_LENGTH // 2
            inside = (starts >= 0) & (starts + FRAME_LENGTH <= clip.size)
            tone_errors.append(frequency_to_cents(hz[inside]) - frequency_to_cents(frequency))
        print(f"CREPE {size}: pure tones {TONES[0]:g}-{TONES[-1]:g} Hz: {summary(np.concatenate(tone_errors))}")
        per_program: dict[str, list[np.ndarray]] = {}
        for (program, note, _), clip in zip(requests, clips):
            hz, _ = crepe_pitch(model, clip, hop=args.hop)
            times = np.arange(hz.size) * args.hop / SR
            steady = (times >= 0.1) & (times <= 0.5)
            expected = 440.0 * 2 ** ((note - 69) / 12)
            per_program.setdefault(PROGRAMS[program], []).append(frequency_to_cents(hz[steady]) - frequency_to_cents(expected))
        for name, errors in per_program.items():
            medians = " ".join(f"{np.median(e):+5.1f}" for e in errors)
            print(f"  {name:13s} {summary(np.concatenate(errors))}  per-note median (signed): {medians}")
        print(f"  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
