"""Interruptions (issue 26): SIGINT, SIGTERM and SIGKILL at chosen points of ``tfsonify sonify`` on a 60 s file,
``report`` and ``sonify-dataset``: exit 130 / 143 with one line and no traceback, no half-written file under a
final name, and a rerun of the same command ends byte-identical to an uninterrupted run.

``sonify`` with SIGINT and SIGKILL runs as a real process (tests/interrupt.py: ``python -m tfsonify``, the signal after
a progress line plus a seeded random delay); the other cases run ``tfsonify.cli.main`` in this process with the signal
sent to the main thread after a seeded random delay or at a clip boundary (the CLI's handlers are the same; no
TensorFlow import per case). Reruns run in process.
"""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import soundfile
from interrupt import check_complete, check_interrupted, interrupt, interrupt_in_process, kill_at, outputs

RATE = 8000
LONG_SECONDS = 30


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from tiny import tiny_cnn12

    from tfsonify.models.checkpoint import save_model

    base = tmp_path_factory.mktemp("interrupt")
    save_model(tiny_cnn12(1234), base / "tiny.keras", sample_rate=RATE)
    rng = np.random.default_rng(26)
    t = np.arange(LONG_SECONDS * RATE) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t) + rng.normal(0, 0.1, t.size)
    soundfile.write(base / "long.wav", wave.astype("float32"), RATE, subtype="PCM_16")
    clips = base / "clips"
    clips.mkdir()
    for i in range(6):
        soundfile.write(clips / f"c{i}.wav", rng.normal(0, 0.2, RATE // 2 + 400 * i).astype("float32"), RATE)
    return base


def _sonify(work, out):
    return ["sonify", str(work / "long.wav"), "--model", str(work / "tiny.keras"), "--layer", "5", "--top", "2",
            "--out", str(out)]


def _report(work, out):
    return ["report", str(work / "tiny.keras"), str(work / "clips" / "c0.wav"), str(work / "clips" / "c5.wav"),
            "--layers", "1,6", "--top", "1", "--out", str(out)]


def _dataset(work, out):
    return ["sonify-dataset", str(work / "clips"), "--model", str(work / "tiny.keras"), "--layers", "3,6", "--top", "2",
            "--batch-size", "1", "--out", str(out)]


def _final(folder) -> dict[str, str]:
    """The files under final names (what a user sees), hashed."""
    return {name: digest for name, digest in outputs(folder).items()
            if not any(part.startswith(".") for part in name.split(os.sep))}


def beside_reference(work, tmp_path, name: str):
    """This test's output folder, beside the reference runs' (``work/ref-KIND``): manifests store paths relative to
    their own folder, so only folders at the same place relative to the inputs can hold byte-identical files."""
    return work / f"{tmp_path.name}-{name}"


@pytest.fixture(scope="module")
def reference(work):
    """Uninterrupted runs (in process), the outputs each interrupted run must end with after its rerun."""
    from tfsonify import cli

    runs = {}
    for kind, argv in (("sonify", _sonify), ("report", _report), ("dataset", _dataset)):
        out = work / f"ref-{kind}"
        assert cli.main(argv(work, out)) == 0
        runs[kind] = outputs(out)
        assert runs[kind] == _final(out)  # no temporary left by a clean run
    return runs


def test_sonify_ctrl_c_leaves_nothing_and_a_rerun_is_identical(work, reference, tmp_path):
    from tfsonify import cli

    out = beside_reference(work, tmp_path, "out")
    result = interrupt(_sonify(work, out), tmp_path, signal.SIGINT, marker="activations", delay=1.0, seed=1)
    check_interrupted(result, signal.SIGINT)
    check_complete(out, samples=LONG_SECONDS * RATE)
    if result.returncode != 0:
        assert not out.exists(), sorted(out.rglob("*"))  # the folder this run created is gone with its files
    assert cli.main(_sonify(work, out)) == 0
    assert outputs(out) == reference["sonify"]


@pytest.mark.parametrize("seed", [4, 5])
def test_sonify_sigterm_in_an_existing_folder_keeps_the_earlier_results(work, reference, tmp_path, capsys, seed):
    """SIGTERM at a random point (within the first second: the run takes longer) of a rerun into a folder holding an
    earlier complete result: 143, one line, the earlier files intact (no temporary, no partial file)."""
    import shutil

    from tfsonify import cli

    out = beside_reference(work, tmp_path, "out")
    shutil.copytree(work / "ref-sonify", out)
    status = interrupt_in_process(_sonify(work, out), signal.SIGTERM, delay=1.0, seed=seed)
    err = capsys.readouterr().err
    assert status == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("tfsonify sonify: interrupted (SIGTERM)")
    check_complete(out, samples=LONG_SECONDS * RATE)
    assert _final(out) == reference["sonify"]  # every file complete: the same bytes as before
    assert cli.main(_sonify(work, out)) == 0
    assert outputs(out) == reference["sonify"]


def test_sonify_killed_then_rerun_is_identical(work, reference, tmp_path):
    """SIGKILL: nothing can clean up; no final name is half-written and the rerun removes the dead run's temporaries."""
    from tfsonify import cli

    out = beside_reference(work, tmp_path, "out")
    result = kill_at(_sonify(work, out), tmp_path, marker="activations")
    assert result.sent and result.returncode == -signal.SIGKILL
    check_complete(out, samples=LONG_SECONDS * RATE, temporaries=True)  # final names: complete or absent
    assert not (out / "manifest.json").exists()
    assert cli.main(_sonify(work, out)) == 0
    assert outputs(out) == reference["sonify"]


def test_report_sigterm_then_rerun_is_identical(work, reference, tmp_path, capsys):
    from tfsonify import cli

    out = beside_reference(work, tmp_path, "report")
    status = interrupt_in_process(_report(work, out), signal.SIGTERM, delay=2.0, seed=3)
    err = capsys.readouterr().err
    assert status == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("tfsonify report: interrupted (SIGTERM)")
    check_complete(out)
    assert not (out / "index.html").exists() and not (out / "report.json").exists()
    assert cli.main(_report(work, out)) == 0
    assert outputs(out) == reference["report"]


def interrupt_after_writes(monkeypatch, count: int) -> list:
    """Make ``tfsonify.write_wav`` send SIGINT to the main thread after its ``count``-th WAV is in place (delivered
    at the next bytecode); sonify_dataset imports it when it runs. Returns the list of paths written so far."""
    import tfsonify

    written = []
    original = tfsonify.write_wav

    def write_then_interrupt(path, sound, rate):
        done = original(path, sound, rate)
        written.append(path)
        if len(written) == count:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return done

    monkeypatch.setattr(tfsonify, "write_wav", write_then_interrupt)
    return written


def test_sonify_dataset_ctrl_c_at_a_clip_then_rerun_is_identical(work, reference, tmp_path, capsys, monkeypatch):
    """Ctrl-C after the third WAV is renamed into place: 130, one line, finished WAVs complete, no manifest."""
    import tfsonify
    from tfsonify import cli

    out = beside_reference(work, tmp_path, "dataset")
    original = tfsonify.write_wav
    written = interrupt_after_writes(monkeypatch, 3)
    assert cli.main(_dataset(work, out)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("tfsonify sonify-dataset: interrupted")
    check_complete(out)
    assert not list(out.glob("manifest-*")) and len(written) == 3
    monkeypatch.setattr(tfsonify, "write_wav", original)
    assert cli.main(_dataset(work, out)) == 0
    assert outputs(out) == reference["dataset"]


def test_sonify_dataset_rerun_skips_the_clips_an_interrupted_run_finished(work, reference, tmp_path, capsys,
                                                                          monkeypatch):
    """Ctrl-C at the tenth WAV (4 per clip: blocks 3 and 6, top 2): clips c0 and c1 are complete (their clip.json
    renamed into place after their WAVs), c2 is not. The rerun skips exactly those two, says so, recomputes the rest
    and ends byte-identical to an uninterrupted run; ``--no-resume`` recomputes all six."""
    import re

    import tfsonify
    from tfsonify import cli

    out = beside_reference(work, tmp_path, "dataset")
    original = tfsonify.write_wav
    written = interrupt_after_writes(monkeypatch, 10)
    assert cli.main(_dataset(work, out)) == 130
    capsys.readouterr()
    check_complete(out)
    assert len(list(out.glob("wav/*/clip.json"))) == 2
    monkeypatch.setattr(tfsonify, "write_wav", original)
    assert cli.main(_dataset(work, out)) == 0
    said = capsys.readouterr().out
    skipped = int(re.search(r"\((\d+) clip\(s\) already complete from an earlier run, skipped\)", said).group(1))
    assert skipped == 2 and "wrote 16 sonification(s) of 6 clip(s)" in said, said
    assert outputs(out) == reference["dataset"]
    assert cli.main(_dataset(work, out) + ["--no-resume"]) == 0
    said = capsys.readouterr().out
    assert "already complete" not in said and "wrote 24 sonification(s) of 6 clip(s)" in said, said
    assert outputs(out) == reference["dataset"]


def test_sonify_dataset_resume_in_batches_is_byte_identical(tmp_path, monkeypatch):
    """Equal-length clips in batches of 3: a run stopped inside the second batch (its first clip recorded, the
    others not) and resumed sonifies that batch whole, so the rerun's WAVs and manifest equal an uninterrupted
    run's byte for byte; the complete first batch is skipped."""
    from tiny import tiny_cnn12

    import tfsonify
    from tfsonify.analysis.sonify_dataset import sonify_dataset

    sonifier = tfsonify.Sonifier(tiny_cnn12(77), sample_rate=RATE)
    rng = np.random.default_rng(3)
    clips = [(f"clip{i}.wav", rng.normal(0, 0.2, RATE).astype(np.float32)) for i in range(7)]
    reference = sonify_dataset(sonifier, clips, tmp_path / "ref", [2, 5], top=2, batch_size=3)
    assert reference.clips == 7 and reference.resumed == 0
    out = tmp_path / "out"
    original = tfsonify.write_wav
    calls = []

    def write_then_stop(path, sound, rate):
        calls.append(path)
        if len(calls) == 4 * 4 + 1:  # 4 WAVs per clip: clips 0-3 complete, the fifth clip's first WAV fails
            raise KeyboardInterrupt
        return original(path, sound, rate)

    monkeypatch.setattr(tfsonify, "write_wav", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        sonify_dataset(sonifier, clips, out, [2, 5], top=2, batch_size=3)
    monkeypatch.setattr(tfsonify, "write_wav", original)
    assert len(list(out.glob("wav/*/clip.json"))) == 4
    again = sonify_dataset(sonifier, clips, out, [2, 5], top=2, batch_size=3)
    assert again.clips == 7 and again.resumed == 3 and again.wavs == 4 * 4
    assert outputs(out) == outputs(tmp_path / "ref")


def test_an_interrupt_raised_inside_a_finalizer_is_not_lost():
    """A signal handled while Python runs a finalizer raises there, and Python drops that exception ("Exception
    ignored in ..."): seen in CI, where SIGTERM landed in a weakref callback and ``report`` ran to its end with exit
    0. The CLI's handler now re-delivers it, so it is raised in the interrupted code."""
    from tfsonify.cli import Interrupted, interruptions

    class SignalledWhileFinalised:
        def __del__(self):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            for _ in range(10_000):  # the handler runs here, inside the finalizer
                pass

    finished = False
    with pytest.raises(Interrupted):
        with interruptions() as caught:
            SignalledWhileFinalised()  # finalised at once (no reference left)
            for _ in range(20_000_000):  # about a second: the re-delivery comes 20 ms after the drop
                pass
            finished = True
    assert caught.signal == signal.SIGTERM and not finished
    assert signal.getsignal(signal.SIGTERM) is not caught._handle  # handlers restored
