"""File fuzzing (issue 26), short form: the generated corpus of tests/fuzz_corpus.py (truncated, header-corrupted,
mislabelled WAV/FLAC/OGG/MP3/AIFF, zero-byte, huge-header, not audio at all) through ``load_audio``, ``tfsonify
sonify``, explorer uploads and the Beam reader. Each file: a correct decode or a one-line error naming it; nothing
written for a refused file. The long form (more mutants per seed, timings) is benchmarks/fuzz_bench.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from fuzz_corpus import corpus
from interrupt import check_complete

RATE = 8000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    written = []
    for index, (label, extension, data) in enumerate(corpus(seed=0, per_seed=3)):
        path = folder / f"{index:03d}-{label}{extension}"
        path.write_bytes(data)
        written.append((label, path, data))
    return written


def _one_line(message: str, name: str) -> None:
    assert "\n" not in message and name in message and "<_io." not in message and "Traceback" not in message, message


def test_load_audio_decodes_or_refuses_each_file_in_one_line(files):
    from tfsonify import load_audio

    outcomes = {"decoded": 0, "refused": 0}
    for label, path, _ in files:
        try:
            samples = load_audio(path, RATE)
        except ValueError as error:
            _one_line(str(error), path.name)
            outcomes["refused"] += 1
            continue
        assert samples.dtype == np.float32 and samples.ndim == 1 and samples.size > 0 and np.all(np.isfinite(samples))
        outcomes["decoded"] += 1
        if "-truncated-" not in label and "-header-" not in label and label[:4] in ("wav-", "flac", "aiff"):
            assert abs(samples.size - 0.4 * RATE) <= 1, label  # a lossless seed (or its mislabelled copy): exact length
    assert outcomes["decoded"] >= 12 and outcomes["refused"] >= 15, outcomes  # both kinds are exercised


def test_sonify_cli_writes_complete_outputs_or_nothing(files, model_file, tmp_path, capsys):
    from tfsonify import cli

    chosen = files[::2]  # every other file: a third of the seeds and mutants, half the crafted ones
    statuses = []
    for label, path, _ in chosen:
        out = tmp_path / label
        status = cli.main(["sonify", str(path), "--model", str(model_file), "--layer", "1", "--out", str(out),
                           "--no-plots", "--no-progress"])
        err = capsys.readouterr().err
        statuses.append(status)
        if status == 0:
            manifest = json.loads((out / "manifest.json").read_text())
            assert len(manifest["sonifications"]) == 1
            check_complete(out)
        else:
            assert status == 2, (label, err)
            _one_line(err.strip().splitlines()[-1], path.name)
            assert not out.exists(), (label, sorted(out.rglob("*")))
    assert 0 in statuses and 2 in statuses


def test_explorer_uploads_give_a_clip_or_a_4xx_naming_the_upload(files):
    from tfsonify.explore.clips import ClipError, ClipLibrary

    library = ClipLibrary([], RATE, max_seconds=10.0, max_uploads=4)
    accepted = 0
    for label, path, data in files:
        try:
            clip = library.add_upload(data, path.name)
        except ClipError as error:
            assert 400 <= error.status < 500, (label, error.status)
            _one_line(str(error), path.name)
            continue
        accepted += 1
        assert clip.name == path.name and clip.waveform.size > 0 and np.all(np.isfinite(clip.waveform))
    assert accepted >= 12 and len(library.clips()) <= 4  # uploads only, at most max_uploads kept in memory


def test_beam_reader_yields_a_clip_or_a_dead_letter(files):
    pytest.importorskip("apache_beam")
    from apache_beam.pvalue import TaggedOutput

    from tfsonify.analysis.beam_io import _DecodeClip

    reader = _DecodeClip(RATE, min_samples=8, min_layer=1)
    dead = 0
    for label, path, _ in files:
        (output,) = list(reader.process((str(path), None)))
        if isinstance(output, TaggedOutput):
            dead += 1
            assert output.value["clip"] == str(path) and "\n" not in output.value["reason"], output.value
        else:
            name, waveform = output
            assert name == str(path) and waveform.dtype == np.float32 and np.all(np.isfinite(waveform))
    assert 15 <= dead < len(files)


_QUIET_SCRIPT = """
import io, sys
sys.path.insert(0, "tests")
from fuzz_corpus import corpus
from tfsonify.explore.clips import ClipError, decode_bytes
from tfsonify.io.audio import decode_audio
from tfsonify.io.memory_file import MemoryFile
import soundfile
counts = {"files": 0, "refused": 0}
for label, extension, data in corpus(seed=26, per_seed=31):
    counts["files"] += 1
    for decode in (lambda: decode_audio(data, label, 8000), lambda: decode_audio(io.BytesIO(data), label, 8000),
                   lambda: decode_bytes(data, label)):
        try:
            decode()
        except (ValueError, ClipError):
            counts["refused"] += 1
    try:
        soundfile.read(MemoryFile(data), dtype="float32")  # what decode_wav_files (serving *_wav outputs) reads with
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass
print(counts["files"], counts["refused"])
"""


def test_corrupt_in_memory_files_print_nothing_on_stderr():
    """Issue 26: ``io.BytesIO.seek`` raising inside libsndfile's seek callback (corrupt AIFF headers) printed
    "Exception ignored from cffi callback" and a traceback on stderr although the file was refused cleanly. The
    long-form corpus (seed 26, 31 mutants per seed: 209 files, among them the AIFF that did it) through
    ``decode_audio`` (bytes and BytesIO: uploads, Beam) and the explorer's ``decode_bytes``: no Python traceback.
    libmpg123's own C warnings on broken MP3s may still appear; they are not tracebacks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    files, refused = map(int, done.stdout.split())
    assert files == 209 and refused > 0, done.stdout
    printed = [line for line in done.stderr.splitlines() if "Exception ignored" in line or "Traceback" in line]
    assert not printed, printed[:4]
