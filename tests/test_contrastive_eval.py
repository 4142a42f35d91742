"""Linear evaluation / fine-tuning from contrastive and supervised checkpoints; layer importance models."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import tfsonify
from tfsonify.models.contrastive import ContrastiveModel
from tfsonify.models.checkpoint import cnn12_of
from tfsonify.models.heads import ENCODER_LAYERS, encoder_copy, truncated_classifier
from tfsonify.train.layer_importance import plot_sweep, write_table
from tfsonify.train.linear_eval import classifier_from_checkpoint, encoder_weights
from tfsonify.train.supervised import compile_classifier

WIDTH = 0.0625


def load_encoder(source):
    """The headless encoder copy of a checkpoint path or model, through the one loader."""
    return encoder_copy(cnn12_of(source, what="checkpoint"))


@pytest.fixture(scope="module")
def contrastive_checkpoint(tmp_path_factory) -> tuple[Path, ContrastiveModel]:
    keras.utils.set_random_seed(5)
    model = ContrastiveModel(width_multiplier=WIDTH, projection_hidden=32, projection_dim=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    views = tuple(rng.normal(size=(2, 4, 3000)).astype(np.float32))
    model.train_on_batch(views)
    path = tmp_path_factory.mktemp("ckpt") / "contrastive.keras"
    model.save(path)
    return path, model


def _data(num_classes: int = 3, n: int = 12):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3000)).astype(np.float32)
    y = np.eye(num_classes, dtype=np.float32)[np.arange(n) % num_classes]
    return x, y


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for wa, wb in zip(a[name], b[name]):
            np.testing.assert_array_equal(wa, wb)


def test_contrastive_checkpoint_to_linear_eval_round_trip(contrastive_checkpoint, tmp_path):
    path, trained = contrastive_checkpoint
    encoder = load_encoder(path)
    assert encoder.num_classes is None and encoder.width_multiplier == WIDTH
    _assert_same(encoder_weights(encoder), encoder_weights(trained.encoder))
    probe = np.random.default_rng(2).normal(size=(2, 3000)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(encoder(probe)), np.asarray(trained.encoder(probe)))

    classifier = classifier_from_checkpoint(path, num_classes=3, mode="fconly")
    _assert_same(encoder_weights(classifier), encoder_weights(trained.encoder))
    assert [w.path for w in classifier.trainable_weights] == ["classifier/kernel", "classifier/bias"]
    # the linear-eval model saves and loads like any CNN12 classifier
    saved = tmp_path / "linear.keras"
    classifier.save(saved)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(saved)(probe)), np.asarray(classifier(probe)), rtol=1e-6)


def test_supervised_checkpoint_loads_without_hand_editing(tmp_path):
    keras.utils.set_random_seed(6)
    supervised = tfsonify.CNN12(width_multiplier=WIDTH, num_classes=5)
    path = tmp_path / "supervised.keras"
    supervised.save(path)
    encoder = load_encoder(path)
    _assert_same(encoder_weights(encoder), encoder_weights(supervised))
    model = classifier_from_checkpoint(path, num_classes=2, mode="full")
    assert model.get_layer("classifier").units == 2 and len(model.trainable_weights) == 2 * len(ENCODER_LAYERS) + 2


def test_fconly_leaves_encoder_bit_identical_and_full_does_not(contrastive_checkpoint):
    path, _ = contrastive_checkpoint
    x, y = _data()
    for mode in ("fconly", "full"):
        model = classifier_from_checkpoint(path, num_classes=3, mode=mode)
        before_encoder, before_head = encoder_weights(model), [w.copy() for w in model.get_layer("classifier").get_weights()]
        compile_classifier(model, multi_label=False, learning_rate=1e-2, steps_per_epoch=3, epochs=3, warmup_epochs=1,
                           jit_compile=False)
        model.fit(x, y, batch_size=4, epochs=3, verbose=0)
        after_encoder = encoder_weights(model)
        assert any(not np.array_equal(a, b) for a, b in zip(before_head, model.get_layer("classifier").get_weights()))
        if mode == "fconly":
            _assert_same(after_encoder, before_encoder)
        else:
            assert any(not np.array_equal(a[0], b[0]) for a, b in zip(after_encoder.values(), before_encoder.values()))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_encoder(tmp_path / "missing.keras")
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"\.keras file"):
        load_encoder(weights)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="expected a tfsonify CNN12 or a ContrastiveModel"):
        load_encoder(other)
    with pytest.raises(ValueError, match="mode must be one of"):
        classifier_from_checkpoint(None, 3, mode="linear", width_multiplier=WIDTH)


@pytest.mark.parametrize("blocks", [1, 4, 11])
def test_truncated_classifier_keeps_first_blocks(blocks, contrastive_checkpoint):
    encoder = load_encoder(contrastive_checkpoint[0])
    model = truncated_classifier(encoder, blocks, num_classes=3, mode="fconly")
    assert [layer.name for layer in model.layers if layer.name.startswith("conv")] == [f"conv{i}" for i in range(1, blocks + 1)]
    for i in range(1, blocks + 1):
        for a, b in zip(model.get_layer(f"conv{i}").get_weights(), encoder.get_layer(f"conv{i}").get_weights()):
            np.testing.assert_array_equal(a, b)
    assert [w.path for w in model.trainable_weights] == ["classifier/kernel", "classifier/bias"]
    x = np.random.default_rng(3).normal(size=(2, tfsonify.min_length(blocks) + 5)).astype(np.float32)
    probabilities = np.asarray(model(x))
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    full = truncated_classifier(encoder, blocks, num_classes=3, mode="full")
    assert len(full.trainable_weights) == 2 * blocks + 2


def test_truncated_classifier_fconly_training_keeps_blocks(contrastive_checkpoint):
    encoder = load_encoder(contrastive_checkpoint[0])
    model = truncated_classifier(encoder, 5, num_classes=3, mode="fconly")
    conv_names = [f"conv{i}" for i in range(1, 6)]
    before = {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in conv_names}
    head_before = model.get_layer("classifier").get_weights()[0].copy()
    compile_classifier(model, multi_label=False, learning_rate=1e-2, steps_per_epoch=3, epochs=2, warmup_epochs=1,
                       jit_compile=False)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    _assert_same({name: model.get_layer(name).get_weights() for name in conv_names}, before)
    assert not np.array_equal(model.get_layer("classifier").get_weights()[0], head_before)


def test_truncated_classifier_bad_input(contrastive_checkpoint):
    encoder = load_encoder(contrastive_checkpoint[0])
    for blocks in (0, 12, 2.0):
        with pytest.raises(ValueError, match="num_blocks"):
            truncated_classifier(encoder, blocks, 3)


def test_sweep_table_and_plot(tmp_path):
    rows = [{"pretraining": p, "mode": m, "blocks": b, "accuracy": 0.1 * b + (0.05 if p == "contrastive" else 0)}
            for p in ("contrastive", "supervised") for m in ("fconly", "full") for b in (1, 2, 3)]
    table = write_table(rows, tmp_path / "out" / "layer_importance.csv")
    assert table.read_text().splitlines()[0] == "pretraining,mode,blocks,accuracy" and len(table.read_text().splitlines()) == 13
    figure = plot_sweep(rows, "accuracy", tmp_path / "out" / "layer_importance.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob("*.part"))


def test_fit_head_on_tiny_unnormalised_features_folds_standardisation():
    from tfsonify.train.linear_eval import fit_head_on_features

    rng = np.random.default_rng(4)
    labels = np.arange(60) % 3
    # tiny, offset features like a random CNN12's embeddings: class signal at the 1e-4 scale
    features = (1e-3 + 1e-4 * (rng.normal(size=(60, 8)) + 3.0 * np.eye(3, 8)[labels])).astype(np.float32)
    head = keras.layers.Dense(3, activation="softmax")
    head.build((None, 8))
    fit_head_on_features(head, features, np.eye(3, dtype=np.float32)[labels], multi_label=False, epochs=40,
                         batch_size=16, learning_rate=1e-2, warmup_epochs=1)
    accuracy = np.mean(np.asarray(head(features)).argmax(axis=1) == labels)
    assert accuracy > 0.9  # learned on standardised features, applied to the raw ones
    with pytest.raises(ValueError, match="NaN"):
        fit_head_on_features(head, np.full((4, 8), np.nan, np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]],
                             multi_label=False, epochs=2, warmup_epochs=1)
    good = dict(multi_label=False, warmup_epochs=1)
    for bad, message in ((dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
                         (dict(learning_rate=-1e-2), "learning_rate"), (dict(weight_decay=float("nan")), "weight_decay")):
        with pytest.raises(ValueError, match=message):
            fit_head_on_features(head, features, np.eye(3, dtype=np.float32)[labels], **good, **bad)


def test_linear_probe_converges_like_lbfgs_logistic_regression():
    """The default probe reaches the convex optimum's accuracy on collinear, tiny-scale features (like a random
    CNN12's 512-d embedding: rank 6 in 48 dims at the 1e-4 scale), where classifier-training settings stall."""
    from sklearn.linear_model import LogisticRegression

    from tfsonify.train.linear_eval import fit_head_on_features

    rng = np.random.default_rng(0)
    labels = np.arange(400) % 5
    signal = rng.normal(size=(400, 6)) + 1.5 * np.eye(5, 6)[labels]
    features = (1e-3 + 1e-4 * signal @ rng.normal(size=(6, 48))).astype(np.float32)
    train, test = slice(0, 300), slice(300, None)
    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    reference = LogisticRegression(max_iter=5000).fit((features[train] - mean) / std, labels[train])
    reference_accuracy = reference.score((features[test] - mean) / std, labels[test])
    head = keras.layers.Dense(5, activation="softmax")
    head.build((None, 48))
    final_loss = fit_head_on_features(head, features[train], np.eye(5, dtype=np.float32)[labels[train]], multi_label=False)
    accuracy = np.mean(np.asarray(head(features[test])).argmax(axis=1) == labels[test])
    assert abs(accuracy - reference_accuracy) <= 0.03, (accuracy, reference_accuracy)
    probabilities = reference.predict_proba((features[train] - mean) / std)
    reference_loss = -np.mean(np.log(probabilities[np.arange(300), labels[train]]))
    assert final_loss < reference_loss + 0.05, (final_loss, reference_loss)


