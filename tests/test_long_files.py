"""``tfsonify sonify`` on a multi-minute stereo 44.1 kHz file (tfsonify/engine/long_files.py) writes what the in-memory
path computes: the whole file resampled at once, then one pass of the Sonifier over the whole clip."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile

from tfsonify.io.blocks import read_whole
from tfsonify.cli import main

MINUTES = 3


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory):
    rng = np.random.default_rng(8)
    rate, n = 44100, 44100 * 60 * MINUTES
    t = np.arange(n) / rate
    left = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 0.05 * t)) * t) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    right = rng.normal(0, 0.08, n) * (np.sin(2 * np.pi * 0.11 * t) > 0) + 0.2 * np.sin(2 * np.pi * 90 * t)
    left[n // 3] = 0.95  # the peak sits in the middle of the file, far from the first window
    path = tmp_path_factory.mktemp("audio") / "long.flac"
    soundfile.write(path, np.stack([left, right], 1).astype(np.float32), rate, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def in_memory(long_flac, tiny_model):
    import tfsonify

    return read_whole(long_flac, 8000), tfsonify.Sonifier(tiny_model)


def test_cli_writes_the_in_memory_result(tmp_path, model_file, long_flac, in_memory):
    x, sonifier = in_memory
    assert x.size == 8000 * 60 * MINUTES
    out = tmp_path / "out"
    assert main(["sonify", str(long_flac), "--model", str(model_file), "--layer", "11", "--top", "2", "--out", str(out),
                 "--no-progress"]) == 0
    written_input, rate = soundfile.read(out / "input.wav", dtype="float32")
    assert rate == 8000
    np.testing.assert_allclose(written_input, x, atol=1e-6)
    features, scores, sounds = sonifier.sonify_top(x, 11, 2, window_seconds=None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["feature"] for e in manifest["sonifications"]] == [int(f) for f in features]
    peak = np.abs(x).max()
    for entry, score, sound in zip(manifest["sonifications"], scores, sounds):
        assert entry["layer"] == 11 and entry["activation"] == pytest.approx(float(score), rel=1e-5)
        written, rate = soundfile.read(out / entry["wav"], dtype="float32")
        assert rate == 8000 and written.shape == x.shape
        np.testing.assert_allclose(written, sound, atol=1e-5 * peak)
        assert (out / entry["spectrogram"]).stat().st_size > 1000
    assert not list(out.glob("*.part")) and not list(out.glob(".tfsonify-raw-*"))


def test_cli_chosen_maps_and_window_length(tmp_path, model_file, long_flac, in_memory):
    x, sonifier = in_memory
    out = tmp_path / "out"
    assert main(["sonify", str(long_flac), "--model", str(model_file), "--layer", "5", "--feature", "3", "--feature", "9",
                 "--window-seconds", "7.5", "--no-plots", "--out", str(out)]) == 0
    expected = sonifier.sonify(x, 5, features=[3, 9], window_seconds=None)
    activations = sonifier.top_features(x, 5, 16, window_seconds=None)
    by_map = dict(zip(activations[0].tolist(), activations[1].tolist()))
    manifest = json.loads((out / "manifest.json").read_text())
    for entry, sound in zip(manifest["sonifications"], expected):
        written, _ = soundfile.read(out / entry["wav"], dtype="float32")
        np.testing.assert_allclose(written, sound, atol=1e-5 * np.abs(x).max())
        assert entry["activation"] == pytest.approx(by_map[entry["feature"]], rel=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["L05_f0003.wav", "L05_f0009.wav", "input.wav", "manifest.json"]


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated or corrupt"),
    ("window", "too short for layer 11"),
    ("top", r"top must be an integer in 1\.\.128"),
])
def test_cli_bad_input(tmp_path, model_file, long_flac, capsys, case, message):
    audio, extra = long_flac, ["--top", "2"]
    if case == "truncated":
        audio = tmp_path / "cut.flac"
        audio.write_bytes(long_flac.read_bytes()[: long_flac.stat().st_size // 4])
    elif case == "window":
        extra += ["--window-seconds", "0.3"]
    else:
        extra = ["--top", "129"]
    out = tmp_path / "out"
    assert main(["sonify", str(audio), "--model", str(model_file), "--layer", "11", "--out", str(out),
                 "--no-progress"] + extra) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert not list(out.glob("L*.wav")) and not list(out.glob("*.part")) and not (out / "manifest.json").exists()
