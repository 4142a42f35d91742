"""Feature evolution over checkpoints (§3.4) and the TensorBoard SonificationLogger callback."""
from __future__ import annotations

import numpy as np
import pytest

from tiny import tiny_cnn12


def _model(seed: int, width: float = 0.0625, head: int | None = None):
    return tiny_cnn12(seed, num_classes=head, bias_seed=seed, width=width)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return [rng.normal(0, rng.uniform(0.1, 0.5), 2600).astype("float32") for _ in range(4)]


def test_feature_evolution_fixes_maps_and_clips_from_the_final_checkpoint(tmp_path, clips):
    import tfsonify
    from tfsonify.analysis.evolution import feature_evolution, plot_evolution_strip

    first, final = _model(1), _model(2)
    first.save(tmp_path / "epoch-001.keras")
    maps = [(3, 1), (11, 0)]
    result = feature_evolution([tmp_path / "epoch-001.keras", final], clips, maps)
    assert result.labels == ["epoch-001", "ckpt1"]
    sonifier = tfsonify.Sonifier(final)
    for (layer, feature), clip_id, sounds in zip(maps, result.clip_ids, result.sonifications):
        peaks = [sonifier.activations(c, layer)[:, feature].max() for c in clips]
        assert clip_id == int(np.argmax(peaks))
        assert sounds.shape == (2, 2600)
        np.testing.assert_allclose(sounds[1], sonifier.sonify(clips[clip_id], layer, feature=feature), atol=1e-6)
        np.testing.assert_allclose(sounds[0], tfsonify.Sonifier(first).sonify(clips[clip_id], layer, feature=feature), atol=1e-6)
    plot_evolution_strip(result, 1, tmp_path / "strip.png")
    assert (tmp_path / "strip.png").stat().st_size > 3000


def test_checkpoints_of_another_width_are_a_clear_error(clips):
    from tfsonify.analysis.evolution import feature_evolution

    with pytest.raises(ValueError, match=r"checkpoint 0 .*layer .conv1. has 8 maps, the final checkpoint.s .conv1. 4; all checkpoints must come from one architecture"):
        feature_evolution([_model(1, width=0.125), _model(2)], clips, [(2, 0)])
    with pytest.raises(ValueError, match="does not exist"):
        feature_evolution([_model(2)], clips, [(2, 99)])
    with pytest.raises(ValueError, match="must be an existing .keras file"):
        feature_evolution(["/nonexistent/model.keras"], clips, [(2, 0)])


def test_sonification_logger_writes_audio_and_images(tmp_path, clips):
    import tensorflow as tf

    from tfsonify.analysis.evolution import SonificationLogger

    model = _model(3, head=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logger = SonificationLogger(tmp_path, {"noise": clips[0]}, [(2, 1), (11, None)], every_n_epochs=2)
    model.fit(np.stack(clips), np.array([0, 1, 0, 1]), epochs=3, batch_size=2, verbose=0, callbacks=[logger])
    events = sorted((tmp_path / "sonifications").glob("events.out.tfevents.*"))
    assert events
    tags = {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    # Logged after epoch 2 only (every 2 epochs, 3 epochs run).
    assert tags == {"noise/L02_f0001": {2}, "noise/L02_f0001_spectrogram": {2}, "noise/L11_top": {2},
                    "noise/L11_top_spectrogram": {2}}
    with pytest.raises(ValueError, match="every_n_epochs"):
        SonificationLogger(tmp_path, {"a": clips[0]}, [(1, 0)], every_n_epochs=0)
