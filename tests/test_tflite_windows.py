"""Long clips on a fixed-length TFLite model as exact overlapping windows (tfsonify/edge/windows.py).

The reference is the TF ``Sonifier`` run once over the whole clip.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import gated_chirp

REPO = Path(__file__).resolve().parents[1]
LAYERS = [5, 11]
WINDOW = 8000
CLIP = 20000  # 2.5 s: 3 windows at block 5, 5 at block 11


@pytest.fixture(scope="module")
def edge_windows():
    from tfsonify.edge import windows as edge_windows
    return edge_windows


@pytest.fixture(scope="module")
def windowed_model(tiny_model):
    from tfsonify.export.tflite import convert

    return convert(tiny_model, length=WINDOW, layers=LAYERS, top_k=3)


@pytest.fixture(scope="module")
def lite(windowed_model):
    from tfsonify.edge.model import EdgeModel

    return EdgeModel(windowed_model)


@pytest.fixture(scope="module")
def geometry(lite):
    return {layer: lite.geometry(layer) for layer in LAYERS}


@pytest.fixture(scope="module")
def long_clip():
    """2.5 s at 8 kHz: a chirp plus gated noise, peak 0.6."""
    return gated_chirp(CLIP, 11, start_hz=150, sweep=400, noise=0.1, gate_hz=1.3, peak=0.6)


def test_geometry_comes_from_the_models_record(edge_windows, lite, sonifier):
    """R and S of every exported layer are read from the .tflite's own record and equal the walked model's."""
    from tfsonify.models.cnn12 import min_length, output_length

    assert lite.layers == LAYERS and lite.sample_rate == 8000 and lite.length == WINDOW
    for layer in LAYERS:
        geometry = lite.geometry(layer)
        assert (geometry.receptive_field, geometry.stride) == sonifier.geometry(layer)
        assert geometry.receptive_field == min_length(layer) and geometry.name == f"block {layer}"
        for length in (min_length(layer) - 1, min_length(layer), 4801, 7999, 8000, 20000):
            assert edge_windows.output_length(length, geometry) == max(0, output_length(length, layer))


def test_plan_tiles_the_clip_with_aligned_starts(edge_windows, geometry):
    for layer, expected in ((5, (130, 7970, 3)), (11, (2114, 7746, 5))):
        plan = edge_windows.plan_windows(CLIP, WINDOW, geometry[layer])
        assert (plan.margin, plan.effective_length, len(plan.starts)) == expected
        assert all(start % geometry[layer].stride == 0 for start in plan.starts)
        assert plan.keep[0][0] == 0 and plan.keep[-1][1] == CLIP
        assert all(a[1] == b[0] for a, b in zip(plan.keep, plan.keep[1:]))
        for index, (start, (begin, end)) in enumerate(zip(plan.starts, plan.keep)):  # kept part is inside the exact span
            assert index == 0 or begin >= start + plan.margin
            assert index == len(plan.starts) - 1 or end <= start + plan.effective_length - plan.margin


def test_raw_signatures_are_typed(lite):
    raw = lite.runner("sonify_raw", 11)
    inputs, outputs = raw.get_input_details(), raw.get_output_details()
    assert list(inputs["waveform"]["shape"]) == [1, WINDOW] and inputs["waveform"]["dtype"] == np.float32
    assert list(inputs["feature"]["shape"]) == [1] and inputs["feature"]["dtype"] == np.int32
    assert list(outputs["reconstruction"]["shape"]) == [1, WINDOW]
    peaks = lite.runner("peak_activations", 5).get_output_details()["activations"]
    assert list(peaks["shape"]) == [1, 16] and peaks["dtype"] == np.float32  # block 5 at width 1/16: 16 maps


@pytest.mark.parametrize("layer", LAYERS)
def test_windows_equal_the_full_clip(edge_windows, lite, geometry, sonifier, long_clip, layer):
    raw, peaks = lite.functions(layer)
    assert len(edge_windows.plan_windows(CLIP, WINDOW, geometry[layer]).starts) >= 3
    features, activations = edge_windows.top_features_windowed(long_clip, geometry[layer], WINDOW, peaks, 3)
    reference_features, reference_activations, reference = sonifier.sonify_top(long_clip, layer, 3)
    np.testing.assert_array_equal(features, reference_features)
    np.testing.assert_allclose(activations, reference_activations, atol=1e-5)
    sounds = edge_windows.sonify_windowed(long_clip, geometry[layer], WINDOW, raw, features)
    assert sounds.shape == (3, CLIP) and np.all(np.isfinite(sounds))
    np.testing.assert_allclose(sounds, reference, atol=1e-4)
    np.testing.assert_allclose(np.abs(sounds).max(axis=1), np.abs(long_clip).max(), rtol=1e-6)
    for feature in (1, 7):  # maps chosen explicitly, not only the top ones
        single = edge_windows.sonify_windowed(long_clip, geometry[layer], WINDOW, raw, [feature])[0]
        np.testing.assert_allclose(single, sonifier.sonify(long_clip, layer, feature=feature), atol=1e-4)
    top = lite.sonify_top(long_clip, layer, 3)  # the EdgeModel's own entry point: the same windows
    np.testing.assert_array_equal(top[0], features)
    np.testing.assert_allclose(top[2], sounds, atol=1e-6)


@pytest.mark.parametrize("layer", LAYERS)
def test_smaller_margins_are_not_exact(edge_windows, lite, geometry, sonifier, long_clip, layer):
    """Keeping one pool stride more of each window's left edge than the margin allows breaks exactness."""
    raw, _ = lite.functions(layer)
    plan = edge_windows.plan_windows(CLIP, WINDOW, geometry[layer])
    shift = geometry[layer].stride
    keep = [(begin - (shift if index else 0), end - (shift if index < len(plan.keep) - 1 else 0))
            for index, (begin, end) in enumerate(plan.keep)]
    narrow = dataclasses.replace(plan, keep=tuple(keep))
    feature = int(sonifier.top_features(long_clip, layer, 1)[0][0])
    peak = np.abs(long_clip).max()
    stitched = edge_windows.windowed_reconstruction(long_clip / peak, narrow, lambda window: raw(window, feature))
    wrong = stitched / np.abs(stitched).max() * peak
    assert np.abs(wrong - sonifier.sonify(long_clip, layer, feature=feature)).max() > 1e-3


