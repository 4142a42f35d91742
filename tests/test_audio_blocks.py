"""Blockwise reading and soxr streaming resampling equal whole-file resampling; bad files; incremental WAVs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tfsonify.io.blocks import MAX_RATIO, WavWriter, audio_info, read_blocks, read_whole, resample_whole


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    rng = np.random.default_rng(4)
    t = np.arange(44100 * 25) / 44100.0
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.05, t.size)
    right = 0.3 * np.sin(2 * np.pi * (200 + 30 * t) * t)
    path = tmp_path_factory.mktemp("audio") / "stereo.flac"
    soundfile.write(path, np.stack([left, right], 1).astype(np.float32), 44100, subtype="PCM_24")
    return path


@pytest.mark.parametrize("block_seconds", [0.0123, 1.0, 7.3, 60.0])
def test_blockwise_equals_whole(stereo, block_seconds):
    blocks = list(read_blocks(stereo, 8000, block_seconds=block_seconds))
    joined = np.concatenate([b for b, _ in blocks])
    whole = read_whole(stereo, 8000)
    assert sum(frames for _, frames in blocks) == audio_info(stereo).frames
    assert joined.shape == whole.shape == (200000,)
    np.testing.assert_allclose(joined, whole, atol=1e-6)
    data, _ = soundfile.read(stereo, dtype="float32")
    np.testing.assert_allclose(whole, resample_whole(data.mean(axis=1), 44100, 8000), atol=0)


def test_same_rate_passes_through(tmp_path):
    x = np.random.default_rng(0).normal(0, 0.2, 12345).astype(np.float32)
    path = tmp_path / "mono8k.wav"
    soundfile.write(path, x, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(np.concatenate([b for b, _ in read_blocks(path, 8000, block_seconds=0.1)]), x)


def test_bad_files(tmp_path, stereo):
    with pytest.raises(ValueError, match="does not exist"):
        list(read_blocks(tmp_path / "missing.wav", 8000))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 8000)
    with pytest.raises(ValueError, match=r"empty \(0 samples\)"):
        list(read_blocks(empty, 8000))
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(ValueError, match="cannot read"):
        audio_info(text)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(stereo.read_bytes()[: stereo.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt|is truncated"):
        list(read_blocks(cut, 8000, block_seconds=1.0))
    nan = tmp_path / "nan.wav"
    wave = np.zeros(16000, np.float32)
    wave[12000] = np.nan
    soundfile.write(nan, wave, 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"NaN or Inf samples \(first at 1.500 s\)"):
        list(read_blocks(nan, 8000, block_seconds=0.5))
    low = tmp_path / "low.wav"
    soundfile.write(low, np.zeros(100, np.float32), 20)
    with pytest.raises(ValueError, match=f"cannot resample 20 Hz to 8000 Hz.*at most {MAX_RATIO}x"):
        list(read_blocks(low, 8000))
    with pytest.raises(ValueError, match="must be positive"):
        resample_whole(np.zeros(10, np.float32), 0, 8000)


def test_truncated_wav_is_reported(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.full(80000, 0.1, np.float32), 8000, subtype="PCM_16")
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])
    try:
        info = audio_info(cut)
    except ValueError as error:  # some libsndfile versions refuse the header outright
        assert "cannot read" in str(error)
        return
    blocks = list(read_blocks(cut, 8000, block_seconds=1.0)) if info.frames < 80000 else None
    if blocks is None:
        with pytest.raises(ValueError, match="truncated"):
            list(read_blocks(cut, 8000, block_seconds=1.0))
    else:  # the header was rewritten to the data present: what is read is what is there
        assert sum(b.size for b, _ in blocks) == info.frames


def test_wav_writer_is_atomic(tmp_path):
    path = tmp_path / "out.wav"
    with WavWriter(path, 8000) as writer:
        writer.write(np.ones(100, np.float32) * 0.5)
        writer.write(np.zeros(50, np.float32))
        assert not path.exists()
    written, rate = soundfile.read(path, dtype="float32")
    assert rate == 8000 and written.shape == (150,)
    with pytest.raises(ValueError, match="NaN or Inf"):
        with WavWriter(tmp_path / "bad.wav", 8000) as writer:
            writer.write(np.ones(10, np.float32))
            writer.write(np.array([np.nan], np.float32))
    assert not (tmp_path / "bad.wav").exists() and not list(tmp_path.glob("*.part"))
