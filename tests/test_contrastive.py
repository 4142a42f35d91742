"""NT-Xent against a numpy reference of equation 1, the contrastive train step (eager vs XLA), patches and views."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsonify.data import augment as aug
from tfsonify.data.pipeline import DataWarning, DecodedClips
from tfsonify.models.contrastive import ContrastiveModel, nt_xent_from_gathered, nt_xent_loss
from tfsonify.train.patches import contrastive_dataset, patch_starts, trim_silence, two_patches


def reference_nt_xent(z_a: np.ndarray, z_b: np.ndarray, tau: float) -> np.ndarray:
    """Equation 1 term by term in float64: ``ℓ_i`` for every anchor ``i`` of the 2N projections [a; b]."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z_a)
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)  # the positive: the other view of the same clip
        sims = [z[i] @ z[k] / tau for k in range(2 * n)]
        denominator = sum(np.exp(sims[k]) for k in range(2 * n) if k != i)
        losses.append(-np.log(np.exp(sims[j]) / denominator))
    return np.array(losses)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_equation_1(tau):
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=(2, 5, 7)).astype(np.float32)
    z_b = (z_b + 2 * z_a).astype(np.float32)  # make positives similar so the loss is far from uniform
    loss, logits, labels = nt_xent_loss(z_a, z_b, temperature=tau)
    per_anchor = reference_nt_xent(z_a, z_b, tau)
    # simclr convention: mean over the N clips of the loss summed over both views = 2 x the paper's mean over 2N anchors
    np.testing.assert_allclose(float(loss), per_anchor.sum() / 5, rtol=1e-5)
    assert logits.shape == (10, 10) and labels.numpy().tolist() == list(range(5)) * 2
    # unnormalised inputs are normalised: scaling a projection changes nothing
    scaled = nt_xent_loss(z_a * 7.0, z_b * 0.2, temperature=tau)[0]
    np.testing.assert_allclose(float(scaled), float(loss), rtol=1e-5)


def test_nt_xent_hand_sized_batch_two_clips():
    # N = 2, orthogonal positives identical: each anchor's positive has similarity 1, the negatives 0.
    z_a = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    loss = nt_xent_loss(z_a, z_a.copy(), temperature=1.0)[0]
    per_anchor = -np.log(np.e / (np.e + 1 + 1))  # candidates k != i: positive (e^1) and two negatives (e^0)
    np.testing.assert_allclose(float(loss), 2 * per_anchor, rtol=1e-6)


def test_gathered_math_under_xla_equals_eager_and_splits_across_replicas():
    rng = np.random.default_rng(1)
    h_a, h_b = (tf.math.l2_normalize(rng.normal(size=(6, 8)).astype(np.float32), -1) for _ in range(2))
    single = nt_xent_from_gathered(h_a, h_b, h_a, h_b, 0, 0.1)[0]
    compiled = tf.function(nt_xent_from_gathered, jit_compile=True)
    per_replica = []
    for replica in (0, 1):
        local = slice(3 * replica, 3 * replica + 3)
        eager = nt_xent_from_gathered(h_a[local], h_b[local], h_a, h_b, replica, 0.1)[0]
        xla = compiled(h_a[local], h_b[local], h_a, h_b, tf.constant(replica), 0.1)[0]
        np.testing.assert_allclose(float(xla), float(eager), rtol=1e-5)
        per_replica.append(float(eager))
    # the replicas' local means, averaged, are the global loss
    np.testing.assert_allclose(np.mean(per_replica), float(single), rtol=1e-5)


def test_bad_input_batch_of_one_and_temperature():
    z = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="NT-Xent needs at least 2 clips"):
        nt_xent_loss(z, z)
    for tau in (0.0, -0.1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="temperature"):
            nt_xent_loss(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32), temperature=tau)
        with pytest.raises(ValueError, match="temperature"):
            ContrastiveModel(width_multiplier=0.0625, temperature=tau)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(np.ones((2, 4), np.float32), np.ones((3, 4), np.float32))
    model = ContrastiveModel(width_multiplier=0.0625)
    model.compile(optimizer="sgd")
    clip = np.random.default_rng(0).normal(size=(1, 3000)).astype(np.float32)
    with pytest.raises(ValueError, match="NT-Xent needs at least 2 clips"):
        model.train_step((tf.constant(clip), tf.constant(clip)))


def _contrastive(seed: int = 3) -> ContrastiveModel:
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(width_multiplier=0.0625, dropout=0.0, projection_hidden=32, projection_dim=16)


def test_train_step_xla_equals_eager():
    rng = np.random.default_rng(2)
    view_a = rng.normal(size=(4, 3000)).astype(np.float32)
    view_b = (view_a + 0.5 * rng.normal(size=(4, 3000))).astype(np.float32)
    results = {}
    initial = _contrastive().get_weights()
    for jit in (False, True):
        model = _contrastive()
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit)
        logs = [model.train_on_batch((view_a, view_b), return_dict=True) for _ in range(2)]
        results[jit] = (logs, model.get_weights())
    (eager_logs, eager_weights), (xla_logs, xla_weights) = results[False], results[True]
    assert eager_logs[0]["loss"] > 0
    for eager_log, xla_log in zip(eager_logs, xla_logs):
        np.testing.assert_allclose(xla_log["loss"], eager_log["loss"], rtol=1e-4)
    changed = False
    for eager_w, xla_w, start in zip(eager_weights, xla_weights, initial):
        np.testing.assert_allclose(xla_w, eager_w, rtol=1e-3, atol=1e-5)
        changed |= not np.array_equal(eager_w, start)
    assert changed, "the train step did not update any weight"