def test_recipe_helpers_blocks_and_holdout():
    from tfsonify.data.pipeline import DecodedClips
    from tfsonify.data.splits import split_holdout
    from tfsonify.train.layer_importance import parse_blocks

    assert parse_blocks("1-11") == list(range(1, 12)) and parse_blocks("3,1,5-6") == [1, 3, 5, 6]
    for bad in ("0-3", "12", "a", ""):
        with pytest.raises(ValueError, match="--blocks"):
            parse_blocks(bad)
    n = 20
    decoded = DecodedClips(samples=np.zeros(n * 10, np.float32), offsets=np.arange(0, n * 10 + 1, 10).astype(np.int64),
                           labels=np.arange(n, dtype=np.int32) % 2, class_names=["a", "b"], multi_label=False,
                           paths=[Path(f"{'voiceX' if i < 4 else 'voiceY'}_{i}.wav") for i in range(n)],
                           metadata={"split": ["heldout" if i % 5 == 0 else "train" for i in range(n)]}, sample_rate=8000)
    train, test = split_holdout(decoded, None, 0.2, 0, "split=heldout")
    assert len(test) == 4 and set(test.metadata["split"]) == {"heldout"} and len(train) == 16
    train, test = split_holdout(decoded, "voiceX", 0.2, 0)
    assert [p.name for p in test.paths] == [f"voiceX_{i}.wav" for i in range(4)]
    train, test = split_holdout(decoded, None, 0.2, 0)
    assert len(test) == 4 and sorted(test.labels.tolist()) == [0, 0, 1, 1]  # stratified
    with pytest.raises(ValueError, match="selects 0 of 20"):
        split_holdout(decoded, "nothing", 0.2, 0)
    with pytest.raises(ValueError, match="COLUMN=V1,V2"):
        split_holdout(decoded, None, 0.2, 0, "speaker=x")


