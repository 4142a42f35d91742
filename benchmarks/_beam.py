"""Beam pipelines vs the single-process path, side by side in one run (streaming top-k, k = 3, all 11 blocks).

Prints clips/s for, on the same WAV files (decoding included everywhere):
  * the single-process path (``load_audio`` + ``top_activating_inputs``, TensorFlow's default threads);
  * the DirectRunner with one in-process worker (the same process and threads: Beam's own overhead; target: within
    20 % of the single-process clips/s);
  * the DirectRunner in multi-processing mode with 1 and 2 worker processes, one TensorFlow thread each (on 2 cores
    one process already uses both, so scaling is measured per thread; target >= 1.6x), and each worker's peak RSS.
Worker start-up (a fresh Python importing TensorFlow) is excluded from the multi-processing rates by running every
configuration on N and 2N clips: rate = N / (time(2N) - time(N)).

Run by ``python benchmarks/analysis_bench.py --beam [--beam-clips 64] [--seconds 1.0] [--width 0.5] [--batch-size 8]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
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


class PeakMemory:
    """Samples VmHWM (peak RSS) of this process's descendants every 0.2 s: ``{pid: MiB}``."""

    def __init__(self):
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()

    def _descendants(self) -> list[int]:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, frontier = [], [os.getpid()]
        while frontier:
            children = [pid for pid, ppid in parents.items() if ppid in frontier]
            found += children
            frontier = children
        return found

    def _run(self):
        while not self._stop.wait(0.2):
            for pid in self._descendants():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peaks[pid] = max(self.peaks.get(pid, 0.0), int(line.split()[1]) / 1024.0)
                except OSError:
                    pass

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()

    def workers(self, threshold_mb: float = 300.0) -> list[float]:
        """Peaks of the processes that loaded TensorFlow (the SDK workers; helper processes stay far below)."""
        return sorted((mb for mb in self.peaks.values() if mb > threshold_mb), reverse=True)


def compare(clips: int, seconds: float, width: float, batch_size: int) -> None:
    """Print the comparison table (see the module docstring)."""
    args = argparse.Namespace(clips=clips, seconds=seconds, width=width, batch_size=batch_size)

    root = Path(tempfile.mkdtemp(prefix="beam_bench_"))
    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=args.width)
    model.save(root / "model.keras")
    rng = np.random.default_rng(0)
    samples = int(args.seconds * 8000)
    for i in range(2 * args.clips):
        soundfile.write(root / f"{'a' if i < args.clips else 'b'}{i:05d}.wav", rng.normal(0, 0.2, samples).astype("float32"), 8000)
    patterns = {args.clips: str(root / "a*.wav"), 2 * args.clips: str(root / "*.wav")}
    sonifier = tfsonify.Sonifier(tfsonify.load_checkpoint(root / "model.keras"))

    def single(n):
        files = sorted(Path(p) for p in __import__("glob").glob(patterns[n]))
        top_activating_inputs(sonifier, (tfsonify.load_audio(f) for f in files), None, k=3, batch_size=args.batch_size)

    def beam(n, flags, tf_threads=None):
        tb.run_topk([patterns[n]], str(root / "model.keras"), str(root / f"out{n}"), None, k=3, batch_size=args.batch_size,
                    options=tb.pipeline_options("DirectRunner", flags), tf_threads=tf_threads)

    def timed(fn, *a):
        start = time.perf_counter()
        fn(*a)
        return time.perf_counter() - start

    print(f"CNN12 width {args.width} ({model.count_params():,} parameters), N = {args.clips} WAVs of {args.seconds:g} s, "
          f"top-k (k=3, 11 blocks), batch {args.batch_size}, {os.cpu_count()} CPU(s)\n")
    single(args.clips)  # warm-up: tracing excluded
    beam(args.clips, [])
    rows = []
    n = args.clips
    t1, t2 = timed(single, n), timed(single, 2 * n)
    rows.append(("single process (TF default threads)", n / t1, 2 * n / t2, None, []))
    t1, t2 = timed(beam, n, []), timed(beam, 2 * n, [])
    rows.append(("DirectRunner, 1 in-process worker", n / t1, 2 * n / t2, None, []))
    for workers in (1, 2):
        flags = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        with PeakMemory() as memory:
            t1, t2 = timed(beam, n, flags, 1), timed(beam, 2 * n, flags, 1)
        rows.append((f"DirectRunner, {workers} worker process(es), 1 TF thread each", n / t1, 2 * n / t2, n / (t2 - t1),
                     memory.workers()))
    print(f"{'configuration':<56} {'N clips/s':>9} {'2N clips/s':>10} {'marginal':>9}  worker peak RSS (MiB)")
    for name, r1, r2, marginal, peaks in rows:
        print(f"{name:<56} {r1:9.1f} {r2:10.1f} {'' if marginal is None else f'{marginal:9.1f}':>9}  "
              f"{', '.join(f'{p:.0f}' for p in peaks) or '-'}")
    print(f"\nDirectRunner in-process / single process at 2N: {rows[1][2] / rows[0][2]:.2f}")
    if rows[2][3] > 0 and rows[3][3] > 0:
        print(f"2 workers / 1 worker, 1 TF thread each (marginal rates): {rows[3][3] / rows[2][3]:.2f}x")

