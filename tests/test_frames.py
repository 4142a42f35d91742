"""Fixed-frame models (CREPE): frames as the model's tracker cuts them, overlap-added (tfsonify/engine/frames.py), the
window policy (long_clips.choose) and ``tfsonify sonify`` on CREPE tiny.

The references are plain loops: crepe_frames (the tracker's framing), one raw reconstruction per frame, full-length
Hann overlap-add arrays.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile

from tfsonify.engine import frames as framing
from tfsonify.engine import long_clips, stitch

HOP = 160


# --- numpy only: the overlap-add against full-length arrays ------------------------------------------------------

def _direct(clip, length, hop, center, raw):
    """Every frame at once, full-length accumulators: sum w g r / sum w."""
    starts = np.arange(1 + clip.size // hop if center else 1 + (clip.size - length) // hop) * hop
    starts = starts - (length // 2 if center else 0)
    padded = np.pad(clip, (length, length + hop))
    frames = np.stack([padded[s + length:s + 2 * length] for s in starts])
    pieces = raw(frames)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    acc = np.zeros((pieces.shape[1], clip.size + 3 * length))
    weight = np.zeros(clip.size + 3 * length)
    for piece, start in zip(pieces, starts):
        acc[:, start + length:start + 2 * length] += piece * window
        weight[start + length:start + 2 * length] += window
    acc, weight = acc[:, length:length + clip.size], weight[length:length + clip.size]
    return np.where(weight > 1e-12, acc / np.where(weight > 1e-12, weight, 1), 0)


def _nonlinear(frames):
    """[m, L] -> [m, 2, L]: depends on the whole frame (its mean), not only on each sample."""
    return np.stack([np.tanh(3 * frames) + frames.mean(axis=1, keepdims=True), frames ** 2], axis=1)


@pytest.mark.parametrize("length, hop, center, size, batch", [
    (64, 10, True, 1000, 1), (64, 10, True, 1000, 7), (64, 10, False, 1000, 3), (64, 64, True, 333, 64),
    (1024, 160, True, 5000, 16), (64, 10, True, 5, 2), (64, 24, False, 200, 4),
])
def test_overlap_add_equals_full_arrays(length, hop, center, size, batch):
    clip = np.random.default_rng(size + batch).normal(size=size).astype(np.float32)
    plan = framing.plan_frames(size, length, hop, center, batch)
    spans = []
    plan.overlap_add(lambda a, b: clip[a:b], _nonlinear, lambda begin, span: spans.append((begin, span)))
    assert [b for b, _ in spans] == list(np.cumsum([0] + [s.shape[1] for _, s in spans[:-1]]))  # consecutive
    out = np.concatenate([s for _, s in spans], axis=1)
    assert out.shape == (2, size) and out.dtype == np.float32
    np.testing.assert_allclose(out, _direct(clip.astype(np.float64), length, hop, center, _nonlinear), atol=1e-5)


def test_identity_frames_give_the_clip_back():
    """With raw = the frame itself, the normalised overlap-add is the clip exactly (centred: every sample weighted)."""
    clip = np.random.default_rng(1).normal(size=4000).astype(np.float32)
    plan = framing.plan_frames(clip.size, 1024, HOP, True, 10)
    sink = stitch.ArraySink(1, clip.size)
    stitch.reconstruct(plan, lambda a, b: clip[a:b], lambda f: f[:, None, :], sink)
    np.testing.assert_allclose(sink.out[0], clip, atol=1e-5)
    assert plan.num_frames == 1 + clip.size // HOP


def test_frames_are_the_trackers():
    from tfsonify.models.crepe import crepe_frames

    clip = np.random.default_rng(2).normal(size=3210).astype(np.float32)
    for center in (True, False):
        plan = framing.plan_frames(clip.size, 1024, HOP, center, 5)
        mine = np.concatenate([plan.frames(lambda a, b: clip[a:b], first, min(5, plan.num_frames - first))
                               for first in range(0, plan.num_frames, 5)])
        np.testing.assert_array_equal(mine, crepe_frames(clip, HOP, center))


def test_bad_frame_plans():
    with pytest.raises(ValueError, match="hop"):
        framing.plan_frames(1000, 64, 65)
    with pytest.raises(ValueError, match="fewer than one 1024-sample frame"):
        framing.plan_frames(1000, 1024, 160, center=False)
    with pytest.raises(ValueError, match="positive integer"):
        framing.plan_frames(1000, 1024, 0)


# --- CREPE (random weights, narrow) through the Sonifier -------------------------------------------------------------

@pytest.fixture(scope="module")
def crepe():
    import keras

    from tfsonify.models.crepe import CREPE

    keras.utils.set_random_seed(3)
    model = CREPE("tiny")
    for layer in model.layers:  # BatchNorm statistics away from the identity, as trained ones are
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(4).normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(np.random.default_rng(5).uniform(0.5, 2, layer.moving_variance.shape))
    return model


@pytest.fixture(scope="module")
def sonifier(crepe):
    import tfsonify

    return tfsonify.Sonifier(crepe)


@pytest.fixture(scope="module")
def note():
    """1.1 s at 16 kHz: a 330 Hz note with a fade-in, a quiet noisy tail (frames of very different levels)."""
    t = np.arange(17600) / 16000
    wave = 0.5 * np.sin(2 * np.pi * 330 * t) * np.minimum(1, 8 * t) * (t < 0.8)
    wave += np.random.default_rng(6).normal(0, 0.01, t.size)
    return wave.astype(np.float32)


def _standardise(frames):
    centred = frames - frames.mean(axis=1, keepdims=True)
    return (centred / np.maximum(centred.std(axis=1, ddof=1, keepdims=True), 1e-10)).astype(np.float32)


def _frame_by_frame(sonifier, clip, layer, features):
    """The loop the engine must equal: tracker frames, one raw reconstruction each, full-length overlap-add."""
    from tfsonify.models.crepe import crepe_frames

    frames = crepe_frames(clip, HOP, True)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    acc = np.zeros((len(features), clip.size + 1024))
    weight = np.zeros(clip.size + 1024)
    for index, frame in enumerate(frames):
        scaled = _standardise(frame[None])[0]
        raw = sonifier.raw_reconstruction(scaled, layer, features)
        gain = np.abs(frame).max() / np.abs(scaled).max() if np.abs(frame).max() > 0 else 0.0
        acc[:, index * HOP:index * HOP + 1024] += raw * gain * window
        weight[index * HOP:index * HOP + 1024] += window
    out = acc[:, 512:512 + clip.size] / weight[512:512 + clip.size]
    return out / np.abs(out).max(axis=1, keepdims=True) * np.abs(clip).max()


def test_policy_for_crepe(sonifier, note):
    assert long_clips.fixed_length(sonifier) == 1024
    assert long_clips.choose(sonifier, note.size, "conv4", long_clips.AUTO) == long_clips.FRAMES
    assert long_clips.choose(sonifier, note.size, "conv4", 100.0) == long_clips.FRAMES
    assert long_clips.choose(sonifier, note.size, "conv4", None) == long_clips.ONE_PASS
    assert long_clips.choose(sonifier, 1024, "conv4", long_clips.AUTO) == long_clips.ONE_PASS  # one model input
    plan = long_clips.frame_plan(sonifier, note.size)
    assert (plan.hop, plan.center, plan.frame_length, plan.num_frames) == (HOP, True, 1024, 1 + note.size // HOP)
    with pytest.raises(ValueError, match="window_seconds must be"):
        long_clips.choose(sonifier, note.size, "conv4", -1.0)


def test_scaled_input_is_the_models_standardisation(sonifier, note):
    frames = note[:3000].reshape(3, 1000)
    np.testing.assert_allclose(sonifier.scaled_input(frames), _standardise(frames), atol=1e-5)


def test_sonify_equals_the_frame_by_frame_loop(sonifier, note):
    features = [1, 4, 9]
    expected = _frame_by_frame(sonifier, note, "conv4", features)
    got = sonifier.sonify(note, "conv4", features=features)
    assert got.shape == (3, note.size) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-5 * np.abs(note).max())
    np.testing.assert_allclose(sonifier.sonify(note, "conv4", feature=4), expected[1], atol=2e-5 * np.abs(note).max())


def test_top_maps_are_the_maxima_over_frames(sonifier, note):
    from tfsonify.models.crepe import crepe_frames

    per_frame = np.stack([sonifier.activations(frame, "conv2", window_seconds=None).max(axis=0)
                          for frame in crepe_frames(note, HOP, True)])
    best = per_frame.max(axis=0)
    order = np.argsort(-best, kind="stable")[:3]
    features, scores, sounds = sonifier.sonify_top(note, "conv2", 3)
    np.testing.assert_array_equal(features, order)
    np.testing.assert_allclose(scores, best[order], rtol=1e-5)
    np.testing.assert_allclose(sounds, _frame_by_frame(sonifier, note, "conv2", list(order)),
                               atol=2e-5 * np.abs(note).max())
    np.testing.assert_array_equal(sonifier.top_features(note, "conv2", 3)[0], order)


def test_one_pass_is_still_one_pass(sonifier, note):
    """window_seconds=None runs the network over the whole clip (whole-clip standardisation), not frames."""
    one = sonifier.sonify(note, "conv4", feature=2, window_seconds=None)
    raw = sonifier.raw_reconstruction(_standardise(note[None])[0], "conv4", [2])[0]
    np.testing.assert_allclose(one, raw / np.abs(raw).max() * np.abs(note).max(), atol=1e-5)


def test_streams_refuse_fixed_frame_models(sonifier):
    with pytest.raises(ValueError, match="fixed 1024-sample frames"):
        sonifier.stream("conv4", [0], reference_peak=1.0)


def test_custom_scaling_of_any_length_runs_in_one_pass():
    """A variable-length model standardising its whole input: windows cannot be exact, the engine picks one pass."""
    import keras
    import tensorflow as tf

    import tfsonify

    class Standardise(keras.layers.Layer):
        sonify_input_scaling = True

        def call(self, inputs):
            centred = inputs - tf.reduce_mean(inputs, axis=-1, keepdims=True)
            return centred / tf.maximum(tf.math.reduce_std(centred, axis=-1, keepdims=True), 1e-8)

    keras.utils.set_random_seed(8)
    x = keras.Input((None,))
    h = keras.layers.Reshape((-1, 1))(Standardise()(x))
    h = keras.layers.Conv1D(4, 9, activation="relu", name="c1")(h)
    h = keras.layers.MaxPooling1D(2, name="p1")(h)
    h = keras.layers.Conv1D(4, 9, activation="relu", name="c2")(h)
    model = keras.Model(x, h)
    sonifier = tfsonify.Sonifier(model)
    assert sonifier.input_scaling == "custom"
    clip = np.random.default_rng(9).normal(size=8000 * 35).astype(np.float32)  # longer than ONE_PASS_SECONDS
    assert long_clips.choose(sonifier, clip.size, "c2", long_clips.AUTO) == long_clips.ONE_PASS
    assert long_clips.choose(sonifier, clip.size, "c2", 2.0) == long_clips.ONE_PASS
    np.testing.assert_array_equal(sonifier.sonify(clip, "c2", features=[1, 3], window_seconds=2.0),
                                  sonifier.sonify(clip, "c2", features=[1, 3], window_seconds=None))


# --- the CLI on CREPE tiny ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crepe_file(tmp_path_factory, crepe):
    folder = tmp_path_factory.mktemp("crepe")
    crepe.save(folder / "crepe-tiny.keras")
    t = np.arange(int(1.4 * 44100)) / 44100
    wave = 0.4 * np.sin(2 * np.pi * 330 * t) * np.minimum(1, 20 * t)
    soundfile.write(folder / "note.wav", wave.astype(np.float32), 44100, subtype="FLOAT")
    return folder


def _cli(*args):
    from tfsonify.cli import main

    return main(["sonify", *map(str, args), "--no-progress"])


def test_cli_sonifies_crepe_frames(crepe_file, tmp_path, sonifier):
    out = tmp_path / "out"
    assert _cli(crepe_file / "note.wav", "--model", crepe_file / "crepe-tiny.keras", "--layer", "conv4", "--top", "3",
                "--out", out, "--no-plots") == 0
    x, rate = soundfile.read(out / "input.wav", dtype="float32")
    assert rate == 16000 and x.size == round(1.4 * 16000)
    features, scores, sounds = sonifier.sonify_top(x, "conv4", 3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sample_rate"] == 16000 and [e["feature"] for e in manifest["sonifications"]] == list(features)
    for entry, score, sound in zip(manifest["sonifications"], scores, sounds):
        assert entry["layer"] == "conv4" and entry["activation"] == pytest.approx(float(score), rel=1e-5)
        written, _ = soundfile.read(out / entry["wav"], dtype="float32")
        np.testing.assert_allclose(written, sound, atol=1e-5 * np.abs(x).max())


def test_cli_one_pass_on_crepe(crepe_file, tmp_path, sonifier):
    out = tmp_path / "one"
    assert _cli(crepe_file / "note.wav", "--model", crepe_file / "crepe-tiny.keras", "--layer", "conv4", "--feature",
                "5", "--window-seconds", "0", "--out", out, "--no-plots") == 0
    x, _ = soundfile.read(out / "input.wav", dtype="float32")
    written, _ = soundfile.read(out / "conv4_f0005.wav", dtype="float32")
    np.testing.assert_allclose(written, sonifier.sonify(x, "conv4", feature=5, window_seconds=None),
                               atol=1e-5 * np.abs(x).max())


@pytest.mark.parametrize("extra, message", [
    (["--layer", "conv4", "--top", "999"], r"top must be an integer in 1\.\.16"),
    (["--layer", "nope", "--top", "1"], "nope"),
    (["--layer", "conv4", "--feature", "16"], "feature index 16 is outside"),
    (["--layer", "conv4", "--feature", "-1"], "feature index -1 is outside"),
])
def test_cli_refusals_write_nothing(crepe_file, tmp_path, capsys, extra, message):
    out = tmp_path / "refused" / "out"
    status = _cli(crepe_file / "note.wav", "--model", crepe_file / "crepe-tiny.keras", *extra, "--out", out)
    assert status == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert not out.exists() and not out.parent.exists()


def test_cli_too_short_writes_nothing(tmp_path, tiny_model, capsys):
    """A clip shorter than the layer needs is refused from the file's header, before decoding (CNN12 block 11)."""
    tiny_model.save(tmp_path / "tiny.keras")
    soundfile.write(tmp_path / "short.wav", np.zeros(1000, np.float32) + 0.1, 8000)
    out = tmp_path / "out"
    assert _cli(tmp_path / "short.wav", "--model", tmp_path / "tiny.keras", "--layer", "11", "--out", out) == 2
    assert "needs at least 2370" in capsys.readouterr().err and not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    whole, truncated = tmp_path / "whole.flac", tmp_path / "cut.flac"
    soundfile.write(whole, np.random.default_rng(0).normal(0, 0.1, 80000).astype(np.float32), 8000, subtype="PCM_24")
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 4])
    assert _cli(truncated, "--model", tmp_path / "tiny.keras", "--layer", "5", "--out", existing) == 2
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]  # no input.wav left behind
