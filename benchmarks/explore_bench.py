"""`tfsonify explore` latency: a map click to a playable sonification, and the page's first load.

    python benchmarks/explore_bench.py [--width 1.0] [--layer 8] [--seconds 10] [--maps 9]
    python benchmarks/explore_bench.py --quick   # width 1/8, 3 maps: proves the run works, not the target

Full-width CNN12 (random init; speed does not depend on the weights), a 10 s clip, block 8. The server runs
in-process on a loopback port, as `tfsonify explore` does. Measured over HTTP, like the page:

- click -> playable: ``GET .../maps/F`` (sonify map F, its activation, coherence) then ``GET .../sonification.wav``,
  for maps never sonified before (cache misses) with the layer's graphs traced and its overview shown (warm);
- the same for a map already sonified (cache hit);
- the first click on a layer nobody has opened (cold: includes tracing the graphs);
- the page's first load in headless Chromium: navigation start to the clip list rendered, and to the first clip's
  view ready (overview image decoded, sonification of the most active map loaded).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:
        return response.read()


def click(base: str, feature: int) -> float:
    """Seconds from the click (map request) until the sonification WAV is in hand."""
    import json

    start = time.perf_counter()
    summary = json.loads(fetch(f"{base}/maps/{feature}"))
    fetch(base.split("/api/")[0] + summary["urls"]["sonification.wav"])
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--maps", type=int, default=9, help="distinct maps clicked (median reported)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--quick", action="store_true", help="width 1/8 and 3 maps (a smoke run; the target is width 1)")
    args = parser.parse_args()
    if args.quick:
        args.width, args.maps = 0.125, 3

    import keras
    import soundfile
    import tensorflow as tf

    import tfsonify
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app

    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12(width_multiplier=args.width)
    work = Path(tempfile.mkdtemp(prefix="tfsonify-explore-bench-"))
    try:
        rng = np.random.default_rng(0)
        t = np.arange(int(args.seconds * 8000)) / 8000
        clip = (0.3 * np.sin(2 * np.pi * (200 + 300 * np.sin(t)) * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
        soundfile.write(work / "clip.wav", clip, 8000)
        soundfile.write(work / "other.wav", clip[::-1].copy(), 8000)
        session = ModelSession(model, name=f"CNN12 x{args.width:g}")
        explorer = Explorer([session], ClipLibrary([work], 8000))
        with ExplorerServer(build_app(explorer)) as url:
            import json

            clips = {c["name"]: c["id"] for c in json.loads(fetch(url + "/api/clips"))["clips"]}
            base = f"{url}/api/models/0/clips/{clips['clip.wav']}/layers/{args.layer}"
            started = time.perf_counter()
            cold = click(base, 0)  # first click: traces the layer's graphs
            overview = json.loads(fetch(f"{base}/overview"))
            order = overview["order"]
            for warm_up in order[1:3]:
                click(base, warm_up)
            misses = [click(base, f) for f in order[3:3 + args.maps]]
            hits = [click(base, f) for f in order[3:3 + args.maps]]
            total = time.perf_counter() - started
            sonify_only = []
            x = clip
            for f in order[3:3 + args.maps]:
                start = time.perf_counter()
                session.sonify(x, str(args.layer), [f])
                sonify_only.append(time.perf_counter() - start)
            print(f"CNN12 width {args.width:g} ({model.count_params():,} parameters), {args.seconds:g} s clip, "
                  f"block {args.layer} ({overview['maps']} maps x {overview['steps']} steps), "
                  f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op threads")
            print(f"  first click on the layer (cold, tracing included):  {1000 * cold:8.1f} ms")
            print(f"  click -> playable, new map (warm), median of {len(misses)}:  {1000 * statistics.median(misses):8.1f} ms "
                  f"(min {1000 * min(misses):.1f}, max {1000 * max(misses):.1f})")
            print(f"  click -> playable, map already sonified, median:    {1000 * statistics.median(hits):8.1f} ms")
            print(f"  Sonifier.sonify alone (same maps), median:          {1000 * statistics.median(sonify_only):8.1f} ms")
            print(f"  (server-side bench total {total:.1f} s)")
            if not args.no_browser:
                page_load(url, clips["other.wav"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def page_load(url: str, clip_id: str) -> None:
    from screenshot_explore import chromium

    driver = chromium(1440, 900)
    try:
        driver.set_script_timeout(300)
        loads = []
        for _ in range(3):
            driver.get(url + "/?fresh=" + str(time.time()))
            listed = driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const check = () => document.querySelectorAll('#clips li').length ? done(performance.now()) : setTimeout(check, 5);
                check();""")
            loads.append(listed)
        driver.get(f"{url}/?clip={clip_id}")
        ready = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const check = () => {
              const p = document.querySelector('.panel');
              const ok = p && p.querySelector('.overview-img').naturalWidth > 0 && p.querySelector('.sound-spec').naturalWidth > 0;
              ok ? done(performance.now()) : setTimeout(check, 10);
            };
            check();""")
        print(f"  page first load to the clip list rendered (Chromium, median of 3): {statistics.median(loads):8.1f} ms")
        print(f"  page load with ?clip= to that clip's view ready (new clip, block 8 overview + top map's "
              f"sonification and spectrogram): {ready:8.1f} ms")
    finally:
        driver.quit()
        shutil.rmtree(driver.profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
