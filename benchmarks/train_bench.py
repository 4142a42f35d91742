#!/usr/bin/env python3
"""Training throughput, measured side by side in one run.

1. Train-step time of CNN12 (``--width``, default 0.25) at batch ``--batch`` x 1 s with
   (a) one in-memory synthetic batch repeated, and (b) the real pipeline from audio files: WAV files in a
   folder-per-class layout (``--data DIR``, or 16-bit WAVs generated into a temporary folder at 16 kHz so
   that decoding includes resampling) -> ``read_folder`` -> ``decode_clips`` (soundfile + resample_poly,
   cached) -> ``training_dataset`` (shuffle, random gain, noise, time mask, mixup, batch, prefetch).
   Both use the same compiled ``fit`` (AdamW + warm-up/cosine); the rounds alternate (a, b, a, b, ...) and the
   median step time of each is reported with the overhead of (b) over (a). Target: <= 10 %.
2. Samples/s of full-width CNN12 (13.8 M parameters) training at batch 32 x 1 s.

    python benchmarks/train_bench.py            # defaults take a few minutes on 2 cores
    python benchmarks/train_bench.py --quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_files(folder: Path, clips: int, rate: int = 16000) -> Path:
    """``clips`` 1 s 16-bit WAVs (tone + noise) in 4 class folders at ``rate`` Hz."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    for index in range(clips):
        label = index % 4
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * label) * t) + 0.05 * rng.standard_normal(rate)
        path = folder / f"class{label}" / f"clip{index:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, wave.astype("float32"), rate, subtype="PCM_16")
    return folder


class StepTimer:
    """Keras callback collecting wall-clock time per training batch."""

    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(cb, batch, logs=None):
                cb.start = time.perf_counter()

            def on_train_batch_end(cb, batch, logs=None):
                self.times.append(time.perf_counter() - cb.start)

        self.times: list[float] = []
        self.callback = Callback()


def timed_fit(model, dataset, steps: int) -> float:
    """Median seconds per step over ``steps`` steps (after the first, which may compile)."""
    timer = StepTimer()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[timer.callback])
    wall = time.perf_counter() - started
    return wall / (steps + 1), statistics.median(timer.times[1:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and clips")
    parser.add_argument("--data", default=None, help="folder-per-class audio to read (default: generated WAVs)")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20, quick 8)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 4, quick 2)")
    parser.add_argument("--full-steps", type=int, default=None, help="timed full-width steps (default 5, quick 2)")
    args = parser.parse_args(argv)
    steps = args.steps or (8 if args.quick else 20)
    full_steps = args.full_steps or (2 if args.quick else 5)
    rounds = args.rounds or (2 if args.quick else 4)

    import keras
    import numpy as np
    import tensorflow as tf

    from tfsonify.models.cnn12 import CNN12
    from tfsonify.data.augment import Augmenter
    from tfsonify.data.pipeline import decode_clips, training_dataset
    from tfsonify.data.readers import read_folder
    from tfsonify.train.supervised import compile_classifier

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores; "
          f"CNN12 width {args.width:g}, batch {args.batch} x 1 s at 8 kHz, {steps} timed steps per round, {rounds} rounds each")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.data) if args.data else make_files(Path(temporary) / "audio", 128 if args.quick else 256)
        clips = read_folder(root)
        started = time.perf_counter()
        decoded = decode_clips(clips, cache_dir=Path(temporary) / "cache", verbose=False)
        decode_seconds = time.perf_counter() - started
        started = time.perf_counter()
        decode_clips(clips, cache_dir=Path(temporary) / "cache", verbose=False)
        cached_seconds = time.perf_counter() - started
        print(f"decode {len(decoded)} files once: {decode_seconds:.2f} s; second call (cache hit): {cached_seconds:.3f} s")
        pipeline = training_dataset(decoded, args.batch, crop_seconds=1.0, augment=Augmenter(), mixup_alpha=0.2,
                                    seed=0, one_hot=True, repeat=True)
        rng = np.random.default_rng(0)
        batch = (rng.standard_normal((args.batch, 8000)).astype("float32"),
                 np.eye(decoded.num_classes, dtype="float32")[rng.integers(0, decoded.num_classes, args.batch)])
        synthetic = tf.data.Dataset.from_tensors(batch).repeat()

        keras.utils.set_random_seed(0)
        model = CNN12(width_multiplier=args.width, num_classes=decoded.num_classes)
        compile_classifier(model, multi_label=False, learning_rate=1e-3, steps_per_epoch=100, epochs=10,
                           warmup_epochs=1, jit_compile=False)
        model.fit(synthetic, epochs=1, steps_per_epoch=3, verbose=0)  # compile the step once
        results = {"in-memory": [], "pipeline": []}
        for _ in range(rounds):
            for name, dataset in (("in-memory", synthetic), ("pipeline", pipeline)):
                results[name].append(timed_fit(model, dataset, steps))
        memory = statistics.median(m for _, m in results["in-memory"])
        files = statistics.median(m for _, m in results["pipeline"])
        memory_wall = statistics.median(w for w, _ in results["in-memory"])
        files_wall = statistics.median(w for w, _ in results["pipeline"])
        print(f"train step, in-memory synthetic batches : {1000 * memory:7.1f} ms/step median "
              f"({1000 * memory_wall:.1f} ms/step incl. epoch overhead)")
        print(f"train step, tf.data pipeline from files : {1000 * files:7.1f} ms/step median "
              f"({1000 * files_wall:.1f} ms/step incl. epoch overhead)")
        print(f"pipeline overhead: {100 * (files / memory - 1):+.1f} % (median step), "
              f"{100 * (files_wall / memory_wall - 1):+.1f} % (wall) [target <= 10 %]")

    keras.utils.set_random_seed(0)
    full = CNN12(width_multiplier=1.0, num_classes=10)
    compile_classifier(full, multi_label=False, learning_rate=1e-3, steps_per_epoch=100, epochs=10, warmup_epochs=1,
                       jit_compile=False)
    batch32 = tf.data.Dataset.from_tensors((np.random.default_rng(1).standard_normal((32, 8000)).astype("float32"),
                                            np.eye(10, dtype="float32")[np.arange(32) % 10])).repeat()
    full.fit(batch32, epochs=1, steps_per_epoch=1, verbose=0)
    _, step = timed_fit(full, batch32, full_steps)
    print(f"full-width CNN12 ({full.count_params():,} parameters) training, batch 32 x 1 s: {step:.2f} s/step, "
          f"{32 / step:.1f} samples/s ({full_steps} timed steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