def test_contrastive_model_fit_and_keras_round_trip(tmp_path: Path):
    model = _contrastive()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(4)
    views = tf.data.Dataset.from_tensor_slices(tuple(rng.normal(size=(2, 8, 3000)).astype(np.float32))).batch(4)
    history = model.fit(views, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "contrastive_accuracy"}
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "contrastive.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, ContrastiveModel) and loaded.temperature == pytest.approx(0.1)
    probe = rng.normal(size=(2, 3000)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(probe)), np.asarray(model(probe)))


# ------------------------------------------------------------------------------------------- patches / views


def test_patch_starts_never_overlap_and_stay_inside():
    patch = 50
    seen_first, seen_orders = set(), set()
    for length in (100, 101, 137, 400):
        for i in range(300):
            start_a, start_b = patch_starts(length, patch, tf.constant([length, i])).numpy()
            assert 0 <= start_a and 0 <= start_b
            assert start_a + patch <= length and start_b + patch <= length
            assert abs(int(start_a) - int(start_b)) >= patch
            seen_orders.add(bool(start_a < start_b))
            if length == 137:
                seen_first.update({int(min(start_a, start_b)), int(max(start_a, start_b)) - patch})
    assert seen_orders == {True, False}
    assert seen_first == set(range(0, 137 - 2 * patch + 1))  # every valid gap is reachable


def test_two_patches_cut_contiguous_windows():
    ramp = np.arange(1000, dtype=np.float32)
    patches = two_patches(ramp, 300, tf.constant([1, 2])).numpy()
    assert patches.shape == (2, 300)
    for patch in patches:
        np.testing.assert_array_equal(patch, patch[0] + np.arange(300))


def _decoded(clips: list[np.ndarray]) -> DecodedClips:
    offsets = np.concatenate([[0], np.cumsum([c.size for c in clips])]).astype(np.int64)
    return DecodedClips(samples=np.concatenate(clips).astype(np.float32), offsets=offsets,
                        labels=np.zeros(len(clips), np.int32), class_names=["x"], multi_label=False,
                        paths=[Path(f"clip{i}.wav") for i in range(len(clips))], metadata={}, sample_rate=8000)


def test_dataset_views_are_non_overlapping_patches_of_the_same_clip():
    patch = 2400
    # clip i holds the values 1e5*i + position: a view's first sample tells its clip and start
    lengths = [4800, 5000, 6100, 9000, 4800, 7000]
    clips = [100000.0 * i + np.arange(n, dtype=np.float32) for i, n in enumerate(lengths)]
    dataset, num_short = contrastive_dataset(_decoded(clips), batch_size=3, patch_seconds=patch / 8000,
                                             augment=False, mix_back_snr_db=None, seed=5)
    assert num_short == 0
    for _ in range(2):  # two epochs: new positions each time
        for view_a, view_b in dataset:
            assert view_a.shape == (3, patch)
            for row_a, row_b in zip(view_a.numpy().astype(np.float64), view_b.numpy().astype(np.float64)):
                clip_a, start_a = divmod(row_a[0], 100000.0)
                clip_b, start_b = divmod(row_b[0], 100000.0)
                assert clip_a == clip_b
                np.testing.assert_array_equal(row_a, row_a[0] + np.arange(patch))
                np.testing.assert_array_equal(row_b, row_b[0] + np.arange(patch))
                assert abs(start_a - start_b) >= patch
                assert max(start_a, start_b) + patch <= lengths[int(clip_a)]


@pytest.mark.parametrize(
    "stage",
    ["gain", "noise", "mask", "mix_back"],
)
def test_each_augmentation_is_drawn_independently_per_view(stage):
    # constant clips: without augmentation both views would be identical
    clips = [np.full(6000, 0.1 * (i + 1), np.float32) for i in range(8)]
    augment = {
        "gain": aug.Augmenter(gain_db=(-6, 6), noise_snr_db=None, mask_fraction=None),
        "noise": aug.Augmenter(gain_db=None, noise_snr_db=(10, 20), mask_fraction=None),
        "mask": aug.Augmenter(gain_db=None, noise_snr_db=None, mask_fraction=0.4),
        "mix_back": False,
    }[stage]
    dataset, _ = contrastive_dataset(_decoded(clips), batch_size=8, patch_seconds=0.3, augment=augment,
                                     mix_back_snr_db=(0, 10) if stage == "mix_back" else None, seed=11)
    view_a, view_b = (v.numpy() for v in next(iter(dataset)))
    different_rows = sum(not np.allclose(a, b) for a, b in zip(view_a, view_b))
    if stage == "gain":
        ratio = view_a / view_b
        np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-5)  # one gain per view
        assert np.unique(np.round(ratio[:, 0], 4)).size == 8 and different_rows == 8
    elif stage == "noise":
        residual = (view_a - view_b).std(axis=1)
        assert np.all(residual > 0) and different_rows == 8
    elif stage == "mask":
        masked_a, masked_b = view_a == 0, view_b == 0
        assert any(not np.array_equal(a, b) for a, b in zip(masked_a, masked_b))
        assert masked_a.any() and masked_b.any()
    else:
        assert different_rows >= 6  # partners and SNRs drawn separately (a view may draw itself as partner)


