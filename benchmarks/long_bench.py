"""Long recordings and live audio: memory and speed of exact windows, the file CLI and streams.

Full-width CNN12 (random weights, seed 0), block 11, top 3 maps. Each case runs in its own subprocess and
reports its own peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and wall time:

- API, 10 and 60 minutes: ``Sonifier.sonify_top(x, 11, 3)`` windowed (default 5 s windows); at 10 minutes also
  in one pass (``window_seconds=None``) for the throughput ratio (that case needs ~10 GB of memory);
- CLI, 60 minutes: ``tfsonify sonify`` on a 44.1 kHz stereo FLAC (decoded and resampled in blocks);
- streams on ONE thread: ``Sonifier.stream`` (TensorFlow) and ``tfsonify.edge.model.EdgeModel.stream`` (LiteRT,
  fixed 8000-sample model) at blocks 5 and 11, 60 s of audio in 512-sample blocks: real-time factor and latency.

``--compare REF`` runs every case on the git commit ``REF`` (extracted with ``git archive`` into a temporary folder)
and on this checkout, alternated (REF, this, REF, this ... ``--repeat`` times), each in a fresh process: on a shared
machine the load changes during a run, so compare the ratios of neighbouring runs, not absolute times.

    python benchmarks/long_bench.py            # everything; the two 60-minute cases dominate (see the README)
    python benchmarks/long_bench.py --quick    # 1- and 3-minute API cases, a 1-minute CLI case, 20 s streams
    python benchmarks/long_bench.py --compare 2e2d4b5 --no-one-pass   # before/after in one run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("LONG_BENCH_TREE", REPO))  # the tfsonify a case imports (--compare sets it)
sys.path.insert(0, str(TREE))
from _trees import extract, ratio_line, run_in  # noqa: E402
RATE = 8000


def clip(minutes: float):
    """Deterministic test signal at 8 kHz: chirps, tones and gated noise, float32, built in 1-minute blocks (a
    60-minute clip in float64 temporaries would add ~0.7 GB to the peak RSS measured)."""
    import numpy as np

    n = int(minutes * 60 * RATE)
    rng = np.random.default_rng(0)
    wave = np.empty(n, np.float32)
    for start in range(0, n, 60 * RATE):
        t = np.arange(start, min(n, start + 60 * RATE), dtype=np.float64) / RATE
        block = 0.3 * np.sin(2 * np.pi * (200 + 150 * np.sin(2 * np.pi * 0.01 * t)) * t)
        block += rng.normal(0, 0.05, t.size) * (np.sin(2 * np.pi * 0.2 * t) > 0)
        wave[start:start + t.size] = block
    return wave


def model():
    import keras

    import tfsonify

    keras.utils.set_random_seed(0)
    return tfsonify.CNN12()


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def case_api(minutes: float, windowed: bool) -> dict:
    import tfsonify
    from tfsonify.engine.long_clips import DEFAULT_WINDOW_SECONDS

    sonifier = tfsonify.Sonifier(model())
    window = DEFAULT_WINDOW_SECONDS if windowed else None
    sonifier.sonify_top(clip(0.1), 11, 3, window_seconds=window)  # build the graphs
    x = clip(minutes)
    start = time.perf_counter()
    sonifier.sonify_top(x, 11, 3, window_seconds=window)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "throughput": minutes * 60 / seconds, "rss_gb": rss_gb()}


def case_cli(flac: str, model_path: str, out: str) -> dict:
    from tfsonify.cli import main

    start = time.perf_counter()
    status = main(["sonify", flac, "--model", model_path, "--layer", "11", "--top", "3", "--out", out, "--no-plots",
                   "--no-progress"])
    seconds = time.perf_counter() - start
    assert status == 0
    return {"seconds": seconds, "rss_gb": rss_gb()}


def _stream_rtf(stream, x) -> float:
    start = time.perf_counter()
    for i in range(0, x.size, 512):
        stream.process(x[i:i + 512])
    stream.flush()
    return x.size / RATE / (time.perf_counter() - start)


def case_stream_tf(layer: int, seconds: float = 60.0) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tfsonify

    sonifier = tfsonify.Sonifier(model())
    x = clip(seconds / 60)
    feature = int(sonifier.top_features(x[:80000], layer, 1)[0][0])
    warm = sonifier.stream(layer, [feature], reference_peak=1.0)
    _stream_rtf(warm, x[:RATE * 5])
    stream = sonifier.stream(layer, [feature], reference_peak=1.0)
    return {"rtf": _stream_rtf(stream, x), "latency_ms": 1000 * stream.latency / RATE, "hop": stream.hop}


def case_stream_lite(tflite: str, layer: int, seconds: float = 60.0) -> dict:
    x = clip(seconds / 60)
    try:
        from tfsonify.edge.model import EdgeModel

        edge = EdgeModel(tflite, num_threads=1)

        def make():
            return edge.stream(layer, [0], 1.0)
    except ImportError:  # a --compare tree from before EdgeModel (its litert_stream on an interpreter)
        from ai_edge_litert.interpreter import Interpreter

        from tfsonify.edge import windows as edge_windows

        interpreter = Interpreter(model_path=tflite, num_threads=1)

        def make():
            return edge_windows.litert_stream(interpreter, layer, [0], 1.0)
    _stream_rtf(make(), x[:RATE * 5])
    stream = make()
    return {"rtf": _stream_rtf(stream, x), "latency_ms": 1000 * stream.latency / RATE, "hop": stream.hop,
            "tensorflow_loaded": "tensorflow" in sys.modules}


TREES: list[tuple[str, Path]] = [("this", REPO)]  # (label, tfsonify checkout); --compare puts REF first


def run_case(*args: str, tree: Path = REPO) -> dict:
    """One case in a fresh interpreter importing ``tree``'s tfsonify; its JSON result (peak RSS is the subprocess's
    own)."""
    return run_in(tree, __file__, "--case", *args)


def compared(*args: str, repeat: int = 1) -> list[tuple[str, dict]]:
    """``run_case(*args)`` on every tree of :data:`TREES`, alternated ``repeat`` times: ``[(label, result), ...]``."""
    return [(label, run_case(*args, tree=tree)) for _ in range(repeat) for label, tree in TREES]


def write_flac(path: Path, minutes: float) -> None:
    """A 44.1 kHz stereo FLAC written in blocks (never held whole)."""
    import numpy as np
    import soundfile

    rate, n = 44100, int(minutes * 60 * 44100)
    rng = np.random.default_rng(1)
    with soundfile.SoundFile(str(path), "w", rate, 2, subtype="PCM_16", format="FLAC") as handle:
        for start in range(0, n, rate * 30):
            t = np.arange(start, min(n, start + rate * 30)) / rate
            left = 0.3 * np.sin(2 * np.pi * (300 + 100 * np.sin(2 * np.pi * 0.02 * t)) * t)
            right = rng.normal(0, 0.05, t.size) * (np.sin(2 * np.pi * 0.3 * t) > 0)
            handle.write(np.stack([left, right], 1).astype(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1- and 3-minute API cases, a 1-minute CLI FLAC, 20 s streams")
    parser.add_argument("--compare", metavar="REF", help="also run git commit REF, alternated with this checkout")
    parser.add_argument("--repeat", type=int, default=1, help="alternations per case (with --compare)")
    parser.add_argument("--no-one-pass", dest="one_pass", action="store_false",
                        help="skip the one-pass API case (10 minutes in one pass needs ~10 GB)")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        kind, *rest = args.case
        if kind == "api":
            out = case_api(float(rest[0]), rest[1] == "windowed")
        elif kind == "cli":
            out = case_cli(*rest)
        elif kind == "stream_tf":
            out = case_stream_tf(int(rest[0]), float(rest[1]))
        else:
            out = case_stream_lite(rest[0], int(rest[1]), float(rest[2]))
        out["load"] = os.getloadavg()[0]
        print(json.dumps(out))
        return 0

    print("full-width CNN12 (random weights), block 11, top 3 maps; each case in its own process\n")
    from tfsonify.engine.long_clips import DEFAULT_WINDOW_SECONDS

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="long-bench-") as folder:
        folder = Path(folder)
        if args.compare:
            TREES.insert(0, (args.compare, extract(args.compare, folder / "trees")))
            print(f"trees, alternated x{args.repeat}: " + ", ".join(f"{label} ({tree})" for label, tree in TREES))
            print(f"load average at start: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores\n")
        short, long_ = ("1", "3") if args.quick else ("10", "60")
        print(f"({'QUICK: ' if args.quick else ''}API cases at {short} and {long_} minutes; windows of "
              f"{DEFAULT_WINDOW_SECONDS:g} s)", flush=True)

        def show(name, runs, target=""):
            for label, r in runs:
                rate = f"{r['throughput']:7.1f} audio s/s" if "throughput" in r else ""
                print(f"{name:30s} [{label:>8s}] {r['seconds']:8.1f} s  {rate}  peak RSS {r['rss_gb']:.2f} GB{target}  "
                      f"(load {r.get('load', float('nan')):.1f})", flush=True)
            _ratios(name, runs)

        if args.one_pass:
            show(f"API {short} min, one pass", compared("api", short, "whole", repeat=args.repeat))
        show(f"API {short} min, {DEFAULT_WINDOW_SECONDS:g} s windows", compared("api", short, "windowed", repeat=args.repeat))
        show(f"API {long_} min, {DEFAULT_WINDOW_SECONDS:g} s windows", compared("api", long_, "windowed", repeat=args.repeat),
             "  (target < 1.5 GB)")

        minutes = 1 if args.quick else 60
        flac, model_path = folder / "long.flac", folder / "cnn12.keras"
        started = time.perf_counter()
        write_flac(flac, minutes)
        print(f"\nwrote a {minutes}-min 44.1 kHz stereo FLAC ({flac.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - started:.0f} s")
        model().save(model_path)
        runs = []
        for index in range(args.repeat):
            for label, tree in TREES:
                result = run_case("cli", str(flac), str(model_path), str(folder / f"out-{index}-{label}"), tree=tree)
                result["throughput"] = minutes * 60 / result["seconds"]
                runs.append((label, result))
        show(f"CLI sonify {minutes} min FLAC", runs, "  (target < 1.5 GB)")

        seconds = 20 if args.quick else 60
        print(f"\nstreams, ONE thread, {seconds} s of audio in 512-sample blocks")
        from tfsonify.export.tflite import export_tflite

        tflite = folder / "cnn12.tflite"
        export_tflite(model(), tflite, length=8000, layers=[5, 11], top_k=3)
        for layer in (5, 11):
            for kind, extra in (("stream_tf", ()), ("stream_lite", (str(tflite),))):
                runs = compared(kind, *extra, str(layer), str(seconds), repeat=args.repeat)
                for label, r in runs:
                    print(f"block {layer:2d} {kind:11s} [{label:>8s}] {r['rtf']:6.1f}x real time (latency "
                          f"{r['latency_ms']:.0f} ms, hop {r['hop']}"
                          f"{'; TensorFlow imported: ' + str(r['tensorflow_loaded']) if 'tensorflow_loaded' in r else ''})"
                          f"  (load {r.get('load', float('nan')):.1f})", flush=True)
                _ratios(f"block {layer} {kind}", runs, key="rtf", higher=True)
    print(f"\ntotal {time.perf_counter() - began:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def _ratios(name: str, runs: list[tuple[str, dict]], key: str = "seconds", higher: bool = False) -> None:
    """With two trees: this / REF of neighbouring runs (time ratios > 1 = this is slower; for ``higher`` keys such
    as a real-time factor, REF / this), their median, and the peak RSS ratio."""
    if len(TREES) < 2:
        return
    pairs = [(runs[i][1], runs[i + 1][1]) for i in range(0, len(runs) - 1, 2)]
    line = ratio_line(TREES[0][0], [((new[key], old[key]) if higher else (old[key], new[key])) for old, new in pairs])
    rss = [new["rss_gb"] / old["rss_gb"] for old, new in pairs if "rss_gb" in old]
    print(line + (f"; peak RSS ratio median {sorted(rss)[len(rss) // 2]:.3f}" if rss else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
