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
    from tfsonify.export.tflite import interpreter

    return interpreter(windowed_model)


@pytest.fixture(scope="module")
def long_clip():
    """2.5 s at 8 kHz: a chirp plus gated noise, peak 0.6."""
    return gated_chirp(CLIP, 11, start_hz=150, sweep=400, noise=0.1, gate_hz=1.3, peak=0.6)


def test_geometry_matches_cnn12(edge_windows):
    from tfsonify.models.cnn12 import BLOCKS, NUM_BLOCKS, min_length, output_length

    assert edge_windows.BLOCK_GEOMETRY == tuple((spec.kernel_size, spec.pooled) for spec in BLOCKS)
    for layer in range(1, NUM_BLOCKS + 1):
        assert edge_windows.receptive_field(layer) == min_length(layer)
        for length in (min_length(layer) - 1, min_length(layer), 4801, 7999, 8000, 20000):
            assert edge_windows.output_length(length, layer) == max(0, output_length(length, layer))


def test_plan_tiles_the_clip_with_aligned_starts(edge_windows):
    for layer, expected in ((5, (130, 7970, 3)), (11, (2114, 7746, 5))):
        plan = edge_windows.plan_windows(CLIP, WINDOW, layer)
        assert (plan.margin, plan.effective_length, len(plan.starts)) == expected
        assert all(start % edge_windows.stride(layer) == 0 for start in plan.starts)
        assert plan.keep[0][0] == 0 and plan.keep[-1][1] == CLIP
        assert all(a[1] == b[0] for a, b in zip(plan.keep, plan.keep[1:]))
        for index, (start, (begin, end)) in enumerate(zip(plan.starts, plan.keep)):  # kept part is inside the exact span
            assert index == 0 or begin >= start + plan.margin
            assert index == len(plan.starts) - 1 or end <= start + plan.effective_length - plan.margin


def test_raw_signatures_are_typed(lite):
    raw = lite.get_signature_runner("sonify_raw_l11")
    inputs, outputs = raw.get_input_details(), raw.get_output_details()
    assert list(inputs["waveform"]["shape"]) == [1, WINDOW] and inputs["waveform"]["dtype"] == np.float32
    assert list(inputs["feature"]["shape"]) == [1] and inputs["feature"]["dtype"] == np.int32
    assert list(outputs["reconstruction"]["shape"]) == [1, WINDOW]
    peaks = lite.get_signature_runner("peak_activations_l5").get_output_details()["activations"]
    assert list(peaks["shape"]) == [1, 16] and peaks["dtype"] == np.float32  # block 5 at width 1/16: 16 maps


@pytest.mark.parametrize("layer", LAYERS)
def test_windows_equal_the_full_clip(edge_windows, lite, sonifier, long_clip, layer):
    length, raw, peaks = edge_windows.litert_functions(lite, layer)
    assert length == WINDOW
    assert len(edge_windows.plan_windows(CLIP, WINDOW, layer).starts) >= 3
    features, activations = edge_windows.top_features_windowed(long_clip, layer, WINDOW, peaks, 3)
    reference_features, reference_activations, reference = sonifier.sonify_top(long_clip, layer, 3)
    np.testing.assert_array_equal(features, reference_features)
    np.testing.assert_allclose(activations, reference_activations, atol=1e-5)
    sounds = edge_windows.sonify_windowed(long_clip, layer, WINDOW, raw, features)
    assert sounds.shape == (3, CLIP) and np.all(np.isfinite(sounds))
    np.testing.assert_allclose(sounds, reference, atol=1e-4)
    np.testing.assert_allclose(np.abs(sounds).max(axis=1), np.abs(long_clip).max(), rtol=1e-6)
    for feature in (1, 7):  # maps chosen explicitly, not only the top ones
        single = edge_windows.sonify_windowed(long_clip, layer, WINDOW, raw, [feature])[0]
        np.testing.assert_allclose(single, sonifier.sonify(long_clip, layer, feature=feature), atol=1e-4)


@pytest.mark.parametrize("layer", LAYERS)
def test_smaller_margins_are_not_exact(edge_windows, lite, sonifier, long_clip, layer):
    """Keeping one pool stride more of each window's left edge than the margin allows breaks exactness."""
    _, raw, _ = edge_windows.litert_functions(lite, layer)
    plan = edge_windows.plan_windows(CLIP, WINDOW, layer)
    shift = edge_windows.stride(layer)
    keep = [(begin - (shift if index else 0), end - (shift if index < len(plan.keep) - 1 else 0))
            for index, (begin, end) in enumerate(plan.keep)]
    narrow = dataclasses.replace(plan, keep=tuple(keep))
    feature = int(sonifier.top_features(long_clip, layer, 1)[0][0])
    peak = np.abs(long_clip).max()
    stitched = edge_windows.windowed_reconstruction(long_clip / peak, narrow, lambda window: raw(window, feature))
    wrong = stitched / np.abs(stitched).max() * peak
    assert np.abs(wrong - sonifier.sonify(long_clip, layer, feature=feature)).max() > 1e-3


def test_bad_inputs_raise(edge_windows, lite):
    _, raw, peaks = edge_windows.litert_functions(lite, 11)
    with pytest.raises(ValueError, match="too short for exact windows at block 11.*at least 4674"):
        edge_windows.plan_windows(CLIP, 4000, 11)
    with pytest.raises(ValueError, match="clip has 7000 samples.*at least 7746"):
        edge_windows.plan_windows(7000, WINDOW, 11)
    with pytest.raises(ValueError, match="layer must be"):
        edge_windows.plan_windows(CLIP, WINDOW, 12)
    with pytest.raises(ValueError, match="window_length must be a positive integer"):
        edge_windows.plan_windows(CLIP, 0, 5)
    clip = np.zeros(CLIP, np.float32)
    clip[5] = np.nan
    with pytest.raises(ValueError, match="1 NaN or Inf"):
        edge_windows.sonify_windowed(clip, 11, WINDOW, raw, [0])
    with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.128"):  # block 11 at width 1/16: 128 maps
        edge_windows.top_features_windowed(np.ones(CLIP, np.float32), 11, WINDOW, peaks, 129)
    with pytest.raises(ValueError, match=r"no \['sonify_raw_l2'"):
        edge_windows.litert_functions(lite, 2)
    with pytest.raises(ValueError, match=r"feature must be a map index in 0\.\.127"):
        edge_windows.sonify_windowed(np.ones(CLIP, np.float32), 11, WINDOW, raw, [128])
    silent = edge_windows.sonify_windowed(np.zeros(CLIP, np.float32), 11, WINDOW, raw, [0, 1])
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
