"""Faults and hostile input, long form (issue 26): the figures of docs/reliability.md.

Runs, on the tiny test model (tests/tiny.py), and prints counts per surface:

- **properties**: the hypothesis properties of tests/test_faults_properties.py under the ``long`` profile
  (``--examples`` random examples each): examples tried, outcomes (result / ValueError), crashes (any other
  exception or a failed check, with the falsifying example);
- **files**: the corpus of tests/fuzz_corpus.py with ``--mutants`` mutants per seed through ``load_audio``, explorer
  uploads, Beam's reader and ``tfsonify sonify`` (in process): decoded / refused / crashed, files written for a
  refused one, the slowest file (a hang would show here: each file is timed);
- **interruptions**: ``--interruptions`` runs of ``tfsonify sonify`` on a 30 s file (in process) with SIGINT or
  SIGTERM after a random delay (seeded), each followed by a rerun compared byte for byte with an uninterrupted run.

    python benchmarks/fuzz_bench.py                      # about 10 minutes on 2 busy cores
    python benchmarks/fuzz_bench.py --examples 300 --mutants 10 --interruptions 5 --json fuzz.json
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ["HYPOTHESIS_PROFILE"] = "long"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_properties(sonifier, examples: int) -> dict:
    from hypothesis import settings

    import conftest  # noqa: F401 (registers the ci and long profiles)
    import test_faults_properties as props

    chosen = settings(settings.get_profile("long"), max_examples=examples)  # over the profile bound at import

    sonify = chosen(props.test_sonify_gives_a_result_or_names_the_argument)
    top = chosen(props.test_sonify_top_gives_a_result_or_names_the_argument)
    windows = chosen(props.test_long_clip_windows_give_the_one_pass_result_or_name_the_argument)
    cases = {
        "sonify": lambda: sonify(sonifier),
        "sonify_top": lambda: top(sonifier),
        "long_clip": lambda: windows(sonifier),
        "decode_audio": chosen(props.test_decode_audio_gives_samples_or_a_one_line_error),
        "cli_layers": chosen(props.test_cli_layer_lists_parse_or_name_the_option),
        "cli_window_seconds": chosen(props.test_cli_window_seconds_parse_or_say_what_is_expected),
        "cli_layer": chosen(props.test_cli_layer_argument_is_an_index_or_a_name),
    }
    report = {}
    for name, call in cases.items():
        props.TALLY.clear()
        start, crash = time.perf_counter(), None
        try:
            call()
        except Exception as error:  # a falsified property: hypothesis raises it after shrinking
            crash = "".join(traceback.format_exception_only(type(error), error)).strip()[:400]
        counts = {outcome: n for (prop, outcome), n in props.TALLY.items()}
        report[name] = {"examples": sum(counts.values()) if counts else None, "outcomes": counts,
                        "crashes": 0 if crash is None else 1, "crash": crash,
                        "seconds": round(time.perf_counter() - start, 1)}
        print(f"  {name:<20} {report[name]['examples'] or examples:>6} examples  {counts or ''}  crashes "
              f"{report[name]['crashes']}  ({report[name]['seconds']} s)", flush=True)
    return report


def run_files(model_file: Path, work: Path, mutants: int, sonify_every: int) -> dict:
    import numpy as np

    from fuzz_corpus import corpus
    from tfsonify import cli, load_audio
    from tfsonify.explore.clips import ClipError, ClipLibrary

    items = corpus(seed=26, per_seed=mutants)
    folder = work / "corpus"
    folder.mkdir()
    report = {}

    def tally(surface, outcome, seconds):
        entry = report.setdefault(surface, {"files": 0, "outcomes": Counter(), "crashes": 0, "written_when_refused": 0,
                                            "slowest_s": 0.0})
        entry["files"] += 1
        entry["outcomes"][outcome] += 1
        entry["crashes"] += outcome not in ("decoded", "refused")
        entry["slowest_s"] = round(max(entry["slowest_s"], seconds), 3)
        return entry

    library = ClipLibrary([], 8000, max_seconds=30.0, max_uploads=4)
    try:
        from apache_beam.pvalue import TaggedOutput

        from tfsonify.analysis.beam_io import _DecodeClip

        beam_reader = _DecodeClip(8000, min_samples=8, min_layer=1)
    except ModuleNotFoundError:
        beam_reader = None
    for index, (label, extension, data) in enumerate(items):
        path = folder / f"{index:04d}-{label}{extension}"
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            samples = load_audio(path, 8000)
            outcome = "decoded" if samples.size and np.all(np.isfinite(samples)) else "bad result"
        except ValueError as error:
            outcome = "refused" if "\n" not in str(error) and path.name in str(error) else "unclear error"
        except Exception as error:  # noqa: BLE001 (counted, not hidden)
            outcome = f"crash {type(error).__name__}"
        tally("load_audio", outcome, time.perf_counter() - start)
        start = time.perf_counter()
        try:
            library.add_upload(data, path.name)
            outcome = "decoded"
        except ClipError as error:
            outcome = "refused" if 400 <= error.status < 500 and "<_io." not in str(error) else "unclear error"
        except Exception as error:  # noqa: BLE001
            outcome = f"crash {type(error).__name__}"
        tally("explorer upload", outcome, time.perf_counter() - start)
        if beam_reader is not None:
            start = time.perf_counter()
            try:
                (out,) = list(beam_reader.process((str(path), None)))
                outcome = "refused" if isinstance(out, TaggedOutput) else "decoded"
            except Exception as error:  # noqa: BLE001
                outcome = f"crash {type(error).__name__}"
            tally("beam reader", outcome, time.perf_counter() - start)
        if index % sonify_every == 0:
            out = work / "sonify" / f"{index:04d}"
            start = time.perf_counter()
            devnull = open(os.devnull, "w")
            stderr, sys.stderr = sys.stderr, devnull
            try:
                status = cli.main(["sonify", str(path), "--model", str(model_file), "--layer", "1", "--out", str(out),
                                   "--no-plots", "--no-progress"])
                outcome = {0: "decoded", 2: "refused"}.get(status, f"exit {status}")
            except BaseException as error:  # noqa: BLE001
                outcome = f"crash {type(error).__name__}"
            finally:
                sys.stderr = stderr
                devnull.close()
            entry = tally("tfsonify sonify", outcome, time.perf_counter() - start)
            if outcome == "refused" and out.exists():
                entry["written_when_refused"] += 1
    for entry in report.values():
        entry["outcomes"] = dict(entry["outcomes"])
    return report


def _print_files(report: dict) -> None:
    for surface, entry in report.items():
        print(f"  {surface:<16} {entry['files']:>5} files  {entry['outcomes']}  crashes {entry['crashes']}  "
              f"written when refused {entry['written_when_refused']}  slowest {entry['slowest_s']} s", flush=True)


def run_interruptions(model_file: Path, work: Path, runs: int) -> dict:
    import numpy as np
    import soundfile

    from interrupt import check_complete, interrupt_in_process, outputs
    from tfsonify import cli

    rng = np.random.default_rng(26)
    clip = work / "long.wav"
    soundfile.write(clip, rng.normal(0, 0.2, 30 * 8000).astype("float32"), 8000, subtype="PCM_16")

    def argv(out):
        return ["sonify", str(clip), "--model", str(model_file), "--layer", "5", "--top", "2", "--out", str(out),
                "--no-progress"]

    devnull = open(os.devnull, "w")
    stderr, sys.stderr = sys.stderr, devnull
    try:
        assert cli.main(argv(work / "ref")) == 0
        reference = outputs(work / "ref")
        counts = Counter()
        for run in range(runs):
            sig = (signal.SIGINT, signal.SIGTERM)[run % 2]
            out = work / f"run{run}"
            status = interrupt_in_process(argv(out), sig, delay=4.0, seed=run)
            counts[f"exit {status}"] += 1
            try:
                check_complete(out, samples=30 * 8000)
            except AssertionError:
                counts["half-written"] += 1
            assert cli.main(argv(out)) == 0
            counts["rerun identical" if outputs(out) == reference else "rerun differs"] += 1
    finally:
        sys.stderr = stderr
        devnull.close()
    return {"runs": runs, "outcomes": dict(counts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples per property (default 2000)")
    parser.add_argument("--mutants", type=int, default=30, help="mutants per seed file (default 30)")
    parser.add_argument("--sonify-every", type=int, default=4, help="run the sonify CLI on every Nth file (default 4)")
    parser.add_argument("--interruptions", type=int, default=20, help="interrupted sonify runs (default 20)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    import contextlib

    import tensorflow as tf

    import tfsonify
    from tiny import tiny_cnn12
    from tfsonify.models.checkpoint import save_model

    print(f"fuzz_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", flush=True)
    tf.get_logger().setLevel("ERROR")  # retracing notices: the properties try many shapes on purpose
    model = tiny_cnn12(1234)
    sonifier = tfsonify.Sonifier(model)
    results = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as folder:
        work = Path(folder)
        model_file = save_model(model, work / "tiny.keras", sample_rate=8000)
        print("properties (hypothesis, long profile):", flush=True)
        results["properties"] = run_properties(sonifier, args.examples)
        print("files (generated corpus):", flush=True)
        with contextlib.redirect_stdout(open(os.devnull, "w")):  # the CLI's "wrote ..." lines
            files = run_files(model_file, work, args.mutants, args.sonify_every)
        results["files"] = files
        _print_files(files)
        print("interruptions:", flush=True)
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            results["interruptions"] = run_interruptions(model_file, work, args.interruptions)
        print(f"  sonify (30 s file) {args.interruptions:>4} interruptions  {results['interruptions']['outcomes']}")
    results["load_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    crashes = sum(p["crashes"] for p in results["properties"].values()) + sum(
        f["crashes"] for f in results["files"].values())
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
