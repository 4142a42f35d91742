"""CLI start-up: wall time of `--help`, a command's `--help` and an argument error, next to `python -c pass`.

Each case is a fresh ``python -m tfsonify ...`` process of this checkout (``PYTHONPATH`` = the repository), run
``--repeats`` times (default 5, after one unmeasured warm-up run that fills the OS file cache); the median and the
range are printed side by side, with the load average before and after (other work on the machine slows every row
alike, ``python -c pass`` included: compare rows within one run). ``--import-tensorflow`` adds ``python -c "import
tensorflow"`` for scale (what every row paid before the CLI was lazy).

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --repeats 9 --import-tensorflow --json cli_startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CASES = [
    ("python -c pass", ["-c", "pass"], 0),
    ("tfsonify --help", ["-m", "tfsonify", "--help"], 0),
    ("tfsonify sonify --help", ["-m", "tfsonify", "sonify", "--help"], 0),
    ("tfsonify sonify x.wav (argument error)", ["-m", "tfsonify", "sonify", "x.wav"], 2),
    ("tfsonify request --help", ["-m", "tfsonify", "request", "--help"], 0),
]


def wall_times(args: list[str], status: int, repeats: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    times = []
    for run in range(repeats + 1):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, timeout=600)
        elapsed = time.perf_counter() - start
        if result.returncode != status:
            raise SystemExit(f"{' '.join(args)}: exit status {result.returncode}, expected {status}:\n"
                             f"{result.stderr.decode(errors='replace')[-2000:]}")
        if run:  # the first run warms the file cache
            times.append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured runs per case (default 5)")
    parser.add_argument("--import-tensorflow", action="store_true", help="also time python -c 'import tensorflow'")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; received {args.repeats}")
    cases = CASES + ([("python -c 'import tensorflow'", ["-c", "import tensorflow"], 0)] if args.import_tensorflow else [])
    load_before = os.getloadavg()
    rows = []
    for name, argv, status in cases:
        times = wall_times(argv, status, args.repeats)
        rows.append({"case": name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)})
    load_after = os.getloadavg()
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, median of {args.repeats} runs; load average "
          f"(1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'case':42s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for row in rows:
        print(f"{row['case']:42s} {row['median_s']:7.3f}s {row['min_s']:7.3f}s {row['max_s']:7.3f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpus": os.cpu_count(), "repeats": args.repeats, "rows": rows,
                                               "load_before": load_before, "load_after": load_after}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
