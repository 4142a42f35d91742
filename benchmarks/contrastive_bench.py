#!/usr/bin/env python3
"""Step time of the contrastive (SimCLR) train step vs. the supervised step, same batch and width, one run.

Both steps see ``--batch`` clips of ``--seconds`` at 8 kHz on in-memory tensors (no input pipeline): the
supervised step one forward/backward of ``[batch, T]`` through CNN12 + classifier (categorical CE); the
contrastive step two views ``[batch, T]`` each (``[2·batch, T]`` through CNN12 + projection MLP, NT-Xent).
So ≈ 2× is the expected ratio per clip; the interesting figure is the ratio per waveform forwarded, which
shows the overhead of the projection head and the NT-Xent similarity matrix. Steps are interleaved
(A, B, A, B, …) so that load from other processes affects both alike; the median is reported.

    python benchmarks/contrastive_bench.py --quick
    python benchmarks/contrastive_bench.py --width 1.0 --batch 32 --seconds 2.5 --jit
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0, help="clip / patch length")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--jit", action="store_true", help="XLA-compile both steps")
    parser.add_argument("--quick", action="store_true", help="width 0.125, batch 16, 8 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.batch, args.steps = 0.125, 16, 8

    import keras
    import numpy as np

    from tfsonify.models.cnn12 import CNN12
    from tfsonify.models.contrastive import ContrastiveModel

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    samples = int(round(args.seconds * 8000))
    clips = rng.normal(size=(args.batch, samples)).astype(np.float32)
    view_b = (clips + 0.1 * rng.normal(size=clips.shape)).astype(np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]

    supervised = CNN12(width_multiplier=args.width, num_classes=10)
    supervised.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="categorical_crossentropy", jit_compile=args.jit)
    contrastive = ContrastiveModel(width_multiplier=args.width)
    contrastive.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=args.jit)

    steps = {
        "supervised": lambda: supervised.train_on_batch(clips, targets),
        "contrastive": lambda: contrastive.train_on_batch((clips, view_b)),
    }
    for step in steps.values():  # trace / compile, then one more warm-up step
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    median = {name: float(np.median(values)) for name, values in times.items()}
    ratio = median["contrastive"] / median["supervised"]
    print(f"CNN12 width {args.width}, batch {args.batch} clips x {args.seconds} s at 8 kHz, "
          f"{'XLA' if args.jit else 'eager-graph (no XLA)'}, {args.steps} interleaved steps, median:")
    print(f"  supervised step : {1000 * median['supervised']:8.1f} ms  ({args.batch / median['supervised']:7.1f} clips/s)")
    print(f"  contrastive step: {1000 * median['contrastive']:8.1f} ms  ({args.batch / median['contrastive']:7.1f} clips/s, "
          f"{2 * args.batch / median['contrastive']:7.1f} views/s)")
    print(f"  ratio contrastive/supervised per step (same clips): {ratio:.2f}x; per waveform forwarded: {ratio / 2:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
