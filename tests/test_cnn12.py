import keras
import numpy as np
import pytest

import tfsonify
from oracle import gradient_sonification


def test_full_width_parameter_counts_and_layout():
    model = tfsonify.CNN12()
    assert model.count_params() == 13_757_248
    convs = model.conv_layers
    assert [c.filters for c in convs] == [spec.filters for spec in tfsonify.BLOCKS]
    assert [c.kernel_size[0] for c in convs] == [7, 7, 5, 5, 5, 3, 3, 3, 3, 3, 3]
    assert all(c.padding == "valid" and c.strides == (1,) and c.use_bias for c in convs)
    assert [layer.name for layer in model.layers if layer.name.startswith("pool")] == [f"pool{i}" for i in range(1, 9)]
    assert model.get_layer("dropout").rate == 0.4
    assert model.output.shape[-1] == 512
    assert not any("normalization" in type(layer).__name__.lower() and "Peak" not in type(layer).__name__ for layer in model.layers)


@pytest.mark.slow
def test_full_width_sonification_matches_oracle():
    keras.utils.set_random_seed(5)
    model = tfsonify.CNN12()
    x = np.random.default_rng(0).standard_normal((1, 8000)).astype("float32")
    sonifier = tfsonify.Sonifier(model)
    feature = int(sonifier.top_features(x[0], 11)[0][0])
    ours = sonifier.sonify(x, layer=11, feature=feature)
    np.testing.assert_allclose(ours, gradient_sonification(model, x, 11, feature), atol=1e-5)
    assert np.abs(ours).max() == pytest.approx(np.abs(x).max(), rel=1e-6)


def test_x2_parameter_count():
    model = tfsonify.CNN12_x2()
    assert model.count_params() == 52_917_376
    assert model.name == "cnn12_x2"
    with pytest.raises(ValueError, match="fixes width_multiplier"):
        tfsonify.CNN12_x2(width_multiplier=3)


@pytest.mark.parametrize("head", [None, dict(num_classes=5), dict(num_classes=7, multi_label=True)])
def test_keras_roundtrip_identical_outputs(tmp_path, head):
    keras.utils.set_random_seed(2)
    model = tfsonify.CNN12(width_multiplier=0.0625, **(head or {}))
    x = np.random.default_rng(1).standard_normal((2, 3000)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is tfsonify.CNN12
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(tfsonify.Sonifier(loaded).sonify(x[0], 6, feature=2), tfsonify.Sonifier(model).sonify(x[0], 6, feature=2))


def test_heads():
    x = np.random.default_rng(1).standard_normal((3, 2500)).astype("float32")
    softmax = tfsonify.CNN12(width_multiplier=0.0625, num_classes=4)(x).numpy()
    np.testing.assert_allclose(softmax.sum(axis=1), 1.0, rtol=1e-5)
    sigmoid = tfsonify.CNN12(width_multiplier=0.0625, num_classes=4, multi_label=True)(x).numpy()
    assert sigmoid.shape == (3, 4) and np.all((sigmoid > 0) & (sigmoid < 1))


def test_scale_invariant_and_silence_safe():
    model = tfsonify.CNN12(width_multiplier=0.0625)
    x = np.random.default_rng(1).standard_normal((1, 2500)).astype("float32")
    np.testing.assert_allclose(model(x).numpy(), model(7.5 * x).numpy(), rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(model(np.zeros((1, 2500), "float32")).numpy()))


def test_encoder_shares_weights():
    model = tfsonify.CNN12(width_multiplier=0.0625, num_classes=3)
    encoder = model.encoder()
    assert encoder.output.shape[-1] == 512
    assert encoder.get_layer("conv3") is model.get_layer("conv3")


def test_lengths():
    assert tfsonify.min_length(11) == 2370
    assert tfsonify.output_length(2370, 11) == 1 and tfsonify.output_length(2369, 11) == 0
    for layer in range(1, 12):
        assert tfsonify.output_length(tfsonify.min_length(layer), layer) == 1
        assert tfsonify.output_length(tfsonify.min_length(layer) - 1, layer) == 0
    assert tfsonify.output_length(8000, 11) == 22


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width_multiplier=0), "width_multiplier"),
        (dict(width_multiplier="wide"), "width_multiplier"),
        (dict(num_classes=0), "num_classes"),
        (dict(dropout=1.0), "dropout"),
        (dict(sample_rate=-8000), "sample_rate"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfsonify.CNN12(**kwargs)


def test_pools_return_switches_and_the_deconvnet_uses_them(monkeypatch):
    """pool1..pool8 are MaxPool1DWithSwitches; the deconvnet unpools with the switches the model's own layer returns."""
    from tiny import tiny_cnn12

    model = tiny_cnn12(3)
    pools = [model.get_layer(f"pool{i}") for i in range(1, 9)]
    assert all(type(pool) is tfsonify.MaxPool1DWithSwitches for pool in pools)
    x = np.random.default_rng(1).standard_normal((1, 800)).astype("float32")
    pooled, switches = keras.Model(model.input, pools[1].output)(x)  # the graph's own (pooled, switches) pair
    ref_pooled, ref_switches = tfsonify.max_pool_with_switches(keras.Model(model.input, model.get_layer("conv2").output)(x))
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(switches, ref_switches)

    before = tfsonify.Sonifier(model).sonify(x, 2, feature=1)
    np.testing.assert_allclose(before, gradient_sonification(model, x, 2, 1), atol=1e-5)
    original = pools[0].call
    monkeypatch.setattr(pools[0], "call", lambda inputs: (lambda p, s: (p, 1.0 - s))(*original(inputs)))
    flipped = tfsonify.Sonifier(model).sonify(x, 2, feature=1)  # same forward, switches of pool1 inverted
    assert not np.allclose(flipped, before, atol=1e-3)
