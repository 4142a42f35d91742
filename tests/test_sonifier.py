import numpy as np
import pytest
import tensorflow as tf

import tfsonify
from oracle import gradient_sonification


def _pair(clip):
    rng = np.random.default_rng(3)
    return np.stack([clip, (0.2 * rng.standard_normal(clip.size)).astype("float32")])


@pytest.mark.parametrize("layer", [1, 4, 8, 9, 11])
@pytest.mark.parametrize("length", [4800, 4801])
def test_equals_gradient_formulation(tiny_model, clip, layer, length):
    sonifier = tfsonify.Sonifier(tiny_model)
    batch = _pair(clip)[:, :length]
    feature = int(sonifier.top_features(batch[0], layer, k=1)[0][0])
    ours = sonifier.sonify(batch, layer=layer, feature=feature)
    oracle = gradient_sonification(tiny_model, batch, layer, feature)
    assert ours.shape == batch.shape
    assert np.abs(ours).max() > 0
    np.testing.assert_allclose(ours, oracle, atol=1e-5)


def test_batched_features_equal_single_maps(tiny_model, clip):
    sonifier = tfsonify.Sonifier(tiny_model)
    features = [0, 3, 5, 2]
    batched = sonifier.sonify(clip, layer=6, features=features)
    assert batched.shape == (4, clip.size)
    for row, feature in zip(batched, features):
        np.testing.assert_allclose(row, sonifier.sonify(clip, layer=6, feature=feature), atol=1e-6)
    pair = _pair(clip)
    both = sonifier.sonify(pair, layer=6, features=features)
    assert both.shape == (2, 4, clip.size)
    np.testing.assert_allclose(both[1, 2], sonifier.sonify(pair[1], layer=6, feature=5), atol=1e-6)


def test_top_sonification_matches_selected(tiny_model, clip):
    sonifier = tfsonify.Sonifier(tiny_model)
    features, scores, sounds = sonifier.sonify_top(clip, layer=5, k=3)
    assert list(features) == list(sonifier.top_features(clip, 5, k=3)[0])
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(sounds, sonifier.sonify(clip, layer=5, features=list(features)), atol=1e-6)
    default = sonifier.sonify(clip, layer=5)
    np.testing.assert_allclose(default, sounds[0], atol=1e-6)


def test_top_features_is_max_activation(tiny_model, clip):
    sonifier = tfsonify.Sonifier(tiny_model)
    acts = sonifier.activations(clip, 3)
    indices, scores = sonifier.top_features(clip, 3, k=4)
    np.testing.assert_array_equal(indices, np.argsort(-acts.max(axis=0), kind="stable")[:4])
    np.testing.assert_allclose(scores, acts.max(axis=0)[indices])


def test_activations_match_keras_model(tiny_model, clip):
    import keras

    sonifier = tfsonify.Sonifier(tiny_model)
    probe = keras.Model(tiny_model.input, tiny_model.get_layer("pool7").output[0])  # (pooled, switches)
    np.testing.assert_allclose(sonifier.activations(clip, 7), probe(clip[None]).numpy()[0], atol=1e-5)


def test_output_scaled_to_input_peak(tiny_model, clip):
    sonifier = tfsonify.Sonifier(tiny_model)
    out = sonifier.sonify(3.0 * clip, layer=2, feature=1)
    np.testing.assert_allclose(np.abs(out).max(), 3.0 * np.abs(clip).max(), rtol=1e-6)
    # amplitude-invariant up to that scale: the model sees a unit-peak input
    np.testing.assert_allclose(out / 3.0, sonifier.sonify(clip, layer=2, feature=1), atol=1e-6)


@pytest.mark.parametrize("layer", [3, 8, 11])
def test_time_invariance(tiny_model, clip, layer):
    """Shifting the input by a multiple of 2**pools shifts the sonification by the same amount."""
    model = tfsonify.CNN12(width_multiplier=0.0625)
    model.set_weights(tiny_model.get_weights())
    for conv in model.conv_layers:  # zero biases: prepended silence then yields zero activations
        conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    sonifier = tfsonify.Sonifier(model)
    pools = sum(spec.pooled for spec in tfsonify.BLOCKS[:layer])
    shift = 3 * 2**pools
    # silence before the clip (longer than the receptive field) gives both versions the same edge context
    base_input = np.concatenate([np.zeros(2400, "float32"), clip])
    shifted = np.concatenate([np.zeros(shift, "float32"), base_input])
    feature = int(sonifier.top_features(base_input, layer)[0][0])
    base = sonifier.sonify(base_input, layer=layer, feature=feature)
    moved = sonifier.sonify(shifted, layer=layer, feature=feature)
    np.testing.assert_allclose(moved[shift:], base, atol=1e-6)
    np.testing.assert_allclose(moved[:shift], 0.0, atol=1e-7)


def test_jit_compile_equals_eager(tiny_model, clip):
    eager = tfsonify.Sonifier(tiny_model)
    compiled = tfsonify.Sonifier(tiny_model, jit_compile=True)
    for layer in (2, 9):
        np.testing.assert_allclose(compiled.sonify(clip, layer, features=[0, 1]), eager.sonify(clip, layer, features=[0, 1]), atol=1e-5)
        a, b = compiled.sonify_top(clip, layer, 2), eager.sonify_top(clip, layer, 2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[2], b[2], atol=1e-5)


def test_silent_clip_gives_zeros(tiny_model):
    out = tfsonify.Sonifier(tiny_model).sonify(np.zeros(4000, "float32"), layer=4, feature=0)
    assert out.shape == (4000,) and np.all(out == 0) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(waveform=np.zeros(0, "float32"), layer=3), "empty"),
        (dict(waveform=np.array([0.1, np.nan] * 2000, "float32"), layer=3), "NaN or Inf"),
        (dict(waveform=np.ones(2369, "float32"), layer=11), "needs at least 2370"),
        (dict(waveform=np.ones(4000, "float32"), layer=12), "layer must be"),
        (dict(waveform=np.ones(4000, "float32"), layer=0), "layer must be"),
        (dict(waveform=np.ones(4000, "float32"), layer=3, feature=8), "outside block 3's 8 maps"),
        (dict(waveform=np.ones(4000, "float32"), layer=3, feature=-1), "outside block 3"),
        (dict(waveform=np.ones((2, 2, 4000), "float32"), layer=3), "shape"),
        (dict(waveform="not audio", layer=3), "numeric"),
        (dict(waveform=np.ones(4000, "float32"), layer=3, feature=1, features=[1]), "not both"),
    ],
)
def test_bad_input(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfsonify.Sonifier(tiny_model).sonify(**kwargs)


def test_top_k_out_of_range(tiny_model, clip):
    with pytest.raises(ValueError, match="k must be"):
        tfsonify.Sonifier(tiny_model).top_features(clip, 2, k=99)


def test_sees_updated_weights(tiny_model, clip):
    model = tfsonify.CNN12(width_multiplier=0.0625)
    sonifier = tfsonify.Sonifier(model)
    before = sonifier.sonify(clip, 3, feature=0)
    model.set_weights(tiny_model.get_weights())
    after = sonifier.sonify(clip, 3, feature=0)
    np.testing.assert_allclose(after, gradient_sonification(tiny_model, clip[None], 3, 0)[0], atol=1e-5)
    assert not np.allclose(before, after)
