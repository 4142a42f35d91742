"""Audio in, audio out: SavedModel signatures that take and return encoded WAV files.

``sonify_wav``
    ``wav_bytes`` string ``[batch]`` (each a 16-bit PCM WAV file at the model's rate, mono or
    multi-channel, downmixed by averaging), ``layer`` int32 ``[batch]``, ``feature`` int32 ``[batch]`` ->
    ``sonification_bytes`` string ``[batch]`` (16-bit PCM mono WAV, same rate and length) and
    ``sonification_peak`` float32 ``[batch]``.
``sonify_top_k_wav``
    ``wav_bytes``, ``layer``, ``k`` -> ``features`` int32 ``[batch, K]``, ``activations`` float32
    ``[batch, K]``, ``sonifications_bytes`` string ``[batch, K]``, ``sonification_peaks`` float32 ``[batch, K]``.

The WAVs are decoded in the graph with core TensorFlow (``tf.audio.decode_wav``: 16-bit PCM only) and
run through the very functions of the float signatures (``sonify`` / ``sonify_top_k``), so the results
equal the float signatures' on the decoded samples. A sonification's amplitude is arbitrary (a
deconvnet output, often far beyond full scale), so each one is peak-normalised before
``tf.audio.encode_wav`` (which clips to [-1, 1] and quantises to 16 bits) and its peak is returned
beside it: ``decoded WAV samples * peak`` is the float signature's output to within ``peak / 32767``.
An all-zero sonification is written as silence with peak 0.

A WAV at another sample rate is refused with ``InvalidArgument`` ("WAV sample rate must be R Hz"), which
``tfsonify serve`` and TF Serving answer with HTTP 400; clips of one request must have the same length.

Output names ending in ``_bytes`` make TF Serving's REST API return them as ``{"b64": "..."}``; inputs of
dtype ``DT_STRING`` are sent the same way.

:func:`parse_wav_header` (pure Python) reads the format fields, so a server can explain a rejected
WAV before running the graph.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["WAV_INPUT", "WAV_SIGNATURES", "WavHeader", "add_wav_endpoints", "decode_wav_batch", "decode_wav_files",
           "encode_wav_batch", "encode_wav_files", "parse_wav_header"]

WAV_INPUT = "wav_bytes"
WAV_SIGNATURES = ("sonify_wav", "sonify_top_k_wav")


@dataclass(frozen=True)
class WavHeader:
    """``format_tag`` 1 = PCM, 3 = IEEE float, 0xFFFE = extensible; ``frames`` = samples per channel."""

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    frames: int


def parse_wav_header(data: bytes) -> WavHeader:
    """Read a RIFF/WAVE header (``fmt `` and ``data`` chunks); ``ValueError`` saying what is wrong."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"not a WAV file (expected a RIFF/WAVE header; received {len(data)} bytes starting {data[:12]!r})")
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        if chunk == b"fmt ":
            if len(body) < 16:
                raise ValueError("WAV fmt chunk is truncated")
            fmt = struct.unpack("<HHIIHH", body[:16])
            if fmt[0] == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first 2 bytes
                fmt = (struct.unpack("<H", body[24:26])[0],) + fmt[1:]
        elif chunk == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk comes before its fmt chunk")
            tag, channels, rate, _, align, bits = fmt
            if channels < 1 or align < 1:
                raise ValueError(f"WAV header declares {channels} channels / block align {align}")
            return WavHeader(tag, channels, rate, bits, min(size, len(data) - offset - 8) // align)
        offset += 8 + size + (size & 1)
    raise ValueError("WAV file has no data chunk" if fmt is not None else "WAV file has no fmt chunk")


def encode_wav_files(waveforms, sample_rate: int):
    """float32 ``[batch, time]`` (or ``[time]``) -> object array ``[batch]`` of 16-bit PCM mono WAV files (soundfile)."""
    import io

    import numpy as np
    import soundfile

    rows = np.atleast_2d(np.asarray(waveforms, np.float32))
    files = np.empty(rows.shape[0], dtype=object)
    for index, row in enumerate(rows):
        buffer = io.BytesIO()
        soundfile.write(buffer, row, int(sample_rate), subtype="PCM_16", format="WAV")
        files[index] = buffer.getvalue()
    return files


def decode_wav_files(files, peaks=None):
    """Object/bytes array ``[...]`` of WAV files -> float32 ``[..., time]`` (times ``peaks [...]`` if given).

    Inverse of the ``*_bytes`` outputs: ``decode_wav_files(out["sonifications_bytes"], out["sonification_peaks"])``.
    """
    import numpy as np
    import soundfile

    from tfsonify.io.memory_file import MemoryFile

    files = np.asarray(files, dtype=object)
    flat = [soundfile.read(MemoryFile(bytes(item)), dtype="float32", always_2d=True)[0].mean(axis=1) for item in files.reshape(-1)]
    if not flat:
        return np.zeros(files.shape + (0,), np.float32)
    out = np.stack(flat).reshape(files.shape + (-1,))
    if peaks is not None:
        out = out * np.expand_dims(np.asarray(peaks, np.float32), -1)
    return out.astype(np.float32)


def decode_wav_batch(wav_bytes, sample_rate: int):
    """Decode string ``[batch]`` of 16-bit PCM WAVs to float32 ``[batch, time]`` (channels averaged).

    Raises (at run time) ``InvalidArgumentError`` if a WAV is at another rate than ``sample_rate`` Hz,
    is not 16-bit PCM, or the clips differ in length.
    """
    import tensorflow as tf

    def decode(data):
        audio, rate = tf.audio.decode_wav(data)  # [frames, channels] in [-1, 1), int16 / 32768
        check = tf.debugging.assert_equal(
            rate, tf.constant(sample_rate, tf.int32),
            message=f"WAV sample rate must be {sample_rate} Hz (the model's rate); resample the audio before sending it")
        with tf.control_dependencies([check]):
            return tf.reduce_mean(audio, axis=1)

    clips = tf.map_fn(decode, wav_bytes, fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0))
    lengths = clips.row_lengths()
    same = tf.debugging.assert_equal(tf.reduce_min(lengths), tf.reduce_max(lengths),
                                     message="all WAVs of one request must have the same number of samples")
    with tf.control_dependencies([same]):
        return tf.identity(clips.to_tensor())


