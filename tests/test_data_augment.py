"""Augmentations: statistical properties, shapes, seed determinism, tf.data and XLA (jit_compile) agreement."""
import numpy as np
import pytest
import tensorflow as tf

from tfsonify.data import augment as A
from tfsonify.data import microphone as M

SEED = tf.constant([3, 7], tf.int32)
OTHER_SEED = tf.constant([3, 8], tf.int32)


def _waves(batch=64, time=4000, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(0, 0.1, (batch, time)).astype(np.float32))


def _db(power):
    return 10 * np.log10(power)


def test_random_gain_range_and_distribution():
    waves = _waves(2000, 64)
    out = A.random_gain(waves, SEED, -6.0, 6.0).numpy()
    ratio = out / waves.numpy()
    gain_db = 20 * np.log10(ratio[:, 0])
    # one gain per example, applied to every sample
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-4)
    assert gain_db.min() >= -6.0 - 1e-3 and gain_db.max() <= 6.0 + 1e-3
    assert abs(gain_db.mean()) < 0.3  # U[-6, 6]: mean 0, std 3.46 -> s.e. 0.08
    assert abs(gain_db.std() - 12 / np.sqrt(12)) < 0.2


def test_gaussian_noise_reaches_the_drawn_snr():
    waves = _waves(32, 8000)
    out = A.gaussian_noise(waves, SEED, 20.0, 20.0).numpy()
    noise = out - waves.numpy()
    snr = _db(np.mean(waves.numpy() ** 2, axis=1) / np.mean(noise**2, axis=1))
    np.testing.assert_allclose(snr, 20.0, atol=0.35)  # 8000 samples: noise power s.e. ~1.6 % = 0.07 dB
    assert abs(noise.mean()) < 1e-3
    ranged = A.gaussian_noise(waves, SEED, 10.0, 30.0).numpy() - waves.numpy()
    snr = _db(np.mean(waves.numpy() ** 2, axis=1) / np.mean(ranged**2, axis=1))
    assert snr.min() > 9.5 and snr.max() < 30.5 and snr.std() > 2.0


def test_gaussian_noise_keeps_silence_silent():
    out = A.gaussian_noise(tf.zeros([2, 100]), SEED).numpy()
    assert np.all(out == 0.0)


def test_time_mask_zeros_one_contiguous_span_of_bounded_length():
    waves = tf.ones([500, 1000])
    out = A.time_mask(waves, SEED, max_fraction=0.2).numpy()
    masked = out == 0
    lengths = masked.sum(axis=1)
    assert lengths.max() <= 200 and lengths.min() >= 0
    assert abs(lengths.mean() - 100) < 8  # width ~ U{0..200}: mean 100, s.e. 2.6
    for row in masked[:50]:
        idx = np.flatnonzero(row)
        if idx.size:
            assert idx[-1] - idx[0] + 1 == idx.size  # contiguous
    assert np.all(out[~masked] == 1.0)  # the rest untouched


def test_time_mask_several_masks_and_bad_fraction():
    out = A.time_mask(tf.ones([200, 1000]), SEED, max_fraction=0.1, num_masks=3).numpy()
    assert (out == 0).sum(axis=1).max() <= 300
    assert (out == 0).sum(axis=1).mean() > 100  # more than one 0-100 span on average
    with pytest.raises(ValueError, match="max_fraction"):
        A.time_mask(tf.ones([1, 10]), SEED, max_fraction=1.5)


def test_mix_background_snr_and_components():
    waves, background = _waves(16, 4000, 1), _waves(16, 4000, 2) * 3.0
    mixture, scaled = A.mix_background(waves, background, SEED, 5.0, 5.0)
    np.testing.assert_allclose(mixture.numpy(), waves.numpy() + scaled.numpy(), atol=1e-6)
    snr = _db(np.mean(waves.numpy() ** 2, axis=1) / np.mean(scaled.numpy() ** 2, axis=1))
    np.testing.assert_allclose(snr, 5.0, atol=1e-3)
    _, scaled = A.mix_background(waves, background, SEED, 0.0, 20.0)
    snr = _db(np.mean(waves.numpy() ** 2, axis=1) / np.mean(scaled.numpy() ** 2, axis=1))
    assert snr.min() >= -1e-3 and snr.max() <= 20.001
    silent, _ = A.mix_background(waves, tf.zeros_like(waves), SEED)
    np.testing.assert_array_equal(silent.numpy(), waves.numpy())
    assert np.all(np.isfinite(A.mix_background(tf.zeros_like(waves), background, SEED)[0].numpy()))


