"""`tfsonify explore` under load: simulated users uploading clips and sonifying maps, against a loopback server.

    python benchmarks/explore_load_bench.py [--users 20] [--duration 60] [--width 0.0625] [--layer 3]

Each user loops for ``--duration`` seconds: upload a 1 s WAV of its own (``POST /api/upload``; one in four
iterations, else reuse its last clip), then a map click (``GET .../layers/L/maps/F`` and its ``sonification.wav``)
for a random map; a 503 answer is retried as the page retries it (``--retries``). A narrow CNN12 (random init). Reported: requests, p50/p99 latency per kind, and statuses;
server errors are 5xx answers other than 503 (503 is the documented "worker queue full, retry" answer), plus
failed connections. The server runs in this process, as ``tfsonify explore`` does, so client threads share its
cores: read latencies as upper bounds.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def request(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    """``(status, body)``; status 0 for a failed connection."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST" if data else "GET"),
                                    timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def page_request(url: str, attempts: int, data: bytes | None = None) -> tuple[int, bytes, int]:
    """:func:`request` retried as the explorer page's ``request()`` does (explore.js): on 503, wait 250 ms x
    (attempt + 1) and try again, at most ``attempts`` retries. Returns ``(status, body, 503s seen)``."""
    for attempt in range(attempts + 1):
        status, body = request(url, data)
        if status != 503 or attempt == attempts:
            return status, body, attempt + (status == 503)
        time.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


def wav_bytes(seed: int, rate: int = 8000) -> bytes:
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(rate) / rate
    clip = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 900) * t) + 0.05 * rng.normal(size=t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, clip.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--width", type=float, default=0.0625, help="CNN12 width multiplier (default 1/16)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--retries", type=int, default=10,
                        help="retries of a 503 answer, spaced as the page spaces them (default 10, as explore.js; "
                             "0 = count every 503 as the user's answer)")
    args = parser.parse_args()

    import keras
    import soundfile
    import tensorflow as tf

    import tfsonify
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app

    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=args.width)
    work = Path(tempfile.mkdtemp(prefix="tfsonify-explore-load-"))
    latencies: dict[str, list[float]] = {"upload": [], "click": []}
    statuses: Counter = Counter()
    refused = Counter()  # 503 answers seen (retried, or the last one when the retries ran out)
    lock = threading.Lock()
    try:
        soundfile.write(work / "seed.wav", np.zeros(8000, np.float32), 8000)
        session = ModelSession(model, name=f"CNN12 x{args.width:g}")
        explorer = Explorer([session], ClipLibrary([work], 8000, max_uploads=10_000))
        with ExplorerServer(build_app(explorer)) as url:
            clips = json.loads(request(url + "/api/clips")[1])["clips"]
            warm = f"{url}/api/models/0/clips/{clips[0]['id']}/layers/{args.layer}/maps/0"
            request(warm)  # trace the layer's graphs before the clock starts
            maps = json.loads(request(f"{url}/api/models/0/clips/{clips[0]['id']}/layers/{args.layer}/overview")[1])["maps"]
            stop = time.monotonic() + args.duration

            def user(index: int) -> None:
                rng = random.Random(index)
                clip_id, iteration = clips[0]["id"], 0
                while time.monotonic() < stop:
                    if iteration % 4 == 0:
                        start = time.perf_counter()
                        status, body, busy = page_request(f"{url}/api/upload?name=u{index}-{iteration}.wav",
                                                          args.retries, wav_bytes(index * 100_000 + iteration))
                        with lock:
                            refused["upload"] += busy
                            latencies["upload"].append(time.perf_counter() - start)
                            statuses[("upload", status)] += 1
                        if status == 201:
                            clip_id = json.loads(body)["id"]
                    start = time.perf_counter()
                    base = f"{url}/api/models/0/clips/{clip_id}/layers/{args.layer}"
                    status, body, busy = page_request(f"{base}/maps/{rng.randrange(maps)}", args.retries)
                    if status == 200:
                        status, _, more = page_request(url + json.loads(body)["urls"]["sonification.wav"], args.retries)
                        busy += more
                    with lock:
                        refused["click"] += busy
                        latencies["click"].append(time.perf_counter() - start)
                        statuses[("click", status)] += 1
                    iteration += 1

            started = time.perf_counter()
            threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    total = sum(statuses.values())
    errors = sum(n for (kind, status), n in statuses.items() if status == 0 or (status >= 500 and status != 503))
    print(f"explorer load: {args.users} users x {elapsed:.1f} s, CNN12 width {args.width:g} "
          f"({model.count_params():,} parameters), block {args.layer}, 1 s uploads at 8 kHz")
    for kind, values in latencies.items():
        print(f"  {kind:7s} {len(values):6d} requests  p50 {1000 * percentile(values, 50):8.1f} ms  "
              f"p99 {1000 * percentile(values, 99):8.1f} ms")
    print(f"  statuses: {dict(sorted((f'{k} {s}', n) for (k, s), n in statuses.items()))}")
    print(f"  503 answers along the way (each retried after 250 ms x attempt, at most {args.retries} times, as the "
          f"page does): {dict(refused)}")
    print(f"  total {total} user actions ({total / elapsed:.1f}/s); server errors (5xx but 503, failed connections): "
          f"{errors}; still 503 after the retries: {sum(n for (_, s), n in statuses.items() if s == 503)}")
    print(f"  load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