def encode_wav_batch(sounds, sample_rate: int):
    """Peak-normalise and encode float32 ``[..., time]`` as 16-bit mono WAVs: ``(string [...], peak float32 [...])``."""
    import tensorflow as tf

    shape = tf.shape(sounds)
    rows = tf.reshape(sounds, [-1, shape[-1]])
    peaks = tf.reduce_max(tf.abs(rows), axis=1)
    normalised = rows / tf.expand_dims(tf.where(peaks > 0, peaks, tf.ones_like(peaks)), 1)
    encoded = tf.map_fn(lambda row: tf.audio.encode_wav(tf.expand_dims(row, 1), sample_rate), normalised,
                        fn_output_signature=tf.TensorSpec([], tf.string))
    return tf.reshape(encoded, shape[:-1]), tf.reshape(peaks, shape[:-1])


def add_wav_endpoints(archive, sonify, sonify_top_k, sample_rate: int) -> None:
    """Add ``sonify_wav`` and ``sonify_top_k_wav`` to ``archive`` around the float endpoint functions.

    Args:
        archive: a :class:`keras.export.ExportArchive`.
        sonify: ``sonify(waveform, layer, feature) -> {"sonification": [batch, time]}``.
        sonify_top_k: ``sonify_top_k(waveform, layer, k) -> {"features", "activations", "sonifications"}``.
        sample_rate: the model's rate in Hz (WAVs at other rates are refused).
    """
    import tensorflow as tf

    wav_spec = tf.TensorSpec([None], tf.string, name=WAV_INPUT)
    row_spec = lambda name: tf.TensorSpec([None], tf.int32, name=name)  # noqa: E731

    def sonify_wav(wav_bytes, layer, feature):
        sound = sonify(decode_wav_batch(wav_bytes, sample_rate), layer, feature)["sonification"]
        encoded, peak = encode_wav_batch(sound, sample_rate)
        return {"sonification_bytes": encoded, "sonification_peak": peak}

    def sonify_top_k_wav(wav_bytes, layer, k):
        out = sonify_top_k(decode_wav_batch(wav_bytes, sample_rate), layer, k)
        encoded, peaks = encode_wav_batch(out["sonifications"], sample_rate)
        return {"features": out["features"], "activations": out["activations"],
                "sonifications_bytes": encoded, "sonification_peaks": peaks}

    archive.add_endpoint("sonify_wav", sonify_wav, input_signature=[wav_spec, row_spec("layer"), row_spec("feature")])
    archive.add_endpoint("sonify_top_k_wav", sonify_top_k_wav, input_signature=[wav_spec, row_spec("layer"), row_spec("k")])
