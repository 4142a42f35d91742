"""WAV signatures: header parsing, encode/decode helpers, the in-graph rate check (InvalidArgument)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from test_export_savedmodel import exported_model

from tfsonify.export.wav_graph import decode_wav_files, encode_wav_files, parse_wav_header


def _wav(samples, rate=8000, subtype="PCM_16", channels=1) -> bytes:
    buffer = io.BytesIO()
    data = np.repeat(np.asarray(samples, np.float32)[:, None], channels, axis=1) if channels > 1 else samples
    soundfile.write(buffer, data, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("rate, subtype, channels, tag, bits", [
    (8000, "PCM_16", 1, 1, 16), (16000, "PCM_16", 2, 1, 16), (8000, "FLOAT", 1, 3, 32), (8000, "PCM_24", 1, 1, 24)])
def test_parse_wav_header(rate, subtype, channels, tag, bits):
    header = parse_wav_header(_wav(np.zeros(1234, np.float32), rate, subtype, channels))
    assert (header.format_tag, header.channels, header.sample_rate, header.bits_per_sample, header.frames) == \
        (tag, channels, rate, bits, 1234)


@pytest.mark.parametrize("data, message", [(b"", "not a WAV"), (b"RIFF\x00\x00\x00\x00WAVE", "no fmt chunk"),
                                           (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before its fmt")])
def test_parse_wav_header_rejects(data, message):
    with pytest.raises(ValueError, match=message):
        parse_wav_header(data)


def test_encode_decode_round_trip_is_16_bit():
    wave = np.sin(np.arange(500) * 0.1).astype(np.float32) * 0.9
    files = encode_wav_files(np.stack([wave, -wave]), 8000)
    assert files.shape == (2,) and all(parse_wav_header(f).bits_per_sample == 16 for f in files)
    back = decode_wav_files(files, peaks=[2.0, 1.0])
    assert back.shape == (2, 500)
    np.testing.assert_allclose(back[0], 2 * wave, atol=2 / 32767)
    np.testing.assert_allclose(back[1], -wave, atol=1 / 32767)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    import tensorflow as tf

    return tf.saved_model.load(str(exported_model(tmp_path_factory)["version_dir"]))


def test_graph_refuses_another_rate_with_invalid_argument(loaded):
    """The in-graph check TF Serving relies on (no Python pre-check there): InvalidArgument -> HTTP 400."""
    import tensorflow as tf

    from tfsonify.serving.repository import _runtime_message

    wave = (0.3 * np.sin(np.arange(3000) * 0.2)).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="WAV sample rate must be 8000 Hz") as info:
        loaded.signatures["sonify_wav"](wav_bytes=tf.constant([_wav(wave, 16000)]), layer=tf.constant([3]),
                                        feature=tf.constant([0]))
    assert _runtime_message(info.value) == ("WAV sample rate must be 8000 Hz (the model's rate); "
                                            "resample the audio before sending it (received 16000)")
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of samples"):
        loaded.signatures["sonify_wav"](wav_bytes=tf.constant([_wav(wave), _wav(wave[:2500])]), layer=tf.constant([3, 3]),
                                        feature=tf.constant([0, 0]))


def test_graph_downmixes_stereo_and_matches_float_signature(loaded):
    import tensorflow as tf

    wave = (0.3 * np.sin(np.arange(3000) * 0.2)).astype(np.float32)
    heard = decode_wav_files([_wav(wave)])[0]
    out = loaded.signatures["sonify_wav"](wav_bytes=tf.constant([_wav(wave, channels=2)]), layer=tf.constant([3]),
                                          feature=tf.constant([1]))
    floats = loaded.signatures["sonify"](waveform=tf.constant(heard[None]), layer=tf.constant([3]), feature=tf.constant([1]))
    sound = decode_wav_files(out["sonification_bytes"].numpy(), out["sonification_peak"].numpy())[0]
    expected = floats["sonification"].numpy()[0]
    assert np.all(np.abs(sound - expected) <= np.abs(expected).max() / 32767 + 1e-6)