def test_bad_inputs_raise(edge_windows, lite, geometry):
    raw, peaks = lite.functions(11)
    g11 = geometry[11]
    with pytest.raises(ValueError, match="too short for exact windows at block 11.*at least 4674"):
        edge_windows.plan_windows(CLIP, 4000, g11)
    with pytest.raises(ValueError, match="clip has 7000 samples.*at least 7746"):
        edge_windows.plan_windows(7000, WINDOW, g11)
    with pytest.raises(ValueError, match=r"layer 12 is not in this model; exported layers: \[5, 11\]"):
        lite.geometry(12)
    with pytest.raises(ValueError, match="window_length must be a positive integer"):
        edge_windows.plan_windows(CLIP, 0, geometry[5])
    clip = np.zeros(CLIP, np.float32)
    clip[5] = np.nan
    with pytest.raises(ValueError, match="1 NaN or Inf"):
        edge_windows.sonify_windowed(clip, g11, WINDOW, raw, [0])
    with pytest.raises(ValueError, match="1 NaN or Inf"):
        lite.sonify_top(clip, 11, 2)
    with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.128 \(block 11's maps\)"):  # width 1/16: 128
        edge_windows.top_features_windowed(np.ones(CLIP, np.float32), g11, WINDOW, peaks, 129)
    with pytest.raises(ValueError, match=r"layer 2 is not in this model"):
        lite.functions(2)
    with pytest.raises(ValueError, match=r"feature must be a map index in 0\.\.127 of block 11"):
        edge_windows.sonify_windowed(np.ones(CLIP, np.float32), g11, WINDOW, raw, [128])
    with pytest.raises(ValueError, match=r"the clip has 100 samples at 8000 Hz but block 11 needs at least 2370"):
        lite.sonify_top(np.ones(100, np.float32), 11)
    silent = edge_windows.sonify_windowed(np.zeros(CLIP, np.float32), g11, WINDOW, raw, [0, 1])
    assert silent.shape == (2, CLIP) and not np.any(silent)


def test_edge_demo_windows_long_clips(edge_windows, windowed_model, sonifier, long_clip, tmp_path):
    import soundfile

    from tfsonify.edge import demo as edge_demo
    model_path, clip_path, out = tmp_path / "s.tflite", tmp_path / "long.wav", tmp_path / "out"
    model_path.write_bytes(windowed_model)
    soundfile.write(clip_path, long_clip, 8000, subtype="FLOAT")
    assert edge_demo.main([str(model_path), str(clip_path), "--layer", "11", "--top", "2", "--out", str(out)]) == 0
    features, _, sounds = sonifier.sonify_top(long_clip, 11, 2)
    for rank in range(2):
        written, rate = soundfile.read(out / f"l11_rank{rank}_f{int(features[rank])}.wav", dtype="float32")
        assert rate == 8000 and written.shape == (CLIP,)
        np.testing.assert_allclose(written, sounds[rank], atol=1e-4)


def test_edge_windows_imports_no_tensorflow():
    code = ("import tfsonify.edge.windows, tfsonify.edge.demo, sys; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
