import numpy as np
import pytest
import soundfile

import tfsonify
from tfsonify.io.audio import resample


def _tone(rate, seconds=0.5, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype("float32")


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_read_formats_downmix_resample(tmp_path, fmt, subtype):
    stereo = np.stack([_tone(16000), _tone(16000)], axis=1)
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(str(path), stereo, 16000, format=fmt, subtype=subtype)
    mono = tfsonify.load_audio(path, 8000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(mono.size - 4000) <= 1200  # MP3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(mono))
    assert abs(np.argmax(spectrum) * 8000 / mono.size - 440) < 10


def test_downmix_averages_channels(tmp_path):
    left, right = _tone(8000), np.zeros(4000, "float32")
    path = tmp_path / "lr.wav"
    soundfile.write(str(path), np.stack([left, right], 1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(tfsonify.load_audio(path, 8000), left / 2, atol=1e-7)


def test_resample_rates():
    assert resample(np.zeros(44100, "float32"), 44100, 8000).size == 8000
    assert resample(np.zeros(16000, "float32"), 16000, 8000).size == 8000


def test_write_is_float_and_atomic(tmp_path):
    path = tfsonify.write_wav(tmp_path / "out.wav", _tone(8000), 8000)
    info = soundfile.info(str(path))
    assert info.subtype == "FLOAT" and info.samplerate == 8000
    with pytest.raises(ValueError, match="NaN"):
        tfsonify.write_wav(tmp_path / "bad.wav", np.array([np.nan, 0], "float32"), 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "cannot read|empty"), (b"this is not audio at all" * 10, "cannot read"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot read")],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        tfsonify.load_audio(path, 8000)


def test_empty_and_missing(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros(0, "float32"), 8000)
    with pytest.raises(ValueError, match="empty"):
        tfsonify.load_audio(path, 8000)
    with pytest.raises(ValueError, match="does not exist"):
        tfsonify.load_audio(tmp_path / "nope.wav", 8000)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_get_the_mode_open_would_give(tmp_path, umask):
    """mkstemp makes 0600 files; atomically written files must get 0666 & ~umask like a plain open()."""
    import os
    import stat

    from tfsonify.io.audio import atomic_path, write_wav

    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
        with atomic_path(tmp_path / "atomic.txt") as temporary:
            temporary.write_text("x")
        write_wav(tmp_path / "clip.wav", np.zeros(100, np.float32), 8000)
    finally:
        os.umask(previous)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert plain == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == plain
    assert stat.S_IMODE((tmp_path / "clip.wav").stat().st_mode) == plain


def test_every_reader_gives_load_audios_samples(tmp_path):
    """One decoder and resampler: explorer uploads, the data pipeline, Beam's reader and the block reader (the edge
    runtime calls load_audio itself) read a 44.1 kHz stereo file into exactly load_audio's array (np.array_equal)."""
    from tfsonify.analysis.beam import decode_audio as beam_decode
    from tfsonify.data.pipeline import ClipList, decode_clips
    from tfsonify.explore.clips import decode_bytes
    from tfsonify.io.blocks import read_blocks, read_whole

    rng = np.random.default_rng(3)
    stereo = np.stack([_tone(44100, 1.3, 330.0), rng.normal(0, 0.1, int(44100 * 1.3)).astype("float32")], 1)
    path = tmp_path / "clip.flac"
    soundfile.write(str(path), stereo, 44100, subtype="PCM_24")
    reference = tfsonify.load_audio(path, 8000)
    assert reference.dtype == np.float32 and reference.size == 10400
    samples, rate = decode_bytes(path.read_bytes(), "clip.flac")
    assert np.array_equal(resample(samples, rate, 8000), reference)
    decoded = decode_clips(ClipList(paths=[path], labels=np.zeros(1, np.int32), class_names=["x"]), sample_rate=8000)
    assert np.array_equal(decoded.waveform(0), reference)
    assert np.array_equal(beam_decode(path.read_bytes(), "clip.flac", 8000), reference)
    assert np.array_equal(np.concatenate([b for b, _ in read_blocks(path, 8000, block_seconds=0.31)]), reference)
    assert np.array_equal(read_whole(path, 8000), reference)
    data, _ = soundfile.read(str(path), dtype="float32")  # the 24-bit samples as decoded
    assert np.array_equal(tfsonify.load_audio(path, 16000), resample(data.mean(axis=1, dtype=np.float32), 44100, 16000))


def test_resample_batches_and_refuses_extreme_rates():
    rows = np.random.default_rng(0).normal(0, 0.2, (3, 4410)).astype(np.float32)
    batch = resample(rows, 44100, 8000)
    assert batch.shape == (3, 800) and batch.dtype == np.float32
    for row, out in zip(rows, batch):
        assert np.array_equal(resample(row, 44100, 8000), out)
    with pytest.raises(ValueError, match="at most 256x"):
        resample(np.zeros(100, np.float32), 20, 8000)
    with pytest.raises(ValueError, match="must be positive"):
        resample(np.zeros(100, np.float32), 0, 8000)
