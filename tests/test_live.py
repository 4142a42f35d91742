"""Live I/O (tfsonify/io/live.py) and ``tfsonify listen``: a file at real-time pace into a WAV, microphone errors."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import soundfile

from tfsonify.engine import long_clips
from tfsonify.io import live
from tfsonify.io.blocks import read_whole
from tfsonify.cli import main


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(2)
    t = np.arange(int(2.3 * 22050)) / 22050.0
    wave = 0.5 * np.sin(2 * np.pi * 500 * t) * (t % 0.4 < 0.25) + rng.normal(0, 0.05, t.size)
    path = tmp_path_factory.mktemp("audio") / "rec.wav"
    soundfile.write(path, wave.astype(np.float32), 22050, subtype="FLOAT")
    return path


def test_file_blocks_pace_like_a_recorder(recording):
    now = [0.0]
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    blocks = list(live.file_blocks(recording, 8000, 1000, clock=lambda: now[0], sleep=sleep))
    whole = read_whole(recording, 8000)
    assert [b.size for b in blocks[:-1]] == [1000] * (len(blocks) - 1) and 0 < blocks[-1].size <= 1000
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    assert sum(waits) == pytest.approx(whole.size / 8000)  # released no faster than real time
    fast = []
    list(live.file_blocks(recording, 8000, 1000, realtime=False, sleep=fast.append))
    assert not fast
    with pytest.raises(ValueError, match="block size must be a positive"):
        list(live.file_blocks(recording, 8000, 0))


def test_run_stream_writes_the_aligned_sonification(sonifier, recording, tmp_path):
    x = read_whole(recording, 8000)
    reference, peaks = long_clips.calibrate(sonifier, x, 5, [2])
    stream = sonifier.stream(5, [2], reference, peaks)
    report = live.run_stream(stream, live.file_blocks(recording, 8000, 333, realtime=False), 8000, tmp_path / "o.wav")
    written, rate = soundfile.read(tmp_path / "o.wav", dtype="float32")
    assert rate == 8000 and written.shape == x.shape
    np.testing.assert_allclose(written, sonifier.sonify(x, 5, feature=2), atol=1e-5)
    assert report.seconds == pytest.approx(x.size / 8000) and report.realtime_factor > 0 and report.latency == stream.latency

    def broken():
        yield x[:1000]
        raise RuntimeError("input died")

    with pytest.raises(RuntimeError):
        live.run_stream(sonifier.stream(5, [2], 1.0), broken(), 8000, tmp_path / "broken.wav")
    assert not (tmp_path / "broken.wav").exists() and not list(tmp_path.glob("*.part"))


def test_listen_file_equals_sonify(model_file, sonifier, recording, tmp_path, capsys):
    out = tmp_path / "listen.wav"
    assert main(["listen", "--model", str(model_file), "--layer", "11", "--feature", "3", "--input", str(recording),
                 "--fast", "--calibrate", str(recording), "--block-size", "700", "--out", str(out)]) == 0
    x = read_whole(recording, 8000)
    written, _ = soundfile.read(out, dtype="float32")
    np.testing.assert_allclose(written, sonifier.sonify(x, 11, feature=3), atol=1e-5)
    err = capsys.readouterr().err
    assert "latency" in err and "real time" in err


def test_listen_bad_input(model_file, recording, tmp_path, capsys, monkeypatch):
    base = ["listen", "--model", str(model_file), "--layer", "5", "--feature", "2"]
    assert main(base + ["--input", str(recording)]) == 2
    assert "give --out FILE.wav and/or --play" in capsys.readouterr().err
    assert main(base + ["--input", str(recording), "--out", str(tmp_path / "o.wav"), "--block-size", "0"]) == 2
    assert "--block-size must be a positive" in capsys.readouterr().err
    assert main(base[:-1] + ["99", "--input", str(recording), "--out", str(tmp_path / "o.wav"), "--fast"]) == 2
    assert "outside block 5's 16 maps" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed
    assert main(base + ["--mic", "--out", str(tmp_path / "o.wav")]) == 2
    assert "pip install 'tfsonify[live]'" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_microphone_errors_are_clear(monkeypatch):
    class PortAudioError(Exception):
        pass

    def no_device(device=None, kind=None):
        raise PortAudioError("Error querying device -1")

    fake = types.SimpleNamespace(PortAudioError=PortAudioError, query_devices=no_device)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(ValueError, match="no audio input device available.*use --input FILE"):
        next(live.microphone_blocks(8000, 512))
    with pytest.raises(ValueError, match="no audio output device available for --play"):
        live.open_player(8000)


def test_missing_portaudio_is_named(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ValueError, match="needs the PortAudio library.*libportaudio2"):
        live.import_sounddevice()
