"""One saving battery for every serialisable model family and custom layer (keras-hub's run_model_saving_test):
build -> save -> load through tfsonify.models.checkpoint -> identical outputs and config. Plus the release fixtures: .keras
files written by tfsonify 0.1.0 (before the classes moved to tfsonify.models) still load and give the same outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _waves(batch: int = 2, length: int = 4000) -> np.ndarray:
    return np.random.default_rng(5).normal(0, 0.3, (batch, length)).astype("float32")


def _cnn12_head():
    from tiny import tiny_cnn12

    return tiny_cnn12(1, num_classes=3)


def _cnn12_encoder():
    from tiny import tiny_cnn12

    return tiny_cnn12(2)


def _contrastive():
    import keras

    from tfsonify.models import ContrastiveModel

    keras.utils.set_random_seed(3)
    model = ContrastiveModel(width_multiplier=0.0625, projection_hidden=16, projection_dim=8)
    model(_waves())
    return model


def _linear_eval_head():
    from tfsonify.models.heads import classifier_from_encoder

    return classifier_from_encoder(_cnn12_encoder(), num_classes=4, mode="fconly")


def _truncated():
    from tfsonify.models.heads import truncated_classifier

    return truncated_classifier(_cnn12_encoder(), 5, num_classes=3, mode="full")


def _crepe():
    import keras

    from tfsonify.models import CREPE

    keras.utils.set_random_seed(4)
    return CREPE("tiny")


def _custom_layers():
    import keras

    from tfsonify.layers import MaxPool1DWithSwitches, PeakNormalization

    waveform = keras.Input((None,))
    x = PeakNormalization()(waveform)
    x = keras.layers.Reshape((-1, 1))(x)
    x = keras.layers.Conv1D(4, 5, activation="relu")(x)
    pooled = MaxPool1DWithSwitches()(x)
    pooled = pooled[0] if isinstance(pooled, (list, tuple)) else pooled
    return keras.Model(waveform, pooled)


def _outputs(model, waves):
    from tfsonify.models import ContrastiveModel

    if isinstance(model, ContrastiveModel):
        return np.asarray(model.projection_head(model.encoder(waves)))
    return np.asarray(model(waves))


def _plain(config):
    """A config with tuples as lists (what a JSON round trip makes of them), for comparison."""
    import json

    return json.loads(json.dumps(config))


FAMILIES = {
    "cnn12_with_head": _cnn12_head,
    "cnn12_encoder": _cnn12_encoder,
    "contrastive": _contrastive,
    "linear_eval_classifier": _linear_eval_head,
    "truncated_classifier": _truncated,
    "custom_layers": _custom_layers,
    "crepe_tiny": _crepe,
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_saving_round_trip(family, tmp_path):
    from tfsonify.models.checkpoint import load_checkpoint, save_model

    model = FAMILIES[family]()
    waves = _waves(length=1024) if family.startswith("crepe") else _waves()  # CREPE takes 1024-sample frames
    before = _outputs(model, waves)
    path = save_model(model, tmp_path / f"{family}.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{family}.keras"]  # no temporary left behind
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model)
    assert _plain(loaded.get_config()) == _plain(model.get_config())
    np.testing.assert_array_equal(_outputs(loaded, waves), before)
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]


def test_save_model_refuses_other_suffixes(tmp_path):
    from tfsonify.models.checkpoint import save_model

    with pytest.raises(ValueError, match=r"\.keras file"):
        save_model(_cnn12_encoder(), tmp_path / "model.h5")
    assert list(tmp_path.iterdir()) == []


def test_release_fixtures_load_with_identical_outputs():
    """.keras files saved by tfsonify 0.1.0 (CNN12 in tfsonify/cnn12.py, ContrastiveModel in tfsonify.train.contrastive)."""
    import tfsonify
    from tfsonify.models.checkpoint import cnn12_of, load_checkpoint
    from tfsonify.models import CNN12, ContrastiveModel

    expected = np.load(FIXTURES / "release-v0.1.0-outputs.npz")
    waves = expected["waveform"]
    cnn12 = load_checkpoint(FIXTURES / "cnn12-v0.1.0.keras")
    assert isinstance(cnn12, CNN12)
    np.testing.assert_allclose(np.asarray(cnn12(waves)), expected["cnn12_scores"], rtol=1e-6, atol=1e-7)
    sonification = tfsonify.Sonifier(cnn12).sonify(waves[0], layer=5, feature=1)
    np.testing.assert_allclose(sonification, expected["cnn12_sonification_l5_f1"], rtol=1e-5, atol=1e-6)
    contrastive = load_checkpoint(FIXTURES / "contrastive-v0.1.0.keras")
    assert isinstance(contrastive, ContrastiveModel)
    np.testing.assert_allclose(np.asarray(contrastive.encoder(waves)), expected["contrastive_embedding"], rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(np.asarray(contrastive.projection_head(contrastive.encoder(waves))),
                               expected["contrastive_projection"], rtol=1e-6, atol=1e-7)
    assert cnn12_of(FIXTURES / "contrastive-v0.1.0.keras").width_multiplier == 0.0625
