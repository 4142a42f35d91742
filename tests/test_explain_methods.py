"""tfsonify.explain.methods: completeness, brute-force equalities, agreement with the sonifier and tf gradients."""
import numpy as np
import pytest
import tensorflow as tf

from explain_models import small_classifier
from tiny import tiny_cnn12
from tfsonify.explain.methods import METHODS, explain, occlusion_windows
from tfsonify.explain.spectral import spectral_for
from tfsonify.explain.targets import Target, explained


@pytest.fixture(scope="module")
def classifier():
    return small_classifier(0)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(1)
    return rng.standard_normal((3, 400)).astype("float32")


def _score(model, target, z, index):
    """Independent score: the Keras model's logits, or a sub-model's map summed over time."""
    import keras

    if target.layer is None:
        out = model(z).numpy()
        return out[np.arange(len(z)), index]
    sub = keras.Model(model.inputs[0], model.get_layer(target.layer).output)
    return sub(z).numpy().sum(axis=1)[np.arange(len(z)), index]


def test_integrated_gradients_completeness_64_steps():
    """Sum of attributions = f(x) - f(0) within 1 % at 64 Gauss-Legendre steps, for all three logits and a map.

    (On a ReLU network the path integrand jumps at every kink, so the quadrature error is ~ kinks x jump / steps;
    the test uses a model and clips whose f(x) - f(0) is not tiny next to it.)"""
    model = small_classifier(1)
    x = 4.0 * np.random.default_rng(1).standard_normal((3, 400)).astype("float32")
    for target in (Target.unit(0), Target.unit(1), Target.unit(2), Target.map("conv2", 3)):
        e = explain("integrated_gradients", model, x, target, steps=64)
        gap = _score(model, target, x, e.index) - _score(model, target, np.zeros_like(x), e.index)
        assert np.all(np.abs(gap) > 0.05)
        np.testing.assert_array_less(np.abs(e.values.sum(axis=1) - gap), 0.01 * np.abs(gap))


def test_integrated_gradients_converges_on_peak_normalised_cnn12():
    model = tiny_cnn12(0, num_classes=4)
    x = np.random.default_rng(2).standard_normal((2, 3000)).astype("float32")
    state = explained(model)
    errors = []
    for steps in (8, 256):
        e = explain("integrated_gradients", model, x, Target.unit(0), steps=steps, batch_size=256)
        np.testing.assert_allclose(np.abs(e.inputs).max(axis=1), 1.0, rtol=1e-6)  # on the peak-normalised clip
        f = state.run("score", e.target, e.inputs, e.index) - state.run("score", e.target, np.zeros_like(e.inputs), e.index)
        errors.append(np.abs(e.values.sum(1) - f).max())
    assert errors[1] < 0.25 * errors[0]


def test_gradient_equals_tape_gradient(classifier, clips):
    x = tf.constant(clips)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(classifier(x)[:, 2])
    expected = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(explain("gradient", classifier, clips, Target.unit(2)).values, expected, atol=1e-6)
    np.testing.assert_allclose(explain("gradient_x_input", classifier, clips, Target.unit(2)).values,
                               expected * clips, atol=1e-6)


def test_sonification_of_a_map_is_the_sonifiers_reconstruction():
    import tfsonify

    model = tiny_cnn12(3)
    sonifier = tfsonify.Sonifier(model)
    x = np.random.default_rng(4).standard_normal((2, 3000)).astype("float32")
    e = explain("sonification", sonifier, x, Target.map(5, 2))
    for i in range(2):
        expected = sonifier.raw_reconstruction(e.inputs[i], 5, [2])[0]
        np.testing.assert_allclose(e.values[i], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_occlusion_equals_brute_force_loop(classifier, clips):
    window, stride = 40, 15
    e = explain("occlusion", classifier, clips, Target.unit(0), window=window, stride=stride)
    base = classifier(clips).numpy()[:, 0]
    total = np.zeros_like(clips, dtype=np.float64)
    count = np.zeros(clips.shape[1])
    start = 0
    while True:  # captum's windows: ceil((T - w) / s) + 1 starts, the last cut at T
        occluded = clips.copy()
        occluded[:, start : start + window] = 0.0
        total[:, start : start + window] += (base - classifier(occluded).numpy()[:, 0])[:, None]
        count[start : start + window] += 1
        if start + window >= clips.shape[1]:
            break
        start += stride
    assert len(occlusion_windows(clips.shape[1], window, stride)) == int(count.sum() // window) + (count.sum() % window > 0)
    np.testing.assert_allclose(e.values, total / count, rtol=1e-4, atol=1e-6)


def test_band_occlusion_equals_brute_force(classifier, clips):
    spectral = spectral_for(8000, n_fft=64)
    e = explain("occlusion_band", classifier, clips[:1], Target.unit(1), spectral=spectral, bands=4)
    spectrum = spectral.stft(clips[:1]).numpy()
    edges = np.linspace(0, spectral.bins, 5).round().astype(int)
    base = classifier(clips[:1]).numpy()[0, 1]
    drops = []
    for b in range(4):
        cut = spectrum.copy()
        cut[..., edges[b] : edges[b + 1]] = 0
        drops.append(max(base - classifier(spectral.istft(tf.constant(cut), clips.shape[1])).numpy()[0, 1], 0.0))
    drops = np.asarray(drops) / max(drops)
    for b in range(4):
        np.testing.assert_allclose(e.values[0][:, edges[b] : edges[b + 1]], drops[b], atol=1e-5)


def test_stft_round_trip():
    spectral = spectral_for(8000)
    x = np.random.default_rng(0).standard_normal((2, 1234)).astype("float32")
    np.testing.assert_allclose(spectral.istft(spectral.stft(x), 1234).numpy(), x, atol=1e-5)
    assert spectral.stft(x).shape[1] == spectral.frames(1234)


def test_every_method_batched_equals_one_clip_at_a_time(classifier, clips):
    for method in METHODS:
        batch = explain(method, classifier, clips, Target.unit(1))
        single = explain(method, classifier, clips[1:2], Target.unit(1))
        assert batch.values.shape[0] == 3 and np.all(np.isfinite(batch.values))
        np.testing.assert_allclose(batch.values[1], single.values[0], rtol=1e-3, atol=1e-5 * (np.abs(single.values).max() + 1e-12),
                                   err_msg=method)


def test_guided_and_deconvnet_differ_from_gradient(classifier, clips):
    g = explain("gradient", classifier, clips, Target.unit(0)).values
    for method in ("guided_backprop", "deconvnet"):
        other = explain(method, classifier, clips, Target.unit(0)).values
        assert not np.allclose(other, g, atol=1e-6), method
    guided = explain("guided_backprop", classifier, clips, Target.map("conv1", 2)).values
    assert np.all(np.isfinite(guided))
