"""Sonifier.stream: live blocks of any size equal the offline sonification with the same normalisation; LiteRT too.

Offline reference with a fixed normalisation: ``raw_reconstruction(x / reference_peak)`` over the whole clip,
scaled by ``reference_peak / reconstruction_peak``; with both peaks from the clip itself (``calibrate``) that is
``Sonifier.sonify``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tfsonify.engine import long_clips

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def live_clip():
    rng = np.random.default_rng(21)
    t = np.arange(12007) / 8000.0
    return (0.6 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.3) + rng.normal(0, 0.05, t.size)).astype(np.float32)


def run(stream, x, sizes):
    outs, position, index = [], 0, 0
    while position < x.size:
        block = x[position:position + sizes[index % len(sizes)]]
        outs.append(stream.process(block))
        position, index = position + block.size, index + 1
    outs.append(stream.flush())
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("layer", [5, 11])
@pytest.mark.parametrize("sizes", [[1], [160], [8000], [7, 3000, 1, 513]], ids=["1", "160", "1s", "ragged"])
def test_stream_equals_offline(sonifier, live_clip, layer, sizes):
    x = live_clip[:4001] if sizes == [1] else live_clip
    reference = np.float32(0.9)  # a fixed level, not the clip's peak
    features = [int(f) for f in sonifier.top_features(x, layer, 2)[0]]  # maps this clip excites
    raw = sonifier.raw_reconstruction(x / reference, layer, features)
    peaks = np.abs(raw).max(axis=1)
    assert np.all(peaks > 0)
    stream = sonifier.stream(layer, features, reference_peak=reference, reconstruction_peak=peaks)
    field, stride = sonifier.geometry(layer)
    assert stream.latency == field - stride + stream.hop - 1
    out = run(stream, x, sizes)
    assert out.shape == (2, x.size + stream.latency) and not np.any(out[:, :stream.latency])
    np.testing.assert_allclose(out[:, stream.latency:], raw / peaks[:, None] * reference, atol=1e-5 * reference)


def test_calibrated_stream_is_sonify(sonifier, live_clip):
    reference, peaks = long_clips.calibrate(sonifier, live_clip, 11, [3])
    stream = sonifier.stream(11, [3], reference_peak=reference, reconstruction_peak=peaks, hop=256)
    assert stream.latency == 2369  # the minimum: receptive field - 1
    out = run(stream, live_clip, [441])
    np.testing.assert_allclose(out[0, stream.latency:], sonifier.sonify(live_clip, 11, feature=3), atol=1e-5)


def test_running_peak_never_exceeds_the_reference(sonifier, live_clip):
    stream = sonifier.stream(5, [1], reference_peak=1.0)
    out = run(stream, live_clip, [512])
    assert 0.5 < np.abs(out).max() <= 1.0 + 1e-6


def test_bad_blocks_leave_the_stream_usable(sonifier, live_clip):
    reference, peaks = long_clips.calibrate(sonifier, live_clip, 5, [2])
    expected = run(sonifier.stream(5, [2], reference, peaks), live_clip, [1000])
    stream = sonifier.stream(5, [2], reference, peaks)
    outs = []
    for index, start in enumerate(range(0, live_clip.size, 1000)):
        if index == 1:
            with pytest.raises(ValueError, match="dtype int16"):
                stream.process(np.zeros(1000, np.int16))
        if index == 2:
            with pytest.raises(ValueError, match=r"mono samples of shape \[n\]"):
                stream.process(np.zeros((1000, 2), np.float32))
        if index == 3:
            bad = live_clip[start:start + 1000].copy()
            bad[10] = np.nan
            with pytest.raises(ValueError, match="1 NaN or Inf.*dropped"):
                stream.process(bad)
            bad[10] = np.inf
            with pytest.raises(ValueError, match="NaN or Inf"):
                stream.process(bad)
        outs.append(stream.process(live_clip[start:start + 1000]))
    outs.append(stream.flush())
    np.testing.assert_array_equal(np.concatenate(outs, axis=1), expected)
    with pytest.raises(ValueError, match="closed"):
        stream.process(live_clip[:10])


def test_bad_stream_arguments(sonifier):
    with pytest.raises(ValueError, match="outside block 5's 16 maps"):
        sonifier.stream(5, [16], reference_peak=1.0)
    with pytest.raises(ValueError, match="reference_peak must be a positive"):
        sonifier.stream(5, [1], reference_peak=0.0)
    with pytest.raises(ValueError, match="layer must be"):
        sonifier.stream(0, [1], reference_peak=1.0)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, tiny_model):
    from tfsonify.export.tflite import convert

    path = tmp_path_factory.mktemp("edge") / "s11.tflite"
    path.write_bytes(convert(tiny_model, length=8000, layers=[11], top_k=2))
    from tfsonify.edge import demo as edge_demo
    from tfsonify.edge.model import EdgeModel
    return path, EdgeModel, edge_demo


def test_litert_stream_equals_tensorflow(edge, sonifier, live_clip, tmp_path):
    import soundfile

    path, EdgeModel, edge_demo = edge
    reference, peaks = long_clips.calibrate(sonifier, live_clip, 11, [4])
    stream = EdgeModel(path).stream(11, [4], reference, peaks)
    assert stream.hop == 3328 and stream.latency == 2114 + 3327  # the hop that fits 8000-sample windows
    out = run(stream, live_clip, [257, 1, 4000])
    np.testing.assert_allclose(out[0, stream.latency:], sonifier.sonify(live_clip, 11, feature=4), atol=1e-4)
    # the demo script: the clip streamed in blocks, written aligned with the input (running-peak scaling)
    clip_path, out_dir = tmp_path / "clip.wav", tmp_path / "out"
    soundfile.write(clip_path, live_clip, 8000, subtype="FLOAT")
    assert edge_demo.main([str(path), str(clip_path), "--layer", "11", "--stream", "--feature", "4", "--block-size",
                           "300", "--out", str(out_dir)]) == 0
    written, rate = soundfile.read(out_dir / "stream_l11_f4.wav", dtype="float32")
    direct = run(EdgeModel(path).stream(11, [4], 1.0), live_clip, [300])
    assert rate == 8000 and written.shape == live_clip.shape
    np.testing.assert_allclose(written, direct[0, stream.latency:], atol=1e-6)
    with pytest.raises(SystemExit):
        edge_demo.main([str(path), str(clip_path), "--layer", "11", "--stream", "--out", str(out_dir)])