def test_mix_back_adds_another_example_of_the_batch():
    waves = _waves(8, 2000, 3)
    out = A.mix_back(waves, SEED, 10.0, 10.0).numpy()
    added = out - waves.numpy()
    for row in range(8):
        # the added part is a scaled copy of exactly one batch element
        corr = [abs(np.corrcoef(added[row], waves.numpy()[j])[0, 1]) for j in range(8)]
        assert max(corr) > 0.999
        snr = _db(np.mean(waves.numpy()[row] ** 2) / np.mean(added[row] ** 2))
        assert abs(snr - 10.0) < 1e-2


def test_mixup_mixes_waves_and_labels_with_the_same_weight():
    waves = _waves(64, 100, 4)
    labels = tf.one_hot(np.arange(64) % 8, 8)
    mixed, targets = A.mixup(waves, labels, SEED, alpha=0.4)
    mixed, targets, waves = mixed.numpy(), targets.numpy(), waves.numpy()
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    for row in range(64):
        own = row % 8
        lam = targets[row, own]
        partner_class = [c for c in np.flatnonzero(targets[row] > 1e-6) if c != own]
        if not partner_class:  # partner from the same class (or λ=1): wave = λ x + (1-λ) x_j, j same class
            continue
        candidates = [j for j in range(64) if j % 8 == partner_class[0]]
        errors = [np.abs(mixed[row] - (lam * waves[row] + (1 - lam) * waves[j])).max() for j in candidates]
        assert min(errors) < 1e-5
    with pytest.raises(ValueError, match="one-hot"):
        A.mixup(waves, tf.constant(np.arange(64)), SEED)
    with pytest.raises(ValueError, match="alpha"):
        A.mixup(waves, labels, SEED, alpha=0.0)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_beta_symmetric_moments(alpha):
    samples = A.beta_symmetric([40000], SEED, alpha).numpy()
    assert samples.min() >= 0 and samples.max() <= 1
    assert abs(samples.mean() - 0.5) < 0.01
    assert abs(samples.var() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_random_crop_windows_and_padding():
    wave = tf.range(1, 101, dtype=tf.float32)
    starts = []
    for k in range(200):
        crop = A.random_crop(wave, 30, tf.constant([k, 1])).numpy()
        assert crop.shape == (30,)
        np.testing.assert_array_equal(np.diff(crop), 1.0)  # a contiguous window
        starts.append(crop[0] - 1)
    assert min(starts) == 0 and max(starts) == 70  # every offset 0..70 reachable
    short = tf.constant([1.0, 2.0, 3.0])
    placements = set()
    for k in range(100):
        padded = A.random_crop(short, 8, tf.constant([k, 2])).numpy()
        start = int(np.flatnonzero(padded)[0])
        np.testing.assert_array_equal(padded[start : start + 3], [1, 2, 3])
        assert padded.sum() == 6
        placements.add(start)
    assert placements == set(range(6))
    np.testing.assert_array_equal(A.pad_or_crop(short, 5).numpy(), [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(A.pad_or_crop(wave, 4).numpy(), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="length"):
        A.random_crop(wave, 0, SEED)


def test_random_crop_starts_cover_every_window_and_placement():
    from tfsonify.data.pipeline import packed_windows

    starts = A.random_crop_starts(tf.constant([100] * 2000 + [3] * 200, tf.int64), 30, SEED).numpy()
    assert set(starts[:2000]) == set(range(71))  # long clip: every window 0..70
    assert set(starts[2000:]) == set(range(-27, 1))  # short clip (3 of 30 samples): every placement in the padded window
    lengths = tf.constant([100] * 200 + [3] * 200, tf.int64)
    # read through packed_windows, the same windows random_crop gives: contiguous pieces / the whole short clip
    samples = tf.concat([tf.range(1, 101, dtype=tf.float32), tf.constant([1.0, 2.0, 3.0])], axis=0)
    offsets = tf.constant([0, 100, 103], tf.int64)
    indices = tf.constant([0] * 200 + [1] * 200, tf.int64)
    windows = packed_windows(samples, offsets, indices, A.random_crop_starts(lengths, 8, SEED), 8).numpy()
    np.testing.assert_array_equal(np.diff(windows[:200], axis=1), 1.0)
    np.testing.assert_array_equal(windows[200:].sum(axis=1), 6.0)
    with pytest.raises(ValueError, match="length"):
        A.random_crop_starts(lengths, 0, SEED)


def test_normal_draws_are_standard_normal():
    from scipy import stats

    z = A._normal([400, 1001], SEED).numpy().ravel()  # odd count: the last pair is cut
    assert z.shape == (400400,) and abs(z.mean()) < 0.006 and abs(z.std() - 1.0) < 0.005
    assert abs(stats.skew(z)) < 0.02 and abs(stats.kurtosis(z)) < 0.04 and np.abs(z).max() <= 4.87
    assert stats.kstest(z[:100000], "norm").pvalue > 0.001
    assert abs(np.corrcoef(z[:200000], z[200000:400000])[0, 1]) < 0.01  # cos and sin halves independent


AUGMENTATIONS = {
    "gain": lambda x, s: A.random_gain(x, s),
    "noise": lambda x, s: A.gaussian_noise(x, s),
    "time_mask": lambda x, s: A.time_mask(x, s, 0.2, 2),
    "mix_back": lambda x, s: A.mix_back(x, s),
    "mixup": lambda x, s: A.mixup(x, tf.one_hot([0, 1, 2, 0], 3), s)[0],
    "augmenter": lambda x, s: A.Augmenter()(x, s),
    "crop": lambda x, s: A.random_crop(x[0], 300, s),
    "crop_pad": lambda x, s: A.random_crop(x[0, :200], 900, s),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_seeded_deterministic_and_same_under_xla(name):
    fn = AUGMENTATIONS[name]
    waves = _waves(4, 800, 5)
    first, again, other = fn(waves, SEED), fn(waves, SEED), fn(waves, OTHER_SEED)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.allclose(first.numpy(), other.numpy())
    graph = tf.function(fn)(waves, SEED)
    xla = tf.function(fn, jit_compile=True)(waves, SEED)
    np.testing.assert_allclose(graph.numpy(), first.numpy(), atol=1e-6)
    np.testing.assert_allclose(xla.numpy(), first.numpy(), atol=1e-5)  # same Philox bits; float ops ~1 ulp
    assert first.shape == (waves.shape if name not in ("crop", "crop_pad") else (300 if name == "crop" else 900,))


def test_augmenter_inside_tf_data_is_reproducible_and_new_each_epoch():
    augment = A.Augmenter(gain_db=(-6, 6), noise_snr_db=(10, 30), mask_fraction=0.1)
    data = tf.data.Dataset.from_tensor_slices(_waves(6, 400, 6))
    pipeline = tf.data.Dataset.zip((data, A.seeds_dataset(11))).map(augment)
    epoch1 = np.stack([x.numpy() for x in pipeline])
    epoch2 = np.stack([x.numpy() for x in pipeline])
    rebuilt = tf.data.Dataset.zip((data, A.seeds_dataset(11))).map(augment)
    np.testing.assert_array_equal(epoch1, np.stack([x.numpy() for x in rebuilt]))
    assert not np.allclose(epoch1, epoch2)
    assert epoch1.shape == (6, 400) and np.all(np.isfinite(epoch1))


def test_augmenter_rejects_bad_ranges():
    with pytest.raises(ValueError, match="min <= max"):
        A.Augmenter(gain_db=(6, -6))
    with pytest.raises(ValueError, match="mask_fraction"):
        A.Augmenter(mask_fraction=2.0)


# --- microphone augmentations: pitch shift, EQ, rooms, coloured noise, DC offset -----------------------------


def _sine(freq, batch=2, time=8000, rate=8000):
    t = np.arange(time) / rate
    return tf.constant(np.stack([0.5 * np.sin(2 * np.pi * freq * t)] * batch).astype(np.float32))


def _peak_hz(wave, rate=8000):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return np.argmax(spectrum) * rate / wave.size


def _centroid_hz(wave, rate=8000):
    power = np.abs(np.fft.rfft(wave * np.hanning(wave.size))) ** 2
    return float(np.sum(power * np.fft.rfftfreq(wave.size, 1 / rate)) / np.sum(power))


def test_pitch_shift_moves_the_pitch_and_keeps_the_length():
    up = M.pitch_shift(_sine(500.0), SEED, 12.0, 12.0).numpy()
    assert up.shape == (2, 8000)
    assert abs(_peak_hz(up[0, 500:-500]) - 1000.0) < 5
    # downwards the grains' overlap-add leaves sidebands at multiples of 1/hop (62.5 Hz): the energy moves by the
    # shift (centroid within 3 %), the single peak need not sit exactly on the shifted tone
    for semitones, tone in ((-5.0, 600.0), (-3.0, 1000.0), (3.0, 300.0)):
        shifted = M.pitch_shift(_sine(tone), SEED, semitones, semitones).numpy()
        assert abs(_centroid_hz(shifted[0, 500:-500]) / (tone * 2 ** (semitones / 12)) - 1) < 0.03
    # 0 semitones reconstructs the clip (Hann grains at 50 % overlap sum to one)
    same = M.pitch_shift(_sine(440.0), SEED, 0.0, 0.0).numpy()
    np.testing.assert_allclose(same[:, 256:-256], _sine(440.0).numpy()[:, 256:-256], atol=1e-5)
    # a speech-like clip: energy stays where it was in time (duration kept)
    burst = np.zeros((1, 8000), np.float32)
    burst[0, 3000:4000] = np.sin(2 * np.pi * 300 * np.arange(1000) / 8000)
    shifted = M.pitch_shift(tf.constant(burst), SEED, 3.0, 3.0).numpy()[0]
    assert np.sum(shifted[2800:4200] ** 2) > 0.97 * np.sum(shifted**2)


def test_eq_presets_shape_the_spectrum():
    frequencies = np.array([80.0, 1000.0, 3900.0])
    for name in M.EQ_PRESETS:
        only = {k: (1.0 if k == name else 0.0,) + v[1:] for k, v in M.EQ_PRESETS.items()}
        response, preset = M.eq_response(frequencies, SEED, 64, only, return_preset=True)
        gain_db = 20 * np.log10(response.numpy())
        assert set(preset.numpy().tolist()) == {list(M.EQ_PRESETS).index(name)}
        if name == "flat":
            np.testing.assert_allclose(gain_db, 0.0, atol=1e-4)
        if name == "telephone":  # 300-3400 Hz voice band: bass and top well below the middle
            assert np.all(gain_db[:, 0] < gain_db[:, 1] - 12) and np.all(gain_db[:, 2] < gain_db[:, 1] - 6)
        if name == "laptop":  # bass roll-off and a presence peak
            assert np.all(gain_db[:, 0] < gain_db[:, 1] - 6)
        if name == "muffled":  # a dark top: >= 5 dB down at 3.9 kHz (corner <= 2 kHz, tilt <= 0)
            assert np.all(gain_db[:, 2] < gain_db[:, 1] - 5)
    # the default mix draws every preset, about as often as its probability
    _, preset = M.eq_response(frequencies, SEED, 4000, return_preset=True)
    counts = np.bincount(preset.numpy(), minlength=len(M.EQ_PRESETS)) / 4000
    np.testing.assert_allclose(counts, [p[0] for p in M.EQ_PRESETS.values()], atol=0.03)


def test_eq_tilt_is_a_slope_in_db_per_octave():
    frequencies = np.array([250.0, 500.0, 1000.0, 2000.0])
    tilt_only = {"tilt": (1.0, None, None, None, (-6.0, -6.0))}
    gain_db = 20 * np.log10(M.eq_response(frequencies, SEED, 2, tilt_only).numpy())
    np.testing.assert_allclose(gain_db, [[12.0, 6.0, 0.0, -6.0]] * 2, atol=1e-3)
    # band_stop: one band cut by 15-30 dB (the Gaussian dip's centre), the rest near 0 dB
    grid = np.geomspace(150.0, 3900.0, 400)
    only = {k: (1.0 if k == "band_stop" else 0.0,) + v[1:] for k, v in M.EQ_PRESETS.items()}
    dips = 20 * np.log10(M.eq_response(grid, SEED, 64, only).numpy())
    assert np.all(dips.min(axis=1) < -12) and np.all(dips.min(axis=1) > -35) and np.all(np.median(dips, axis=1) > -6)
    # a four-entry preset (no tilt field) still works: flat
    flat = 20 * np.log10(M.eq_response(frequencies, SEED, 2, {"old": (1.0, None, None, None)}).numpy())
    np.testing.assert_allclose(flat, 0.0, atol=1e-4)


def test_random_eq_keeps_power_and_filters_a_tone():
    telephone_only = {k: (1.0 if k == "telephone" else 0.0,) + v[1:] for k, v in M.EQ_PRESETS.items()}
    low, mid = _sine(80.0, batch=4), _sine(1000.0, batch=4)
    mixed = M.random_eq(low + mid, SEED, presets=telephone_only).numpy()
    spectrum = np.abs(np.fft.rfft(mixed[0]))
    assert spectrum[80] < 0.1 * spectrum[1000]  # 1 Hz bins: the 80 Hz tone is cut by the 250-400 Hz high-pass
    np.testing.assert_allclose(np.mean(mixed**2, axis=1), np.mean((low + mid).numpy() ** 2, axis=1), rtol=1e-3)


def test_synthetic_rir_decays_at_the_drawn_rt60():
    rir, rt60 = M.synthetic_rir(32, SEED, length=8000, rt60_s=(0.2, 1.0))
    rir, rt60 = rir.numpy(), rt60.numpy()
    assert rt60.min() >= 0.2 and rt60.max() <= 1.0 and rt60.std() > 0.1
    for h, expected in zip(rir, rt60):
        assert h[0] == pytest.approx(1.0)  # the direct path at t = 0
        tail = h[40:]  # Schroeder backward integral of the diffuse tail, -5 to -25 dB (T20 x 3)
        energy = np.cumsum(tail[::-1] ** 2)[::-1]
        decay_db = 10 * np.log10(energy / energy[0])
        t5, t25 = np.argmax(decay_db < -5), np.argmax(decay_db < -25)
        assert abs(3 * (t25 - t5) / 8000 - expected) < 0.15 * expected + 0.02


def test_room_reverb_smears_an_impulse_and_keeps_power():
    click = np.zeros((4, 8000), np.float32)
    click[:, 1000] = 1.0
    wet = M.room_reverb(tf.constant(click), SEED, rt60_s=(0.8, 0.8), drr_db=(0.0, 0.0)).numpy()
    np.testing.assert_allclose(np.sum(wet**2, axis=1), 1.0, rtol=1e-3)
    assert np.argmax(np.abs(wet[0])) == 1000 and np.abs(wet[:, :1000]).max() < 1e-4  # direct path in place, causal
    assert np.sum(wet[:, 1400:] ** 2) > 0.1 * np.sum(wet**2)  # a reverberant tail after 50 ms


def test_coloured_noise_snr_and_slope():
    silent = tf.zeros([2, 8000])
    assert np.all(M.coloured_noise(silent, SEED).numpy() == 0)
    waves = _waves(16, 8000)
    noisy = M.coloured_noise(waves, SEED, 10.0, 10.0, exponent=(2.0, 2.0)).numpy()
    noise = noisy - waves.numpy()
    np.testing.assert_allclose(_db(np.mean(waves.numpy() ** 2, axis=1) / np.mean(noise**2, axis=1)), 10.0, atol=0.05)
    spectrum = np.mean(np.abs(np.fft.rfft(noise, axis=1)) ** 2, axis=0)
    assert spectrum[100:200].mean() > 100 * spectrum[3000:3900].mean()  # brown: -20 dB/decade


def test_dc_offset_range():
    out = M.dc_offset(tf.zeros([2000, 10]), SEED, 0.01).numpy()
    assert np.all(out == out[:, :1]) and np.abs(out).max() <= 0.01 and out.std() > 0.004


def test_microphone_augmenter_is_reproducible_and_in_tf_data():
    augmenter = M.MicrophoneAugmenter()
    waves = _waves(8, 8000)
    first = augmenter(augmenter.foreground(waves, SEED), SEED).numpy()
    again = augmenter(augmenter.foreground(waves, SEED), SEED).numpy()
    other = augmenter(augmenter.foreground(waves, OTHER_SEED), OTHER_SEED).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == (8, 8000) and np.all(np.isfinite(first)) and not np.allclose(first, other)
    dataset = tf.data.Dataset.from_tensors(waves).map(lambda w: augmenter(augmenter.foreground(w, SEED), SEED))
    np.testing.assert_allclose(next(iter(dataset)).numpy(), first, atol=1e-5)
    off = M.MicrophoneAugmenter(speed=None, pitch_semitones=None, rt60_s=None, eq_probability=0.0, noise_snr_db=None,
                                gain_db=None, dc_offset=None, mask_fraction=None)
    np.testing.assert_array_equal(off(off.foreground(waves, SEED), SEED).numpy(), waves.numpy())
    with pytest.raises(ValueError, match="reverb_probability"):
        M.MicrophoneAugmenter(reverb_probability=1.5)
    with pytest.raises(ValueError, match="rt60_s"):
        M.MicrophoneAugmenter(rt60_s=(1.0, 0.2))
