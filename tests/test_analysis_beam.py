"""Beam pipelines (tfsonify.analysis.beam) give the single-process results; bad clips go to the dead letter.

The DirectRunner in multi-processing mode (2 worker processes) runs the three analyses in one pipeline (one
worker start-up); the other pipeline tests use the in-process DirectRunner to keep the suite short.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

beam = pytest.importorskip("apache_beam", reason="the [beam] extra is part of the test set-up (scripts/versions.sh)")

import tfsonify  # noqa: E402
from tfsonify.analysis import beam as tb  # noqa: E402
from tfsonify.analysis.coherence import confidence_interval, layer_coherence, top_k_coherence  # noqa: E402
from tfsonify.analysis.sonify_dataset import read_shards, sonify_dataset  # noqa: E402
from tfsonify.analysis.topk import StreamingTopK, top_activating_inputs  # noqa: E402

LAYERS = [1, 5, 11]
REPO = str(Path(tfsonify.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from tiny import tiny_cnn12

    root = tmp_path_factory.mktemp("beam")
    tiny_cnn12(1234).save(root / "model.keras")
    rng = np.random.default_rng(0)
    clips = root / "clips"
    (clips / "sub").mkdir(parents=True)
    t = np.arange(3000) / 8000.0
    for i, n in enumerate([2600] * 5 + [3000] * 3):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t[:n]) + rng.normal(0, rng.uniform(0.02, 0.3), n)
        soundfile.write(clips / ("sub" if i % 3 == 0 else "") / f"c{i:02d}.wav", wave.astype("float32"), 8000, subtype="FLOAT")
    soundfile.write(clips / "short.wav", rng.normal(0, 0.2, 1000).astype("float32"), 8000, subtype="FLOAT")  # < block 11
    soundfile.write(clips / "silent.wav", np.zeros(2600, np.float32), 8000, subtype="FLOAT")
    soundfile.write(clips / "tiny.wav", np.full(4, 0.1, np.float32), 8000, subtype="FLOAT")  # < block 1: dead letter
    (clips / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (clips / "notes.txt").write_text("not audio, not matched")
    return root


def readable(root: Path) -> list[str]:
    """The clips the single-process path can read, sorted by name (the Beam tie order)."""
    return sorted(str(p) for p in (root / "clips").rglob("*.wav") if p.name not in ("corrupt.wav", "tiny.wav"))


def reference(root: Path):
    sonifier = tfsonify.Sonifier(tfsonify.load_checkpoint(root / "model.keras"))
    names = readable(root)
    return sonifier, names, [tfsonify.load_audio(n, 8000) for n in names]


def manifest(folder) -> list[dict]:
    return sorted(read_shards(folder, "manifest"), key=lambda r: (r["clip"], r["layer"], r["rank"]))


@pytest.mark.slow
def test_multiprocess_direct_runner_equals_single_process(workspace, monkeypatch):
    root = workspace
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))  # workers import this tfsonify
    model, pattern, out = str(root / "model.keras"), [str(root / "clips" / "**")], root / "mp"
    options = tb.pipeline_options("DirectRunner", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    pipeline = beam.Pipeline(options=options)
    tb.topk_pipeline(pipeline, pattern, model, str(out / "topk"), LAYERS, k=3, batch_size=3)
    tb.coherence_pipeline(pipeline, pattern, model, str(out / "coh"), "m", LAYERS, batch_size=3)
    tb.sonify_dataset_pipeline(pipeline, pattern, model, str(out / "son"), [1, 11], top=2, batch_size=3)
    pipeline.run().wait_until_finish()
    sonifier, names, clips = reference(root)

    # Top-k: the same clips (by name) and scores for every map of every block.
    topk = tb.load_topk(str(out / "topk"))
    expected = top_activating_inputs(sonifier, clips, LAYERS, k=3, batch_size=3)
    for layer in LAYERS:
        assert np.array(topk.names)[topk.result.ids[layer]].tolist() == np.array(names)[expected.ids[layer]].tolist()
        np.testing.assert_allclose(topk.result.scores[layer], expected.scores[layer], rtol=1e-5, atol=1e-6)
    assert topk.result.clips == expected.clips == {1: 10, 5: 10, 11: 9}
    assert topk.result.skipped == {1: 1, 5: 1, 11: 2}  # tiny.wav (dead letter) for every block, short.wav for 11

    # Coherence: the same per-layer means, intervals, counts, and every clip's score.
    result, scores, dead = tb.load_coherence(str(out / "coh"), "m")
    expected = layer_coherence(sonifier, clips, LAYERS, batch_size=3)
    assert result.clips == expected.clips == [9, 9, 8] and result.skipped == [2, 2, 3]  # + silent; + short for 11
    for field in ("mean", "low", "high"):
        np.testing.assert_allclose(getattr(result, field), getattr(expected, field), rtol=1e-6, atol=1e-7)
    for i, layer in enumerate(LAYERS):
        np.testing.assert_allclose(sorted(r["score"] for r in scores if r["layer"] == layer), sorted(expected.scores[i]), atol=1e-6)
    clip = next(r for r in scores if r["layer"] == 11)
    direct = top_k_coherence(tfsonify.load_audio(clip["clip"], 8000), sonifier.sonify(tfsonify.load_audio(clip["clip"], 8000), 11))
    assert clip["score"] == pytest.approx(direct, abs=1e-6)

    # Dead letter: the corrupt and the too-short clip, each with its reason, in every pipeline's output.
    for folder in ("topk", "coh", "son"):
        reasons = {Path(r["clip"]).name: r["reason"] for r in read_shards(out / folder, "dead_letter")}
        assert set(reasons) == {"corrupt.wav", "tiny.wav"}
        assert reasons["corrupt.wav"].startswith("unreadable: cannot read") and "corrupt.wav" in reasons["corrupt.wav"]
        assert reasons["tiny.wav"] == "too short: 4 samples, block 1 needs at least 8"

    # Batch sonification: the single-process path writes the same manifest and WAVs (<= 1e-5).
    local = sonify_dataset(sonifier, zip(names, clips), root / "single", [1, 11], top=2, batch_size=3)
    rows, expected_rows = manifest(out / "son"), manifest(root / "single")
    assert len(rows) == local.wavs == 10 * 2 + 9 * 2
    for row, want in zip(rows, expected_rows):
        assert {k: v for k, v in row.items() if k != "activation"} == {k: v for k, v in want.items() if k != "activation"}
        assert row["activation"] == pytest.approx(want["activation"], rel=1e-5, abs=1e-6)
        sound, rate = soundfile.read(out / "son" / row["wav"], dtype="float32")
        assert rate == 8000 and np.max(np.abs(sound - soundfile.read(root / "single" / row["wav"], dtype="float32")[0])) <= 1e-5
    row = rows[0]
    direct = sonifier.sonify(tfsonify.load_audio(row["clip"], 8000), row["layer"], feature=row["feature"])
    np.testing.assert_allclose(soundfile.read(out / "son" / row["wav"], dtype="float32")[0], direct, atol=1e-5)
    assert not list((out / "son").rglob("*.part"))


def test_rerun_replaces_shards_and_in_memory_clips_dead_letter(workspace, tmp_path):
    sonifier, names, clips = reference(workspace)
    bad = clips[0].copy()
    bad[3] = np.nan
    pairs = [(f"clip{i:02d}", c) for i, c in enumerate(clips[:4])] + [("nan", bad), ("stereo", np.zeros((2, 3000), np.float32))]
    model = str(workspace / "model.keras")
    first = tb.run_sonify_dataset(pairs, model, str(tmp_path), [2, 11], top=1, batch_size=2, manifest_shards=2)
    assert sorted(p.name for p in tmp_path.glob("manifest-*")) == ["manifest-00000-of-00002.jsonl", "manifest-00001-of-00002.jsonl"]
    again = tb.run_sonify_dataset(pairs, model, str(tmp_path), [2, 11], top=1, batch_size=4, manifest_shards=1)
    assert [p.name for p in tmp_path.glob("manifest-*")] == ["manifest-00000-of-00001.jsonl"]  # the 2 stale shards removed
    assert first.wavs == again.wavs == 8 and first.clips == again.clips == 4
    assert len(list(tmp_path.rglob("*.wav"))) == 8 and not list(tmp_path.rglob("*.part"))
    reasons = {r["clip"]: r["reason"] for r in again.dead_letter}
    assert reasons == {"nan": "contains NaN or Inf samples", "stereo": "not a non-empty mono waveform [time]: shape (2, 3000)"}
    assert len(read_shards(tmp_path, "dead_letter")) == 2
    with pytest.raises(ValueError, match=r"top must be an integer in 1\.\."):
        tb.run_sonify_dataset(pairs, model, str(tmp_path), [1], top=999)
    with pytest.raises(ValueError, match="--runner must be one of"):
        tb.pipeline_options("LocalRunner")
    with pytest.raises(ValueError, match="look like --name=value"):
        tb.pipeline_options("DirectRunner", ["direct_num_workers=2"])


def test_a_failed_inference_batch_becomes_one_dead_letter_per_clip():
    failure = ([("a.wav", np.zeros(8, np.float32)), ("b.wav", np.zeros(8, np.float32))],
               (RuntimeError, repr(RuntimeError("out of memory")), ["Traceback ..."]))  # ParDo.with_exception_handling
    assert list(tb._failed_batch_records(failure)) == [
        {"clip": name, "reason": "inference failed: RuntimeError('out of memory')"} for name in ("a.wav", "b.wav")]


def test_topk_combiner_is_order_free_and_bounded():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(30, 5)).astype("float32")  # many ties: the earlier (smaller) name wins
    names = [f"clip{i:02d}" for i in range(30)]
    combiner = tb.TopKPerMapFn(3, buffer=4)
    parts = []
    for chunk in np.array_split(rng.permutation(30), 4):  # shuffled partitions, as on several workers
        accumulator = combiner.create_accumulator()
        for i in chunk:
            accumulator = combiner.add_input(accumulator, (names[i], scores[i]))
        assert (accumulator[0] is None or accumulator[0].shape[1] <= 3) and len(accumulator[4]) < 4  # never more than k + buffer per map
        parts.append(accumulator)
    parts.append(combiner.add_input(combiner.create_accumulator(), ("short", None)))
    output = combiner.extract_output(combiner.merge_accumulators(parts))
    tracker = StreamingTopK(5, 3)
    tracker.update(scores, np.arange(30))
    assert (output["names"] == np.array(names)[tracker.ids]).all()
    np.testing.assert_array_equal(output["scores"], tracker.scores)
    assert output["clips"] == 30 and output["skipped"] == 1
    few = combiner.extract_output(combiner.add_input(combiner.create_accumulator(), ("a", scores[0])))
    assert few["scores"].shape == (5, 3) and np.isneginf(few["scores"][:, 1:]).all() and few["names"][0, 1] is None


def test_coherence_combiner_equals_confidence_interval():
    values = np.random.default_rng(2).uniform(0.2, 0.9, 57)
    combiner = tb.CoherenceStatsFn()
    parts = []
    for chunk in np.array_split(values, 5):
        accumulator = combiner.create_accumulator()
        for v in chunk:
            accumulator = combiner.add_input(accumulator, float(v))
        parts.append(accumulator)
    parts.append(combiner.add_input(combiner.create_accumulator(), None))
    count, mean, m2, skipped = combiner.extract_output(combiner.merge_accumulators(parts))
    assert count == 57 and skipped == 1
    np.testing.assert_allclose(tb._interval(count, mean, m2, 0.95), confidence_interval(values), rtol=1e-12)


def run(*argv) -> int:
    from tfsonify.cli import main

    return main([str(a) for a in argv])


def test_cli_runner_gives_the_single_process_outputs(workspace, tmp_path, capsys):
    w, clips = workspace, workspace / "clips"
    model = w / "model.keras"
    good = tmp_path / "good"  # the single-process analyses stop at a corrupt file; the pipelines dead-letter it
    good.mkdir()
    for name in readable(w):
        (good / Path(name).name).write_bytes(Path(name).read_bytes())
    common = ["--model", model, "--layers", "4,11", "--k", "2", "--maps-per-layer", "2", "--no-plots"]
    assert run("analyze", "topk", good, *common, "--out", tmp_path / "t1") == 0
    assert run("analyze", "topk", good, *common, "--out", tmp_path / "t2", "--runner", "DirectRunner",
               "--beam-option=--direct_running_mode=in_memory", "--", "--direct_num_workers=1") == 0
    one, two = (json.loads((tmp_path / t / "topk.json").read_text()) for t in ("t1", "t2"))
    for layer in ("4", "11"):
        assert [[one["clips"][i] for i in row] for row in one["layers"][layer]["ids"]] == \
               [[two["clips"][i] for i in row] for row in two["layers"][layer]["ids"]]
        np.testing.assert_allclose(one["layers"][layer]["scores"], two["layers"][layer]["scores"], rtol=1e-5, atol=1e-7)
        assert one["layers"][layer]["skipped"] == two["layers"][layer]["skipped"]
    folders = sorted(p.name for p in (tmp_path / "t1").glob("L*"))
    assert len(folders) == 8 and folders == sorted(p.name for p in (tmp_path / "t2").glob("L*"))
    for folder in folders:
        a, b = (json.loads((tmp_path / t / folder / "manifest.json").read_text()) for t in ("t1", "t2"))
        assert a["source"] == b["source"]
        np.testing.assert_allclose(soundfile.read(tmp_path / "t1" / folder / a["sonifications"][0]["wav"])[0],
                                   soundfile.read(tmp_path / "t2" / folder / b["sonifications"][0]["wav"])[0], atol=1e-5)

    assert run("analyze", "coherence", good, "--model", f"m={model}", "--layers", "2,11", "--out", tmp_path / "c1") == 0
    assert run("analyze", "coherence", clips, "--model", f"m={model}", "--layers", "2,11", "--out", tmp_path / "c2",
               "--runner", "DirectRunner") == 0
    one, two = (json.loads((tmp_path / c / "coherence_m.json").read_text()) for c in ("c1", "c2"))
    assert one["clips"] == two["clips"] and [s + 1 for s in one["skipped"]] == two["skipped"]  # + tiny.wav (too short)
    np.testing.assert_allclose(one["mean"], two["mean"], rtol=1e-6)
    assert (tmp_path / "c2" / "coherence.png").is_file() and len(read_shards(tmp_path / "c2", "dead_letter")) == 2

    assert run("sonify-dataset", clips, "--model", model, "--layers", "3,11", "--top", "2", "--out", tmp_path / "s1") == 0
    assert run("sonify-dataset", clips, "--model", model, "--layers", "3,11", "--top", "2", "--out", tmp_path / "s2",
               "--runner", "DirectRunner") == 0
    out = capsys.readouterr().out
    assert "dead letter: 2 clip(s)" in out and "corrupt.wav: unreadable" in out
    a, b = manifest(tmp_path / "s1"), manifest(tmp_path / "s2")
    assert len(a) == 38 and [r["wav"] for r in a] == [r["wav"] for r in b]
    assert {r["clip"] for r in read_shards(tmp_path / "s1", "dead_letter")} == {r["clip"] for r in read_shards(tmp_path / "s2", "dead_letter")}
    capsys.readouterr()
    assert run("sonify-dataset", clips, "--model", model, "--top", "99", "--out", tmp_path / "s3") == 2
    assert "top must be an integer" in capsys.readouterr().err
    assert run("analyze", "topk", tmp_path / "missing", "--model", model, "--out", tmp_path / "t3", "--runner", "DirectRunner") == 2


def test_cli_passes_options_after_a_bare_double_dash_to_beam(workspace, tmp_path, monkeypatch, capsys):
    from tfsonify.commands import beam_options

    seen, original = [], beam_options.options

    def stop(args):  # the options the command would run its pipeline with (checked before it runs), then stop
        seen.append(original(args).get_all_options())
        raise ValueError("stopped before running")

    monkeypatch.setattr(beam_options, "options", stop)
    model, clips = workspace / "model.keras", workspace / "clips"
    flags = ["--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    for argv in (["analyze", "topk", clips, "--model", model, "--out", tmp_path / "t", "--runner", "DirectRunner", *flags],
                 ["analyze", "coherence", clips, "--model", f"m={model}", "--out", tmp_path / "c", "--runner", "DirectRunner",
                  "--beam-option=--direct_running_mode=multi_threading", "--", "--direct_num_workers", "3"],
                 ["sonify-dataset", clips, "--model", model, "--out", tmp_path / "s", "--runner", "DirectRunner", *flags]):
        with pytest.raises(SystemExit):
            run(*argv)
        assert "stopped before running" in capsys.readouterr().err
    assert [(o["runner"], o["direct_num_workers"], o["direct_running_mode"]) for o in seen] == [
        ("DirectRunner", 2, "multi_processing"), ("DirectRunner", 3, "multi_threading"), ("DirectRunner", 2, "multi_processing")]
    monkeypatch.undo()
    capsys.readouterr()

    # A misspelt or unknown option is a usage error before anything runs, not silently dropped as Beam itself would.
    for command, flag, message in (
            (["analyze", "topk", clips, "--model", model], "--direct_num_worker=2",
             "unknown Beam pipeline option(s): --direct_num_worker (did you mean --direct_num_workers"),
            (["sonify-dataset", clips, "--model", model], "--direct_num_workers=two",
             "invalid Beam pipeline option: argument --direct_num_workers: invalid int value: 'two'")):
        with pytest.raises(SystemExit) as stopped:
            run(*command, "--out", tmp_path / "t", "--runner", "DirectRunner", "--", flag)
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # Beam options without --runner would be ignored: a usage error
        run("analyze", "topk", clips, "--model", model, "--out", tmp_path / "t", "--", "--direct_num_workers=2")
    assert stopped.value.code == 2 and "need --runner" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()
    # Other commands keep argparse's meaning of "--" (end of options).
    assert beam_options.split_pipeline_args(["sonify", "m.keras", "--", "-x.wav"]) == (["sonify", "m.keras", "--", "-x.wav"], [])


@pytest.mark.slow
def test_worker_memory_does_not_grow_with_the_number_of_clips(workspace, tmp_path, monkeypatch):
    """Peak RSS of the worker process of a top-k pipeline over N = 500 and 4N = 2,000 one-second clips.

    The DirectRunner in multi-processing mode with one worker: the clips are decoded, batched, run through the
    model and combined in that worker, so its peak resident memory (VmHWM, sampled from /proc) is the pipeline's.
    Keeping the 1,500 extra decoded clips of 4N would add 1,500 x 31.25 KiB = 46 MiB; the bound is 15 MiB, above
    the few MiB two fresh workers differ by and below a third of that. (Two-second clips doubled the test's time.)
    """
    from tfsonify.analysis.worker_memory import WorkerPeakMemory

    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))  # workers import this tfsonify
    rng = np.random.default_rng(5)
    samples, n = 8000, 500
    leak_mib, bound_mib = 3 * n * samples * 4 / 2**20, 15.0
    assert bound_mib < leak_mib / 3
    for i in range(4 * n):
        soundfile.write(tmp_path / f"{'a' if i < n else 'b'}{i:04d}.wav", rng.normal(0, 0.2, samples).astype("float32"),
                        8000, subtype="PCM_16")
    model = str(workspace / "model.keras")
    options = tb.pipeline_options("DirectRunner", ["--direct_num_workers=1", "--direct_running_mode=multi_processing"])

    def peak(pattern: str, out: str) -> tuple[list[float], int]:
        with WorkerPeakMemory() as memory:
            loaded = tb.run_topk([str(tmp_path / pattern)], model, str(tmp_path / out), [1, 2, 3], k=3, batch_size=32,
                                 options=options, tf_threads=1)
        return memory.workers(), loaded.result.clips[3]

    (small,), n_small = peak("a*.wav", "n")
    (large,), n_large = peak("*.wav", "4n")
    assert (n_small, n_large) == (n, 4 * n)
    assert large - small < bound_mib, f"worker peak RSS {small:.0f} MiB for {n_small} clips but {large:.0f} MiB for {n_large}"


def test_merge_top_orders_by_score_then_name_with_ties():
    """The combiner's merge: score descending, then clip name ascending, empty (None, -inf) slots last.

    Checked against a plain lexsort over every slot's name rank, on float scores and on heavily tied small
    integers (the fast path sorts by score and uses names only for rows with ties among their best k + 1).
    """
    from tfsonify.analysis.beam import _merge_top

    def reference(scores, names, k):
        empty = np.equal(names, None)
        rank = np.full(names.shape, np.iinfo(np.int64).max, np.int64)
        if (~empty).any():
            _, inverse = np.unique(names[~empty], return_inverse=True)
            rank[~empty] = inverse.ravel()
        order = np.lexsort((rank, -scores.astype(np.float64)), axis=1)[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(names, order, axis=1)

    rng = np.random.default_rng(0)
    pool = np.array([f"clip{i}.wav" for i in range(8)] + [None], dtype=object)
    for trial in range(200):
        channels, n, k = rng.integers(1, 20), rng.integers(1, 12), rng.integers(1, 5)
        if trial % 2:
            scores = rng.integers(0, 4, (channels, n)).astype(np.float32)
        else:
            scores = rng.normal(size=(channels, n)).astype(np.float32)
        names = pool[rng.integers(0, 9, (channels, n))]
        scores[np.equal(names, None)] = -np.inf
        got, want = _merge_top(scores, names, k), reference(scores, names, k)
        np.testing.assert_array_equal(got[0], want[0])
        assert (got[1] == want[1]).all(), trial
