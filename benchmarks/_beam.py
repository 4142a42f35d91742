"""Beam pipelines vs the single-process path, side by side in one run (streaming top-k, k = 3, all 11 blocks).

Prints clips/s for, on the same WAV files (decoding and model loading included everywhere):
  * the single-process path (``load_checkpoint`` + ``load_audio`` + ``top_activating_inputs``, TensorFlow's default
    threads; what ``tfsonify analyze topk`` runs without ``--runner``);
  * the DirectRunner with one in-process worker (the same process and threads: Beam's own overhead; target:
    within 20 % of the single-process clips/s);
  * the DirectRunner in multi-processing mode with 1 and 2 worker processes, one TensorFlow thread each (on 2 cores
    one process already uses both, so scaling is measured per thread; target >= 1.6x), with every worker's peak
    RSS (``VmHWM`` sampled from /proc, :class:`tfsonify.analysis.worker_memory.WorkerPeakMemory`).

Each configuration runs twice: on N0 = 2 batches of clips (its fixed costs: pipeline set-up, worker processes
importing TensorFlow, loading the checkpoint, tracing the graphs) and on N clips. "clips/s" is N / t(N), end to
end; "steady" is (N - N0) / (t(N) - t(N0)), the rate once the fixed costs are paid, which is what a dataset of
millions of clips sees. The targets are judged on "steady" (and, for the in-process runner, on both).

Run by ``python benchmarks/analysis_bench.py --beam [--beam-clips 8000] [--seconds 1.0] [--width 0.5]
[--batch-size 16]``; ``--quick`` for a smoke run.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")  # worker processes import this tfsonify
sys.path.insert(0, REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

import tfsonify  # noqa: E402
from tfsonify.analysis import beam as tb  # noqa: E402
from tfsonify.analysis.topk import top_activating_inputs  # noqa: E402
from tfsonify.analysis.worker_memory import WorkerPeakMemory, peak_rss_mib  # noqa: E402


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets this process's VmHWM
    except OSError:
        pass


def compare(clips: int, seconds: float, width: float, batch_size: int) -> None:
    """Print the comparison table (see the module docstring)."""
    root = Path(tempfile.mkdtemp(prefix="beam_bench_"))
    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=width)
    model_path = str(root / "model.keras")
    model.save(model_path)
    rng = np.random.default_rng(0)
    samples = int(seconds * 8000)
    small = min(2 * batch_size, clips // 2)
    for i in range(clips):  # names sort so that the first `small` files are the small run's
        soundfile.write(root / f"{'a' if i < small else 'b'}{i:06d}.wav", rng.normal(0, 0.2, samples).astype("float32"), 8000)
    patterns = {small: str(root / "a*.wav"), clips: str(root / "*.wav")}

    def single(n):
        sonifier = tfsonify.Sonifier(tfsonify.load_checkpoint(model_path))  # what the CLI does: load, trace, stream
        files = sorted(glob.glob(patterns[n]))
        top_activating_inputs(sonifier, (tfsonify.load_audio(f, sonifier.sample_rate) for f in files), None, k=3, batch_size=batch_size)

    def beam(n, flags, tf_threads=None):
        tb._SONIFIERS.clear()  # in-process: load the checkpoint each run, as the single-process path does
        tb.run_topk([patterns[n]], model_path, str(root / f"out{n}"), None, k=3, batch_size=batch_size,
                    options=tb.pipeline_options("DirectRunner", flags), tf_threads=tf_threads)

    def timed(fn, *a):
        start = time.perf_counter()
        fn(*a)
        return time.perf_counter() - start

    print(f"CNN12 width {width} ({model.count_params():,} parameters), N = {clips} WAVs of {seconds:g} s (N0 = {small} "
          f"for the fixed costs), top-k (k=3, 11 blocks), batch {batch_size}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f} at the start\n", flush=True)
    single(small)  # warm-up of this process (TensorFlow's and Beam's imports, first graph traces)
    beam(small, [])
    rows = []

    def measure(name, fn, *a, memory=False):
        t0 = timed(fn, small, *a)
        _reset_peak_rss()
        sampler = WorkerPeakMemory() if memory else None
        if sampler:
            sampler.__enter__()
        try:
            t1 = timed(fn, clips, *a)
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
        peaks = sampler.workers() if sampler else [peak_rss_mib() or 0.0]
        rows.append((name, t0, t1, clips / t1, (clips - small) / (t1 - t0) if t1 > t0 else float("nan"), peaks))
        print(f"  {name}: t(N0) = {t0:.1f} s, t(N) = {t1:.1f} s", flush=True)

    measure("single process (TF default threads)", single)
    measure("DirectRunner, 1 in-process worker", beam, [])
    for workers in (1, 2):
        flags = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        measure(f"DirectRunner, {workers} worker process{'es' if workers > 1 else ''}, 1 TF thread each", beam, flags, 1,
                memory=True)
    print(f"\n{'configuration':<56} {'t(N0) s':>8} {'t(N) s':>7} {'clips/s':>8} {'steady':>7}  peak RSS (MiB)")
    for name, t0, t1, rate, steady, peaks in rows:
        where = "workers: " if "worker process" in name else "this process: "
        print(f"{name:<56} {t0:8.1f} {t1:7.1f} {rate:8.1f} {steady:7.1f}  {where}{', '.join(f'{p:.0f}' for p in peaks) or '-'}")
    single_row, inproc, one, two = rows
    print(f"\nDirectRunner in-process / single process: {inproc[3] / single_row[3]:.2f} end to end, "
          f"{inproc[4] / single_row[4]:.2f} steady (target >= 0.80)")
    print(f"2 / 1 worker processes, 1 TF thread each: {two[3] / one[3]:.2f}x end to end, {two[4] / one[4]:.2f}x steady "
          f"(target >= 1.6x)")
