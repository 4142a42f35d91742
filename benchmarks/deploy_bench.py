#!/usr/bin/env python3
"""Deployment latency, measured side by side in one run.

1. One 1 s clip (8 kHz), blocks 5 and 11: median latency of the TF ``Sonifier`` (graph mode),
   the TFLite fixed-length (8000-sample) and dynamic-length models on LiteRT (all cores,
   XNNPACK), for one map (``sonify``) and the top 4 maps (``sonify_top``).
2. The fixed-length model quantised: float32 vs fp16 weights vs dynamic-range int8 weights vs
   int8 (weights and activations, calibrated on espeak-ng speech): file size, stored weight bytes,
   ``sonify`` latency at blocks 5 and 11 and the correlation of each map's sonification with
   float's on real speech clips (the top 4 maps of 2 espeak-ng clips).
3. ``tfsonify serve`` (started as a subprocess) with 8 concurrent clients on loopback for
   ``--duration`` seconds per protocol: REST with WAV bytes (``sonify_wav``, b64 JSON), REST with
   JSON floats (``sonify``) and gRPC (``sonify``), block 5 on the 1 s clip: p50/p99 latency,
   requests/s and errors.

    python3 benchmarks/deploy_bench.py            # width 1.0 (the paper's CNN12), 30 s serving
    python3 benchmarks/deploy_bench.py --quick    # width 0.25, 5 s serving, fewer repeats
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (tracing, XNNPACK planning)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_clients(url: str, clip: np.ndarray, duration: float, clients: int, wav: bool = False) -> dict:
    """8 clients calling ``sonify`` (float JSON / gRPC tensors) or ``sonify_wav`` (``wav``: 16-bit WAV bytes both ways)."""
    from tfsonify.export.wav_graph import decode_wav_files, encode_wav_files
    from tfsonify.serving import Client

    wav_file = encode_wav_files(clip, 8000)

    latencies, errors, lock = [], [], threading.Lock()
    stop_at = time.perf_counter() + duration

    def worker():
        with Client(url, timeout=120) as client:
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    if wav:
                        out = client.predict("sonify_wav", {"wav_bytes": wav_file, "layer": np.array([5], np.int32),
                                                            "feature": np.array([1], np.int32)})
                        decode_wav_files(out["sonification_bytes"], out["sonification_peak"])
                    else:
                        client.sonify(clip, 5, 1)
                    with lock:
                        latencies.append(time.perf_counter() - start)
                except Exception as error:  # counted, reported
                    with lock:
                        errors.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "errors": len(errors), "first_error": errors[0] if errors else "",
            "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"), "rps": len(ms) / elapsed}


def quantised_table(model, fixed, variants: list[str], layers: list[int], repeats: int) -> None:
    """Float vs quantised fixed-length TFLite: sizes, latency, correlation with float on espeak-ng speech."""
    from tfsonify.export.tflite import convert, interpreter, run_signature, speech_clips
    from tfsonify.export.tflite_weights import weight_bytes

    clips = speech_clips(6, seed=1)  # 4 to calibrate int8, 2 to compare
    models = {"float32": fixed}
    for variant in variants:
        start = time.perf_counter()
        flatbuffer = convert(model, length=8000, layers=layers, top_k=4, quantize=variant,
                             representative=clips[:4] if variant == "int8" else None)
        models[variant] = (flatbuffer, interpreter(flatbuffer))
        print(f"(converted {variant} in {time.perf_counter() - start:.0f} s)")
    print(f"\n{'variant':>8} {'file MB':>8} {'weights MB':>11} " + " ".join(f"{'block ' + str(l):>9}" for l in layers)
          + f" {'vs float':>9} {'min corr':>9} {'median':>7}")
    base = None
    for name, (flatbuffer, runner) in models.items():
        times = [median_ms(lambda: run_signature(runner, f"sonify_l{l}", clips[0], feature=1), repeats) for l in layers]
        base = base or times
        cors = []
        if name != "float32":
            for layer in layers:
                for clip in clips[4:]:
                    for feature in run_signature(fixed[1], f"top_k_l{layer}", clip)["features"][0]:
                        a = run_signature(fixed[1], f"sonify_l{layer}", clip, feature=int(feature))["sonification"][0]
                        b = run_signature(runner, f"sonify_l{layer}", clip, feature=int(feature))["sonification"][0]
                        cors.append(float(np.corrcoef(a, b)[0, 1]) if np.any(a) and np.any(b) else 0.0)
        ratio = " ".join(f"{t / b:.2f}" for t, b in zip(times, base))
        print(f"{name:>8} {len(flatbuffer) / 1e6:>8.2f} {weight_bytes(flatbuffer) / 1e6:>11.2f} "
              + " ".join(f"{t:>7.1f}ms" for t in times) + f" {ratio:>9} "
              + (f"{min(cors):>9.4f} {np.median(cors):>7.4f}" if cors else f"{'-':>9} {'-':>7}"))
    print(f"(float weights of the model: {4 * model.count_params() / 1e6:.2f} MB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="width 0.25, 5 s serving, 10 repeats")
    parser.add_argument("--width", type=float, default=None, help="CNN12 width multiplier (default 1.0; 0.25 with --quick)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per protocol (default 30; 5 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per latency figure (default 30; 10 with --quick)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-tflite", action="store_true", help="only the serving part")
    parser.add_argument("--quantize", default="fp16,dynamic,int8",
                        help="comma-separated quantised variants to compare with float (default fp16,dynamic,int8; '' for none)")
    parser.add_argument("--models", default=None,
                        help="serve this exported folder (holding cnn/VERSION/) instead of exporting the benchmark model")
    args = parser.parse_args()
    width = args.width or (0.25 if args.quick else 1.0)
    duration = args.duration or (5.0 if args.quick else 30.0)
    repeats = args.repeats or (10 if args.quick else 30)

    import keras
    import tensorflow as tf

    import tfsonify
    from tfsonify.export.savedmodel import export_saved_model
    from tfsonify.export.tflite import convert, interpreter, run_signature

    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=width)
    sonifier = tfsonify.Sonifier(model)
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000.0
    clip = (0.5 * np.sin(2 * np.pi * (200 + 1000 * t) * t) + rng.normal(0, 0.05, t.size)).astype(np.float32)
    print(f"CNN12 width {width} ({model.count_params():,} parameters), 1 s clip at 8 kHz, {os.cpu_count()} cores, "
          f"TF {tf.__version__}; medians of {repeats} calls")

    layers = [5, 11]
    if args.skip_tflite:
        layers = []
    start = time.perf_counter()
    if layers:
        fixed_bytes = convert(model, length=8000, layers=layers, top_k=4)
        fixed = interpreter(fixed_bytes)
        dynamic = interpreter(convert(model, length=None, layers=layers, top_k=4))
        print(f"(converted fixed and dynamic TFLite models in {time.perf_counter() - start:.0f} s)\n")
        print(f"{'block':>5} {'task':>10} {'TF Sonifier':>12} {'TFLite fixed':>13} {'TFLite dyn':>11} {'TF/fixed':>9} {'dyn/fixed':>10}")
    for layer in layers:
        tasks = {
            "1 map": (lambda: sonifier.sonify(clip, layer, feature=1),
                      lambda: run_signature(fixed, f"sonify_l{layer}", clip, feature=1),
                      lambda: run_signature(dynamic, f"sonify_l{layer}", clip, feature=1)),
            "top 4": (lambda: sonifier.sonify_top(clip, layer, 4),
                      lambda: run_signature(fixed, f"top_k_l{layer}", clip),
                      lambda: run_signature(dynamic, f"top_k_l{layer}", clip)),
        }
        for task, (tf_fn, fixed_fn, dynamic_fn) in tasks.items():
            tf_ms, fixed_ms, dynamic_ms = (median_ms(fn, repeats) for fn in (tf_fn, fixed_fn, dynamic_fn))
            print(f"{layer:>5} {task:>10} {tf_ms:>10.1f}ms {fixed_ms:>11.1f}ms {dynamic_ms:>9.1f}ms "
                  f"{tf_ms / fixed_ms:>8.2f}x {dynamic_ms / fixed_ms:>9.2f}x")

    variants = [q for q in args.quantize.split(",") if q] if layers else []
    if variants:
        quantised_table(model, (fixed_bytes, fixed), variants, layers, repeats)

    with tempfile.TemporaryDirectory(prefix="deploy-bench-") as folder:
        if args.models:
            folder = args.models
            print(f"\nserving the exported model in {folder} (not the width-{width} benchmark model)")
        else:
            export_saved_model(model, Path(folder) / "cnn")
        rest_port, grpc_port = free_port(), free_port()
        server = subprocess.Popen([sys.executable, "-m", "tfsonify", "serve", folder, "--port", str(rest_port),
                                   "--grpc-port", str(grpc_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()  # "serving cnn version 1: ..." once listening
            if not line.startswith("serving"):
                raise RuntimeError(f"server did not start: {line}{server.stderr.read()}")
            print(f"\nserving: {args.clients} concurrent clients, {duration:.0f} s per protocol, sonify block 5 on the 1 s clip")
            print(f"{'protocol':>10} {'requests':>9} {'errors':>7} {'p50':>9} {'p99':>9} {'req/s':>7}")
            rates = {}
            for protocol, url, wav in (("REST WAV", f"http://127.0.0.1:{rest_port}/v1/models/cnn", True),
                                       ("REST JSON", f"http://127.0.0.1:{rest_port}/v1/models/cnn", False),
                                       ("gRPC", f"grpc://127.0.0.1:{grpc_port}/cnn", False)):
                result = load_clients(url, clip, duration, args.clients, wav=wav)
                rates[protocol] = result["rps"]
                print(f"{protocol:>10} {result['requests']:>9} {result['errors']:>7} {result['p50']:>7.1f}ms "
                      f"{result['p99']:>7.1f}ms {result['rps']:>7.1f}" + (f"  first error: {result['first_error']}" if result["errors"] else ""))
            print(f"REST WAV / gRPC requests/s: {rates['REST WAV'] / rates['gRPC']:.2f} "
                  f"(REST JSON / gRPC: {rates['REST JSON'] / rates['gRPC']:.2f})")
        finally:
            server.terminate()  # SIGTERM: graceful drain
            server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
