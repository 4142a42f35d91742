"""Throughput of the analysis passes, side by side in one run (full-width CNN12, random weights, 8 kHz).

Prints clips/s for, on the same clips:
  * the plain forward pass (the model in a ``tf.function``, classifier head) - the reference;
  * the streaming top-k pass (one forward to block 11 recording every block's per-map maxima, k = 3
    tracked per map for all 11 blocks);
  * the coherence pass over the chosen blocks (per block: forward to that block, deconvnet of the most
    active map, Welch coherence, top-5 mean) - the paper's §4.2.1 measurement;
and each pass's time relative to the forward pass.

With ``--beam`` (needs ``tfsonify[beam]``) it instead compares the streaming top-k pass of the single-process
path with Apache Beam's DirectRunner (1 in-process worker; 1 vs 2 worker processes with one TensorFlow thread
each; per-worker peak RSS), see ``benchmarks/_beam.py``; one full run (8000 one-second clips, width 0.5) takes
about 6 minutes on 2 idle cores, ``--quick`` about 2.

Usage: python benchmarks/analysis_bench.py [--clips 8] [--seconds 1.0] [--batch-size 4] [--layers 1,4,8,11]
       [--width 1.0] [--repeats 2]
       python benchmarks/analysis_bench.py --beam [--beam-clips 8000] [--seconds 1.0] [--width 0.5] [--batch-size 16]
       python benchmarks/analysis_bench.py --beam --quick   (96 clips of 0.5 s, width 0.25: a smoke run)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tfsonify

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfsonify  # noqa: E402
from tfsonify.analysis.coherence import layer_coherence  # noqa: E402
from tfsonify.analysis.topk import top_activating_inputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--layers", default="1,4,8,11", help="blocks of the coherence pass (comma-separated)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (1.0 = the paper's CNN12)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beam", action="store_true", help="compare with the Beam DirectRunner instead (benchmarks/_beam.py)")
    parser.add_argument("--beam-clips", type=int, default=8000, help="with --beam: N clips (default 8000: enough steady work to outweigh ~20 s of worker start-up)")
    parser.add_argument("--quick", action="store_true", help="with --beam: 96 clips of 0.5 s at width 0.25 (a smoke run)")
    args = parser.parse_args()
    if args.beam:
        from _beam import compare

        given = {a.split("=")[0] for a in sys.argv[1:]}
        if args.quick:
            args.beam_clips, args.seconds, args.width = 96, 0.5, 0.25
        elif "--width" not in given:
            args.width = 0.5
        compare(args.beam_clips, args.seconds, args.width, args.batch_size if "--batch-size" in given else 16)
        return
    layers = [int(v) for v in args.layers.split(",")]

    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=args.width, num_classes=10)
    sonifier = tfsonify.Sonifier(model)
    rng = np.random.default_rng(0)
    samples = int(args.seconds * model.sample_rate)
    clips = [rng.normal(0, 0.2, samples).astype("float32") for _ in range(args.clips)]
    batches = [np.stack(clips[i : i + args.batch_size]) for i in range(0, len(clips), args.batch_size)]

    compiled = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None], tf.float32)])

    def forward():
        for batch in batches:
            compiled(batch).numpy()

    def topk():
        top_activating_inputs(sonifier, clips, None, k=3, batch_size=args.batch_size)

    def coherence():
        layer_coherence(sonifier, clips, layers, k=5, batch_size=args.batch_size)

    print(f"CNN12 width {args.width} ({model.count_params():,} parameters), {args.clips} clips of {args.seconds:g} s, "
          f"batch {args.batch_size}, median of {args.repeats} round-robin repeats after a warm-up, {os.cpu_count()} CPU(s)\n")
    print(f"{'pass':<48} {'s':>7} {'clips/s':>8} {'x forward':>9}")
    passes = (("forward pass (tf.function model, head)", forward),
              ("streaming top-k (k=3, all 11 blocks, one forward)", topk),
              (f"coherence (blocks {args.layers}, top-5 MSC)", coherence))
    for _, fn in passes:  # warm-up: tracing excluded
        fn()
    samples = {name: [] for name, _ in passes}
    for _ in range(args.repeats):  # round-robin, so load changes on a shared machine hit every pass alike
        for name, fn in passes:
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    reference = statistics.median(samples[passes[0][0]])
    for name, _ in passes:
        seconds = statistics.median(samples[name])
        print(f"{name:<48} {seconds:7.2f} {args.clips / seconds:8.1f} {seconds / reference:9.2f}", flush=True)
    per_layer = timed(coherence, 1) / len(layers)
    print(f"\ncoherence per block and clip: {per_layer / args.clips * 1e3:.0f} ms (one forward to the block + one deconvnet + Welch)")


if __name__ == "__main__":
    main()