def test_contrastive_checkpoint_sonifies_and_exports_through_the_cli(contrastive_checkpoint, tmp_path):
    """`tfsonify sonify` / `export` open a SimCLR checkpoint and use its CNN12 encoder (the paper sonifies both)."""
    import json

    from tfsonify import Sonifier, cnn12_of, load_checkpoint, write_wav
    from tfsonify.cli import main as cli_main

    path, trained = contrastive_checkpoint
    assert cnn12_of(load_checkpoint(path)).name == trained.encoder.name
    wave = (0.3 * np.sin(np.arange(4000) / 7.0)).astype(np.float32)
    write_wav(tmp_path / "clip.wav", wave, 8000)
    assert cli_main(["sonify", "--model", str(path), str(tmp_path / "clip.wav"), "--layer", "4", "--top", "2",
                     "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    expected = Sonifier(trained.encoder).top_features(wave, 4, 2)[0]
    assert sorted(e["feature"] for e in manifest["sonifications"]) == sorted(int(f) for f in np.ravel(expected))
    assert cli_main(["export", "tflite", str(path), "--out", str(tmp_path / "enc.tflite"), "--layers", "4"]) == 0
    with pytest.raises(ValueError, match="expected a tfsonify CNN12 or a ContrastiveModel"):
        cnn12_of(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