def test_short_clips_skipped_with_count_or_padded():
    clips = [np.ones(n, np.float32) for n in (3000, 9000, 4000, 8000, 8000)]
    with pytest.warns(DataWarning, match="2 of 5 clips are shorter"):
        dataset, num_short = contrastive_dataset(_decoded(clips), batch_size=3, patch_seconds=0.5,
                                                 augment=False, mix_back_snr_db=None)
    assert num_short == 2 and len(list(dataset)) == 1
    with pytest.warns(DataWarning, match="zero-padded"):
        dataset, num_short = contrastive_dataset(_decoded(clips), batch_size=5, patch_seconds=0.5,
                                                 augment=False, mix_back_snr_db=None, short_clips="pad")
    view_a, view_b = next(iter(dataset))
    assert num_short == 2 and view_a.shape == (5, 4000) and np.all(np.isfinite(view_a.numpy()))
    with pytest.raises(ValueError, match="fewer than one batch"):
        contrastive_dataset(_decoded(clips), batch_size=4, patch_seconds=0.5, short_clips="skip")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        contrastive_dataset(_decoded(clips), batch_size=1, patch_seconds=0.5)
    with pytest.raises(ValueError, match="CNN12 needs at least"):
        contrastive_dataset(_decoded(clips), batch_size=2, patch_seconds=0.1)
    with pytest.raises(ValueError, match="short_clips"):
        contrastive_dataset(_decoded(clips), batch_size=2, patch_seconds=0.5, short_clips="crop")


def test_trim_silence_cuts_padding_before_patching():
    word = np.sin(np.linspace(0, 300, 5000)).astype(np.float32)
    padded = np.concatenate([np.zeros(2000, np.float32), word, np.zeros(1000, np.float32)])
    silent = np.zeros(6000, np.float32)
    trimmed = trim_silence(_decoded([padded, silent, word]), 40.0)
    assert trimmed.lengths.tolist()[1] == 1 and abs(int(trimmed.lengths[0]) - 5000) <= 2
    np.testing.assert_array_equal(trimmed.waveform(2), word[np.flatnonzero(np.abs(word) >= 0.01 * np.abs(word).max())[0]:][: trimmed.lengths[2]])
    # the silent clip is shorter than two patches and is skipped: no all-zero views reach the loss
    with pytest.warns(DataWarning, match="1 of 3 clips"):
        dataset, num_short = contrastive_dataset(_decoded([padded, silent, word]), batch_size=2, patch_seconds=0.3,
                                                 augment=False, mix_back_snr_db=None, trim_silence_db=40.0)
    assert num_short == 1
    view_a, view_b = next(iter(dataset))
    assert np.all(np.abs(view_a.numpy()).max(axis=1) > 0) and np.all(np.abs(view_b.numpy()).max(axis=1) > 0)
    with pytest.raises(ValueError, match="trim_silence_db"):
        trim_silence(_decoded([word]), 0.0)


def test_speed_range_resamples_each_view_with_its_own_factor():
    rate = 8000
    t = np.arange(2 * rate) / rate
    clips = [np.sin(2 * np.pi * (400 + 50 * i) * t).astype(np.float32) for i in range(4)]
    common = dict(batch_size=4, patch_seconds=0.5, augment=False, mix_back_snr_db=None, seed=3)
    plain_a, plain_b = (v.numpy() for v in next(iter(contrastive_dataset(_decoded(clips), **common)[0])))
    same_a, same_b = (v.numpy() for v in next(iter(contrastive_dataset(_decoded(clips), speed_range=(1.0, 1.0), **common)[0])))
    np.testing.assert_allclose(same_a, plain_a, atol=1e-5)  # factor 1: the patches themselves
    np.testing.assert_allclose(same_b, plain_b, atol=1e-5)
    fast_a, fast_b = (v.numpy() for v in next(iter(contrastive_dataset(_decoded(clips), speed_range=(0.7, 1.4), **common)[0])))

    def pitch(view):  # dominant frequency of the fully resampled middle of the patch, Hz
        middle = view[1000:3000]
        return np.argmax(np.abs(np.fft.rfft(middle * np.hanning(middle.size)))) * rate / middle.size

    ratios = [pitch(a) / pitch(b) for a, b in zip(fast_a, fast_b)]
    assert np.all(np.isfinite(fast_a)) and max(abs(np.log(r)) for r in ratios) > 0.05  # views pitched differently
    with pytest.raises(ValueError, match="speed_range"):
        contrastive_dataset(_decoded(clips), speed_range=(0.0, 1.2), **common)
